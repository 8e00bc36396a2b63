"""Per-minute facts for the rules, from the merged snapshots and the per-minute history (pure)."""
from __future__ import annotations

from collections.abc import Mapping

from ..history import MinuteHistory
from ..snapshots import Snapshot
from ..stats.hll import HyperLogLog
from .rules import Detail, MinuteFacts


def minute_facts(snapshots: Mapping[int, Snapshot], history: MinuteHistory, *, first_minute: int, last_minute: int,
                 input_partitions: int | None = None) -> list[MinuteFacts]:
    """Facts of each minute from ``first_minute`` to ``last_minute``: counts for all of them (history and
    snapshots), detail for those still in the snapshots' minute buckets (about the last 15)."""
    rows = history.series(snapshots, first_minute=first_minute, last_minute=last_minute,
                          input_partitions=input_partitions)
    names: dict[str, str] = {}
    for snap in snapshots.values():
        names.update(snap.product_names)
    return [MinuteFacts(first_minute + i, row, _detail(snapshots, first_minute + i, names))
            for i, row in enumerate(rows)]


def _detail(snapshots: Mapping[int, Snapshot], minute: int, names: Mapping[str, str]) -> Detail | None:
    buckets = [snap.minutes[minute] for snap in snapshots.values() if minute in snap.minutes]
    if not buckets:
        return None
    viewers = HyperLogLog()
    views: dict[str, int] = {}
    units: dict[str, int] = {}
    revenue: dict[str, int] = {}
    categories: dict[str, list[int]] = {}
    for bucket in buckets:
        viewers.merge(bucket.sketches["viewed"])
        for pid, n in bucket.views.items():
            views[pid] = views.get(pid, 0) + n
        for pid, n in bucket.purchases.items():
            units[pid] = units.get(pid, 0) + n
        for pid, cents in bucket.revenue.items():
            revenue[pid] = revenue.get(pid, 0) + cents
        for name, row in bucket.categories.items():
            total = categories.setdefault(name, [0, 0, 0, 0])
            for i in range(4):
                total[i] += row[i]
    return Detail(viewers.estimate(), views, units, revenue, {c: tuple(n) for c, n in categories.items()}, names)
