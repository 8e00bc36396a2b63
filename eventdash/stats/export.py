"""What the page shows for one window, as JSON and CSV (``/api/stats?window=``, ``/api/series.csv``,
``/api/top.csv``). Pure: the merged view in, documents and text out.

The series ends at the last *complete* second, by the page's rule (static/app.js
``completeThrough``): the second before the oldest event time among partitions that had events
in the last minute; the second still filling is never exported as a drop. The per-minute windows
(1h, 6h, 24h; :mod:`eventdash.history`) end at the last minute whose seconds are all complete.
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import NamedTuple

from ..events.model import EVENT_TYPES
from ..history import WINDOWS as MINUTE_WINDOWS
from ..history import Counts
from .view import WINDOWS, json_safe_integer

ACTIVE_PARTITION_MS = 60_000
# The view exports are cut from: the longest window, ending up to a minute before now.
EXPORT_SERIES_SECONDS = max(WINDOWS.values()) * 60 + ACTIVE_PARTITION_MS // 1000 + 1
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


class UnknownWindow(ValueError):
    def __init__(self, label: object, windows=(*WINDOWS, *MINUTE_WINDOWS), what: str = "window"):
        super().__init__(f"{what} must be one of {', '.join(windows)}, not {str(label)[:20]!r}")


class MinuteSeries(NamedTuple):
    """A per-minute window's counts: ``rows[i]`` is minute ``first_minute + i``, summed over partitions."""

    first_minute: int
    rows: list[Counts]
    complete: bool  # the whole history topic has been read (else older minutes may still be missing)


def window_seconds(label: str) -> int:
    if label in MINUTE_WINDOWS:
        return MINUTE_WINDOWS[label] * 60
    if label not in WINDOWS:
        raise UnknownWindow(label)
    return WINDOWS[label] * 60


def last_complete_minute(view: dict) -> int:
    """The newest minute whose every second is complete (see :func:`complete_through`)."""
    return (complete_through(view, view["generated_at_ms"]) + 1) // 60 - 1


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


DOCUMENT_FIELDS = ("generated_at_ms", "updated_at_ms", "totals", "units", "revenue", "revenue_cents", "invalid_total",
         "invalid_by_reason", "late_total", "events_total", "events_per_second", "currency", "health")


def window_document(view: dict, label: str, minutes: MinuteSeries | None = None) -> dict:
    """The figures the page shows with ``window`` selected: the totals and rate of now, and under
    ``window`` that window's counts, funnel and top products (which include the second still
    filling, as the page's do) and its series of complete seconds. A per-minute window (``minutes``
    given) has the counts of its complete minutes and no funnel or top products (they cover at most
    15 minutes)."""
    window_seconds(label)
    if label in MINUTE_WINDOWS:
        return _minute_window_document(view, label, minutes)
    rows = series_rows(view, label)
    return {
        **{key: view[key] for key in DOCUMENT_FIELDS if key in view},
        "window": {"label": label, **view["windows"][label]},
        "series": {"start_s": rows[0][0], "step_s": 1,
                   "by_type": {name: [counts[i] for _, counts in rows] for i, name in enumerate(EVENT_TYPES)}},
    }


def _minute_window_document(view: dict, label: str, minutes: MinuteSeries | None) -> dict:
    if minutes is None or len(minutes.rows) != MINUTE_WINDOWS[label]:
        raise ValueError(f"the {label} window needs its {MINUTE_WINDOWS[label]} minutes")
    counts = [sum(row[i] for row in minutes.rows) for i in range(4)]
    safe = json_safe_integer  # sums of many partitions' minutes may pass what JavaScript keeps exact
    return {
        **{key: view[key] for key in DOCUMENT_FIELDS if key in view},
        "window": {"label": label, "counts": {name: safe(n) for name, n in zip(EVENT_TYPES, counts, strict=True)},
                   "events": safe(sum(counts)), "events_per_second": round(sum(counts) / (len(minutes.rows) * 60), 3),
                   "complete": minutes.complete},
        "series": {"start_s": minutes.first_minute * 60, "step_s": 60,
                   "by_type": {name: [safe(row[i]) for row in minutes.rows] for i, name in enumerate(EVENT_TYPES)}},
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


def series_csv(view: dict, label: str, minutes: MinuteSeries | None = None) -> str:
    """The window's series; a per-minute window's rows start at each minute's first second."""
    if label in MINUTE_WINDOWS:
        _minute_window_document(view, label, minutes)  # checks the series
        rows = [(minutes.first_minute * 60 + 60 * i, list(row)) for i, row in enumerate(minutes.rows)]
    else:
        rows = series_rows(view, label)
    return _csv(["second", "time_utc", *EVENT_TYPES],
                [[second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), *counts]
                 for second, counts in rows])


def top_csv(view: dict, label: str, minutes: MinuteSeries | None = None) -> str:
    if label not in WINDOWS:  # top products are counted per minute for the last 15 minutes only
        raise UnknownWindow(label, WINDOWS, "window (top products cover at most 15 minutes)")
    top = view["windows"][label]["top_products"]
    return _csv(["list", "rank", "product_id", "name", "count"],
                [[kind, rank, row["product_id"], row["name"], row["count"]]
                 for kind in ("views", "purchases") for rank, row in enumerate(top[kind], 1)])
