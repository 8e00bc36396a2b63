"""Differential: the Rust engine and the Python reference give identical results for any input.

Both run through the real :meth:`Aggregator._process` on real ``confluent_kafka.Message`` objects:
random streams over three partitions (one of them not assigned), valid events, broken ones,
random bytes, error events, split into random batches. The encoded snapshots must be byte-equal,
and the offsets, dead letters and metrics the same. Restoring from a snapshot must round-trip.
"""
from __future__ import annotations

import os
from unittest.mock import MagicMock

import orjson
import pytest
from confluent_kafka import KafkaError, Message, Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventdash.config import ConfigError, Settings
from eventdash.consumer import aggregator as aggregator_module
from eventdash.consumer.aggregator import Aggregator
from eventdash.consumer.checkpoint import Checkpoint
from eventdash.observability.metrics import ConsumerMetrics
from eventdash.snapshots import MAX_CATEGORIES, OTHER_CATEGORY, PRODUCT_CANDIDATES, decode, encode
from eventdash.stats.engine import (
    NATIVE_TOTALS_LIMIT,
    NativeEngine,
    NativePartitionStats,
    PythonEngine,
    load_engine,
)
from eventdash.stats.partition_state import PartitionStats

from .test_aggregation_properties import FUTURE_TOLERANCE_MS, HORIZON, NOW_MS, SPECIAL_RECORDS, records

try:
    import eventdash_native
except ImportError:  # pragma: no cover - depends on the machine
    eventdash_native = None
    if os.environ.get("CI"):
        raise  # CI has cargo: a missing extension is a broken build, not a reason to skip
pytestmark = pytest.mark.skipif(eventdash_native is None, reason="eventdash_native is not built (needs cargo)")

ASSIGNED = (0, 1)
_BASE = (b'"event_id": "e", "type": "purchase", "ts": %d, "session_id": "s", "user_id": "u", '
         b'"product_id": "p-1"' % NOW_MS)
UNUSUAL_RECORDS = [  # valid or not, the reference decides: the native path must agree or hand over
    b'{%s, "price": -0, "quantity": 1}' % _BASE,
    b'{%s, "price": -0.0, "quantity": 1}' % _BASE,
    b'{%s, "price": 0.125, "quantity": 3}' % _BASE,  # half to even
    b'{%s, "price": 1E2, "quantity": 1}' % _BASE,
    b'{%s, "price": 1, "quantity": -0}' % _BASE,
    b'{%s, "price": 1, "quantity": 1.0}' % _BASE,
    b'{%s, "price": 1, "quantity": 1, "quantity": 2}' % _BASE,  # duplicate key: the last wins
    b'{%s, "price": 1, "quantity": 1, "product_name": "Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e"}' % _BASE,
    b'{%s, "price": 1, "quantity": 1, "product_name": false}' % _BASE,
    b'{%s, "price": 1, "quantity": 1, "product_name": 0}' % _BASE,
    b'{%s, "price": 1, "quantity": 1, "product_name": ""}' % _BASE,
    b'{%s, "price": 1, "quantity": 1, "product_name": "\\u0041\\/b"}' % _BASE,
    b'{%s, "price": 1, "quantity": 1, "extra": [1, {"a": null}]}' % _BASE,
    *[b'{%s, "price": 1, "quantity": 1, "category": %s}' % (_BASE, c) for c in (
        b'false', b'0', b'""', b'null', b'"Tea"', b'"' + b"x" * 33 + b'"', b'"Caf\xc3\xa9"', b'"tab\\there"',
        b'"\\u0041"', b'["Tea"]', b'"(other)"', b'"(othe\\u0072)"')],
    b'{%s, "price": 18446744073709551616, "quantity": 1}' % _BASE,
    b' \n{%s, "price": 1, "quantity": 1} ' % _BASE,
    b'[{%s, "price": 1, "quantity": 1}]' % _BASE,
    b'{%s, "price": 1, "quantity": 1}' % _BASE.replace(b'"ts": %d' % NOW_MS, b'"ts": -0'),
    b'{%s, "price": 1, "quantity": 1}' % _BASE.replace(b'"s"', b'"\\ud83d\\ude00"'),
    # unknown fields whose values orjson refuses (found in review): invalid UTF-8, lone surrogates,
    # numbers out of range, nesting past orjson's limit
    *[b'{%s, "price": 1, "quantity": 1, "x": %s}' % (_BASE, bad) for bad in (
        b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'{"\xa9": 0}', b'"\\ud800"', b'"\\ude00\\ud83d"',
        b"1e400", b"-1e400", b"1" * 400, b"[" * 1024 + b"]" * 1024)],
]

ERROR = KafkaError(KafkaError._PARTITION_EOF, "end of partition")  # not fatal: skipped with a warning

# many products in two minutes, so the product counters are cut (Misra-Gries) and names pruned
crowded_events = st.builds(
    lambda kind, pid, minute, quantity, category: orjson.dumps({
        "event_id": "e", "type": kind, "ts": NOW_MS - minute * 60_000 - 1, "session_id": f"s{quantity}",
        "user_id": "u", "product_id": pid, "product_name": f"name of {pid}", "price": 2.5, "quantity": quantity,
        "category": category}),
    st.sampled_from(("productview", "productview", "purchase", "removefrombasket")),
    st.sampled_from([f"p-{i}" for i in range(PRODUCT_CANDIDATES + 8)]), st.integers(0, 1), st.integers(0, 3),
    st.sampled_from([f"c-{i}" for i in range(MAX_CATEGORIES + 4)] + ["", OTHER_CATEGORY]))

