"""Health tells the truth: a quiet shop is idle and ready; an aggregator that is alive but doing
nothing (SIGSTOP) is stuck, /readyz says so, and the lag measured from the group grows."""
from __future__ import annotations

import os
import signal

import requests

from devstack.readiness import wait_until

from ..helpers import EVENT_TYPES, produce, totals_equal, wait_for_stats


def readyz(base: str) -> tuple[int, dict]:
    response = requests.get(f"{base}/readyz", timeout=5)
    return response.status_code, response.json()


def health(base: str) -> dict:
    return requests.get(f"{base}/api/stats", timeout=5).json()["health"]


def test_idle_is_ready_and_a_frozen_aggregator_is_stuck_with_growing_lag(stack_env, start_program, start_dashboard):
    env = stack_env(EVENTDASH_STALE_AFTER_SECONDS="5")
    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    first = produce(env, 500)
    wait_for_stats(base, totals_equal(first["by_type"]), what="500 events counted", alive=consumer.died)

    # No input for longer than the stale limit: the heartbeat keeps every partition fresh.
    wait_until(lambda: health(base)["pipeline"] == "idle", what="the pipeline to be idle", timeout=30,
               alive=consumer.died)
    wait_until(lambda: health(base)["consumer_lag"] == 0, what="lag 0 from the group", timeout=20)
    quiet = health(base)
    assert quiet["stuck_partitions"] == [] and quiet["oldest_update_age_s"] < 5
    assert readyz(base) == (200, {"ready": True, "reason": "ok"})

    os.kill(consumer.proc.pid, signal.SIGSTOP)  # alive, doing nothing
    try:
        second = produce(env, 300)
        wait_until(lambda: health(base)["pipeline"] == "stuck", what="the pipeline to be reported stuck",
                   timeout=30)
        wait_until(lambda: health(base)["consumer_lag"] == 300, what="the group's lag to show 300 records",
                   timeout=20)
        status, body = readyz(base)
        assert status == 503 and body["reason"].startswith("aggregation stuck: statistics of partitions [0, 1, 2")
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert "eventdash_dashboard_pipeline_stuck 1.0" in metrics
    finally:
        os.kill(consumer.proc.pid, signal.SIGCONT)

    expected = {t: first["by_type"].get(t, 0) + second["by_type"].get(t, 0) for t in EVENT_TYPES}
    wait_for_stats(base, totals_equal(expected), what="exact totals once the aggregator runs again",
                   alive=consumer.died)
    wait_until(lambda: readyz(base)[0] == 200, what="/readyz 200 again", timeout=30)
    wait_until(lambda: health(base)["consumer_lag"] == 0, what="lag back to 0", timeout=20)
