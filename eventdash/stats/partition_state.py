"""Statistics of one input partition: the unit of state, snapshot and recovery.

Pure and broker-free. The consumer feeds it valid events (:meth:`apply`) and invalid ones
(:meth:`record_invalid`); :meth:`to_snapshot` / :meth:`from_snapshot` convert it to and from
the :class:`~eventdash.snapshots.Snapshot` published to ``event_statistics``.

Memory and snapshot size are bounded by construction, whatever the input (limits in
:mod:`eventdash.snapshots`):
- per-second counts by event time for ``horizon_seconds`` (at most ``MAX_HORIZON_SECONDS``);
- per-minute counts of every minute with a second in that horizon; a minute that leaves it
  entirely is final and waits in :attr:`finished_minutes` until the aggregator publishes it to the
  history topic (:meth:`take_finished_minutes`, at each commit);
- for the last ``FUNNEL_MINUTES`` minutes of event time, per-minute HyperLogLog sketches
  (3 x 1 KiB) of the sessions that viewed / added / purchased, and per-minute product counters
  of at most ``PRODUCT_CANDIDATES`` ids (a Misra-Gries style cut: exact while a minute sees
  fewer distinct products, an undercount of the tail beyond);
- product names only for the ids in those counters.
Events older than the horizon (relative to the partition's event-time watermark) count in the
totals and in ``late_total`` but in no bucket. Revenue is an exact integer of cents of any size.
"""
from __future__ import annotations

from .. import snapshots
from ..events.model import ADDTOBASKET, EVENT_TYPES, PRODUCTVIEW, PURCHASE, Event
from ..snapshots import (
    FUNNEL_MINUTES,
    MAX_CATEGORIES,
    OTHER_CATEGORY,
    PRODUCT_CANDIDATES,
    MinuteSummary,
    Snapshot,
    TypeTotal,
)
from .hll import HyperLogLog, hash64

TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}
# event type -> the funnel stage (a sketch of the snapshot format) it counts towards
FUNNEL_STAGES = dict(zip((PRODUCTVIEW, ADDTOBASKET, PURCHASE), snapshots.FUNNEL_STAGES, strict=True))


class MinuteBucket:
    __slots__ = ("sketches", "views", "purchases", "revenue", "categories")

    def __init__(self) -> None:
        self.sketches = {stage: HyperLogLog() for stage in FUNNEL_STAGES.values()}
        self.views: dict[str, int] = {}
        self.purchases: dict[str, int] = {}
        self.revenue: dict[str, int] = {}  # cents of the units in ``purchases`` (same ids)
        # category -> counts per type; at most MAX_CATEGORIES, then new ones count as OTHER_CATEGORY
        self.categories: dict[str, list[int]] = {}


