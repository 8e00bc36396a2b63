"""The history topic's wire format, and what a reader keeps of it (bounded, merged with snapshots)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError
from hypothesis import given
from hypothesis import strategies as st

from eventdash import history
from eventdash.config import Settings
from eventdash.dashboard.history_feed import HistoryFeed
from eventdash.history import (
    KEEP_MINUTES,
    HistoryRecord,
    InvalidHistoryRecord,
    MinuteHistory,
    decode,
    encode,
    history_key,
)
from eventdash.snapshots import MAX_WINDOW_COUNT, Snapshot, TypeTotal

EVENTS = "events"
NOW_MINUTE = 29_406_340


def raw(partition=2, minute=NOW_MINUTE, counts=(1, 2, 3, 4)) -> tuple[bytes, bytes]:
    record = HistoryRecord(partition, minute, counts)
    return history_key(EVENTS, partition, minute), encode(record)


def test_round_trip():
    key, value = raw()
    assert decode(key, value, events_topic=EVENTS, partition=2) == HistoryRecord(2, NOW_MINUTE, (1, 2, 3, 4))
    largest = encode(HistoryRecord(999_999, 10**14 // 60_000 - 1, (MAX_WINDOW_COUNT,) * 4))
    assert len(largest) <= history.MAX_RECORD_BYTES


@pytest.mark.parametrize("mutate", [
    lambda k, v: (k, None),
    lambda k, v: (k, b"not json"),
    lambda k, v: (k, b"[]"),
    lambda k, v: (k, v.replace(b'"v":1', b'"v":2')),
    lambda k, v: (k, v.replace(b'"v":1', b'"v":true')),
    lambda k, v: (k, v.replace(b'"partition":2', b'"partition":3')),
    lambda k, v: (k, v.replace(b'"partition":2', b'"partition":2.0')),
    lambda k, v: (k + b"0", v),  # a key naming another minute
    lambda k, v: (None, v),
    lambda k, v: (k, v.replace(b"[1,2,3,4]", b"[1,2,3]")),
    lambda k, v: (k, v.replace(b"[1,2,3,4]", b"[1,2,3,-4]")),
    lambda k, v: (k, v.replace(b"[1,2,3,4]", b"[1,2,3,true]")),
    lambda k, v: (k, v.replace(b"[1,2,3,4]", b"[1,2,3,%d]" % (MAX_WINDOW_COUNT + 1))),
    lambda k, v: (k, v + b" " * 300),  # too large
])
def test_decode_refuses_what_is_not_a_history_record(mutate):
    key, value = mutate(*raw())
    with pytest.raises(InvalidHistoryRecord):
        decode(key, value, events_topic=EVENTS, partition=2)


@given(st.binary(max_size=300), st.binary(max_size=40))
def test_decode_never_raises_anything_else(value, key):
    try:
        decode(key, value, events_topic=EVENTS, partition=0)
    except InvalidHistoryRecord:
        pass


def snapshot(partition: int, minute_counts: dict) -> Snapshot:
    return Snapshot(partition=partition, next_offset=1, updated_at_ms=0, watermark_ms=NOW_MINUTE * 60_000,
                    horizon_seconds=900, totals={t: TypeTotal(0, 0, 0) for t in ("productview",)}, invalid={},
                    late_total=0, seconds={}, minutes={}, product_names={}, product_categories={},
                    minute_counts=minute_counts,
                    finished_through_minute=-1)


def test_series_prefers_the_final_record_then_the_snapshot_row_and_sums_partitions():
    kept = MinuteHistory(max_partitions=2)
    assert kept.add(HistoryRecord(0, NOW_MINUTE - 2, (5, 0, 0, 1)), now_minute=NOW_MINUTE)
    assert kept.add(HistoryRecord(1, NOW_MINUTE - 2, (1, 1, 1, 1)), now_minute=NOW_MINUTE)
    snaps = {0: snapshot(0, {NOW_MINUTE - 2: (4, 0, 0, 0), NOW_MINUTE - 1: (7, 0, 0, 0)}),
             1: snapshot(1, {NOW_MINUTE: (9, 9, 9, 9)})}
    rows = kept.series(snaps, first_minute=NOW_MINUTE - 3, last_minute=NOW_MINUTE - 1)
    assert rows == [(0, 0, 0, 0), (6, 1, 1, 2), (7, 0, 0, 0)]  # the current minute is outside the range


def test_the_reader_keeps_at_most_its_range_per_partition_of_its_partitions():
    kept = MinuteHistory(max_partitions=2)
    assert not kept.add(HistoryRecord(2, NOW_MINUTE, (1, 0, 0, 0)), now_minute=NOW_MINUTE)  # not our partition
    assert not kept.add(HistoryRecord(0, NOW_MINUTE - KEEP_MINUTES - 1, (1, 0, 0, 0)), now_minute=NOW_MINUTE)
    assert not kept.add(HistoryRecord(0, NOW_MINUTE + 1, (1, 0, 0, 0)), now_minute=NOW_MINUTE)  # not final yet
    for minute in range(NOW_MINUTE - KEEP_MINUTES, NOW_MINUTE + 1):
        assert kept.add(HistoryRecord(0, minute, (1, 0, 0, 0)), now_minute=NOW_MINUTE)
    assert len(kept) == KEEP_MINUTES + 1  # the bound
    # A day later, without a single request for a minute window, new minutes still get in and old ones go.
    for minute in range(NOW_MINUTE + 1, NOW_MINUTE + 1441):
        assert kept.add(HistoryRecord(0, minute, (1, 0, 0, 0)), now_minute=minute)
    assert len(kept) == KEEP_MINUTES + 1
    rows = kept.series({}, first_minute=NOW_MINUTE + 1440 - 59, last_minute=NOW_MINUTE + 1440)
    assert rows == [(1, 0, 0, 0)] * 60
    assert kept.series({}, first_minute=NOW_MINUTE, last_minute=NOW_MINUTE, input_partitions=0) == [(0, 0, 0, 0)]


def test_window_sums_beyond_javascripts_exact_range_are_strings_not_a_500():
    import orjson

    from eventdash.stats.export import MinuteSeries, window_document
    kept = MinuteHistory(max_partitions=1)
    last = NOW_MINUTE - 1
    for minute in range(last - 600, last + 1):
        kept.add(HistoryRecord(0, minute, (MAX_WINDOW_COUNT,) * 4), now_minute=NOW_MINUTE)
    rows = kept.series({}, first_minute=last - 1439, last_minute=last)
    doc = window_document({"generated_at_ms": NOW_MINUTE * 60_000}, "24h", MinuteSeries(last - 1439, rows, True))
    assert doc["window"]["events"] == str(601 * 4 * MAX_WINDOW_COUNT)
    orjson.dumps(doc)


def test_a_longer_horizon_after_a_restore_never_counts_a_final_minute_again():
    from eventdash.events.model import Event
    from eventdash.stats.engine import load_engine

    for engine in ("python", "auto"):
        eng = load_engine(engine)
        state = eng.new_state(0, horizon_seconds=120)
        base = NOW_MINUTE * 60_000
        for i in range(10):
            state.apply(Event("e", "productview", base + i * 1000, "s", "u", "p", "n", 100, 1))
        state.apply(Event("e", "productview", base + 5 * 60_000, "s", "u", "p", "n", 100, 1))
        assert dict(state.take_finished_minutes())[NOW_MINUTE] == (10, 0, 0, 0)
        restored = eng.restore(state.to_snapshot(next_offset=11, updated_at_ms=0), horizon_seconds=900)
        restored.apply(Event("e", "productview", base + 30_000, "s", "u", "p", "n", 100, 1))  # late at 120 s only
        restored.apply(Event("e", "productview", base + 20 * 60_000, "s", "u", "p", "n", 100, 1))
        assert NOW_MINUTE not in dict(restored.take_finished_minutes()), engine


def message(key, value, partition=2, error=None):
    return SimpleNamespace(key=lambda: key, value=lambda: value, partition=lambda: partition, offset=lambda: 7,
                           topic=lambda: "event_history", error=lambda: error)


def test_the_feed_skips_corrupt_and_foreign_records_counts_them_and_marks_the_end():
    skipped = []
    feed = HistoryFeed(Settings.from_env({}), sleep=lambda s: None, clock_ms=lambda: NOW_MINUTE * 60_000,
                       on_skip=lambda: skipped.append(1))
    feed.history = MinuteHistory(max_partitions=3)
    feed._partitions = 1
    feed.accept(message(*raw(minute=NOW_MINUTE - 1)))
    feed.accept(message(b"events:2:5", b"\x00garbage"))
    feed.accept(message(b"other-topic:2:5", b"{}"))  # another events topic's history: not ours, not an error
    feed.accept(message(*raw(partition=1)))  # a record of partition 1 on partition 2
    assert len(skipped) == 2 and len(feed.history) == 1
    assert not feed.caught_up
    feed.accept(message(None, None, error=KafkaError(KafkaError._PARTITION_EOF)))
    assert feed.caught_up
