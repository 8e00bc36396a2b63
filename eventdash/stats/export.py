"""What the page shows for one window, as JSON and CSV (``/api/stats?window=``, ``/api/series.csv``,
``/api/top.csv``). Pure: the merged view in, documents and text out.

The series ends at the last *complete* second, by the page's rule (static/app.js
``completeThrough``): the second before the oldest event time among partitions that had events
in the last minute; the second still filling is never exported as a drop.
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from ..events.model import EVENT_TYPES
from .view import WINDOWS

ACTIVE_PARTITION_MS = 60_000
# The view exports are cut from: the longest window, ending up to a minute before now.
EXPORT_SERIES_SECONDS = max(WINDOWS.values()) * 60 + ACTIVE_PARTITION_MS // 1000 + 1
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


class UnknownWindow(ValueError):
    def __init__(self, label: object):
        super().__init__(f"window must be one of {', '.join(WINDOWS)}, not {str(label)[:20]!r}")


def window_seconds(label: str) -> int:
    if label not in WINDOWS:
        raise UnknownWindow(label)
    return WINDOWS[label] * 60


def complete_through(view: dict, now_ms: int) -> int:
    last = now_ms // 1000 - 1
    active = [p["watermark_ms"] for p in view.get("partitions", []) if p["watermark_ms"] > now_ms - ACTIVE_PARTITION_MS]
    return min(last, min(active) // 1000 - 1) if active else last


def series_rows(view: dict, label: str) -> list[tuple[int, list[int]]]:
    """(epoch second, counts by type) for each complete second of the window, oldest first, as of the
    view's ``generated_at_ms`` (build it with ``series_seconds=EXPORT_SERIES_SECONDS``)."""
    span = window_seconds(label)
    end = complete_through(view, view["generated_at_ms"])
    series = view["series"]
    by_type = [series["by_type"][name] for name in EVENT_TYPES]
    rows = []
    for second in range(end - span + 1, end + 1):
        index = second - series["start_s"]
        inside = 0 <= index < len(by_type[0])
        rows.append((second, [column[index] if inside else 0 for column in by_type]))
    return rows


def window_document(view: dict, label: str) -> dict:
    """The figures the page shows with ``window`` selected: the totals and rate of now, and under
    ``window`` that window's counts, funnel and top products (which include the second still
    filling, as the page's do) and its series of complete seconds."""
    window_seconds(label)
    rows = series_rows(view, label)
    keep = ("generated_at_ms", "updated_at_ms", "totals", "units", "revenue", "revenue_cents", "invalid_total",
            "invalid_by_reason", "late_total", "events_total", "events_per_second", "currency", "health")
    return {
        **{key: view[key] for key in keep if key in view},
        "window": {"label": label, **view["windows"][label]},
        "series": {"start_s": rows[0][0], "step_s": 1,
                   "by_type": {name: [counts[i] for _, counts in rows] for i, name in enumerate(EVENT_TYPES)}},
    }


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def series_csv(view: dict, label: str) -> str:
    rows = series_rows(view, label)
    return _csv(["second", "time_utc", *EVENT_TYPES],
                [[second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), *counts]
                 for second, counts in rows])


def top_csv(view: dict, label: str) -> str:
    window_seconds(label)
    top = view["windows"][label]["top_products"]
    return _csv(["list", "rank", "product_id", "name", "count"],
                [[kind, rank, row["product_id"], row["name"], row["count"]]
                 for kind in ("views", "purchases") for rank, row in enumerate(top[kind], 1)])
