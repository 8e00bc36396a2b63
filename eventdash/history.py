"""Per-minute history: the one owner of its topic's key, wire format, bound and merge.

A minute whose every second has left an input partition's horizon can no longer change (later
events for it are ``late``). The aggregator then writes its final counts, in the same transaction
as the snapshot that dropped it, to partition *p* of the history topic (``event_history``,
compacted and deleted after :data:`RETENTION_HOURS`), keyed ``<events topic>:<p>:<minute>``::

    {"v": 1, "partition": 0, "minute": 29406340, "counts": [views, adds, removes, purchases]}

The newer minutes are in each snapshot's ``minute_counts``. A reader (the dashboard) keeps, for
every partition, the minutes of the last :data:`KEEP_MINUTES` and merges both: the record where
there is one (it is final), else the snapshot's row. One record per partition and minute ever
(a replay after a crash writes the same key again), so a day is at most 1,440 records a
partition.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple

import orjson

from .snapshots import MAX_WINDOW_COUNT, Snapshot

logger = logging.getLogger(__name__)

VERSION = 1
RETENTION_HOURS = 25  # the longest window (24 h) and an hour to spare
# What a reader keeps per partition: the longest window, ending up to an hour back (a window ends
# at the last complete minute, which is behind now while the pipeline lags).
KEEP_MINUTES = RETENTION_HOURS * 60
MAX_RECORD_BYTES = 256
WINDOWS = {"1h": 60, "6h": 360, "24h": 1440}  # window -> minutes
Counts = tuple[int, int, int, int]


class InvalidHistoryRecord(ValueError):
    pass


class HistoryRecord(NamedTuple):
    partition: int
    minute: int
    counts: Counts


def history_key(events_topic: str, partition: int, minute: int) -> bytes:
    return f"{events_topic}:{partition}:{minute}".encode()


def encode(record: HistoryRecord) -> bytes:
    return orjson.dumps({"v": VERSION, "partition": record.partition, "minute": record.minute,
                         "counts": list(record.counts)})


def decode(key: bytes | None, value: bytes | None, *, events_topic: str, partition: int) -> HistoryRecord:
    """Validate a record read from ``partition`` of the history topic, or raise :class:`InvalidHistoryRecord`."""
    if value is None or len(value) > MAX_RECORD_BYTES:
        raise InvalidHistoryRecord("empty or too large")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidHistoryRecord("not JSON") from None
    if type(doc) is not dict or doc.get("v") != VERSION or type(doc.get("v")) is not int:
        raise InvalidHistoryRecord("not a version 1 history record")
    minute, counts = doc.get("minute"), doc.get("counts")
    if doc.get("partition") != partition or type(doc.get("partition")) is not int:
        raise InvalidHistoryRecord(f"partition {doc.get('partition')!r} on partition {partition}")
    if type(minute) is not int or not 0 <= minute < 10**14 // 60_000:
        raise InvalidHistoryRecord("minute must be an epoch minute")
    if key != history_key(events_topic, partition, minute):
        raise InvalidHistoryRecord("key does not match the record")
    if (type(counts) is not list or len(counts) != 4
            or not all(type(n) is int and 0 <= n <= MAX_WINDOW_COUNT for n in counts)):
        raise InvalidHistoryRecord("counts must be 4 counts")
    return HistoryRecord(partition, minute, tuple(counts))


class MinuteHistory:
    """Final per-minute counts read from the history topic: the minutes from ``now - KEEP_MINUTES``
    to ``now`` (a minute is final only once it is past), so at most :data:`KEEP_MINUTES` + 1 per
    partition, for at most ``max_partitions`` partitions."""

    def __init__(self, max_partitions: int):
        self.max_partitions = max_partitions
        self._minutes: dict[int, dict[int, Counts]] = {}  # partition -> minute -> counts
        self._expired_at: int | None = None

    def add(self, record: HistoryRecord, *, now_minute: int) -> bool:
        """Keep ``record`` if its minute is in the kept range (and its partition one of ours)."""
        self.expire(now_minute)
        if (record.partition >= self.max_partitions
                or not now_minute - KEEP_MINUTES <= record.minute <= now_minute):
            return False
        self._minutes.setdefault(record.partition, {})[record.minute] = record.counts
        return True

    def expire(self, now_minute: int) -> None:
        """Forget minutes older than the kept range (the work is done once a minute)."""
        if now_minute == self._expired_at:
            return
        self._expired_at = now_minute
        oldest = now_minute - KEEP_MINUTES
        for minutes in self._minutes.values():
            for minute in [m for m in minutes if m < oldest]:
                del minutes[minute]

    def __len__(self) -> int:
        return sum(len(m) for m in self._minutes.values())

    def series(self, snapshots: Mapping[int, Snapshot], *, first_minute: int, last_minute: int,
               input_partitions: int | None = None) -> list[Counts]:
        """Counts per minute from ``first_minute`` to ``last_minute`` (inclusive), summed over the input
        partitions: each partition's final record, else its snapshot's row, else nothing."""
        length = last_minute - first_minute + 1
        sums = [[0, 0, 0, 0] for _ in range(max(0, length))]
        for partition in set(self._minutes) | set(snapshots):
            if input_partitions is not None and partition >= input_partitions:
                continue  # the history topic may have more partitions than events
            final = self._minutes.get(partition, {})
            snap = snapshots.get(partition)
            current = snap.minute_counts if snap is not None else {}
            for minute in {*final, *current}:
                index = minute - first_minute
                if 0 <= index < length:
                    counts = final.get(minute) or current[minute]
                    row = sums[index]
                    for i in range(4):
                        row[i] += counts[i]
        return [tuple(row) for row in sums]
