"""One slice of the statistics: a category or a product, over a 1, 5 or 15 minute window.

Pure: validated snapshots and a clock in, JSON-ready dicts out. Slices come from the snapshots'
minute buckets, so they have minute precision (the current minute and the ones before it, like
the funnel):
- a category: its events per type (every event counts under its category, at most
  ``MAX_CATEGORIES`` categories a minute and partition, the rest under ``(other)``), a funnel of
  *event* counts (sessions are not kept per category), and the top products whose category it is;
- a product: its views and units purchased, from the per-minute product counters (exact while a
  minute sees at most 32 products a partition, an undercount of the tail beyond).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ..events.model import (
    ADDTOBASKET,
    EVENT_TYPES,
    OTHER_CATEGORY,
    PRODUCTVIEW,
    PURCHASE,
    REMOVEFROMBASKET,
    is_category,
    is_product_id,
)
from ..snapshots import Snapshot
from .view import WINDOWS, _ratio, _top, json_safe_integer


class InvalidFilter(ValueError):
    pass


class Filter(NamedTuple):
    category: str | None = None
    product: str | None = None

    def describe(self) -> dict:
        return {"category": self.category} if self.category is not None else {"product": self.product}


def parse_filter(category: str | None, product: str | None) -> Filter | None:
    """The filter of ``?category=`` or ``?product=`` (None without either); InvalidFilter if unusable."""
    if category is not None and product is not None:
        raise InvalidFilter("filter by category or by product, not both")
    if category is not None:
        if not (is_category(category) or category == OTHER_CATEGORY):
            raise InvalidFilter("category must be printable ASCII of at most 32 characters")
        return Filter(category=category)
    if product is not None:
        if not is_product_id(product):
            raise InvalidFilter("product must be a product id (printable ASCII, 1 to 64 characters)")
        return Filter(product=product)
    return None


def _minute_range(now_ms: int, label: str) -> tuple[int, int]:
    now_minute = now_ms // 60_000
    return now_minute - WINDOWS[label] + 1, now_minute


def slice_window(snapshots: Mapping[int, Snapshot], *, now_ms: int, label: str, where: Filter,
                 complete_through_s: int, top_n: int = 10) -> dict:
    """The window ``label`` of the slice ``where``: counts, funnel and top products of its minutes (the
    current one included, as the page's funnel), and a per-minute series from one minute earlier (so even
    the 1 minute window has a complete minute to draw; ``complete_through_s`` says which are complete)."""
    first, last = _minute_range(now_ms, label)
    series_first = first - 1
    length = last - series_first + 1
    series = [[0, 0, 0, 0] for _ in range(length)]
    views: dict[str, int] = {}
    purchases: dict[str, int] = {}
    names: dict[str, str] = {}
    categories: dict[str, str] = {}
    for snap in snapshots.values():
        names.update(snap.product_names)
        categories.update(snap.product_categories)
    for snap in snapshots.values():
        for minute, bucket in snap.minutes.items():
            if not series_first <= minute <= last:
                continue
            row = series[minute - series_first]
            if where.category is not None:
                counts = bucket.categories.get(where.category)
                if counts:
                    for i in range(4):
                        row[i] += counts[i]
            else:
                row[0] += bucket.views.get(where.product, 0)
                row[3] += bucket.purchases.get(where.product, 0)
            if minute < first:
                continue
            for pid, n in bucket.views.items():
                views[pid] = views.get(pid, 0) + n
            for pid, n in bucket.purchases.items():
                purchases[pid] = purchases.get(pid, 0) + n

    def keep(pid: str) -> bool:
        return pid == where.product if where.product is not None else categories.get(pid, "") == where.category

    totals = dict(zip(EVENT_TYPES, (sum(row[i] for row in series[1:]) for i in range(4)), strict=True))
    covered_s = max(1.0, (now_ms - first * 60_000) / 1000)
    safe = json_safe_integer
    if where.product is not None:  # the counters hold views and units purchased only
        counts = {"productview": safe(totals[PRODUCTVIEW]), "purchase_units": safe(totals[PURCHASE])}
        funnel = {"basis": "product", "viewed": counts["productview"], "purchased_units": counts["purchase_units"]}
    else:
        counts = {t: safe(n) for t, n in totals.items()}
        funnel = {"basis": "events", "viewed": safe(totals[PRODUCTVIEW]), "added": safe(totals[ADDTOBASKET]),
                  "purchased": safe(totals[PURCHASE]),
                  "view_to_basket_rate": _ratio(totals[ADDTOBASKET], totals[PRODUCTVIEW]),
                  "conversion_rate": _ratio(totals[PURCHASE], totals[PRODUCTVIEW]),
                  "basket_abandonment_rate": _ratio(totals[REMOVEFROMBASKET], totals[ADDTOBASKET])}
    return {
        "filter": {**where.describe(), **({"name": names.get(where.product, where.product)}
                                          if where.product is not None else {})},
        "label": label,
        "counts": counts,
        "events": safe(sum(totals.values())),
        "events_per_second": round(sum(totals.values()) / covered_s, 3),  # over the seconds the minutes cover
        "funnel": funnel,
        "top_products": {
            "views": _safe_top(_top({pid: n for pid, n in views.items() if keep(pid)}, names, top_n)),
            "purchases": _safe_top(_top({pid: n for pid, n in purchases.items() if keep(pid)}, names, top_n)),
        },
        "series": {"start_s": series_first * 60, "step_s": 60, "complete_through_s": complete_through_s,
                   "by_type": {t: [safe(row[i]) for row in series] for i, t in enumerate(EVENT_TYPES)}},
    }


def _safe_top(rows: list[dict]) -> list[dict]:
    return [{**row, "count": json_safe_integer(row["count"])} for row in rows]
