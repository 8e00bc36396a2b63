"""Hostile and oversized records on ``events``: every one is counted once, the consumer never stops.

Each record is either counted under its type or counted as invalid with its dead letter; the
normal traffic around them is counted exactly; the consumer's pid never changes; a SIGKILL
and restart afterwards counts nothing again.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter

import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from devstack.readiness import wait_until
from eventdash.consumer.dead_letters import MAX_VALUE_BYTES
from eventdash.snapshots import MAX_SNAPSHOT_BYTES

from ..helpers import EVENT_TYPES, produce, read_topic, totals_equal, wait_for_stats


def event(event_type: str, n: int, **overrides) -> dict:
    doc = {"event_id": f"hostile-{n}", "type": event_type, "ts": time.time_ns() // 1_000_000,
           "session_id": f"s-hostile-{n % 50}", "user_id": "u-1", "product_id": "p-001", "price": 10.0,
           "quantity": 1}
    doc.update(overrides)
    return doc


def hostile_records() -> list[tuple[bytes | None, bytes | None, list | None, str]]:
    """``(key, value, headers, expected)``: expected is an event type (valid) or an invalid reason."""
    records = []
    # Purchases at the validator's maxima: 64-bit revenue would overflow after ~92 of them.
    for n in range(300):
        records.append((b"max", orjson.dumps(event("purchase", n, price=1e9, quantity=1_000_000)), None, "purchase"))
    # Thousands of distinct long product ids and 4-byte-character names within one minute.
    for n in range(3000):
        pid = f"{n:06d}-" + '"\\' * 28 + "x"  # 64 printable ASCII characters, worst JSON escaping
        records.append((b"ids", orjson.dumps(event("productview", 1000 + n, product_id=pid[:64],
                                                   product_name="\U0001F600" * 64)), None, "productview"))
    for n in range(300):
        pid = f"buy-{n:05d}-" + "z" * 50
        records.append((b"ids", orjson.dumps(event("purchase", 5000 + n, product_id=pid, quantity=3,
                                                   product_name="\u00e9" * 64)), None, "purchase"))
    records += [
        # About 1 MB: far over EVENTDASH_MAX_EVENT_BYTES, and over the dead-letter copy's limit.
        (b"big", b"{" + b" " * 999_000 + b"}", None, "too_large"),
        # Exactly at the size limit, but not JSON.
        (b"edge", b"x" * 65_536, None, "not_json"),
        (b"none", None, None, "not_json"),
        (b"deep", b"[" * 5000 + b"]" * 5000, None, "not_json"),
        (b"ctl", orjson.dumps(event("productview", 9001, product_name="bad\x00name")), None, "wrong_type"),
        (b"ctl", orjson.dumps(event("productview", 9002, product_id="p\x07")), None, "wrong_type"),
        (b"long", orjson.dumps(event("productview", 9003, product_id="p" * 65)), None, "wrong_type"),
        (b"num", orjson.dumps(event("purchase", 9004, price=1e30)), None, "wrong_type"),
        (b"num", orjson.dumps(event("purchase", 9005, quantity=1.5)), None, "wrong_type"),
        (b"num", orjson.dumps(event("purchase", 9006, quantity=True)), None, "wrong_type"),
        (b"late", orjson.dumps(event("productview", 9007, ts=1_000)), None, "productview"),
        (b"k" * 100_000, orjson.dumps(event("addtobasket", 9008)), None, "addtobasket"),
        (b"k" * 100_000, b"not json with a huge key", None, "not_json"),
        (b"hdr", b"not json with many headers", [(f"h{i}", b"v" * 100) for i in range(1000)], "not_json"),
        (b"utf", orjson.dumps(event("removefrombasket", 9009, session_id="\u2028\U0001F600")), None,
         "removefrombasket"),
    ]
    return records


def test_hostile_records_are_each_counted_once_and_stop_nothing(kafka, stack_env, start_program, start_dashboard):
    env = stack_env()
    events_topic, dlq_topic = env["EVENTDASH_EVENTS_TOPIC"], env["EVENTDASH_DLQ_TOPIC"]
    consumer = start_program("consumer", ["consume"], env)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    wait_until(lambda: {events_topic, dlq_topic} <= set(admin.list_topics(timeout=5).topics),
               what="the consumer to create its topics", timeout=60, alive=consumer.died)
    _, base = start_dashboard(env)

    before = produce(env, 2000)
    records = hostile_records()
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 2_000_000,
                         "linger.ms": 20})
    for key, value, headers, _ in records:
        producer.produce(events_topic, value, key=key, headers=headers)
        producer.poll(0)
    assert producer.flush(60) == 0
    after = produce(env, 2000)

    expected = Counter(before["by_type"]) + Counter(after["by_type"])
    invalid = Counter()
    for *_, outcome in records:
        (expected if outcome in EVENT_TYPES else invalid)[outcome] += 1
    stats = wait_for_stats(base, lambda s: s["events_total"] + s["invalid_total"] >= 4000 + len(records),
                           what="every record counted", timeout=120, alive=consumer.died)
    assert stats["totals"] == {t: expected.get(t, 0) for t in EVENT_TYPES}
    assert stats["invalid_by_reason"] == dict(sorted(invalid.items()))
    # Revenue is exact however large: the maxima (1e9 x 1e6, 300 times), the named purchases
    # (10.00 x 3, 300 times) and the normal traffic's purchases, as read back from the topic.
    normal = [e for e in map(normal_event, read_topic(kafka.bootstrap_servers, events_topic)) if e]
    revenue = (300 * 100_000_000_000 * 1_000_000 + 300 * 1000 * 3
               + sum(round(e["price"] * 100) * e["quantity"] for e in normal if e["type"] == "purchase"))
    assert stats["revenue_cents"] == str(revenue)  # beyond 2**53: a decimal string, exact
    assert consumer.alive() and len(consumer.history) == 1, "the consumer restarted"

    # Each invalid record is in the dead-letter topic once, bounded in size, with its reason.
    dead = read_dead_letters(kafka.bootstrap_servers, dlq_topic, sum(invalid.values()))
    assert Counter(dict(m.headers())["eventdash.error.reason"].decode() for m in dead) == invalid
    big = [m for m in dead if m.key() == b"big"]
    assert len(big) == 1 and len(big[0].value()) == MAX_VALUE_BYTES
    big_headers = dict(big[0].headers())
    original = b"{" + b" " * 999_000 + b"}"
    assert big_headers["eventdash.original.value.size"] == str(len(original)).encode()
    assert big_headers["eventdash.original.value.sha256"] == hashlib.sha256(original).hexdigest().encode()
    many = [m for m in dead if m.key() == b"hdr"]
    assert b"headers" in dict(many[0].headers())["eventdash.truncated"]

    # Snapshots stay within their budget.
    sizes = [len(v) for v in read_topic(kafka.bootstrap_servers, env["EVENTDASH_STATISTICS_TOPIC"])]
    assert sizes and max(sizes) <= MAX_SNAPSHOT_BYTES

    # A crash now counts nothing twice: the invalid count does not grow across restarts.
    consumer.kill()
    consumer.start()
    more = produce(env, 500)
    expected += Counter(more["by_type"])
    final = wait_for_stats(base, totals_equal(dict(expected)), what="exact totals after a restart", timeout=120,
                           alive=consumer.died)
    assert final["invalid_by_reason"] == dict(sorted(invalid.items()))
    assert len(read_dead_letters(kafka.bootstrap_servers, dlq_topic, sum(invalid.values()))) == sum(invalid.values())


def normal_event(value: bytes | None) -> dict | None:
    try:
        doc = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    if type(doc) is dict and not str(doc.get("event_id", "hostile-")).startswith("hostile-"):
        return doc
    return None


def read_dead_letters(bootstrap: str, topic: str, expected: int) -> list:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{time.monotonic_ns()}",
                       "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                       "fetch.message.max.bytes": 2_000_000})
    reader.subscribe([topic])
    dead: list = []
    deadline = time.monotonic() + 60
    try:
        while len(dead) < expected and time.monotonic() < deadline:
            dead += [m for m in reader.consume(100, timeout=0.5) if not m.error()]
        dead += [m for m in reader.consume(100, timeout=2) if not m.error()]  # nothing more may come
    finally:
        reader.close()
    return dead
