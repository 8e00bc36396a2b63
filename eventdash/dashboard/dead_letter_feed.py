"""The dead-letter triage panel's data: invalid records per reason per minute, and the newest ones.

Like the statistics feed, each dashboard process reads ``events.dlq`` itself, with only
non-blocking calls on its event loop. It starts at the first record of the last
``HISTORY_MINUTES`` (by record time: ``offsets_for_times``, looked up on a native thread), so the
per-minute counts are exact for that hour from the start. What it keeps is bounded: counts for at
most ``HISTORY_MINUTES`` minutes x the reasons seen (at most ``MAX_REASONS``), and the newest
``RECENT`` dead letters.

A preview is redacted and short: the values of ``event_id``, ``session_id`` and ``user_id`` are
replaced by an 8-character hash, control characters by U+FFFD, and it is cut at
``PREVIEW_CHARS``. The page inserts it as text, never as HTML.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from ..config import Settings
from ..kafka.clients import make_consumer
from .feed import follow
from .native import run_off_loop

logger = logging.getLogger(__name__)

HISTORY_MINUTES = 60
RECENT = 20
PREVIEW_CHARS = 200
MAX_REASONS = 32  # reasons are the aggregator's fixed set; anything beyond counts as "other"
PRIVATE_FIELDS = ("event_id", "session_id", "user_id")
_PRIVATE = re.compile(r'("(?:' + "|".join(PRIVATE_FIELDS) + r')"\s*:\s*)"((?:[^"\\]|\\.)*)"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@functools.cache
def _process_key() -> bytes:
    return secrets.token_bytes(32)


def short_hash(text: str) -> str:
    """``#`` and 8 hex digits of an HMAC-SHA-256 under a random key of this process: equal ids look
    equal, but trying every likely id (``u-00001``…) cannot tell which one a hash stands for."""
    return "#" + hmac.new(_process_key(), text.encode(errors="replace"), hashlib.sha256).hexdigest()[:8]


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
        lookup = run_off_loop()
        since = self._clock_ms() - HISTORY_MINUTES * 60_000
        positions = lookup(self._first_offsets_since, since)
        while not positions:  # no dead-letter topic yet (the aggregator creates it)
            self._sleep(5.0)
            positions = lookup(self._first_offsets_since, since)
        consumer = make_consumer(s, "dashboard-dlq", f"eventdash-dashboard-dlq-{uuid.uuid4().hex}")
        consumer.assign(positions)
        self._running = True
        try:
            follow(consumer, lambda msg: self.accept(msg) if msg.error() is None else None, self._sleep,
                   lambda: self._running, idle_seconds=0.2)
        finally:
            consumer.close()

    def _first_offsets_since(self, since_ms: int) -> list[TopicPartition]:
        """Where each partition's records from ``since_ms`` on begin. Blocking broker lookups, so this runs
        on a native thread (``run_off_loop``), with a client of its own that has no Python callbacks."""
        s = self.settings
        client = Consumer({"bootstrap.servers": s.bootstrap_servers, "enable.auto.commit": False,
                           "group.id": f"eventdash-dashboard-dlq-lookup-{uuid.uuid4().hex}"})
        try:
            topic = client.list_topics(s.dlq_topic, timeout=10).topics.get(s.dlq_topic)
            if topic is None or topic.error is not None or not topic.partitions:
                return []
            wanted = [TopicPartition(s.dlq_topic, p, since_ms) for p in sorted(topic.partitions)]
            found = client.offsets_for_times(wanted, timeout=10)
            return [TopicPartition(s.dlq_topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                    for tp in found]
        finally:
            client.close()

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
