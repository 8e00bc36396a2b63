"""The live event tail: a sample of the newest events, for the viewers who opened the panel.

Only while some client is in the ``tail`` room (and ``LINGER_SECONDS`` after the last one left,
so a panel toggled on and off costs nothing) does a dashboard process read ``events``: from the end
of each partition, assigned directly (no consumer group), with the same non-blocking ``follow``
loop as the other feeds and a small prefetch. The consumer has no Python callbacks, so it can be
closed on a native thread (a close can block). What it keeps is bounded: the newest ``KEEP``
records, unparsed. Every ``PERIOD_SECONDS`` the viewers get the records that arrived since, at
most ``PER_BATCH``, so at most ``PER_BATCH / PERIOD_SECONDS`` (20) per second each, newest first,
taken from each event type in turn so that rare types show too.

Only valid events are shown (the aggregator's own ``parse_event``; the dead-letter panel shows
the rest), and only the fields the panel needs: session and user ids as a keyed short hash (never
raw, see ``short_hash``), strings cut to ``TEXT_CHARS``. The page inserts everything as text.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from itertools import zip_longest

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from ..config import Settings
from ..events.validation import InvalidEvent, parse_event
from .dead_letter_feed import short_hash
from .feed import follow
from .native import run_off_loop

logger = logging.getLogger(__name__)

TAIL_ROOM = "tail"
KEEP = 64  # newest records held (bytes of at most EVENTDASH_MAX_EVENT_BYTES each)
PER_BATCH = 5
PERIOD_SECONDS = 0.25  # PER_BATCH / PERIOD_SECONDS = 20 events per second per viewer at most
TEXT_CHARS = 64
IDLE_SECONDS = 0.05
LINGER_SECONDS = 10.0  # keep reading this long after the last viewer left
PREFETCH_KBYTES = 1024  # librdkafka's local queue for the tail (default 64 MB)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value if len(value) <= TEXT_CHARS else value[: TEXT_CHARS - 1] + "…"


def tail_entry(value: bytes | None, partition: int, offset: int, settings: Settings) -> dict | None:
    """What the panel shows of one record, or None if the aggregator would reject it."""
    try:
        event = parse_event(value, now_ms=time.time_ns() // 1_000_000,
                            future_tolerance_ms=settings.future_tolerance_ms, max_bytes=settings.max_event_bytes)
    except InvalidEvent:
        return None
    return {
        "type": event.type,
        "ts": event.ts,
        "product_id": _text(event.product_id),
        "product_name": _text(event.product_name or None),
        "price": event.price_cents / 100,
        "quantity": event.quantity,
        "session": short_hash(event.session_id),
        "user": short_hash(event.user_id),
        "partition": partition,
        "offset": offset,
    }


def sample(entries: list[dict], limit: int = PER_BATCH) -> list[dict]:
    """At most ``limit`` of ``entries`` (newest first), taking each type's newest in turn."""
    by_type: dict[str, list[dict]] = {}
    for entry in entries:
        by_type.setdefault(entry["type"], []).append(entry)
    picked = [entry for row in zip_longest(*by_type.values()) for entry in row if entry is not None][:limit]
    order = {id(entry): i for i, entry in enumerate(entries)}
    return sorted(picked, key=lambda entry: order[id(entry)])


class EventTail:
    """Reads ``events`` while ``wanted()`` (and a while after); :meth:`take` hands out what arrived since."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None], wanted: Callable[[], bool],
                 partitions: Callable[[], int | None], clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._sleep = sleep
        self._wanted = wanted
        self._partitions = partitions
        self._clock = clock
        self._recent: deque[tuple[int, int, bytes | None]] = deque(maxlen=KEEP)  # (partition, offset, value)
        self._wanted_at = float("-inf")

    def run(self) -> None:
        while True:
            if not self._wanted() or not self._partitions():
                self._sleep(0.5)
                continue
            self._follow(self._partitions())

    def _reading(self) -> bool:
        now = self._clock()
        if self._wanted():
            self._wanted_at = now
        return now - self._wanted_at < LINGER_SECONDS

    def _follow(self, partitions: int) -> None:
        s = self.settings
        consumer = Consumer({  # no Python callbacks: closed on a native thread; no group: assigned directly
            "bootstrap.servers": s.bootstrap_servers, "group.id": f"eventdash-tail-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "enable.auto.offset.store": False, "isolation.level": "read_committed",
            "queued.max.messages.kbytes": PREFETCH_KBYTES, "fetch.max.bytes": PREFETCH_KBYTES * 1024,
            "enable.partition.eof": False})
        try:
            consumer.assign([TopicPartition(s.events_topic, p, OFFSET_END) for p in range(partitions)])
            logger.info("event tail: reading %s", s.events_topic)
            self._wanted_at = self._clock()
            follow(consumer, self._accept, self._sleep, self._reading, idle_seconds=IDLE_SECONDS)
        finally:
            self._recent.clear()
            run_off_loop()(consumer.close)
        logger.info("event tail: stopped (no viewer for %.0f s)", LINGER_SECONDS)

    def _accept(self, msg) -> None:
        if msg.error() is None:
            self._recent.append((msg.partition(), msg.offset(), msg.value()))

    def take(self) -> list[dict]:
        """Up to PER_BATCH events that arrived since the last call, newest first."""
        records, self._recent = list(self._recent), deque(maxlen=KEEP)
        entries = [entry for partition, offset, value in reversed(records)
                   if (entry := tail_entry(value, partition, offset, self.settings)) is not None]
        return sample(entries)


def tail_loop(tail: EventTail, has_viewers: Callable[[], bool], emit: Callable[[list[dict]], None],
              sleep: Callable[[float], None]) -> None:
    """Every PERIOD_SECONDS, the newest events to the viewers (nothing when there are none or no news)."""
    while True:
        sleep(PERIOD_SECONDS)
        if has_viewers():
            batch = tail.take()
            if batch:
                emit(batch)
