"""Detection rules: pure functions of per-minute facts (event time) and of the dead-letter counts.

Each rule compares the minute being judged with a robust baseline of the minutes before it: the
median, and a scale of 1.4826 x the median absolute deviation (the standard deviation for normal
data, unmoved by the outliers it is looking for). A count must also be less likely than 10^-z as
Poisson noise around the median, so small counts never alarm on noise. A rule may fire only when
its baseline has enough minutes and enough volume. The same facts give
the same findings, so every dashboard that reads the same snapshots raises the same alerts.

Rules (defaults; ``z`` is EVENTDASH_ALERT_Z):
- ``purchase_collapse``: purchases fall to at most 20 % of their median, as unlikely as 10^-z, while
  views go on (at least half of theirs);
- ``conversion_drop``: purchases per view fall to at most half the median conversion (robust
  z <= -z) without a purchase collapse;
- ``traffic_spike``: events reach 1.5 x the median, as unlikely as 10^-z;
- ``single_session_dominance``: views per viewing session reach 3 x the median and robust z >= z
  (a few sessions make most views);
- ``price_drop``: a product's revenue per unit falls below 20 % of its median over the last minutes;
- ``dead_letter_spike``: rejected records in a minute reach ``dlq_min`` and 5 x the median.

``pipeline_stuck`` is judged by the dashboard's health (a partition's statistics stopped
advancing) and lives in :mod:`eventdash.dashboard.alert_monitor`.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

Counts = tuple[int, int, int, int]  # views, adds, removes, purchases
VIEWS, ADDS, REMOVES, PURCHASES = range(4)

EVENT_RULES = ("purchase_collapse", "conversion_drop", "traffic_spike", "single_session_dominance", "price_drop")
DEAD_LETTER_RULE = "dead_letter_spike"
STUCK_RULE = "pipeline_stuck"
RULES = (*EVENT_RULES, DEAD_LETTER_RULE, STUCK_RULE)


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds (``EVENTDASH_ALERT_*``, docs/alerts.md)."""

    z: float = 4.0  # how many robust standard deviations make a minute abnormal
    min_volume: int = 20  # median events a minute the baseline needs before event rules may fire
    baseline_minutes: int = 30  # the minutes before the judged one that form its baseline
    min_baseline_minutes: int = 10  # fewer minutes with data: no judgement
    resolve_minutes: int = 2  # an alert resolves after this many minutes without its rule firing
    stuck_seconds: float = 30.0  # the pipeline stuck this long raises pipeline_stuck
    dlq_min: int = 20  # rejected records a minute before dead_letter_spike may fire
    disabled: frozenset[str] = field(default_factory=frozenset)


class Detail(NamedTuple):
    """What the snapshots' minute buckets add for the newest minutes (about 15)."""

    viewers: int  # distinct sessions that viewed (HyperLogLog estimate)
    product_views: Mapping[str, int]
    product_units: Mapping[str, int]
    product_revenue: Mapping[str, int]  # cents, of the units counted
    categories: Mapping[str, Counts]
    names: Mapping[str, str]


class MinuteFacts(NamedTuple):
    minute: int  # epoch minute, event time
    counts: Counts
    detail: Detail | None


class Finding(NamedTuple):
    rule: str
    subject: str | None  # the product or category that drives it, when one dominates
    summary: str