stream_records = st.one_of(records, st.sampled_from(UNUSUAL_RECORDS), st.sampled_from(SPECIAL_RECORDS))
entries = st.tuples(st.sampled_from((0, 0, 1, 1, 2)), stream_records, st.integers(0, 30))
crowded_entries = st.tuples(st.sampled_from((0, 0, 0, 1)), crowded_events, st.integers(1, 30))
streams = st.one_of(st.lists(entries, max_size=150), st.lists(crowded_entries, min_size=60, max_size=300))


def make_aggregator(engine: str, monkeypatch) -> Aggregator:
    monkeypatch.setattr(aggregator_module.time, "time_ns", lambda: NOW_MS * 1_000_000)
    agg = Aggregator(Settings.from_env({"EVENTDASH_ENGINE": engine, "EVENTDASH_HORIZON_SECONDS": str(HORIZON),
                                        "EVENTDASH_FUTURE_TOLERANCE_MS": str(FUTURE_TOLERANCE_MS)}))
    agg.checkpoint = Checkpoint(MagicMock(spec_set=Producer), events_topic="events",
                                statistics_topic="event_statistics", history_topic="event_history",
                                group_metadata=lambda: None,
                                metrics=ConsumerMetrics(), interval_seconds=0.25, heartbeat_seconds=2.0)
    for partition in ASSIGNED:
        agg.checkpoint.add(agg.engine.new_state(partition, horizon_seconds=HORIZON), 0)
    return agg


def messages_of(stream: list[tuple[int, bytes | None, int]]) -> list[Message]:
    offsets = {0: 0, 1: 0, 2: 0}
    messages = []
    for partition, value, roll in stream:
        error = ERROR if roll == 0 else None
        messages.append(Message(topic="events", partition=partition, offset=offsets[partition], key=b"k",
                                value=value, headers=[("h", b"1")], error=error, timestamp=(1, NOW_MS)))
        offsets[partition] += 1
    return messages


def observed(agg: Aggregator) -> dict:
    checkpoint = agg.checkpoint
    produced = [(call.args, sorted(call.kwargs.items())) for call in checkpoint.producer.produce.call_args_list]
    consumed = {sample.labels["type"]: sample.value for metric in agg.metrics.consumed.collect()
                for sample in metric.samples if sample.name.endswith("_total")}
    return {
        "snapshots": {p: encode(s.to_snapshot(next_offset=checkpoint.next_offsets[p], updated_at_ms=NOW_MS))
                      for p, s in sorted(checkpoint.states.items())},
        "finished_minutes": {p: s.take_finished_minutes() for p, s in sorted(checkpoint.states.items())},
        "next_offsets": dict(checkpoint.next_offsets), "dirty": set(checkpoint.dirty),
        "dead_letters": produced, "consumed": consumed,
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(streams, st.lists(st.integers(0, 300), max_size=4))
def test_native_and_reference_agree_on_any_stream(monkeypatch, stream, cuts):
    messages = messages_of(stream)
    bounds = sorted({0, len(messages), *(c for c in cuts if c < len(messages))})
    results = []
    for engine in ("python", "native"):
        agg = make_aggregator(engine, monkeypatch)
        assert agg.engine.name == engine
        for start, stop in zip(bounds, bounds[1:]):
            agg._process(messages[start:stop])
        results.append(observed(agg))
    reference, native = results
    assert native == reference


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(streams, streams)
def test_a_native_state_restored_from_a_snapshot_goes_on_as_the_reference(monkeypatch, before, after):
    reference, native = PythonEngine(), load_engine("native")
    for stream in (before,):
        agg = make_aggregator("python", monkeypatch)
        agg._process(messages_of(stream))
        snapshot = decode(encode(agg.checkpoint.states[0].to_snapshot(next_offset=7, updated_at_ms=NOW_MS)),
                          partition=0)
    restored = {"python": reference.restore(snapshot, horizon_seconds=HORIZON),
                "native": native.restore(snapshot, horizon_seconds=HORIZON)}
    assert isinstance(restored["native"], NativePartitionStats)
    assert (encode(restored["native"].to_snapshot(next_offset=7, updated_at_ms=NOW_MS))
            == encode(restored["python"].to_snapshot(next_offset=7, updated_at_ms=NOW_MS)))
    results = []
    for engine, state in restored.items():
        agg = make_aggregator(engine, monkeypatch)
        agg.checkpoint.add(state, 7)
        agg._process(messages_of(after))
        results.append(observed(agg))
    assert results[0] == results[1]


@pytest.mark.parametrize("revenue", [2**130, 2**128 - 1, NATIVE_TOTALS_LIMIT])
def test_totals_near_128_bits_keep_the_partition_on_the_reference(revenue):
    state = PartitionStats(0, horizon_seconds=HORIZON)
    state.totals["purchase"] = [1, 1, revenue]
    snapshot = decode(encode(state.to_snapshot(next_offset=1, updated_at_ms=NOW_MS)), partition=0)
    restored = load_engine("native").restore(snapshot, horizon_seconds=HORIZON)
    assert type(restored) is PartitionStats and restored.totals["purchase"][2] == revenue


def test_engine_choice(monkeypatch):
    assert type(load_engine("python")) is PythonEngine
    assert type(load_engine("native")) is NativeEngine
    assert type(load_engine("auto")) is NativeEngine
    monkeypatch.setitem(__import__("sys").modules, "eventdash_native", None)  # as if not installed
    assert type(load_engine("auto")) is PythonEngine
    with pytest.raises(ConfigError, match="EVENTDASH_ENGINE=native"):
        load_engine("native")
