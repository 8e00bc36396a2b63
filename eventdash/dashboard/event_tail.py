"""The live event tail: a sample of the newest events, for the viewers who opened the panel.

Only while some client is in the ``tail`` room does a dashboard process read ``events``: from the
end of each partition, with a throw-away consumer group and the same non-blocking ``follow`` loop
as the other feeds. When the last viewer leaves, the consumer is closed on a native thread (a
close can block). What it keeps is bounded: the newest ``KEEP`` records, unparsed. Every
``PERIOD_SECONDS`` the page's viewers get the records that arrived since, at most ``PER_BATCH``,
so at most ``PER_BATCH / PERIOD_SECONDS`` (20) per second each, newest first, taken from each
event type in turn so that rare types show too.

Only the fields the panel shows leave the process: session and user ids as a short hash (never
raw), strings cut to ``TEXT_CHARS``, numbers as numbers. Records that are not a JSON object with a
known type are skipped (the dead-letter panel shows those). The page inserts everything as text.
"""
from __future__ import annotations

import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from itertools import zip_longest

import orjson
from confluent_kafka import OFFSET_END

from ..config import Settings
from ..events.model import EVENT_TYPES
from ..kafka.clients import make_consumer
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


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= TEXT_CHARS else value[: TEXT_CHARS - 1] + "…"


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def tail_entry(value: bytes | None, partition: int, offset: int) -> dict | None:
    """What the panel shows of one record, or None if it is not an event of a known type."""
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return {
        "type": event["type"],
        "ts": event["ts"] if isinstance(event.get("ts"), int) and not isinstance(event["ts"], bool) else None,
        "product_id": _text(event.get("product_id")),
        "product_name": _text(event.get("product_name")),
        "price": _number(event.get("price")),
        "quantity": _number(event.get("quantity")),
        "session": short_hash(str(event.get("session_id"))) if "session_id" in event else None,
        "user": short_hash(str(event.get("user_id"))) if "user_id" in event else None,
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
    """Reads ``events`` while ``wanted()``; :meth:`take` hands out what arrived since the last call."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None], wanted: Callable[[], bool]):
        self.settings = settings
        self._sleep = sleep
        self._wanted = wanted
        self._recent: deque[tuple[int, int, bytes | None]] = deque(maxlen=KEEP)  # (partition, offset, value)
        self.reading = False

    def run(self) -> None:
        while True:
            if not self._wanted():
                self._sleep(0.5)
                continue
            self._follow()

    def _follow(self) -> None:
        s = self.settings
        consumer = make_consumer(s, "dashboard-tail", f"eventdash-tail-{uuid.uuid4().hex}",
                                 **{"auto.offset.reset": "latest", "session.timeout.ms": 10_000,
                                    "enable.auto.offset.store": False})
        consumer.subscribe([s.events_topic], on_assign=self._from_end)
        self.reading = True
        logger.info("event tail: reading %s", s.events_topic)
        try:
            follow(consumer, self._accept, self._sleep, self._wanted, idle_seconds=IDLE_SECONDS)
        finally:
            self.reading = False
            self._recent.clear()
            run_off_loop()(consumer.close)
            logger.info("event tail: stopped (no viewer)")

    @staticmethod
    def _from_end(consumer, partitions) -> None:
        for tp in partitions:
            tp.offset = OFFSET_END
        consumer.assign(partitions)

    def _accept(self, msg) -> None:
        if msg.error() is None:
            self._recent.append((msg.partition(), msg.offset(), msg.value()))

    def take(self) -> list[dict]:
        """Up to PER_BATCH events that arrived since the last call, newest first."""
        records, self._recent = list(self._recent), deque(maxlen=KEEP)
        entries = [entry for partition, offset, value in reversed(records)
                   if (entry := tail_entry(value, partition, offset)) is not None]
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