def robust(values: Sequence[float], floor: float) -> tuple[float, float]:
    """(median, scale): 1.4826 x the median absolute deviation, at least ``floor``."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return median, max(1.4826 * mad, floor)


def poisson_tail(count: int, mean: float, *, upper: bool) -> float:
    """P(X <= count), or P(X >= count) if ``upper``, for X ~ Poisson(mean): how unlikely a count is as noise."""
    mean = max(mean, 1e-9)
    log_terms = [k * math.log(mean) - mean - math.lgamma(k + 1) for k in range(count + 1)]
    top = max(log_terms)
    below = math.exp(top) * sum(math.exp(t - top) for t in log_terms)  # P(X <= count)
    if not upper:
        return min(1.0, below)
    return max(0.0, 1.0 - below + math.exp(log_terms[-1]))  # P(X >= count)


def count_abnormal(now: int, values: Sequence[int], z: float, *, upper: bool) -> bool:
    """A count far from its baseline: less likely than 10^-z as Poisson noise around the median, and, when
    the baseline varies more than Poisson noise does, also ``z`` robust standard deviations away."""
    median, scale = robust(values, 0.0)
    if poisson_tail(now, median, upper=upper) > 10.0 ** -z:
        return False
    overdispersed = scale > 1.5 * math.sqrt(max(median, 1.0))
    return not overdispersed or (now - median) / scale * (1 if upper else -1) >= z


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M UTC")


def _dominant(increase: Mapping[str, float], share: float = 0.5) -> str | None:
    """The key with at least ``share`` of the total positive change, if one has."""
    positive = {k: v for k, v in increase.items() if v > 0}
    total = sum(positive.values())
    if total <= 0:
        return None
    key = max(positive, key=lambda k: (positive[k], k))
    return key if positive[key] >= share * total else None


def _change(current: Mapping[str, float], history: Sequence[Mapping[str, float]], sign: int) -> dict[str, float]:
    """Per key: sign x (now - its median over ``history``)."""
    keys = set(current).union(*history) if history else set(current)
    return {k: sign * (current.get(k, 0) - statistics.median([h.get(k, 0) for h in history] or [0])) for k in keys}


def _subject(cur: Detail | None, base: Sequence[Detail], of: str, sign: int) -> str | None:
    """The product (else category) that drives a change of views (``of="views"``) or purchases."""
    if cur is None or len(base) < 3:
        return None
    if of == "views":
        product = _dominant(_change(cur.product_views, [d.product_views for d in base], sign))
    else:
        product = _dominant(_change(cur.product_units, [d.product_units for d in base], sign))
    if product is not None:
        return f"product {cur.names.get(product, product)} ({product})"
    index = VIEWS if of == "views" else PURCHASES
    category = _dominant(_change({c: n[index] for c, n in cur.categories.items()},
                                 [{c: n[index] for c, n in d.categories.items()} for d in base], sign))
    if category is not None:
        return f"category {category or 'uncategorized'}"
    return None


def _leaders(cur: Detail | None, base: Sequence[Detail]) -> str:
    """", mostly views of A, B and C" when up to three products make most (60 %) of a rise in views."""
    if cur is None or len(base) < 3:
        return ""
    rise = {k: v for k, v in _change(cur.product_views, [d.product_views for d in base], 1).items() if v > 0}
    top = sorted(rise, key=lambda k: (-rise[k], k))[:3]
    if not top or sum(rise[k] for k in top) < 0.6 * sum(rise.values()):
        return ""
    return ", mostly views of " + ", ".join(cur.names.get(k, k) for k in top)


def evaluate_minute(facts: Sequence[MinuteFacts], settings: AlertSettings) -> list[Finding]:
    """The findings of the last minute of ``facts`` against the ones before it (oldest first)."""
    if not facts:
        return []
    cur = facts[-1]
    base = [f for f in facts[-1 - settings.baseline_minutes:-1] if sum(f.counts) > 0]
    events = [sum(f.counts) for f in base]
    if len(base) < settings.min_baseline_minutes or statistics.median(events) < settings.min_volume:
        return []  # too little history or volume to tell an anomaly from noise
    on = [rule for rule in EVENT_RULES if rule not in settings.disabled]
    found: list[Finding] = []
    details = [f.detail for f in base if f.detail is not None]
    views = [f.counts[VIEWS] for f in base]
    purchases = [f.counts[PURCHASES] for f in base]
    now_views, now_purchases = cur.counts[VIEWS], cur.counts[PURCHASES]
    when = _clock(cur.minute)

    median_views = statistics.median(views)
    median_purchases = statistics.median(purchases)
    collapsed = (median_purchases >= 3 and now_views >= 0.5 * median_views
                 and now_purchases <= 0.2 * median_purchases
                 and count_abnormal(now_purchases, purchases, settings.z, upper=False))
    if collapsed and "purchase_collapse" in on:
        found.append(Finding("purchase_collapse", _subject(cur.detail, details, "purchases", -1),
                             f"Purchases fell to {now_purchases} in the minute of {when} (usually "
                             f"{median_purchases:g}) while views went on ({now_views}, usually {median_views:g})"))

    dominated = False  # a few sessions making most views: the conversion they drag down is not the news
    ratios = [f.counts[VIEWS] / f.detail.viewers for f in base if f.detail is not None and f.detail.viewers > 0]
    if ("single_session_dominance" in on and cur.detail is not None and cur.detail.viewers > 0
            and len(ratios) >= 5 and now_views >= settings.min_volume):
        median_ratio, scale = robust(ratios, max(0.1, 0.1 * statistics.median(ratios)))
        ratio = now_views / cur.detail.viewers
        if ratio >= 3 * median_ratio and (ratio - median_ratio) / scale >= settings.z:
            dominated = True
            found.append(Finding("single_session_dominance", None,
                                 f"About {cur.detail.viewers} sessions made {now_views} views in the minute of "
                                 f"{when}: {ratio:.1f} views per session (usually {median_ratio:.1f})"))

    conversions = [f.counts[PURCHASES] / f.counts[VIEWS] for f in base if f.counts[VIEWS] >= 10]
    if (not collapsed and not dominated and "conversion_drop" in on
            and len(conversions) >= settings.min_baseline_minutes and now_views >= settings.min_volume // 2):
        median_conversion, scale = robust(conversions, max(0.005, 0.1 * statistics.median(conversions)))
        conversion = now_purchases / now_views
        if (median_conversion > 0 and conversion <= 0.5 * median_conversion
                and (conversion - median_conversion) / scale <= -settings.z):
            found.append(Finding("conversion_drop", _subject(cur.detail, details, "purchases", -1),
                                 f"Conversion fell to {conversion:.1%} in the minute of {when} "
                                 f"(usually {median_conversion:.1%})"))

    median_events = statistics.median(events)
    now_events = sum(cur.counts)
    if ("traffic_spike" in on and now_events >= 1.5 * median_events
            and count_abnormal(now_events, events, settings.z, upper=True)):
        found.append(Finding("traffic_spike", _subject(cur.detail, details, "views", 1),
                             f"{now_events} events in the minute of {when} (usually {median_events:g})"
                             + _leaders(cur.detail, details)))

    if "price_drop" in on and cur.detail is not None and len(details) >= 3:
        found.extend(_price_drops(cur.detail, details, when))
    return found


def _price_drops(cur: Detail, base: Sequence[Detail], when: str) -> list[Finding]:
    """Products whose revenue per unit this minute is below 20 % of their median over the baseline."""
    found = []
    for pid, units in sorted(cur.product_units.items()):
        revenue = cur.product_revenue.get(pid)
        if not units or revenue is None:
            continue
        history = [d.product_revenue[pid] / d.product_units[pid] for d in base
                   if d.product_units.get(pid) and pid in d.product_revenue]
        if len(history) < 3:
            continue
        usual = statistics.median(history)
        now = revenue / units
        if usual > 0 and now < 0.2 * usual:
            name = cur.names.get(pid, pid)
            found.append(Finding("price_drop", f"product {name} ({pid})",
                                 f"{name} sold at {now / 100:.2f} a unit in the minute of {when} "
                                 f"(usually {usual / 100:.2f})"))
    return found[:3]  # a glitch is about one product; a catalogue-wide change names its first three


def evaluate_dead_letters(per_minute: Sequence[int], settings: AlertSettings) -> Finding | None:
    """Rejected records of the last complete minute (``per_minute[-1]``) against the minutes before."""
    if DEAD_LETTER_RULE in settings.disabled or len(per_minute) < 2:
        return None
    now = per_minute[-1]
    median = statistics.median(per_minute[:-1])
    if (now >= settings.dlq_min and now >= 5 * max(median, 1)
            and count_abnormal(now, per_minute[:-1], settings.z, upper=True)):
        return Finding(DEAD_LETTER_RULE, None, f"{now} records rejected in the last minute (usually {median:g})")
    return None
