"""Incidents the producer can play on top of the normal stream, to see (and test) what the page shows.

| scenario | what it does to the stream while it runs |
|---|---|
| ``checkout-outage`` | no purchase goes through; views and basket changes go on |
| ``flash-sale`` | extra short sessions view, add and buy three products |
| ``bot-storm`` | five sessions view products at a high rate, never adding to a basket |
| ``price-glitch`` | one product sells at 1 % of its price |
| ``dlq-flood`` | a burst of malformed records (not JSON, wrong fields) |

A schedule is a comma-separated list of ``name@start+duration`` (``checkout-outage@5m+2m``: five
minutes after the producer's first event, for two minutes), in the producer's own time, which is
event time; a producer that restarts plays its schedule again. ``EVENTDASH_SCENARIOS`` schedules
them for the supervised stack; ``python -m eventdash produce --scenario NAME --for 120s`` plays one
at once. Which products and sessions a scenario
picks, and every extra record, come from ``EVENTDASH_PRODUCER_SEED``: the same seed plays the same
incident. The normal stream is untouched by a scenario's choices (it has its own random source),
and a scenario's extra records come on top of ``EVENTDASH_RATE`` (:class:`Played`.extra): a
flash sale or a bot storm raises the traffic, as it would.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..config import ConfigError
from ..events.model import ADDTOBASKET, PRODUCTVIEW, PURCHASE
from .catalog import CATALOG, Product

SCENARIOS = ("checkout-outage", "flash-sale", "bot-storm", "price-glitch", "dlq-flood")
SALE_PRODUCTS = 3
SALE_SESSIONS_PER_EVENT = 0.5  # extra sale sessions per normal event: 1-2 views, then perhaps add and buy
SALE_ADD = 0.5  # share of sale sessions that add to the basket
SALE_BUY = 0.6  # share of those that then buy
BOTS = 5
BOT_VIEWS_PER_EVENT = 2  # extra bot views per normal event
GLITCH_PRICE_FACTOR = 0.01
FLOOD_PER_EVENT = 1  # malformed records per normal event
MAX_SECONDS = 7 * 24 * 3600
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, None: 1000}


class Played(NamedTuple):
    """A record to send: an event (dict) or a malformed record (bytes); ``extra`` if a scenario made it."""
    record: dict | bytes
    extra: bool


@dataclass(frozen=True)
class Scheduled:
    """One scenario of a schedule: ``name`` from ``start_ms`` after the stream starts, for ``duration_ms``."""
    name: str
    start_ms: int
    duration_ms: int

    def active(self, elapsed_ms: int) -> bool:
        return self.start_ms <= elapsed_ms < self.start_ms + self.duration_ms


def parse_duration_ms(text: str, what: str) -> int:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError(f"{what}={text!r} is not a duration (e.g. 90s, 5m, 1h, 500ms)")
    milliseconds = round(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if milliseconds > MAX_SECONDS * 1000:
        raise ConfigError(f"{what}={text!r} is longer than {MAX_SECONDS // 86_400} days")
    return milliseconds


def parse_schedule(text: str, what: str = "EVENTDASH_SCENARIOS") -> tuple[Scheduled, ...]:
    """``name@start+duration[, ...]``; an empty text is no scenario."""
    schedule = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, at, rest = part.partition("@")
        start, plus, duration = rest.partition("+")
        if not at or not plus or name not in SCENARIOS:
            raise ConfigError(f"{what}: {part!r} is not name@start+duration with a name among {', '.join(SCENARIOS)} "
                              "(e.g. checkout-outage@5m+2m)")
        schedule.append(Scheduled(name, parse_duration_ms(start, what), parse_duration_ms(duration, what)))
    return tuple(schedule)


class ScenarioPlayer:
    """Applies a schedule to a stream of events; yields dicts (events) and bytes (malformed records)."""

    def __init__(self, schedule: Iterable[Scheduled], *, seed: int | None, clock_ms: Callable[[], int],
                 catalog: tuple[Product, ...] = CATALOG):
        self.schedule = tuple(schedule)
        self._rng = random.Random(f"scenarios-{seed}" if seed is not None else None)
        self._clock_ms = clock_ms
        self._started_ms: int | None = None
        picker = random.Random(f"scenario-picks-{seed}" if seed is not None else None)
        by_popularity = sorted(catalog, key=lambda p: -p.popularity)
        self.sale_products = tuple(picker.sample(by_popularity[len(by_popularity) // 2:], SALE_PRODUCTS))
        self.glitch_product = picker.choice(by_popularity[: max(1, len(by_popularity) // 3)])
        self.bot_sessions = tuple(f"s-bot{picker.getrandbits(48):012x}" for _ in range(BOTS))
        self._catalog = catalog

    def active(self) -> set[str]:
        now = self._clock_ms()
        if self._started_ms is None:
            self._started_ms = now
        elapsed = now - self._started_ms
        return {s.name for s in self.schedule if s.active(elapsed)}

    def apply(self, events: Iterator[dict]) -> Iterator[Played]:
        for event in events:
            active = self.active() if self.schedule else set()
            if not active:
                yield Played(event, False)
                continue
            yield from self._play(event, active)

    def _play(self, event: dict, active: set[str]) -> Iterator[Played]:
        rng = self._rng
        glitch = "price-glitch" in active
        if glitch and event["product_id"] == self.glitch_product.product_id:
            event = {**event, "price": self._glitched(self.glitch_product)}
        if not ("checkout-outage" in active and event["type"] == PURCHASE):
            yield Played(event, False)
        if "flash-sale" in active:
            for _ in range(self._count(SALE_SESSIONS_PER_EVENT)):
                for extra in self._sale_session(event["ts"], active):
                    yield Played(extra, True)
        if "bot-storm" in active:
            for _ in range(BOT_VIEWS_PER_EVENT):
                product = rng.choice(self._catalog)
                session = rng.choice(self.bot_sessions)
                yield Played(self._event(event["ts"], PRODUCTVIEW, session, "u-bot" + session[-6:], product, 1,
                                         glitch), True)
        if "dlq-flood" in active:
            for _ in range(self._count(FLOOD_PER_EVENT)):
                yield Played(rng.choice((b"{not json", b'{"type": "productview"}', b"[]", b'{"event_id": 1}')), True)

    def _count(self, mean: float) -> int:
        whole = int(mean)
        return whole + (1 if self._rng.random() < mean - whole else 0)

    def _glitched(self, product: Product) -> float:
        return round(product.price * GLITCH_PRICE_FACTOR, 2)

    def _sale_session(self, ts: int, active: set[str]) -> list[dict]:
        """One shopper drawn by the sale: views a sale product, perhaps adds it and buys it."""
        rng = self._rng
        product = rng.choice(self.sale_products)
        session, user = f"s-sale{rng.getrandbits(48):012x}", f"u-{rng.randrange(1, 5000):05d}"
        glitch = "price-glitch" in active
        events = [self._event(ts, PRODUCTVIEW, session, user, product, 1, glitch)
                  for _ in range(rng.randint(1, 2))]
        if rng.random() < SALE_ADD:
            events.append(self._event(ts, ADDTOBASKET, session, user, product, 1, glitch))
            if rng.random() < SALE_BUY and "checkout-outage" not in active:
                events.append(self._event(ts, PURCHASE, session, user, product, 1, glitch))
        return events

    def _event(self, ts: int, kind: str, session: str, user: str, product: Product, quantity: int,
               glitch: bool) -> dict:
        price = self._glitched(product) if glitch and product.product_id == self.glitch_product.product_id \
            else product.price
        return {"event_id": f"{self._rng.getrandbits(128):032x}", "type": kind, "session_id": session,
                "user_id": user, "product_id": product.product_id, "product_name": product.name,
                "category": product.category, "price": price, "quantity": quantity, "ts": ts}
