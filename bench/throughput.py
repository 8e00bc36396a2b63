"""Producer and consumer throughput against their raw confluent-kafka limits and Quix Streams."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from devstack import processes
from devstack.readiness import free_port
from eventdash.config import Settings
from eventdash.consumer.aggregator import Aggregator
from eventdash.kafka.admin import ensure_topics, make_admin
from eventdash.kafka.clients import AGGREGATOR_FETCH_SETTINGS, make_producer, produce_with_backpressure
from eventdash.producer.runner import run_producer

from .common import ROOT, eventdash_env, eventdash_topics, metric_sum, new_topic

logger = logging.getLogger(__name__)
QUIX_VERSION = "3.28.1"
QUIX_VENV = ROOT / ".cache" / f"bench-quix-{QUIX_VERSION}"


def settings_for(bootstrap: str, topics: dict[str, str], **extra: str) -> Settings:
    return Settings.from_env(eventdash_env(bootstrap, topics, **extra))


def eventdash_produce(bootstrap: str, count: int) -> tuple[float, float]:
    """(events/s, mean payload bytes) of ``run_producer`` at full speed, topics made beforehand."""
    settings = settings_for(bootstrap, eventdash_topics("bench-produce"))
    ensure_topics(make_admin(settings), settings)
    started = time.perf_counter()
    report = run_producer(settings, count=count, rate=0)
    elapsed = time.perf_counter() - started
    assert sum(report.delivered.values()) == count and report.failed == 0
    return count / elapsed, 0.0


def raw_produce(bootstrap: str, count: int, events: list[tuple[bytes, bytes]]) -> float:
    """The limit: the same producer settings and the same real events, pre-encoded, cycled; timed
    like ``run_producer`` from client creation to the last delivery (flush)."""
    settings = settings_for(bootstrap, eventdash_topics("bench-raw"))
    topic = new_topic(bootstrap, "bench-raw-produce")
    started = time.perf_counter()
    producer = make_producer(settings, "bench-raw")
    cycle = len(events)
    for i in range(count):
        key, value = events[i % cycle]
        produce_with_backpressure(producer, topic, value, key=key)
    assert producer.flush(120) == 0
    return count / (time.perf_counter() - started)


def raw_consume(bootstrap: str, topic: str, count: int) -> float:
    """The limit: consume-and-discard with the aggregator's fetch settings (``AGGREGATOR_FETCH_SETTINGS``),
    no consumer group; timed like the aggregator, from the first message to the last.

    ``fetch.queue.backoff.ms`` matters: at librdkafka's default (1000 ms) a consumer that drains
    its queue faster than the fetcher refills it idles up to a second per refill, which made
    this loop report 10x less in some runs.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         **AGGREGATOR_FETCH_SETTINGS})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen, first = 0, None
    try:
        while seen < count:
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            if messages and first is None:
                first = time.perf_counter()
            seen += sum(1 for m in messages if m.error() is None)
        return count / (time.perf_counter() - first)
    finally:
        consumer.close()


class TimedAggregator(Aggregator):
    """The aggregator, unchanged, with the clock read where every other consumer here reads it: at its
    first message and when the last one has been processed."""

    def __init__(self, settings: Settings, count: int):
        super().__init__(settings)
        self.count = count
        self.first_at: float | None = None
        self.done_at: float | None = None

    def _process(self, messages) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        super()._process(messages)
        if self.done_at is None and sum(self.checkpoint.next_offsets.values()) >= self.count:
            self.done_at = time.perf_counter()


