"""Malformed records go to the dead-letter topic exactly once, are counted, and stop nothing."""
from __future__ import annotations

import time

import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from devstack.readiness import wait_until

from ..helpers import produce, totals_equal, wait_for_stats


def valid(event_type: str, **overrides) -> dict:
    event = {"event_id": f"e-{time.monotonic_ns()}", "type": event_type, "ts": time.time_ns() // 1_000_000,
             "session_id": "s-1", "user_id": "u-1", "product_id": "p-001", "price": 10.0, "quantity": 1}
    event.update(overrides)
    return event


BAD_RECORDS = {
    b"this is not json": "not_json",
    orjson.dumps({"type": "productview", "ts": 1}): "missing_field",
    orjson.dumps(valid("checkout")): "unknown_type",
    orjson.dumps(valid("purchase", price=-5)): "negative_value",
    orjson.dumps(valid("productview", ts=time.time_ns() // 1_000_000 + 3_600_000)): "future_timestamp",
    b"[1,2,3]": "not_an_object",
}


def test_bad_records_are_dead_lettered_counted_and_skipped(kafka, stack_env, start_program, start_dashboard):
    env = stack_env()
    consumer = start_program("consumer", ["consume"], env)
    events_topic, dlq_topic = env["EVENTDASH_EVENTS_TOPIC"], env["EVENTDASH_DLQ_TOPIC"]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    wait_until(lambda: {events_topic, dlq_topic} <= set(admin.list_topics(timeout=5).topics),
               what="the consumer to create its topics", timeout=60, alive=consumer.died)

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for raw in BAD_RECORDS:
        producer.produce(events_topic, raw, key=b"bad", headers=[("origin", b"test")])
    producer.produce(events_topic, orjson.dumps(valid("purchase")), key=b"s-1")
    assert producer.flush(30) == 0

    _, base = start_dashboard(env)
    stats = wait_for_stats(base, lambda s: s["invalid_total"] == len(BAD_RECORDS) and s["totals"]["purchase"] == 1,
                           what="invalid and valid records to be counted", alive=consumer.died)
    assert stats["invalid_by_reason"] == {reason: 1 for reason in BAD_RECORDS.values()}

    # The consumer is still running and still counting.
    summary = produce(env, 200)
    expected = dict(summary["by_type"])
    expected["purchase"] = expected.get("purchase", 0) + 1
    wait_for_stats(base, totals_equal(expected), what="valid events after bad ones", alive=consumer.died)
    assert consumer.alive()

    # Each bad record is in the DLQ once, with its original bytes and headers naming the reason and source.
    reader = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"dlq-{time.monotonic_ns()}",
                       "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    reader.subscribe([dlq_topic])
    dead: list = []
    deadline = time.monotonic() + 30
    while len(dead) < len(BAD_RECORDS) and time.monotonic() < deadline:
        dead += [m for m in reader.consume(100, timeout=0.5) if not m.error()]
    extra = [m for m in reader.consume(100, timeout=2) if not m.error()]
    reader.close()
    assert extra == [] and len(dead) == len(BAD_RECORDS)
    for msg in dead:
        headers = dict(msg.headers())
        assert headers["eventdash.error.reason"].decode() == BAD_RECORDS[msg.value()]
        assert headers["eventdash.source.topic"].decode() == events_topic
        assert headers["origin"] == b"test"
        assert msg.key() == b"bad"
    offsets = sorted(int(dict(m.headers())["eventdash.source.offset"]) for m in dead)
    assert len(set(offsets)) == len(offsets)
