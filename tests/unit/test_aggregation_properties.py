"""Property: whatever the input records, every record is counted exactly once and the state always
makes a valid snapshot within its budget.

Records go through parse_event + PartitionStats.apply / record_invalid exactly as
eventdash.consumer.aggregator.Aggregator._process does.
"""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventdash.consumer.dead_letters import INTERNAL_ERROR
from eventdash.events.model import (
    EVENT_TYPES,
    MAX_CATEGORY_CHARS,
    MAX_PRODUCT_ID_CHARS,
    MAX_PRODUCT_NAME_CHARS,
    PURCHASE,
)
from eventdash.events.validation import InvalidEvent, InvalidReason, parse_event
from eventdash.snapshots import MAX_SNAPSHOT_BYTES, OTHER_CATEGORY, decode, encode
from eventdash.stats.partition_state import PartitionStats

NOW_MS = 1_764_380_400_000
HORIZON = 900
FUTURE_TOLERANCE_MS = 60_000
MAX_EVENT_BYTES = 65_536
PARTITION = 2

ascii_printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
printable_text = st.characters(categories=["L", "M", "N", "P", "S"])  # 1 to 4 UTF-8 bytes each
texts = st.text(printable_text, min_size=1, max_size=200)

valid_events = st.fixed_dictionaries({
    "event_id": texts,
    "type": st.sampled_from(EVENT_TYPES),
    # mostly in the horizon, some late (older than the horizon), some from the future
    "ts": st.integers(NOW_MS - 2 * HORIZON * 1000, NOW_MS + 2 * FUTURE_TOLERANCE_MS),
    "session_id": st.one_of(st.sampled_from(["s1", "s2", "s3"]), texts),
    "user_id": texts,
    "product_id": st.one_of(st.sampled_from(["p-1", "p-2"]),
                            st.text(ascii_printable, min_size=1, max_size=MAX_PRODUCT_ID_CHARS)),
    "price": st.one_of(st.just(1e9), st.just(10**9), st.just(0), st.just(0.005),
                       st.floats(0, 1e9, allow_nan=False), st.integers(0, 10**9)),
    "quantity": st.one_of(st.just(10**6), st.just(0), st.integers(0, 10**6)),
}, optional={
    "product_name": st.one_of(st.text(printable_text, max_size=MAX_PRODUCT_NAME_CHARS),
                              st.just("\U0001F600" * MAX_PRODUCT_NAME_CHARS)),
    "category": st.one_of(st.sampled_from(["Coffee", "Tea", ""]),
                          st.text(ascii_printable, max_size=MAX_CATEGORY_CHARS).filter(lambda c: c != OTHER_CATEGORY),
                          st.none()),
})

wrong_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300), st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**64 - 1), max_size=2),
)


@st.composite
def broken_events(draw) -> dict:
    """A valid event with one field removed or replaced by a value of any type."""
    event = dict(draw(valid_events))
    field = draw(st.sampled_from([*event, "product_name", "category"]))
    if draw(st.booleans()):
        event.pop(field, None)
    else:
        event[field] = draw(wrong_values)
    return event


_VALID = (b'"event_id": "e", "type": "purchase", "ts": %d, "session_id": "s", "user_id": "u", '
          b'"product_id": "p"' % NOW_MS)
SPECIAL_RECORDS = [  # mostly what orjson.dumps cannot write
    b"{%s, \"price\": 1e400, \"quantity\": 1}" % _VALID,
    b"{%s, \"price\": NaN, \"quantity\": 1}" % _VALID,
    b"{%s, \"price\": 1, \"quantity\": 123456789012345678901234567890}" % _VALID,
    b"{%s, \"price\": -123456789012345678901234567890, \"quantity\": 1}" % _VALID,
    b"{%s, \"price\": 1, \"quantity\": 1, \"product_name\": \"\\ud800\"}" % _VALID,
    b"{%s, \"price\": 1, \"quantity\": 1, \"product_name\": \"tab\\there\"}" % _VALID,
    b"{%s, \"price\": 1, \"quantity\": 1}" % _VALID.replace(b'"p"', b'"caf\xc3\xa9"'),
    b"{%s, \"price\": 1, \"quantity\": 1}\xff" % _VALID,
    b"[" * 10_000 + b"]" * 10_000,
    b"{" + b" " * MAX_EVENT_BYTES + b"}",
    b"",
    b"{%s, \"price\": 1e9, \"quantity\": 1000000, \"product_name\": null}" % _VALID,  # valid
]

