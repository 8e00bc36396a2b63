"""The dead-letter triage panel's data: invalid records per reason per minute, and the newest ones.

Like the statistics feed, each dashboard process reads ``events.dlq`` itself with a throw-away
group and only non-blocking calls. On assignment it starts at the first record of the last
``HISTORY_MINUTES`` (by record time, ``offsets_for_times``), so the per-minute counts are exact
for that hour from the start. What it keeps is bounded: counts for at most ``HISTORY_MINUTES``
minutes x the reasons seen (at most ``MAX_REASONS``), and the newest ``RECENT`` dead letters.

A preview is redacted and short: the values of ``event_id``, ``session_id`` and ``user_id`` are
replaced by an 8-character hash, control characters by U+FFFD, and it is cut at
``PREVIEW_CHARS``. The page inserts it as text, never as HTML.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable

from confluent_kafka import OFFSET_END, TopicPartition

from ..config import Settings
from ..kafka.clients import make_consumer
from .feed import follow

logger = logging.getLogger(__name__)

HISTORY_MINUTES = 60
RECENT = 20
PREVIEW_CHARS = 200
MAX_REASONS = 32  # reasons are the aggregator's fixed set; anything beyond counts as "other"
PRIVATE_FIELDS = ("event_id", "session_id", "user_id")
_PRIVATE = re.compile(r'("(?:' + "|".join(PRIVATE_FIELDS) + r')"\s*:\s*)"((?:[^"\\]|\\.)*)"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def short_hash(text: str) -> str:
    return "#" + hashlib.sha256(text.encode(errors="replace")).hexdigest()[:8]


def preview(value: bytes | None) -> str:
    """The start of a rejected record's bytes, safe to show: private ids hashed, control characters
    replaced, at most PREVIEW_CHARS characters."""
    if value is None:
        return "(no value)"
    text = value[: PREVIEW_CHARS * 8].decode(errors="replace")
    text = _PRIVATE.sub(lambda m: f'{m.group(1)}"{short_hash(m.group(2))}"', text)
    text = _CONTROL.sub("\ufffd", text)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _header(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode(errors="replace")[:200]


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() and len(text) < 20 else None


class DeadLetterFeed:
    def __init__(self, settings: Settings, sleep: Callable[[float], None], clock_ms: Callable[[], int] | None = None):
        self.settings = settings
        self._sleep = sleep
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.per_minute: dict[int, dict[str, int]] = {}  # epoch minute -> reason -> count
        self.recent: deque[dict] = deque(maxlen=RECENT)  # newest last
        self._reasons: set[str] = set()  # at most MAX_REASONS
        self._running = False

    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        s = self.settings
        consumer = make_consumer(s, "dashboard-dlq", f"eventdash-dashboard-dlq-{uuid.uuid4().hex}",
                                 **{"session.timeout.ms": 10_000})
        consumer.subscribe([s.dlq_topic], on_assign=self._assign_last_hour)
        self._running = True
        try:
            follow(consumer, lambda msg: self.accept(msg) if msg.error() is None else None, self._sleep,
                   lambda: self._running, idle_seconds=0.2)
        finally:
            consumer.close()

    def _assign_last_hour(self, consumer, partitions: list[TopicPartition]) -> None:
        since = self._clock_ms() - HISTORY_MINUTES * 60_000
        try:  # an on_assign callback: it must not block long, and an error keeps the default (the end)
            found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, since) for tp in partitions],
                                               timeout=5)
            for tp, at in zip(partitions, found, strict=True):
                tp.offset = at.offset if at.offset >= 0 else OFFSET_END
        except Exception as exc:  # noqa: BLE001
            logger.warning("dead-letter panel: could not look up the last hour (%s); following new ones only", exc)
            for tp in partitions:
                tp.offset = OFFSET_END
        consumer.assign(partitions)

    def accept(self, msg) -> None:
        try:
            headers = {name: value or b"" for name, value in (msg.headers() or [])}
        except Exception:  # noqa: BLE001 - an undecodable header name
            headers = {}
        reason = _header(headers, "eventdash.error.reason") or "unknown"
        at_ms = msg.timestamp()[1]
        self._count(at_ms // 60_000, reason)
        self.recent.append({
            "reason": reason,
            "detail": _CONTROL.sub("\ufffd", _header(headers, "eventdash.error.detail") or ""),
            "source_partition": _int(_header(headers, "eventdash.source.partition")),
            "source_offset": _int(_header(headers, "eventdash.source.offset")),
            "time_ms": at_ms,
            "preview": preview(msg.value()),
            "truncated": _header(headers, "eventdash.truncated"),
        })

    def _count(self, minute: int, reason: str) -> None:
        oldest = self._clock_ms() // 60_000 - HISTORY_MINUTES + 1
        if minute < oldest:
            return
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                reason = "other"
            else:
                self._reasons.add(reason)
        counts = self.per_minute.get(minute)
        if counts is None:
            counts = self.per_minute[minute] = {}
            for old in [m for m in self.per_minute if m < oldest]:
                del self.per_minute[old]
        counts[reason] = counts.get(reason, 0) + 1

    def view(self) -> dict:
        oldest = self._clock_ms() // 60_000 - HISTORY_MINUTES + 1
        minutes = sorted(m for m in self.per_minute if m >= oldest)
        return {
            "history_minutes": HISTORY_MINUTES,
            "per_minute": [{"minute_s": m * 60, "by_reason": dict(sorted(self.per_minute[m].items()))}
                           for m in minutes],
            "recent": list(reversed(self.recent)),  # newest first
        }
