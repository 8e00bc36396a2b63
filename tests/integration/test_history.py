"""Per-minute history on real Kafka: 2.5 hours of event time, produced in a few seconds (accelerated
event time), reach the 1 h, 6 h and 24 h windows exactly; the history topic holds each finished
minute once; a dashboard started afterwards has the whole range at once."""
from __future__ import annotations

import threading
import time
from collections import Counter

import orjson
import pytest
import requests
from confluent_kafka import Producer

from devstack.readiness import wait_until
from eventdash import history, snapshots

from ..helpers import EVENT_TYPES, consumer_with_topics, read_topic, totals_equal, wait_for_stats

MINUTES = 150


def plan(now_minute: int, scale: int = 1) -> dict[int, list[int]]:
    """Counts per type for each minute from ``now_minute - MINUTES - 1`` to ``now_minute - 2``: uneven, so a
    minute off by one anywhere shows."""
    first = now_minute - MINUTES - 1
    return {first + i: [scale * (i % 7 + 1), scale * (i % 3), 1 if i % 5 == 0 else 0, scale if i % 4 == 1 else 0]
            for i in range(MINUTES)}


def produce_plan(bootstrap: str, topic: str, counts: dict[int, list[int]]) -> Counter:
    """The events of ``counts``, oldest first, keyed by session (so each partition's are in time order)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    totals: Counter = Counter()
    n = 0
    for minute, row in sorted(counts.items()):
        events = [kind for kind, count in zip(EVENT_TYPES, row, strict=True) for _ in range(count)]
        for i, kind in enumerate(events):
            n += 1
            session = f"s-{n % 11}"
            ts = minute * 60_000 + i * 59_000 // len(events) + 500
            producer.produce(topic, orjson.dumps({
                "event_id": f"e-{n}", "type": kind, "ts": ts, "session_id": session, "user_id": f"u-{n % 5}",
                "product_id": "p-1", "product_name": "Mug", "price": 9.5, "quantity": 1}), key=session)
            totals[kind] += 1
    assert producer.flush(30) == 0
    return totals


def window(base: str, label: str) -> dict:
    response = requests.get(f"{base}/api/stats", params={"window": label}, timeout=5)
    response.raise_for_status()
    return response.json()


def assert_exact(doc: dict, counts: dict[int, list[int]], minutes: int) -> None:
    series = doc["series"]
    assert series["step_s"] == 60 and series["start_s"] % 60 == 0
    first = series["start_s"] // 60
    for i, name in enumerate(EVENT_TYPES):
        column = series["by_type"][name]
        assert len(column) == minutes
        assert column == [counts.get(first + k, [0, 0, 0, 0])[i] for k in range(minutes)], name
    expected = {name: sum(counts.get(first + k, [0, 0, 0, 0])[i] for k in range(minutes))
                for i, name in enumerate(EVENT_TYPES)}
    assert doc["window"]["counts"] == expected
    assert doc["window"]["events"] == sum(expected.values())


def assert_each_minute_once(env: dict[str, str], totals: Counter) -> None:
    """Each finished minute is on the history topic once (read_committed); with the newest snapshots'
    minutes, that is every event exactly once."""
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    records = [orjson.loads(v) for v in read_topic(bootstrap, env["EVENTDASH_HISTORY_TOPIC"])]
    keys = [(r["partition"], r["minute"]) for r in records]
    assert len(keys) == len(set(keys)) > 100
    latest = {}
    for value in read_topic(bootstrap, env["EVENTDASH_STATISTICS_TOPIC"]):
        doc = orjson.loads(value)
        latest[doc["partition"]] = snapshots.decode(value, partition=doc["partition"])
    assert not {(p, m) for p, s in latest.items() for m in s.minute_counts} & set(keys)
    combined = Counter()
    for r in records:
        combined.update(dict(zip(EVENT_TYPES, r["counts"], strict=True)))
    for snap in latest.values():
        for row in snap.minute_counts.values():
            combined.update(dict(zip(EVENT_TYPES, row, strict=True)))
    assert +combined == +totals


def test_hours_of_event_time_reach_the_minute_windows_exactly(stack_env, start_program, start_dashboard):
    env = stack_env()
    now_minute = time.time_ns() // 60_000_000_000
    counts = plan(now_minute)
    consumer_with_topics(env, start_program)
    bootstrap, events_topic = env["KAFKA_BOOTSTRAP_SERVERS"], env["EVENTDASH_EVENTS_TOPIC"]
    totals = produce_plan(bootstrap, events_topic, counts)
    dashboard, base = start_dashboard(env)
    wait_for_stats(base, totals_equal(dict(totals)), what="every event counted")

    for label, minutes in history.WINDOWS.items():
        doc = wait_until(lambda label=label: (d := window(base, label))["window"]["complete"] and d,
                         what=f"the {label} window read", timeout=30)
        assert_exact(doc, counts, minutes)
    assert window(base, "24h")["window"]["events"] == sum(totals.values())  # all 150 minutes are in the day

    assert_each_minute_once(env, totals)

    # A dashboard started now shows the whole day at once: its first complete answer is exact.
    dashboard.stop()
    _, base = start_dashboard(env)
    doc = wait_until(lambda: (d := window(base, "24h"))["window"]["complete"] and d, what="the history read",
                     timeout=30)
    assert_exact(doc, counts, 1440)
    csv_rows = requests.get(f"{base}/api/series.csv", params={"window": "6h"}, timeout=5).text.splitlines()
    assert csv_rows[0] == "second,time_utc," + ",".join(EVENT_TYPES) and len(csv_rows) == 361
    assert requests.get(f"{base}/api/top.csv", params={"window": "6h"}, timeout=5).status_code == 400


@pytest.mark.slow
def test_the_history_stays_exact_through_sigkills(stack_env, start_program, start_dashboard):
    """78,000 events over 2.5 hours of event time with a 2-minute horizon, so minutes finish all the
    while; the consumer is SIGKILLed three times mid-stream. Every minute is written once, exactly."""
    env = stack_env(EVENTDASH_HORIZON_SECONDS="120")
    counts = plan(time.time_ns() // 60_000_000_000, scale=100)
    consumer = consumer_with_topics(env, start_program)
    bootstrap, events_topic = env["KAFKA_BOOTSTRAP_SERVERS"], env["EVENTDASH_EVENTS_TOPIC"]
    _, base = start_dashboard(env)
    produced: dict = {}
    writer = threading.Thread(target=lambda: produced.update(produce_plan(bootstrap, events_topic, counts)))
    writer.start()
    for threshold in (10_000, 35_000, 60_000):
        wait_until(lambda threshold=threshold: requests.get(f"{base}/api/stats", timeout=5).json()["events_total"]
                   >= threshold, what=f"{threshold} events counted", timeout=120, alive=consumer.died)
        consumer.kill()
        consumer.start()
    writer.join(120)
    totals = Counter(produced)
    assert sum(totals.values()) == sum(map(sum, counts.values())) > 75_000
    wait_for_stats(base, totals_equal(dict(totals)), what="exact totals after 3 SIGKILLs", timeout=180,
                   alive=consumer.died)
    assert len(set(consumer.history)) == 4  # three restarts, each a new pid
    doc = wait_until(lambda: (d := window(base, "24h"))["window"]["complete"] and d, what="the history read",
                     timeout=30)
    assert_exact(doc, counts, 1440)
    assert_each_minute_once(env, totals)
