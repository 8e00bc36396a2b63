"""Crashes, restarts and rebalances lose nothing and count nothing twice."""
from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from devstack.readiness import wait_until

from ..helpers import EVENT_TYPES, ROOT, produce, totals_equal, wait_for_stats


def produce_in_background(env, count: int, tmp_path, rate: int = 0) -> subprocess.Popen:
    out = open(tmp_path / "producer.out", "wb")
    return subprocess.Popen([sys.executable, "-m", "eventdash", "produce", "--count", str(count), "--rate", str(rate)],
                            env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)


def producer_summary(proc: subprocess.Popen, tmp_path) -> dict:
    assert proc.wait(300) == 0, (tmp_path / "producer.out").read_text()[-3000:]
    return orjson.loads((tmp_path / "producer.out").read_text().strip().splitlines()[-1])


def events_total(base: str) -> int:
    import requests

    return requests.get(f"{base}/api/stats", timeout=5).json()["events_total"]


@pytest.mark.slow
def test_sigkilled_consumer_loses_and_duplicates_nothing(stack_env, start_program, start_dashboard, tmp_path):
    env = stack_env()
    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    producer = produce_in_background(env, 200_000, tmp_path)
    kills = 0
    for threshold in (30_000, 80_000, 130_000, 170_000):
        # SIGKILL mid-stream, wherever the consumer is in its transaction cycle.
        wait_until(lambda threshold=threshold: events_total(base) >= threshold, what=f"{threshold} events counted",
                   timeout=120, alive=consumer.died)
        consumer.kill()
        kills += 1
        consumer.start()
    summary = producer_summary(producer, tmp_path)
    assert summary["produced"] == 200_000
    stats = wait_for_stats(base, totals_equal(summary["by_type"]), what="exact totals after 4 SIGKILLs",
                           timeout=180, alive=consumer.died)
    assert stats["events_total"] == 200_000 and kills == 4
    assert len(set(consumer.history)) == 5


@pytest.mark.slow
def test_two_consumers_in_one_group_with_one_restarted(stack_env, start_program, start_dashboard, tmp_path):
    env = stack_env()
    txn_id = env["EVENTDASH_TRANSACTIONAL_ID"]
    first = start_program("consumer-a", ["consume"], {**env, "EVENTDASH_TRANSACTIONAL_ID": f"{txn_id}-a"})
    second = start_program("consumer-b", ["consume"], {**env, "EVENTDASH_TRANSACTIONAL_ID": f"{txn_id}-b"})
    _, base = start_dashboard(env)
    producer = produce_in_background(env, 150_000, tmp_path, rate=7_500)  # ~20 s: rebalances happen mid-run
    wait_until(lambda: events_total(base) > 10_000, what="both consumers to make progress", timeout=90,
               alive=lambda: first.died() or second.died())
    assert second.stop() == 0  # SIGTERM: leaves the group cleanly; its partitions move to the first
    seen = events_total(base)
    wait_until(lambda: events_total(base) > seen, what="the remaining consumer to take over", timeout=90,
               alive=first.died)
    assignments_before = second.log_path.read_text().count("assigned partitions")
    second.start()
    wait_until(lambda: second.log_path.read_text().count("assigned partitions") > assignments_before,
               what="the restarted consumer to get partitions again", timeout=60, alive=second.died)
    assert producer.poll() is None, "the producer finished before the rebalances: the test proves less"
    summary = producer_summary(producer, tmp_path)
    stats = wait_for_stats(base, totals_equal(summary["by_type"]), what="exact totals across rebalances",
                           timeout=180, alive=lambda: first.died() or second.died())
    assert stats["events_total"] == 150_000
    owners = {p["partition"] for p in stats["partitions"]}
    assert owners == set(range(6))


def test_restarting_the_stack_continues_from_where_it_was(stack_env, start_program, start_dashboard):
    env = stack_env()
    consumer = start_program("consumer", ["consume"], env)
    dashboard, base = start_dashboard(env)
    first = produce(env, 2000)
    before = wait_for_stats(base, totals_equal(first["by_type"]), what="first batch counted", alive=consumer.died)
    assert consumer.stop() == 0 and dashboard.stop() == 0

    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    # The new dashboard shows the old totals at once (from the latest snapshots), not zero.
    restored = wait_for_stats(base, lambda s: s["events_total"] > 0, what="restored statistics", timeout=30)
    assert restored["totals"] == before["totals"]

    second = produce(env, 1000)
    expected = {t: first["by_type"].get(t, 0) + second["by_type"].get(t, 0) for t in EVENT_TYPES}
    wait_for_stats(base, totals_equal(expected), what="counting continues after restart", alive=consumer.died)
