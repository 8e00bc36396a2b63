"""The live event tail's pure parts: what one record shows, the sample, the bounds."""
from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from eventdash.config import Settings
from eventdash.dashboard import event_tail
from eventdash.dashboard.dead_letter_feed import short_hash
from eventdash.dashboard.event_tail import KEEP, PER_BATCH, TEXT_CHARS, EventTail, sample, tail_entry
from eventdash.events.model import EVENT_TYPES

EVENT = {"event_id": "e-1", "type": "purchase", "ts": 1_700_000_000_000, "session_id": "s-secret",
         "user_id": "u-secret", "product_id": "p-1", "product_name": "Beans", "price": 12.5, "quantity": 2}


def test_an_entry_shows_hashed_ids_never_raw_ones():
    entry = tail_entry(orjson.dumps(EVENT), 3, 41)
    assert entry == {"type": "purchase", "ts": 1_700_000_000_000, "product_id": "p-1", "product_name": "Beans",
                     "price": 12.5, "quantity": 2, "session": entry["session"], "user": entry["user"],
                     "partition": 3, "offset": 41}
    assert entry["session"].startswith("#") and len(entry["session"]) == 9
    assert "secret" not in orjson.dumps(entry).decode()


@given(st.dictionaries(st.sampled_from(list(EVENT) + ["extra"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=300),
                                 st.sampled_from(EVENT_TYPES), st.lists(st.integers(0, 9), max_size=3))))
def test_any_record_gives_a_bounded_entry_or_none(record):
    entry = tail_entry(orjson.dumps(record), 0, 0)
    if entry is None:
        assert record.get("type") not in EVENT_TYPES
        return
    assert set(entry) == {"type", "ts", "product_id", "product_name", "price", "quantity", "session", "user",
                          "partition", "offset"}
    for key in ("product_id", "product_name"):
        assert entry[key] is None or (isinstance(entry[key], str) and len(entry[key]) <= TEXT_CHARS)
    for key in ("price", "quantity"):
        assert entry[key] is None or (isinstance(entry[key], int | float) and not isinstance(entry[key], bool))
    for key, raw in (("session", "session_id"), ("user", "user_id")):
        assert entry[key] == (short_hash(str(record[raw])) if raw in record else None)  # never the raw id


def test_records_that_are_not_events_are_skipped():
    for value in (b"", b"not json", b"[1, 2]", b'{"type": "refund"}', None):
        assert tail_entry(value, 0, 0) is None


def test_the_sample_takes_each_type_in_turn_keeps_newest_first_and_its_bound():
    entries = [{"type": "productview", "n": i} for i in range(10)] + [{"type": "purchase", "n": 10}]
    picked = sample(entries)
    assert len(picked) == PER_BATCH
    assert {"type": "purchase", "n": 10} in picked  # the rare type is not crowded out
    assert [e["n"] for e in picked] == sorted(e["n"] for e in picked)  # the input's order (newest first) kept
    assert sample([]) == []


def test_take_hands_out_only_what_arrived_since_and_holds_at_most_keep_records():
    tail = EventTail(Settings(), sleep=lambda s: None, wanted=lambda: True)

    class Msg:
        def __init__(self, offset, event_type):
            self._offset, self._value = offset, orjson.dumps({**EVENT, "type": event_type, "event_id": str(offset)})

        def error(self):
            return None

        def partition(self):
            return 0

        def offset(self):
            return self._offset

        def value(self):
            return self._value

    for offset in range(1000):
        tail._accept(Msg(offset, EVENT_TYPES[offset % 4]))
    assert len(tail._recent) == KEEP
    batch = tail.take()
    assert len(batch) == PER_BATCH and {e["type"] for e in batch} == set(EVENT_TYPES)
    assert max(e["offset"] for e in batch) == 999 and min(e["offset"] for e in batch) >= 1000 - KEEP
    assert tail.take() == []


def test_no_viewer_no_reading():
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise StopIteration

    tail = EventTail(Settings(), sleep=sleep, wanted=lambda: False)
    tail._follow = lambda: (_ for _ in ()).throw(AssertionError("read without a viewer"))
    try:
        tail.run()
    except StopIteration:
        pass
    assert sleeps == [0.5, 0.5, 0.5]


def test_the_loop_sends_only_to_viewers_and_only_news():
    sent, sleeps = [], []
    batches = iter([[{"type": "purchase"}], [], [{"type": "productview"}]])
    viewers = iter([True, True, False, True])

    class Tail:
        def take(self):
            return next(batches)

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) > 4:
            raise StopIteration

    try:
        event_tail.tail_loop(Tail(), lambda: next(viewers), sent.append, sleep)
    except StopIteration:
        pass
    assert sent == [[{"type": "purchase"}], [{"type": "productview"}]]
    assert set(sleeps) == {event_tail.PERIOD_SECONDS}
