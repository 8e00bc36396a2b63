"""`make dev`'s runner: the stack comes up, and Ctrl-C leaves no java, supervisord or gunicorn behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import processes
from devstack.processes import descendants
from devstack.readiness import free_port, wait_until

from ..helpers import ROOT, count_topic_by_type, ctl, get_stats, python_env, status, totals_equal, wait_for_stats


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_dev_runner_starts_everything_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = python_env({"EVENTDASH_PORT": str(port), "EVENTDASH_HOST": "127.0.0.1",
                      "EVENTDASH_PRODUCER_METRICS_PORT": "0", "EVENTDASH_CONSUMER_METRICS_PORT": "0"})
    log = open(tmp_path / "dev.log", "wb")
    dev = subprocess.Popen([sys.executable, "-m", "devstack", "dev", "--kafka-port", str(free_port()),
                            "--zookeeper-port", str(free_port()), "--home", str(tmp_path / "home")],
                           cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_stats(f"http://127.0.0.1:{port}", lambda s: s["events_total"] > 0, what="events on the dashboard",
                       timeout=120, alive=lambda: dev.poll() is not None and f"exited {dev.returncode}")
        started = descendants(dev.pid)
        commands = " ".join(command_of(pid) for pid in started)
        for expected in ("QuorumPeerMain", "kafka.Kafka", "supervisord", "eventdash.dashboard.serve",
                         "eventdash consume", "eventdash produce"):
            assert expected in commands, f"{expected} not running under the dev runner"
        dev.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert dev.wait(150) == 0
        wait_until(lambda: not [p for p in started if command_of(p)], what="every child process to exit",
                   timeout=10)
    finally:
        if dev.poll() is None:
            dev.kill()
        log.close()
        print((tmp_path / "dev.log").read_text()[-3000:])


class DevRunner:
    """``python -m devstack dev`` from a private folder, on ports fixed across its restarts."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.home = tmp_path / "home"
        self.port = free_port()
        self.ports = ["--kafka-port", str(free_port()), "--zookeeper-port", str(free_port())]
        self.env = python_env({"EVENTDASH_PORT": str(self.port), "EVENTDASH_HOST": "127.0.0.1",
                               "EVENTDASH_RATE": "200", "EVENTDASH_PRODUCER_METRICS_PORT": "0",
                               "EVENTDASH_CONSUMER_METRICS_PORT": "0"})
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.home / "deploy" / "supervisord.conf"

    def start(self) -> None:
        self.runs += 1
        with open(self.tmp_path / f"dev-{self.runs}.log", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "devstack", "dev", *self.ports, "--home",
                                          str(self.home)], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def died(self) -> str | None:
        if self.proc.poll() is not None:
            return f"dev runner exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
        return None

    def log(self) -> str:
        return (self.tmp_path / f"dev-{self.runs}.log").read_text(errors="replace")

    def ctrl_c(self) -> float:
        """SIGINT, as Ctrl-C sends; returns how long everything took to stop."""
        started = descendants(self.proc.pid)
        began = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(60) == 0, self.log()[-3000:]
        wait_until(lambda: not [p for p in started if command_of(p)], what="every child process to exit",
                   timeout=10)
        return time.monotonic() - began

    def double_ctrl_c(self) -> float:
        """Two SIGINTs in a row, as an impatient user sends: everything must be gone at once."""
        started = descendants(self.proc.pid)
        began = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping (at most" in self.log(), what="the runner to begin stopping", timeout=10)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(15)
        wait_until(lambda: not [p for p in started if command_of(p)], what="every child process to be gone",
                   timeout=10)
        return time.monotonic() - began

    def power_cut(self) -> None:
        """SIGKILL the runner and every process under it at the same moment: all are stopped first
        (SIGSTOP), so none can react to another's death (supervisord would respawn a killed program
        before its own SIGKILL, and that orphan would go on producing), then all are killed."""
        victims = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in victims:
            os.kill(pid, signal.SIGSTOP)
        victims = [self.proc.pid, *descendants(self.proc.pid)]  # nothing can have forked meanwhile
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        wait_until(lambda: not [p for p in victims if command_of(p)], what="every killed process to be gone",
                   timeout=10)


@pytest.mark.slow
def test_dev_stack_survives_chaos_and_a_power_cut_and_ctrl_c_is_quick(tmp_path, start_program):
    dev = DevRunner(tmp_path)
    try:
        dev.start()
        wait_for_stats(dev.base, lambda s: s["events_total"] > 0, what="events on the dashboard", timeout=120,
                       alive=dev.died)

        # Chaos: the supervised consumer SIGKILLed twice, and a second consumer that joins and is killed.
        for _ in range(2):
            consumer_pid = wait_until(
                lambda: (s := status(dev.conf).get("consumer", ("", None)))[0] == "RUNNING" and s[1],
                what="the consumer RUNNING", timeout=60, alive=dev.died)
            os.kill(consumer_pid, signal.SIGKILL)
            wait_until(
                lambda pid=consumer_pid: (s := status(dev.conf)["consumer"])[0] == "RUNNING" and s[1] != pid,
                what="supervisord to restart the consumer", timeout=30, alive=dev.died)
        extra = start_program("consumer-extra", ["consume"], {
            **dev.env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dev.ports[1]}",
            "EVENTDASH_TRANSACTIONAL_ID": f"dev-chaos-extra-{time.monotonic_ns()}"})
        wait_until(lambda: "restored" in extra.log_path.read_text(), what="the extra consumer to take partitions",
                   timeout=60, alive=extra.died)
        extra.kill()
        took = dev.ctrl_c()
        assert took <= 15, f"Ctrl-C after chaos took {took:.1f} s"

        # Again, then a power cut: every process SIGKILLed at once.
        dev.start()
        wait_for_stats(dev.base, lambda s: s["events_total"] > 0, what="the stack back after Ctrl-C", timeout=60,
                       alive=dev.died)
        wait_until(lambda: status(dev.conf).get("producer", ("",))[0] == "RUNNING", what="the producer running",
                   timeout=30, alive=dev.died)
        before = get_stats(dev.base)["events_total"]
        dev.power_cut()

        began = time.monotonic()
        dev.start()
        wait_for_stats(dev.base, lambda s: s["events_total"] > before, what="counting again after a power cut",
                       timeout=60, alive=dev.died)
        assert time.monotonic() - began <= 60
        assert "stopped" in ctl(dev.conf, "stop", "producer")
        in_topic = count_topic_by_type(f"127.0.0.1:{dev.ports[1]}", "events")
        wait_for_stats(dev.base, totals_equal(dict(in_topic)), what="exact totals after the power cut", timeout=60,
                       alive=dev.died)

        # An impatient second Ctrl-C stops at once, and the stack still starts again.
        took = dev.double_ctrl_c()
        assert took <= 5, f"a second Ctrl-C took {took:.1f} s"
        dev.start()
        wait_for_stats(dev.base, totals_equal(dict(in_topic)), what="the totals back after a double Ctrl-C",
                       timeout=60, alive=dev.died)
        took = dev.ctrl_c()
        assert took <= 15, f"Ctrl-C took {took:.1f} s"
    finally:
        if dev.proc is not None and dev.proc.poll() is None:
            processes.kill_tree(dev.proc)  # a failed run must not leave a stack behind
