"""Corrupt and foreign records on ``event_statistics``: the consumer's restore and the dashboard
skip them, count them, and keep exact totals."""
from __future__ import annotations

import base64
import zlib

import orjson
import requests
from confluent_kafka import Producer

from devstack.readiness import wait_until

from ..helpers import EVENT_TYPES, produce, totals_equal, wait_for_stats


def metric(base: str, name: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def corrupt_records(events_topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """``(partition, key, value)`` of records no aggregator wrote."""
    bomb = base64.b64encode(zlib.compress(b"\x01" * 50_000_000)).decode()
    looks_valid = {"v": 2, "partition": 1, "next_offset": 10**9, "updated_at_ms": 1, "watermark_ms": 1,
                   "horizon_seconds": 900, "totals": {}, "invalid": {}, "late_total": 0, "seconds": [],
                   "minutes": [{"minute": 1, "viewed": bomb, "added": bomb, "purchased": bomb, "views": {},
                                "purchases": {}}], "product_names": {}}
    key = f"{events_topic}:".encode()
    return [
        (0, key + b"0", b'{"v":2}'),  # a future or broken writer: unsupported version / missing fields
        (0, key + b"0", b'{"v":3,"partition":0}'),
        (5, key + b"5", b'{"partition":5}'),
        (5, b"junk", b'{"partition":5}'),
        (1, key + b"1", orjson.dumps(looks_valid)),  # a zlib bomb in a sketch
        (2, key + b"99", b'{"v":2,"partition":99}'),  # a partition the events topic does not have
        (2, key + b"3", b'{"v":2,"partition":3}'),  # another partition's key on partition 2
        (3, key + b"3", b"\xff\xfe not json"),
        (4, key + b"4", orjson.dumps({"v": 2, "partition": 4, "next_offset": -1})),
        (4, key + b"4", orjson.dumps({"v": 1, "partition": 4, "totals": {"purchase": {"count": True}}})),
    ]


def test_corrupt_and_foreign_snapshots_are_skipped_with_exact_totals(kafka, stack_env, start_program,
                                                                      start_dashboard):
    env = stack_env()
    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    first = produce(env, 3000)
    wait_for_stats(base, totals_equal(first["by_type"]), what="the first events counted", alive=consumer.died)

    # The consumer is gone (a crash); someone writes garbage to its snapshot topic.
    consumer.kill()
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    records = corrupt_records(env["EVENTDASH_EVENTS_TOPIC"])
    for partition, key, value in records:
        producer.produce(env["EVENTDASH_STATISTICS_TOPIC"], value, key=key, partition=partition)
    assert producer.flush(30) == 0

    # The running dashboard keeps its last good view, and every route keeps answering.
    wait_until(lambda: metric(base, "eventdash_dashboard_snapshots_skipped_total{") >= len(records) - 1,
               what="the dashboard to skip the corrupt records", timeout=30)
    stats = requests.get(f"{base}/api/stats", timeout=5)
    assert stats.status_code == 200 and stats.json()["totals"] == {t: first["by_type"].get(t, 0) for t in EVENT_TYPES}
    assert sorted(p["partition"] for p in stats.json()["partitions"]) == list(range(6))
    assert requests.get(f"{base}/readyz", timeout=5).status_code in (200, 503)
    # A new dashboard reads the same tails (corrupt records last) and shows the same totals.
    _, fresh = start_dashboard(env)
    wait_for_stats(fresh, totals_equal(first["by_type"]), what="a fresh dashboard's totals", timeout=30)

    # The consumer restores from the newest valid snapshots and keeps counting exactly.
    consumer.start()
    second = produce(env, 2000)
    expected = {t: first["by_type"].get(t, 0) + second["by_type"].get(t, 0) for t in EVENT_TYPES}
    wait_for_stats(base, totals_equal(expected), what="exact totals after a restore over corrupt snapshots",
                   timeout=120, alive=consumer.died)
    wait_for_stats(fresh, totals_equal(expected), what="the fresh dashboard follows", timeout=30)
    assert consumer.alive() and len(consumer.history) == 2
    log = consumer.log_path.read_text()
    assert "skipping an invalid snapshot of partition 0" in log
    assert "bad_sketch" in log or "partition 1" in log
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200,
               what="/readyz 200 once the aggregator commits again", timeout=30)
