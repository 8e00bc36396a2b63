"""Crashes, restarts and rebalances lose nothing and count nothing twice."""
from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest
import requests

from devstack.readiness import free_port, wait_until

from ..helpers import EVENT_TYPES, ROOT, Program, produce, totals_equal, wait_for_stats


def produce_in_background(env, count: int, tmp_path, rate: int = 0) -> subprocess.Popen:
    out = open(tmp_path / "producer.out", "wb")
    return subprocess.Popen([sys.executable, "-m", "eventdash", "produce", "--count", str(count), "--rate", str(rate)],
                            env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)


def producer_summary(proc: subprocess.Popen, tmp_path) -> dict:
    assert proc.wait(300) == 0, (tmp_path / "producer.out").read_text()[-3000:]
    return orjson.loads((tmp_path / "producer.out").read_text().strip().splitlines()[-1])


def events_total(base: str) -> int:
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


PARTITION_LOG = re.compile(r"(assigned|revoking|lost) partitions \[([0-9, ]*)\]")
ALL_PARTITIONS = set(range(6))  # EVENTDASH_EVENTS_PARTITIONS' default


def partition_log(program: Program, since: int = 0) -> list[tuple[str, set[int]]]:
    """A consumer's "assigned/revoking/lost partitions [...]" lines from byte ``since`` of its log on."""
    with open(program.log_path, "rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    return [(kind, {int(n) for n in numbers.split(",") if n.strip()}) for kind, numbers in PARTITION_LOG.findall(text)]


def owned_by_log(program: Program, since: int = 0) -> set[int]:
    """The partitions a consumer owns by its own log lines (``since``: where its current run starts)."""
    owned: set[int] = set()
    for kind, changed in partition_log(program, since):
        owned = owned | changed if kind == "assigned" else owned - changed
    return owned


def moved_by_log(program: Program, since: int, *kinds: str) -> set[int]:
    return set().union(*(changed for kind, changed in partition_log(program, since) if kind in kinds))


def consumer_metric(port: int, line_start: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    assert values, f"no {line_start!r} sample in the metrics on port {port}"
    return sum(values)


def assigned(port: int) -> int:
    return int(consumer_metric(port, "eventdash_consumer_assigned_partitions"))


@pytest.mark.slow
def test_two_consumers_in_one_group_with_one_restarted(stack_env, start_program, start_dashboard, tmp_path):
    """Partitions move from a stopped consumer to the other and back to the restarted one, shown by both
    consumers' assignment logs and metrics, with known event counts produced around each move.

    Chunks 1 and 2 are paced (about 5 s each), so each move most likely happens while events flow; the
    test waits on event counts and assignments, never on the clock, and the totals must be exact anyway.
    """
    chunk, pace = 20_000, 4_000
    env = stack_env()
    txn_id = env["EVENTDASH_TRANSACTIONAL_ID"]
    port_a, port_b = free_port(), free_port()
    a = start_program("consumer-a", ["consume"], {**env, "EVENTDASH_TRANSACTIONAL_ID": f"{txn_id}-a",
                                                   "EVENTDASH_CONSUMER_METRICS_PORT": str(port_a)})
    b = start_program("consumer-b", ["consume"], {**env, "EVENTDASH_TRANSACTIONAL_ID": f"{txn_id}-b",
                                                   "EVENTDASH_CONSUMER_METRICS_PORT": str(port_b)})
    b_since = 0  # where the current run of b starts in its log
    _, base = start_dashboard(env)
    either_died = lambda: a.died() or b.died()  # noqa: E731

    def ownership() -> dict:
        return {"a": owned_by_log(a), "b": owned_by_log(b, b_since), "a_metric": assigned(port_a),
                "b_metric": assigned(port_b)}

    def split_between_both() -> dict | None:
        o = ownership()
        return o if (o["a"] and o["b"] and not o["a"] & o["b"] and o["a"] | o["b"] == ALL_PARTITIONS
                     and (o["a_metric"], o["b_metric"]) == (len(o["a"]), len(o["b"]))) else None

    def fail(what: str, exc: Exception):
        return AssertionError(f"{what}: {exc}\nownership now: {ownership()}\n----- consumer-a -----\n"
                              f"{a.log_tail(15)}\n----- consumer-b -----\n{b.log_tail(15)}")

    # 1. Both consumers share the six partitions; chunk 1 while both run, both count part of it.
    try:
        wait_until(split_between_both, what="the partitions split between a and b", timeout=90, alive=either_died)
    except Exception as exc:
        raise fail("initial assignment", exc) from None
    producer = produce_in_background(env, chunk, tmp_path, rate=pace)  # chunk 1
    wait_until(lambda: consumer_metric(port_a, "eventdash_consumer_events_total{") > 0
               and consumer_metric(port_b, "eventdash_consumer_events_total{") > 0,
               what="both consumers to count events of chunk 1", timeout=60, alive=either_died)

    # 2. b stops (SIGTERM, likely mid-stream): it leaves the group, a takes over b's partitions.
    before_stop = split_between_both()
    assert before_stop is not None, ownership()
    a_since = a.log_path.stat().st_size
    assert b.stop() == 0
    try:
        wait_until(lambda: owned_by_log(a) == ALL_PARTITIONS and assigned(port_a) == 6,
                   what="consumer a to own all six partitions", timeout=60, alive=a.died)
    except Exception as exc:
        raise fail("takeover by a", exc) from None
    assert moved_by_log(a, a_since, "assigned") == before_stop["b"]  # exactly what b had moved to a
    summaries = [producer_summary(producer, tmp_path)]

    # 3. Chunk 2 starts with a alone; b comes back during it (a new process, on a new metrics port): it
    # gets partitions again, a gives them up.
    counted_by_a = consumer_metric(port_a, "eventdash_consumer_events_total{")
    producer = produce_in_background(env, chunk, tmp_path, rate=pace)
    wait_until(lambda: consumer_metric(port_a, "eventdash_consumer_events_total{") > counted_by_a,
               what="consumer a alone to count events of chunk 2", timeout=60, alive=a.died)
    a_since, b_since = a.log_path.stat().st_size, b.log_path.stat().st_size
    port_b = free_port()
    b.env = {**b.env, "EVENTDASH_CONSUMER_METRICS_PORT": str(port_b)}
    b.start()
    try:
        after_restart = wait_until(split_between_both, what="the partitions split again after b's restart",
                                   timeout=90, alive=either_died)
    except Exception as exc:
        raise fail("rebalance after the restart", exc) from None
    assert moved_by_log(a, a_since, "revoking", "lost") == after_restart["b"]  # what a gave up, b got
    summaries.append(producer_summary(producer, tmp_path))
    summaries.append(produce(env, chunk))  # chunk 3: both again, as fast as it goes

    # Every event of the three chunks counted exactly once, whoever owned its partition when.
    expected = {t: sum(s["by_type"].get(t, 0) for s in summaries) for t in EVENT_TYPES}
    assert sum(s["produced"] for s in summaries) == 3 * chunk
    stats = wait_for_stats(base, totals_equal(expected), what="exact totals across rebalances",
                           timeout=180, alive=either_died)
    assert stats["events_total"] == 3 * chunk
    assert {p["partition"] for p in stats["partitions"]} == ALL_PARTITIONS
    final = ownership()
    assert final["a"] | final["b"] == ALL_PARTITIONS and not final["a"] & final["b"], final


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
