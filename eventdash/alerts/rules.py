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
from collections import OrderedDict, deque
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
    baseline_minutes: int = 30  # the normal minutes before the judged one that form its baseline
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
    key: str | None = None  # one alert per rule and key (price_drop: per product); None: one per rule


def robust(values: Sequence[float], floor: float) -> tuple[float, float]:
    """(median, scale): 1.4826 x the median absolute deviation, at least ``floor``."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return median, max(1.4826 * mad, floor)


_LN10 = math.log(10)
MAX_TAIL_TERMS = 4000  # the tails below converge geometrically where they are small; this bounds the work


def _log_tail(first: int, step: int, log_term, stop: int) -> float:
    """ln of the sum of exp(log_term(k)) for k = first, first + step, ... (not past ``stop``), in log space."""
    top = log_term(first)
    total, k = 0.0, first
    for _ in range(MAX_TAIL_TERMS):
        relative = log_term(k) - top
        if relative < -50:
            break
        total += math.exp(relative)
        k += step
        if (step < 0 and k < stop) or (step > 0 and k > stop):
            break
    return top + math.log(total)


def poisson_log10_tail(count: int, mean: float, *, upper: bool) -> float:
    """log10 P(X <= count), or of P(X >= count) if ``upper``, X ~ Poisson(mean); 0 when ``count`` is on the
    mean's side (it is no evidence then). Summed outward from ``count`` in log space: exact to tiny values,
    and bounded work however large the counts."""
    mean = max(mean, 1e-9)
    if (count <= mean) if upper else (count >= mean):
        return 0.0

    def log_term(k: int) -> float:
        return k * math.log(mean) - mean - math.lgamma(k + 1)

    return _log_tail(count, 1 if upper else -1, log_term, 10**18 if upper else 0) / _LN10


def binomial_log10_lower(count: int, trials: int, p: float) -> float:
    """log10 P(X <= count), X ~ Binomial(trials, p); 0 when ``count`` is at or above the mean."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    if count >= trials * p:
        return 0.0
    log_n = math.lgamma(trials + 1)

    def log_term(k: int) -> float:
        return (log_n - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                + k * math.log(p) + (trials - k) * math.log1p(-p))

    return _log_tail(count, -1, log_term, 0) / _LN10


def count_abnormal(now: int, values: Sequence[int], z: float, *, upper: bool) -> bool:
    """A count far from its baseline: less likely than 10^-z as Poisson noise around the median, and
    ``z`` robust standard deviations away (a rise: the scale at least the Poisson one, so clustered,
    overdispersed traffic does not alarm; a fall to near nothing: only when the baseline varies more
    than Poisson noise)."""
    median, scale = robust(values, 0.0)
    if poisson_log10_tail(now, median, upper=upper) > -z:
        return False
    poisson_scale = math.sqrt(max(median, 1.0))
    if upper:
        return (now - median) / max(scale, poisson_scale) >= z
    return scale <= 1.5 * poisson_scale or (median - now) / scale >= z


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M UTC")


def _driver(current: Mapping[str, float], history: Sequence[Mapping[str, float]], sign: int) -> str | None:
    """The key that drives a change: at least half of it, and a clearly larger share of the change than
    of the baseline (a shop-wide change moves every key in proportion and names none)."""
    keys = set(current).union(*history)
    usual = {k: statistics.median([h.get(k, 0) for h in history]) for k in keys}
    change = {k: sign * (current.get(k, 0) - usual[k]) for k in keys}
    positive = {k: v for k, v in change.items() if v > 0}
    total, usual_total = sum(positive.values()), sum(usual.values())
    if total <= 0:
        return None
    key = max(positive, key=lambda k: (positive[k], k))
    share, usual_share = positive[key] / total, (usual[key] / usual_total if usual_total else 0.0)
    return key if share >= 0.5 and share >= usual_share + 0.25 else None


def _subject(cur: Detail | None, base: Sequence[Detail], of: str, sign: int) -> str | None:
    """The product (else category) that drives a change of views (``of="views"``) or purchases."""
    if cur is None or len(base) < 3:
        return None
    if of == "views":
        product = _driver(cur.product_views, [d.product_views for d in base], sign)
    else:
        product = _driver(cur.product_units, [d.product_units for d in base], sign)
    if product is not None:
        return f"product {cur.names.get(product, product)} ({product})"
    index = VIEWS if of == "views" else PURCHASES
    category = _driver({c: n[index] for c, n in cur.categories.items()},
                       [{c: n[index] for c, n in d.categories.items()} for d in base], sign)
    if category is not None:
        return f"category {category or 'uncategorized'}"
    return None


def _leaders(cur: Detail | None, base: Sequence[Detail]) -> str:
    """", mostly views of A, B and C" when up to three products make most (60 %) of a rise in views."""
    if cur is None or len(base) < 3:
        return ""
    keys = set(cur.product_views).union(*(d.product_views for d in base))
    rise = {k: cur.product_views.get(k, 0) - statistics.median([d.product_views.get(k, 0) for d in base])
            for k in keys}
    rise = {k: v for k, v in rise.items() if v > 0}
    top = sorted(rise, key=lambda k: (-rise[k], k))[:3]
    if not top or sum(rise[k] for k in top) < 0.6 * sum(rise.values()):
        return ""
    return ", mostly views of " + ", ".join(cur.names.get(k, k) for k in top)


