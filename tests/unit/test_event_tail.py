"""The live event tail's pure parts: what one record shows, the sample, the bounds."""
from __future__ import annotations

import hashlib
import time

import orjson
from hypothesis import given
from hypothesis import strategies as st

from eventdash.config import Settings
from eventdash.dashboard import event_tail
from eventdash.dashboard.dead_letter_feed import short_hash
from eventdash.dashboard.event_tail import KEEP, PER_BATCH, TEXT_CHARS, EventTail, sample, tail_entry
from eventdash.events.model import EVENT_TYPES
from eventdash.events.validation import InvalidEvent, parse_event

SETTINGS = Settings()
EVENT = {"event_id": "e-1", "type": "purchase", "ts": 1_700_000_000_000, "session_id": "s-secret",
         "user_id": "u-secret", "product_id": "p-1", "product_name": "Beans", "price": 12.5, "quantity": 2}


def entry_of(record: dict, partition: int = 0, offset: int = 0) -> dict | None:
    return tail_entry(orjson.dumps(record), partition, offset, SETTINGS)


def test_an_entry_shows_keyed_hashes_never_raw_ids():
    entry = entry_of(EVENT, 3, 41)
    assert entry == {"type": "purchase", "ts": 1_700_000_000_000, "product_id": "p-1", "product_name": "Beans",
                     "price": 12.5, "quantity": 2, "session": short_hash("s-secret"), "user": short_hash("u-secret"),
                     "partition": 3, "offset": 41}
    assert entry["session"].startswith("#") and len(entry["session"]) == 9
    assert "secret" not in orjson.dumps(entry).decode()
    # keyed: not the plain SHA-256 anyone could compute for a guessed id
    assert entry["user"] != "#" + hashlib.sha256(b"u-secret").hexdigest()[:8]


@given(st.dictionaries(st.sampled_from(list(EVENT) + ["extra"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=300),
                                 st.sampled_from(EVENT_TYPES), st.lists(st.integers(0, 9), max_size=3))))
def test_only_events_the_aggregator_accepts_give_a_bounded_entry(record):
    raw = orjson.dumps({**EVENT, **record})
    try:
        parse_event(raw, now_ms=time.time_ns() // 1_000_000)
        valid = True
    except InvalidEvent:
        valid = False
    entry = tail_entry(raw, 0, 0, SETTINGS)
    assert (entry is not None) == valid
    if entry is None:
        return
    for key in ("product_id", "product_name"):
        assert entry[key] is None or (isinstance(entry[key], str) and len(entry[key]) <= TEXT_CHARS)
    event = orjson.loads(raw)
    assert entry["session"] == short_hash(event["session_id"]) and entry["user"] == short_hash(event["user_id"])


def test_records_that_are_not_events_are_skipped():
    for value in (b"", b"not json", b"[1, 2]", b'{"type": "refund"}', None,
                  orjson.dumps({**EVENT, "ts": 10**18}), orjson.dumps({**EVENT, "product_name": "a\u202eb"})):
        assert tail_entry(value, 0, 0, SETTINGS) is None, value


def test_the_sample_takes_each_type_in_turn_keeps_newest_first_and_its_bound():
    entries = [{"type": "productview", "n": i} for i in range(10)] + [{"type": "purchase", "n": 10}]
    picked = sample(entries)
    assert len(picked) == PER_BATCH
    assert {"type": "purchase", "n": 10} in picked  # the rare type is not crowded out
    assert [e["n"] for e in picked] == sorted(e["n"] for e in picked)  # the input's order (newest first) kept
    assert sample([]) == []


def test_take_hands_out_only_what_arrived_since_and_holds_at_most_keep_records():
    tail = EventTail(SETTINGS, sleep=lambda s: None, wanted=lambda: True, partitions=lambda: 6)

    class Msg:
        def __init__(self, offset, event_type):
            self._offset = offset
            self._value = orjson.dumps({**EVENT, "type": event_type, "event_id": str(offset),
                                        "ts": time.time_ns() // 1_000_000})

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

    tail = EventTail(SETTINGS, sleep=sleep, wanted=lambda: False, partitions=lambda: 6)
    tail._follow = lambda partitions: (_ for _ in ()).throw(AssertionError("read without a viewer"))
    try:
        tail.run()
    except StopIteration:
        pass
    assert sleeps == [0.5, 0.5, 0.5]


def test_reading_goes_on_for_a_while_after_the_last_viewer_left():
    now = [0.0]
    viewers = [True]
    tail = EventTail(SETTINGS, sleep=lambda s: None, wanted=lambda: viewers[0], partitions=lambda: 6,
                     clock=lambda: now[0])
    assert tail._reading()
    viewers[0] = False
    now[0] = event_tail.LINGER_SECONDS - 0.1
    assert tail._reading()  # a panel closed and opened again meanwhile costs no new consumer
    now[0] = event_tail.LINGER_SECONDS
    assert not tail._reading()


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
