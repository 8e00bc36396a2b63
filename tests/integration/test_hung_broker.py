"""A hung broker (SIGSTOP: a GC pause, a VM stall, a partition), not a clean stop.

The supervised stack must come back to exact totals by itself within 60 s of the broker
resuming, for a 20 s and then a 60 s hang in the middle of a 3,000 events/s stream: the
consumer may exit and be restarted by supervisord, but it is never left alive doing nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import orjson
import pytest
import requests

from devstack.localkafka import LocalKafka
from devstack.readiness import wait_until

from ..helpers import ROOT, count_topic_by_type, ctl, status, totals_equal, wait_for_stats

RATE = 3000


@pytest.fixture
def stoppable_kafka(tmp_path):
    cluster = LocalKafka(tmp_path / "kafka").start()
    yield cluster
    broker = cluster._procs.get("kafka")
    if broker is not None and broker.poll() is None:
        os.kill(broker.pid, signal.SIGCONT)  # never leave a stopped JVM behind
    cluster.stop()


def hang(broker_pid: int, seconds: float, alive) -> None:
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        resume_at = time.monotonic() + seconds
        wait_until(lambda: time.monotonic() >= resume_at, what=f"the end of a {seconds:.0f} s broker hang",
                   timeout=seconds + 5, interval=0.5, alive=alive)
    finally:
        os.kill(broker_pid, signal.SIGCONT)


@pytest.mark.slow
@pytest.mark.parametrize("hang_seconds", [20, 60])
def test_hung_broker_comes_back_exact_without_manual_action(stoppable_kafka, start_supervised, tmp_path,
                                                             hang_seconds):
    supervisord, conf, base, env = start_supervised(KAFKA_BOOTSTRAP_SERVERS=stoppable_kafka.bootstrap_servers)
    assert "producer: stopped" in ctl(conf, "stop", "producer")
    baseline = count_topic_by_type(stoppable_kafka.bootstrap_servers, env["EVENTDASH_EVENTS_TOPIC"])
    wait_for_stats(base, totals_equal(dict(baseline)), what="the supervised producer's events counted",
                   alive=supervisord.died)
    dashboard_pid = status(conf)["dashboard"][1]

    count = RATE * 30
    out = tmp_path / "producer.out"
    with open(out, "wb") as sink:
        producer = subprocess.Popen([sys.executable, "-m", "eventdash", "produce", "--count", str(count),
                                     "--rate", str(RATE)], env=env, cwd=str(ROOT), stdout=sink,
                                    stderr=subprocess.STDOUT)
    try:
        wait_for_stats(base, lambda s: s["events_total"] >= sum(baseline.values()) + RATE * 5,
                       what="5 s of the stream counted", timeout=60, alive=supervisord.died)
        hang(stoppable_kafka._procs["kafka"].pid, hang_seconds, alive=supervisord.died)
        resumed = time.monotonic()
        assert producer.wait(300) == 0, out.read_text()[-3000:]
    finally:
        if producer.poll() is None:
            producer.kill()
    summary = orjson.loads(out.read_text().strip().splitlines()[-1])
    assert summary["produced"] == count

    expected = Counter(baseline) + Counter(summary["by_type"])
    remaining = 60 - (time.monotonic() - resumed)
    wait_for_stats(base, totals_equal(dict(expected)),
                   what=f"exact totals within 60 s of the broker resuming from a {hang_seconds} s hang",
                   timeout=max(remaining, 1), alive=supervisord.died)
    states = status(conf)
    assert states["consumer"][0] == "RUNNING" and states["dashboard"] == ("RUNNING", dashboard_pid)
    ready = requests.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