def evaluate_minute(base: Sequence[MinuteFacts], cur: MinuteFacts, settings: AlertSettings,
                    unit_prices: Mapping[str, Sequence[float]] | None = None) -> list[Finding]:
    """The findings of minute ``cur`` against its baseline minutes ``base`` (normal minutes before it) and
    each product's usual unit prices (cents)."""
    base = [f for f in base if sum(f.counts) > 0]
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
    if (cur.detail is not None and cur.detail.viewers > 0 and len(ratios) >= 5
            and now_views >= settings.min_volume):
        median_ratio, scale = robust(ratios, max(0.1, 0.1 * statistics.median(ratios)))
        ratio = now_views / cur.detail.viewers
        dominated = ratio >= 3 * median_ratio and (ratio - median_ratio) / scale >= settings.z
        if dominated and "single_session_dominance" in on:
            found.append(Finding("single_session_dominance", None,
                                 f"About {cur.detail.viewers} sessions made {now_views} views in the minute of "
                                 f"{when}: {ratio:.1f} views per session (usually {median_ratio:.1f})"))

    conversions = [f.counts[PURCHASES] / f.counts[VIEWS] for f in base if f.counts[VIEWS] >= 10]
    if (not collapsed and not dominated and "conversion_drop" in on
            and len(conversions) >= settings.min_baseline_minutes and now_views >= settings.min_volume // 2):
        median_conversion, scale = robust(conversions, max(0.005, 0.1 * statistics.median(conversions)))
        conversion = now_purchases / now_views
        if (median_conversion > 0 and conversion <= 0.5 * median_conversion
                and (conversion - median_conversion) / scale <= -settings.z
                and binomial_log10_lower(now_purchases, now_views, median_conversion) <= -settings.z):
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

    if "price_drop" in on and cur.detail is not None and unit_prices:
        found.extend(_price_drops(cur.detail, unit_prices, when))
    return found


MIN_PRICE_UNITS = 2  # units a minute before a product's price is judged
MIN_PRICE_MINUTES = 3  # normal minutes of a product's sales before its price is judged


def unit_prices_of(detail: Detail) -> dict[str, float]:
    """Revenue per unit (cents) of each product sold in the minute."""
    return {pid: detail.product_revenue[pid] / units for pid, units in detail.product_units.items()
            if units > 0 and pid in detail.product_revenue}


def _price_drops(cur: Detail, unit_prices: Mapping[str, Sequence[float]], when: str) -> list[Finding]:
    """Products whose revenue per unit this minute is below 20 % of their usual (median) unit price."""
    found = []
    for pid, now in sorted(unit_prices_of(cur).items()):
        history = unit_prices.get(pid, ())
        if cur.product_units[pid] < MIN_PRICE_UNITS or len(history) < MIN_PRICE_MINUTES:
            continue
        usual = statistics.median(history)
        if usual > 0 and now < 0.2 * usual:
            name = cur.names.get(pid, pid)
            found.append(Finding("price_drop", f"product {name} ({pid})",
                                 f"{name} sold at {now / 100:.2f} a unit in the minute of {when} "
                                 f"(usually {usual / 100:.2f})", key=pid))
    return found


class MinuteJudge:
    """Judges minutes in order and remembers what a baseline must not learn from.

    A minute where any event rule fired is abnormal: it stays out of later baselines, so an incident
    that lasts is still judged against the shop before it (an alert resolves when the shop is back,
    not when the incident has become the norm). The baseline is the last ``baseline_minutes`` normal
    minutes within :data:`LOOKBACK_MINUTES`; past that an incident has become the new normal. Each
    product's usual unit price is learned from its normal minutes (the last :data:`PRICE_MEMORY`,
    for at most :data:`MAX_PRICED_PRODUCTS` products).
    """

    LOOKBACK_MINUTES = 150
    PRICE_MEMORY = 30
    MAX_PRICED_PRODUCTS = 1000

    def __init__(self, settings: AlertSettings):
        self.settings = settings
        self.abnormal: dict[int, set[str]] = {}  # minute -> rules that fired (within the lookback)
        self.unit_prices: OrderedDict[str, deque[float]] = OrderedDict()

    def lookback(self) -> int:
        return self.LOOKBACK_MINUTES + self.settings.baseline_minutes

    def judge(self, facts: Sequence[MinuteFacts]) -> list[Finding]:
        """Findings of ``facts[-1]``; ``facts`` are the minutes before it (oldest first, up to :meth:`lookback`)."""
        cur = facts[-1]
        normal = [f for f in facts[:-1] if f.minute not in self.abnormal and sum(f.counts) > 0]
        base = normal[-self.settings.baseline_minutes:]
        found = evaluate_minute(base, cur, self.settings, self.unit_prices)
        event_findings = [f for f in found if f.rule in EVENT_RULES]
        if event_findings:
            self.abnormal[cur.minute] = {f.rule for f in event_findings}
        for minute in [m for m in self.abnormal if m < cur.minute - self.lookback()]:
            del self.abnormal[minute]
        if cur.detail is not None:
            glitched = {f.key for f in found if f.rule == "price_drop"}
            for pid, price in unit_prices_of(cur.detail).items():
                if pid not in glitched and cur.detail.product_units[pid] >= MIN_PRICE_UNITS:
                    self._learn_price(pid, price)
        return found

    def _learn_price(self, pid: str, price: float) -> None:
        prices = self.unit_prices.pop(pid, None) or deque(maxlen=self.PRICE_MEMORY)
        prices.append(price)
        self.unit_prices[pid] = prices
        while len(self.unit_prices) > self.MAX_PRICED_PRODUCTS:
            self.unit_prices.popitem(last=False)


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