records = st.one_of(
    valid_events.map(orjson.dumps),
    valid_events.map(orjson.dumps),
    broken_events().map(orjson.dumps),
    st.binary(max_size=64),
    st.none(),
    st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
                 lambda children: st.lists(children, max_size=3), max_leaves=5).map(orjson.dumps),
    st.sampled_from(SPECIAL_RECORDS),
)


def process(state: PartitionStats, raw: bytes | None) -> object:
    """What Aggregator._process does with one record; returns the event, or the reason it was rejected."""
    try:
        event = parse_event(raw, now_ms=NOW_MS, future_tolerance_ms=FUTURE_TOLERANCE_MS, max_bytes=MAX_EVENT_BYTES)
        state.apply(event)
    except InvalidEvent as invalid:
        state.record_invalid(invalid.reason)
        return invalid.reason
    except Exception:  # noqa: BLE001 - as the aggregator: any other failure is an internal error
        state.record_invalid(INTERNAL_ERROR)
        return INTERNAL_ERROR
    return event


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=60))
def test_every_record_is_counted_once_and_the_state_always_snapshots(raws):
    state = PartitionStats(PARTITION, horizon_seconds=HORIZON)
    expected_totals = {name: [0, 0, 0] for name in EVENT_TYPES}
    for raw in raws:
        outcome = process(state, raw)
        if isinstance(outcome, str):
            assert outcome in InvalidReason.ALL, outcome  # never an internal error on any input
        else:
            total = expected_totals[outcome.type]
            total[0] += 1
            total[1] += outcome.quantity
            if outcome.type == PURCHASE:
                total[2] += outcome.price_cents * outcome.quantity

    counted = sum(t[0] for t in state.totals.values()) + sum(state.invalid.values())
    assert counted == len(raws)
    assert state.totals == expected_totals  # revenue exact, in integer cents
    assert state.late_total <= sum(t[0] for t in state.totals.values())

    snapshot = state.to_snapshot(next_offset=len(raws), updated_at_ms=NOW_MS)
    raw = encode(snapshot)
    assert len(raw) <= MAX_SNAPSHOT_BYTES
    decoded = decode(raw, partition=PARTITION)
    assert decoded == snapshot
    restored = PartitionStats.from_snapshot(decoded, horizon_seconds=HORIZON)
    assert restored.to_snapshot(next_offset=len(raws), updated_at_ms=NOW_MS) == snapshot


@settings(max_examples=100, deadline=None)
@given(valid_events)
def test_a_valid_event_is_never_rejected(event):
    if event["ts"] > NOW_MS + FUTURE_TOLERANCE_MS:
        event["ts"] = NOW_MS
    state = PartitionStats(PARTITION, horizon_seconds=HORIZON)
    outcome = process(state, orjson.dumps(event))
    assert not isinstance(outcome, str), outcome
    assert outcome.price_cents == round(event["price"] * 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EVENT_TYPES), st.integers(0, 4 * 3600 * 1000)), max_size=200),
       st.integers(60, 900))
def test_every_counted_event_is_in_exactly_one_minute_row_finished_or_current(stream, horizon):
    """What the history topic gets (finished minutes) plus the snapshot's minute counts are exactly
    the events in the per-second buckets' reach: every event but the late ones, each once."""
    from eventdash.events.model import Event
    stats = PartitionStats(0, horizon_seconds=horizon)
    finished: dict[int, tuple] = {}
    expected: dict[int, list[int]] = {}
    for i, (kind, ts) in enumerate(stream):
        late_before = stats.late_total
        stats.apply(Event(f"e{i}", kind, NOW_MS - 4 * 3600 * 1000 + ts, f"s{i % 7}", "u", "p-1", "", 100, 1))
        if stats.late_total == late_before:
            row = expected.setdefault((NOW_MS - 4 * 3600 * 1000 + ts) // 60_000, [0, 0, 0, 0])
            row[EVENT_TYPES.index(kind)] += 1
        if i % 13 == 0:
            for minute, counts in stats.take_finished_minutes():
                assert minute not in finished and minute not in stats.minute_counts  # final: never again
                finished[minute] = counts
    finished.update(stats.take_finished_minutes())
    assert not set(finished) & set(stats.minute_counts)
    combined = {**finished, **{m: tuple(c) for m, c in stats.minute_counts.items()}}
    assert combined == {m: tuple(c) for m, c in expected.items()}
    oldest_second = stats.watermark_ms // 1000 - horizon + 1
    assert all(m >= oldest_second // 60 for m in stats.minute_counts)
    assert len(stats.minute_counts) <= horizon // 60 + 2
