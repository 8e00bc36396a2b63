"""Statistics of one input partition: the unit of state, snapshot and recovery.

Pure and broker-free. The consumer feeds it valid events (:meth:`apply`) and invalid ones
(:meth:`record_invalid`); :meth:`to_snapshot` / :meth:`from_snapshot` round-trip it through the
JSON document published to ``event_statistics``.

Memory is bounded whatever the run time:
- per-second counts by event time for ``horizon_seconds`` (default 900);
- per-minute HyperLogLog sketches (3 x 1 KiB) of the sessions that viewed / added / purchased;
- per-minute product counters, pruned to ``max_product_candidates`` (a Misra-Gries style cut:
  exact while a minute sees fewer distinct products, an undercount of the tail beyond).
Events older than the horizon (relative to the partition's event-time watermark) count in the
totals and in ``late_total`` but in no bucket.
"""
from __future__ import annotations

from ..events.model import ADDTOBASKET, EVENT_TYPES, PRODUCTVIEW, PURCHASE, Event
from .hll import HyperLogLog, hash64

SNAPSHOT_VERSION = 1
TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}
FUNNEL_STAGES = {PRODUCTVIEW: "viewed", ADDTOBASKET: "added", PURCHASE: "purchased"}


class MinuteBucket:
    __slots__ = ("sketches", "views", "purchases")

    def __init__(self) -> None:
        self.sketches = {stage: HyperLogLog() for stage in FUNNEL_STAGES.values()}
        self.views: dict[str, int] = {}
        self.purchases: dict[str, int] = {}

    def to_json(self, minute: int) -> dict:
        return {"minute": minute,
                **{stage: sketch.encode() for stage, sketch in self.sketches.items()},
                "views": self.views, "purchases": self.purchases}

    @classmethod
    def from_json(cls, doc: dict) -> MinuteBucket:
        bucket = cls()
        bucket.sketches = {stage: HyperLogLog.decode(doc[stage]) for stage in FUNNEL_STAGES.values()}
        bucket.views = {str(k): int(v) for k, v in doc["views"].items()}
        bucket.purchases = {str(k): int(v) for k, v in doc["purchases"].items()}
        return bucket


class PartitionStats:
    def __init__(self, partition: int, *, horizon_seconds: int = 900, max_product_candidates: int = 500):
        self.partition = partition
        self.horizon_seconds = horizon_seconds
        self.max_product_candidates = max_product_candidates
        # totals[type] = [count, units, revenue_cents]
        self.totals: dict[str, list[int]] = {name: [0, 0, 0] for name in EVENT_TYPES}
        self.invalid: dict[str, int] = {}
        self.late_total = 0
        self.watermark_ms = 0
        self.seconds: dict[int, list[int]] = {}
        self.minutes: dict[int, MinuteBucket] = {}
        self.product_names: dict[str, str] = {}

    # -- updates ---------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        total = self.totals[event.type]
        total[0] += 1
        total[1] += event.quantity
        if event.type == PURCHASE:
            total[2] += event.price_cents * event.quantity
        ts = event.ts
        if ts > self.watermark_ms:
            new_second = ts // 1000 != self.watermark_ms // 1000
            self.watermark_ms = ts
            if new_second:  # buckets can only expire when event time enters a new second
                self._evict()
        elif ts < self.watermark_ms - self.horizon_seconds * 1000:
            self.late_total += 1
            return
        second = ts // 1000
        counts = self.seconds.get(second)
        if counts is None:
            counts = self.seconds[second] = [0, 0, 0, 0]
        counts[TYPE_INDEX[event.type]] += 1
        stage = FUNNEL_STAGES.get(event.type)
        if stage is None:
            return
        minute = ts // 60_000
        bucket = self.minutes.get(minute)
        if bucket is None:
            bucket = self.minutes[minute] = MinuteBucket()
        bucket.sketches[stage].add_hash(hash64(event.session_id))
        if event.product_name:
            self.product_names[event.product_id] = event.product_name
        if event.type == PRODUCTVIEW:
            self._count_product(bucket.views, event.product_id, 1)
        elif event.type == PURCHASE:
            self._count_product(bucket.purchases, event.product_id, event.quantity)

    def record_invalid(self, reason: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1

    def _count_product(self, counter: dict[str, int], product_id: str, amount: int) -> None:
        counter[product_id] = counter.get(product_id, 0) + amount
        if len(counter) > self.max_product_candidates:
            keep = sorted(counter.items(), key=lambda kv: kv[1], reverse=True)[: self.max_product_candidates // 2]
            counter.clear()
            counter.update(keep)

    def _evict(self) -> None:
        oldest_second = self.watermark_ms // 1000 - self.horizon_seconds + 1
        if self.seconds and min(self.seconds) < oldest_second:
            for second in [s for s in self.seconds if s < oldest_second]:
                del self.seconds[second]
        oldest_minute = (oldest_second * 1000) // 60_000
        if self.minutes and min(self.minutes) < oldest_minute:
            for minute in [m for m in self.minutes if m < oldest_minute]:
                del self.minutes[minute]
            live = {pid for b in self.minutes.values() for pid in (*b.views, *b.purchases)}
            self.product_names = {pid: n for pid, n in self.product_names.items() if pid in live}

    # -- snapshots -------------------------------------------------------------------------

    def to_snapshot(self, *, next_offset: int, updated_at_ms: int) -> dict:
        return {
            "v": SNAPSHOT_VERSION,
            "partition": self.partition,
            "next_offset": next_offset,
            "updated_at_ms": updated_at_ms,
            "watermark_ms": self.watermark_ms,
            "horizon_seconds": self.horizon_seconds,
            "totals": {name: {"count": c, "units": u, "revenue_cents": r}
                       for name, (c, u, r) in self.totals.items()},
            "invalid": dict(self.invalid),
            "late_total": self.late_total,
            "seconds": [[second, *counts] for second, counts in sorted(self.seconds.items())],
            "minutes": [bucket.to_json(minute) for minute, bucket in sorted(self.minutes.items())],
            "product_names": dict(self.product_names),
        }

    @classmethod
    def from_snapshot(cls, doc: dict, *, horizon_seconds: int = 900,
                      max_product_candidates: int = 500) -> PartitionStats:
        if doc.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {doc.get('v')!r}")
        stats = cls(int(doc["partition"]), horizon_seconds=horizon_seconds,
                    max_product_candidates=max_product_candidates)
        for name, total in doc["totals"].items():
            if name in stats.totals:
                stats.totals[name] = [int(total["count"]), int(total["units"]), int(total["revenue_cents"])]
        stats.invalid = {str(k): int(v) for k, v in doc["invalid"].items()}
        stats.late_total = int(doc["late_total"])
        stats.watermark_ms = int(doc["watermark_ms"])
        stats.seconds = {int(row[0]): [int(x) for x in row[1:5]] for row in doc["seconds"]}
        stats.minutes = {int(m["minute"]): MinuteBucket.from_json(m) for m in doc["minutes"]}
        stats.product_names = {str(k): str(v) for k, v in doc["product_names"].items()}
        stats._evict()  # a shorter horizon than the snapshot's applies at once
        return stats

