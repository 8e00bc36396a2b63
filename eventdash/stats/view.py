"""Merge per-partition snapshots into the document served by ``/api/stats`` and ``stats``.

Pure: validated :class:`~eventdash.snapshots.Snapshot` objects and a clock in, a JSON-ready dict
out. Sessions are keyed to partitions, so per-partition funnel sketches merge into exact-as-HLL
distinct counts; all other fields are sums. The fields are documented in docs/stats-api.md.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..events.model import EVENT_TYPES
from ..snapshots import FUNNEL_STAGES, OTHER_CATEGORY, Snapshot
from .hll import HyperLogLog

WINDOWS = {"1m": 1, "5m": 5, "15m": 15}
LISTED_CATEGORIES = 24  # categories a window lists; the rest are summed under OTHER_CATEGORY
RATE_SECONDS = 10  # "events/s now" = mean of the last 10 complete seconds
MAX_SAFE_INTEGER = 2**53 - 1  # JSON readers (JavaScript) are exact up to here


def json_safe_integer(value: int) -> int | str:
    """An integer as a JSON number while every reader keeps it exact, else as a decimal string."""
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def build_view(snapshots: Mapping[int, Snapshot], *, now_ms: int, top_n: int = 10,
               series_seconds: int = 900) -> dict:
    totals = {name: 0 for name in EVENT_TYPES}
    units = {name: 0 for name in EVENT_TYPES}
    revenue_cents = 0
    invalid: dict[str, int] = {}
    late_total = 0
    per_second: dict[int, list[int]] = {}
    partitions = []
    names: dict[str, str] = {}
    for partition in sorted(snapshots):
        snap = snapshots[partition]
        for name, total in snap.totals.items():
            totals[name] += total.count
            units[name] += total.units
            revenue_cents += total.revenue_cents
        for reason, count in snap.invalid.items():
            invalid[reason] = invalid.get(reason, 0) + count
        late_total += snap.late_total
        for second, row in snap.seconds.items():
            counts = per_second.setdefault(second, [0, 0, 0, 0])
            for i in range(4):
                counts[i] += row[i]
        names.update(snap.product_names)
        partitions.append({"partition": partition, "next_offset": snap.next_offset,
                           "updated_at_ms": snap.updated_at_ms, "watermark_ms": snap.watermark_ms})

    now_s = now_ms // 1000
    windows = {label: {**_window(snapshots, per_second, names, now_s, minutes, top_n),
                       "categories": window_categories(snapshots, now_ms=now_ms, label=label)}
               for label, minutes in WINDOWS.items()}
    rate_by_type = _mean_rate(per_second, now_s)
    series_start = now_s - series_seconds
    series = {name: [0] * series_seconds for name in EVENT_TYPES}
    for second, counts in per_second.items():
        index = second - series_start
        if 0 <= index < series_seconds:
            for i, name in enumerate(EVENT_TYPES):
                series[name][index] = counts[i]
    return {
        "generated_at_ms": now_ms,
        "updated_at_ms": max((p["updated_at_ms"] for p in partitions), default=None),
        "oldest_update_ms": min((p["updated_at_ms"] for p in partitions), default=None),
        "totals": {name: json_safe_integer(n) for name, n in totals.items()},
        "units": {name: json_safe_integer(n) for name, n in units.items()},
        "revenue": revenue_cents / 100,
        "revenue_cents": json_safe_integer(revenue_cents),
        "invalid_total": json_safe_integer(sum(invalid.values())),
        "invalid_by_reason": {reason: json_safe_integer(n) for reason, n in sorted(invalid.items())},
        "late_total": json_safe_integer(late_total),
        "events_total": json_safe_integer(sum(totals.values())),
        "events_per_second": round(sum(rate_by_type.values()), 3),
        "events_per_second_by_type": rate_by_type,
        "windows": windows,
        "series": {"start_s": series_start, "step_s": 1, "by_type": series},
        "partitions": partitions,
    }


def _mean_rate(per_second: Mapping[int, list[int]], now_s: int) -> dict[str, float]:
    sums = [0, 0, 0, 0]
    for second in range(now_s - RATE_SECONDS, now_s):  # complete seconds only
        counts = per_second.get(second)
        if counts:
            for i in range(4):
                sums[i] += counts[i]
    return {name: round(sums[i] / RATE_SECONDS, 3) for i, name in enumerate(EVENT_TYPES)}


def _window(snapshots: Mapping[int, Snapshot], per_second: Mapping[int, list[int]], names: Mapping[str, str],
            now_s: int, minutes: int, top_n: int) -> dict:
    seconds = minutes * 60
    counts = [0, 0, 0, 0]
    for second in range(now_s - seconds + 1, now_s + 1):
        row = per_second.get(second)
        if row:
            for i in range(4):
                counts[i] += row[i]
    # Funnel and top products have minute granularity: the current minute and the
    # (minutes - 1) before it.
    now_minute = now_s // 60
    first_minute = now_minute - minutes + 1
    sketches = {stage: HyperLogLog() for stage in FUNNEL_STAGES}
    views: dict[str, int] = {}
    purchases: dict[str, int] = {}
    for snap in snapshots.values():
        for minute, bucket in snap.minutes.items():
            if not first_minute <= minute <= now_minute:
                continue
            for stage, sketch in sketches.items():
                sketch.merge(bucket.sketches[stage])
            for pid, n in bucket.views.items():
                views[pid] = views.get(pid, 0) + n
            for pid, n in bucket.purchases.items():
                purchases[pid] = purchases.get(pid, 0) + n
    funnel = {stage: sketch.estimate() for stage, sketch in sketches.items()}
    by_type = dict(zip(EVENT_TYPES, counts))
    return {
        "counts": by_type,
        "events": sum(counts),
        "events_per_second": round(sum(counts) / seconds, 3),
        "funnel": {
            **funnel,
            "view_to_basket_rate": _ratio(funnel["added"], funnel["viewed"]),
            "conversion_rate": _ratio(funnel["purchased"], funnel["viewed"]),
            "basket_abandonment_rate": _ratio(by_type["removefrombasket"], by_type["addtobasket"]),
        },
        "top_products": {
            "views": _top(views, names, top_n),
            "purchases": _top(purchases, names, top_n),
        },
    }


def window_categories(snapshots: Mapping[int, Snapshot], *, now_ms: int, label: str) -> list[dict]:
    """Events per category over the window's minutes, most first: at most LISTED_CATEGORIES, then the rest."""
    last = now_ms // 60_000
    first = last - WINDOWS[label] + 1
    sums: dict[str, list[int]] = {}
    for snap in snapshots.values():
        for minute, bucket in snap.minutes.items():
            if first <= minute <= last:
                for name, row in bucket.categories.items():
                    total = sums.setdefault(name, [0, 0, 0, 0])
                    for i in range(4):
                        total[i] += row[i]
    ranked = sorted(((k, v) for k, v in sums.items() if k != OTHER_CATEGORY), key=lambda kv: (-sum(kv[1]), kv[0]))
    listed = [(name, row, True) for name, row in ranked[:LISTED_CATEGORIES - 1]]
    rest = [OTHER_CATEGORY in sums and sums[OTHER_CATEGORY][i] or 0 for i in range(4)]
    for _, row in ranked[LISTED_CATEGORIES - 1:]:
        rest = [a + b for a, b in zip(rest, row, strict=True)]
    if any(rest):  # the per-minute overflow and the categories past the list: not one category, so no slice
        listed.append((OTHER_CATEGORY, rest, False))
    # Events only: a category's counts per type are its slice (/api/stats?category=); pushed to every page
    # on every broadcast, 4 more numbers per category and window would change in every delta update.
    return [{"category": name, "events": json_safe_integer(sum(row)), "sliceable": sliceable}
            for name, row, sliceable in listed]


def _top(counter: Mapping[str, int], names: Mapping[str, str], n: int) -> list[dict]:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"product_id": pid, "name": names.get(pid, pid), "count": count} for pid, count in ranked]
