"""Shopper sessions as a stream of event dicts: pure, seedable, no Kafka.

Many sessions are open at once and their events interleave, as they would in a real shop.
A session views a few products (popular ones more often), adds some of them to the basket,
sometimes removes one again, and sometimes checks out, which emits one ``purchase`` per item
left in the basket.
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator

from ..events.model import ADDTOBASKET, PRODUCTVIEW, PURCHASE, REMOVEFROMBASKET
from .catalog import CATALOG, Product


class ShopperSimulator:
    def __init__(self, *, seed: int | None = None, concurrent_sessions: int = 50,
                 clock_ms: Callable[[], int], catalog: tuple[Product, ...] = CATALOG):
        self._rng = random.Random(seed)
        self._clock_ms = clock_ms
        self._catalog = catalog
        self._weights = [p.popularity for p in catalog]
        self._concurrent = concurrent_sessions
        self._open: list[deque[dict]] = []

    def events(self) -> Iterator[dict]:
        rng = self._rng
        while True:
            while len(self._open) < self._concurrent:
                self._open.append(deque(self._plan_session()))
            index = rng.randrange(len(self._open))
            session = self._open[index]
            event = session.popleft()
            if not session:
                self._open[index] = self._open[-1]
                self._open.pop()
            event["ts"] = self._clock_ms()
            yield event

    def _new_id(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def _plan_session(self) -> list[dict]:
        rng = self._rng
        session_id = "s-" + self._new_id()[:16]
        user_id = f"u-{rng.randrange(1, 5000):05d}"
        plan: list[dict] = []
        basket: dict[str, tuple[Product, int]] = {}

        def emit(kind: str, product: Product, quantity: int) -> None:
            plan.append({"event_id": self._new_id(), "type": kind, "session_id": session_id,
                         "user_id": user_id, "product_id": product.product_id,
                         "product_name": product.name, "category": product.category, "price": product.price,
                         "quantity": quantity})

        for product in rng.choices(self._catalog, weights=self._weights, k=rng.randint(1, 8)):
            emit(PRODUCTVIEW, product, 1)
            if rng.random() < 0.3:
                quantity = rng.choice((1, 1, 1, 2, 3))
                emit(ADDTOBASKET, product, quantity)
                basket[product.product_id] = (product, quantity)
        if basket and rng.random() < 0.25:
            product, quantity = basket.pop(rng.choice(sorted(basket)))
            emit(REMOVEFROMBASKET, product, quantity)
        if basket and rng.random() < 0.5:
            for product, quantity in basket.values():
                emit(PURCHASE, product, quantity)
        return plan