def eventdash_consume(bootstrap: str, topic: str, count: int, engine: str = "native") -> float:
    """The full statistics engine with exactly-once on, in this process, over a pre-filled topic;
    ``engine``: the Rust hot path (native) or the Python reference (python).

    Timed like the raw loop and Quix Streams: from the first message to the last one processed.
    The transaction that commits the last events follows within one snapshot interval; it is
    waited for (the run fails without it) but not timed, as no other consumer here commits in its
    timed region.
    """
    topics = eventdash_topics("bench-agg")
    topics["events"] = topic
    aggregator = TimedAggregator(settings_for(bootstrap, topics, EVENTDASH_ENGINE=engine), count)
    thread = threading.Thread(target=aggregator.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 600
        while True:
            checkpoint = aggregator.checkpoint
            if (aggregator.done_at is not None and checkpoint is not None and not checkpoint.dirty
                    and not checkpoint.in_transaction):
                return count / (aggregator.done_at - aggregator.first_at)
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the aggregator stopped (or stalled) during the benchmark")
            time.sleep(0.05)
    finally:
        aggregator.stop.set()
        thread.join(60)


def consumer_processes(bootstrap: str, topic: str, count: int, processes_n: int, work_dir: Path,
                       require_settled: bool = True) -> float:
    """``processes_n`` ``python -m eventdash consume`` processes in one group over a pre-filled topic,
    timed in steady state by their own counters (``/metrics``): start-up and the group's first
    rebalances stay outside the timed region for any number of processes (``require_settled=False``, for
    smoke runs too small for that: from the start of the processes to the last event, start-up included)."""
    topics = eventdash_topics("bench-scale")
    topics["events"] = topic
    group = f"bench-scale-{uuid.uuid4().hex[:8]}"
    ports = [free_port() for _ in range(processes_n)]
    procs = []
    spawned = time.perf_counter()
    try:
        for i, port in enumerate(ports):
            env = eventdash_env(bootstrap, topics, EVENTDASH_CONSUMER_GROUP=group, EVENTDASH_ENGINE="native",
                                EVENTDASH_TRANSACTIONAL_ID=f"{group}-{i}", EVENTDASH_CONSUMER_METRICS_PORT=str(port))
            with open(work_dir / f"scale-{processes_n}-{i}.log", "ab") as log:
                procs.append(processes.spawn([sys.executable, "-m", "eventdash", "consume"], env=env,
                                             cwd=str(ROOT), stdout=log))
        # Steady state: from when every process owns partitions (the group's first rebalances are over)
        # and 20 % of the events are in, to 90 %.
        start: tuple[float, float] | None = None
        deadline = time.monotonic() + 600
        while True:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{processes_n} consumer processes did not consume {count:,} events")
            done = sum(_metric(port, "eventdash_consumer_events_total{") for port in ports)
            now = time.perf_counter()
            if not require_settled:  # a smoke run: too few events for a steady state, start-up included
                if done >= count:
                    return count / (now - spawned)
                time.sleep(0.005)
                continue
            if start is None and done >= 0.2 * count and all(
                    _metric(port, "eventdash_consumer_assigned_partitions ") > 0 for port in ports):
                start = (now, done)
            if done >= 0.9 * count:
                if start is None or done - start[1] < 0.3 * count:
                    raise RuntimeError(f"{processes_n} processes: the group settled too late in {count:,} events "
                                       "for a steady-state figure; use more events")
                return (done - start[1]) / (now - start[0])
            time.sleep(0.005)
    finally:
        for i, proc in enumerate(procs):
            processes.stop_group(proc, name=f"consumer-{i}", timeout=60)


def _metric(port: int, prefix: str) -> float:
    """The sum of a consumer's metric lines starting with ``prefix`` (0 while it is not listening yet)."""
    try:
        return metric_sum(f"http://127.0.0.1:{port}/metrics", prefix, timeout=2)
    except requests.RequestException:
        return 0.0


def ensure_quix_venv() -> Path:
    python = QUIX_VENV / "bin" / "python"
    if not (QUIX_VENV / ".complete").exists():
        logger.info("installing quixstreams==%s into %s (it pins confluent-kafka<2.13)", QUIX_VERSION, QUIX_VENV)
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"], check=True)
        (QUIX_VENV / ".complete").write_text(QUIX_VERSION)
    return python


QUIX_VARIANTS = ("group_by", "per_partition")
QUIX_COMMIT_INTERVAL_SECONDS = Settings.snapshot_interval_ms / 1000  # eventdash's snapshot interval


def quix_consume(bootstrap: str, topic: str, count: int, variant: str, guarantee: str, work_dir: Path) -> float:
    """Quix Streams on the same pre-filled topic, with the aggregator's fetch settings and commit interval."""
    python = ensure_quix_venv()
    result = subprocess.run(
        [str(python), str(Path(__file__).parent / "quix_app.py"), bootstrap, topic, str(count), guarantee,
         str(work_dir / f"quix-state-{uuid.uuid4().hex[:8]}"), variant, json.dumps(AGGREGATOR_FETCH_SETTINGS),
         str(QUIX_COMMIT_INTERVAL_SECONDS)],
        capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"quix app failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    return count / (timing["done"] - timing["first"])