class PartitionStats:
    def __init__(self, partition: int, *, horizon_seconds: int = 900,
                 max_product_candidates: int = PRODUCT_CANDIDATES):
        self.partition = partition
        self.horizon_seconds = horizon_seconds
        self.max_product_candidates = max_product_candidates
        # totals[type] = [count, units, revenue_cents]
        self.totals: dict[str, list[int]] = {name: [0, 0, 0] for name in EVENT_TYPES}
        self.invalid: dict[str, int] = {}
        self.late_total = 0
        self.watermark_ms = 0
        self.seconds: dict[int, list[int]] = {}
        self.minute_counts: dict[int, list[int]] = {}
        # Minutes up to here are final (published, or older than any horizon this state had): never
        # counted again, even after a restore with a longer horizon.
        self.finished_through_minute = -1
        self.finished_minutes: list[tuple[int, tuple[int, int, int, int]]] = []
        self.minutes: dict[int, MinuteBucket] = {}
        self.product_names: dict[str, str] = {}
        self.product_categories: dict[str, str] = {}

    # -- updates ---------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        total = self.totals[event.type]
        total[0] += 1
        total[1] += event.quantity
        if event.type == PURCHASE:
            total[2] += event.price_cents * event.quantity
        ts = event.ts
        second = ts // 1000
        if ts > self.watermark_ms:
            new_second = second != self.watermark_ms // 1000
            self.watermark_ms = ts
            if new_second:  # buckets can only expire when event time enters a new second
                self._evict()
        elif second <= self.watermark_ms // 1000 - self.horizon_seconds:
            self.late_total += 1
            return
        counts = self.seconds.get(second)
        if counts is None:
            counts = self.seconds[second] = [0, 0, 0, 0]
        type_index = TYPE_INDEX[event.type]
        counts[type_index] += 1
        minute = ts // 60_000
        if minute > self.finished_through_minute:
            minute_counts = self.minute_counts.get(minute)
            if minute_counts is None:
                minute_counts = self.minute_counts[minute] = [0, 0, 0, 0]
            minute_counts[type_index] += 1
        bucket = self.minutes.get(minute)
        if bucket is None:
            if minute <= self.watermark_ms // 60_000 - FUNNEL_MINUTES:
                return  # in the horizon but older than the longest funnel window
            bucket = self.minutes[minute] = MinuteBucket()
        category = event.category
        category_counts = bucket.categories.get(category)
        if category_counts is None:
            if len(bucket.categories) >= MAX_CATEGORIES:
                category = OTHER_CATEGORY
                category_counts = bucket.categories.get(category)
            if category_counts is None:
                category_counts = bucket.categories[category] = [0, 0, 0, 0]
        category_counts[type_index] += 1
        stage = FUNNEL_STAGES.get(event.type)
        if stage is None:
            return
        bucket.sketches[stage].add_hash(hash64(event.session_id))
        if event.type == PRODUCTVIEW:
            self._count_product(bucket.views, event.product_id, 1, event.product_name, event.category)
        elif event.type == PURCHASE:
            cut = self._count_product(bucket.purchases, event.product_id, event.quantity, event.product_name,
                                      event.category)
            if cut:
                bucket.revenue = {pid: cents for pid, cents in bucket.revenue.items() if pid in bucket.purchases}
            if event.product_id in bucket.purchases:
                bucket.revenue[event.product_id] = (bucket.revenue.get(event.product_id, 0)
                                                    + event.price_cents * event.quantity)

    def record_invalid(self, reason: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1

    def _count_product(self, counter: dict[str, int], product_id: str, amount: int, name: str,
                       category: str) -> bool:
        """Count ``amount`` for ``product_id``; True if the counter was cut."""
        counter[product_id] = counter.get(product_id, 0) + amount
        cut = len(counter) > self.max_product_candidates
        if cut:
            keep = sorted(counter.items(), key=lambda kv: kv[1], reverse=True)[: self.max_product_candidates // 2]
            counter.clear()
            counter.update(keep)
            self._prune_names()
        if product_id in counter:
            if name:
                self.product_names[product_id] = name
            if category:
                self.product_categories[product_id] = category
        return cut

    def _prune_names(self) -> None:
        """Keep names and categories only for the ids still counted: never more than the counters hold."""
        live = {pid for b in self.minutes.values() for pid in (*b.views, *b.purchases)}
        self.product_names = {pid: n for pid, n in self.product_names.items() if pid in live}
        self.product_categories = {pid: c for pid, c in self.product_categories.items() if pid in live}

    def _evict(self) -> None:
        oldest_second = self.watermark_ms // 1000 - self.horizon_seconds + 1
        if self.seconds and min(self.seconds) < oldest_second:
            for second in [s for s in self.seconds if s < oldest_second]:
                del self.seconds[second]
        oldest_count_minute = oldest_second // 60  # the oldest minute with a second in the horizon
        self.finished_through_minute = max(self.finished_through_minute, oldest_count_minute - 1)
        if self.minute_counts and min(self.minute_counts) < oldest_count_minute:
            for minute in sorted(m for m in self.minute_counts if m < oldest_count_minute):
                self.finished_minutes.append((minute, tuple(self.minute_counts.pop(minute))))
        oldest_minute = max((oldest_second * 1000) // 60_000, self.watermark_ms // 60_000 - FUNNEL_MINUTES + 1)
        if self.minutes and min(self.minutes) < oldest_minute:
            for minute in [m for m in self.minutes if m < oldest_minute]:
                del self.minutes[minute]
            self._prune_names()

    def take_finished_minutes(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        """The minutes that left the horizon since the last call, with their final counts, oldest first."""
        finished, self.finished_minutes = self.finished_minutes, []
        return finished

    def shed_detail(self) -> None:
        """Drop product counters and names: the last resort if a snapshot ever exceeded its budget."""
        for bucket in self.minutes.values():
            bucket.views.clear()
            bucket.purchases.clear()
            bucket.revenue.clear()
            bucket.categories.clear()
        self.product_names.clear()
        self.product_categories.clear()

    # -- snapshots -------------------------------------------------------------------------

    def to_snapshot(self, *, next_offset: int, updated_at_ms: int) -> Snapshot:
        """The state as of ``next_offset``. It shares the live sketches: encode it before the next apply."""
        return Snapshot(
            partition=self.partition,
            next_offset=next_offset,
            updated_at_ms=updated_at_ms,
            watermark_ms=self.watermark_ms,
            horizon_seconds=self.horizon_seconds,
            totals={name: TypeTotal(*t) for name, t in self.totals.items()},
            invalid=dict(self.invalid),
            late_total=self.late_total,
            seconds={second: tuple(counts) for second, counts in self.seconds.items()},
            minutes={minute: MinuteSummary(dict(b.sketches), dict(b.views), dict(b.purchases),
                                           {c: tuple(n) for c, n in b.categories.items()}, dict(b.revenue))
                     for minute, b in self.minutes.items()},
            product_names=dict(self.product_names),
            product_categories=dict(self.product_categories),
            minute_counts={minute: tuple(counts) for minute, counts in self.minute_counts.items()},
            finished_through_minute=self.finished_through_minute,
        )

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, *, horizon_seconds: int = 900,
                      max_product_candidates: int = PRODUCT_CANDIDATES) -> PartitionStats:
        stats = cls(snapshot.partition, horizon_seconds=horizon_seconds,
                    max_product_candidates=max_product_candidates)
        stats.totals = {name: list(total) for name, total in snapshot.totals.items()}
        stats.invalid = dict(snapshot.invalid)
        stats.late_total = snapshot.late_total
        stats.watermark_ms = snapshot.watermark_ms
        stats.seconds = {second: list(counts) for second, counts in snapshot.seconds.items()}
        stats.minute_counts = {minute: list(counts) for minute, counts in snapshot.minute_counts.items()}
        stats.finished_through_minute = snapshot.finished_through_minute
        for minute, summary in snapshot.minutes.items():
            bucket = stats.minutes[minute] = MinuteBucket()
            bucket.sketches = {stage: HyperLogLog(bytearray(summary.sketches[stage].registers))
                               for stage in FUNNEL_STAGES.values()}
            bucket.views = dict(summary.views)
            bucket.purchases = dict(summary.purchases)
            bucket.revenue = dict(summary.revenue)
            bucket.categories = {c: list(n) for c, n in summary.categories.items()}
        stats.product_names = dict(snapshot.product_names)
        stats.product_categories = dict(snapshot.product_categories)
        stats._evict()  # a shorter horizon than the snapshot's applies at once
        return stats
