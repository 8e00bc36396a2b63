"""Helpers shared by the integration tests: real processes, real broker, honest waits."""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import requests
from confluent_kafka import Consumer, TopicPartition

from devstack import processes
from devstack.environment import program_env
from devstack.readiness import wait_until

ROOT = Path(__file__).resolve().parent.parent
EVENT_TYPES = ("productview", "addtobasket", "removefrombasket", "purchase")


@dataclass
class Program:
    """A real eventdash program (or any command) running as a child process."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    history: list[int] = field(default_factory=list)

    def start(self) -> Program:
        log = open(self.log_path, "ab")
        self.proc = processes.spawn(self.args, env=self.env, cwd=str(ROOT), stdout=log)
        log.close()
        self.history.append(self.proc.pid)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"{self.name} exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
        return None

    def kill(self) -> None:
        """SIGKILL, no chance to clean up: what a crash looks like."""
        assert self.proc is not None
        processes.os.killpg(self.proc.pid, 9)
        self.proc.wait(10)

    def stop(self, timeout: float = 40) -> int | None:
        if self.proc is None:
            return None
        processes.stop_group(self.proc, name=self.name, timeout=timeout)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def produce(env: dict[str, str], count: int, timeout: float = 300, *extra: str) -> dict:
    """``python -m eventdash produce --count N [extra...]``; returns its final JSON line."""
    result = subprocess.run([sys.executable, "-m", "eventdash", "produce", "--count", str(count), "--rate", "0",
                             *extra],
                            env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"produce failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return orjson.loads(result.stdout.strip().splitlines()[-1])


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[bytes]:
    """Every committed record value of a topic, read independently of eventdash."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        values: list[bytes] = []
        done = {p for p, high in ends.items() if high == 0}
        deadline = time.monotonic() + timeout
        while len(done) < len(ends):
            assert time.monotonic() < deadline, f"reading {topic} took over {timeout} s"
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    continue
                values.append(msg.value())
                if msg.offset() >= ends[msg.partition()] - 1:
                    done.add(msg.partition())
            # a transactional topic ends with a commit marker, which is never delivered: the position passes it
            done |= {tp.partition for tp in consumer.position([TopicPartition(topic, p) for p in ends])
                     if tp.offset >= ends[tp.partition]}
        return values
    finally:
        consumer.close()


def count_topic_by_type(bootstrap: str, topic: str) -> Counter:
    return Counter(orjson.loads(value)["type"] for value in read_topic(bootstrap, topic))


def get_stats(base_url: str) -> dict:
    response = requests.get(f"{base_url}/api/stats", timeout=5)
    response.raise_for_status()
    return response.json()


def wait_for_stats(base_url: str, predicate: Callable[[dict], bool], *, what: str, timeout: float = 90,
                   alive: Callable[[], str | None] | None = None) -> dict:
    """Poll ``/api/stats`` until ``predicate`` holds; fail with the last document seen."""
    last: dict = {}

    def probe():
        nonlocal last
        last = get_stats(base_url)
        return last if predicate(last) else None

    try:
        return wait_until(probe, what=what, timeout=timeout, interval=0.2, max_interval=0.5, alive=alive)
    except Exception as exc:
        summary = {k: last.get(k) for k in ("totals", "invalid_total", "invalid_by_reason", "partitions")}
        raise AssertionError(f"{exc}\nlast /api/stats: {summary}") from None


def totals_equal(expected: dict[str, int]) -> Callable[[dict], bool]:
    want = {t: expected.get(t, 0) for t in EVENT_TYPES}
    return lambda stats: stats["totals"] == want


def python_env(extra: dict[str, str]) -> dict[str, str]:
    return program_env(extra, inherit_config=False)


def ctl(conf: Path, *args: str) -> str:
    result = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), *args],
                            capture_output=True, text=True, timeout=60)
    return result.stdout


def status(conf: Path) -> dict[str, tuple[str, int | None]]:
    """``{"consumer": ("RUNNING", pid), ...}`` from ``supervisorctl status``."""
    states = {}
    for line in ctl(conf, "status").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else None
            states[parts[0]] = (parts[1], pid)
    return states


def consumer_with_topics(env: dict[str, str], start_program) -> Program:
    """A consumer, once it has created the stack's topics (so records produced next are not lost)."""
    consumer = start_program("consumer", ["consume"], env)
    bootstrap, topic = env["KAFKA_BOOTSTRAP_SERVERS"], env["EVENTDASH_EVENTS_TOPIC"]
    client = Consumer({"bootstrap.servers": bootstrap, "group.id": "topic-check"})
    try:
        wait_until(lambda: topic in client.list_topics(timeout=5).topics, what=f"topic {topic}", timeout=60,
                   alive=consumer.died)
    finally:
        client.close()
    return consumer


def flowing_stack(stack_env, start_program, start_dashboard, *, rate: int, events: int) -> str:
    """A consumer, a producer at ``rate`` events/s and a dashboard on a fresh stack; the dashboard's URL
    once it counts more than ``events`` events."""
    env = stack_env(EVENTDASH_RATE=str(rate))
    start_program("consumer", ["consume"], env)
    producer = start_program("producer", ["produce"], env)
    _, base = start_dashboard(env)
    wait_for_stats(base, lambda s: s["events_total"] > events, what=f"more than {events} events counted",
                   alive=producer.died)
    return base
