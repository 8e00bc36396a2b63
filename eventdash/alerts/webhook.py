"""The optional alert webhook (``EVENTDASH_ALERT_WEBHOOK_URL``): a JSON POST on open and on resolve.

Deliveries wait in a bounded queue (:data:`MAX_PENDING`; beyond it the oldest is dropped and
counted) and go out in order from a background task of their own, so the event loop never waits
for the receiver. A failed delivery (connection refused, timeout, an answer that is not HTTP, a
5xx, 408 or 429) is retried with exponential backoff (1 s, 2 s, ... at most
:data:`MAX_BACKOFF_SECONDS`) until it is :data:`GIVE_UP_SECONDS` old, then dropped and counted;
any other 4xx is dropped at once (``rejected``), so it does not hold back the alerts after it.
The body::

    {"event": "opened" | "resolved", "alert": {"id", "rule", "subject", "summary", "started_ms",
     "resolved_ms", "active"}, "sent_at_ms": ...}
"""
from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import orjson

from .log import Transition

logger = logging.getLogger(__name__)

MAX_PENDING = 1000
TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 60.0
GIVE_UP_SECONDS = 3600.0
IDLE_SECONDS = 0.2


class Delivery(NamedTuple):
    transition: Transition
    queued_at: float


class WebhookNotifier:
    def __init__(self, url: str, sleep: Callable[[float], None], *,
                 on_outcome: Callable[[str], None] = lambda outcome: None,
                 post: Callable[[str, bytes], int] | None = None, clock: Callable[[], float] = time.monotonic):
        self.url = url
        self._sleep = sleep
        self._on_outcome = on_outcome
        self._post = post or post_json
        self._clock = clock
        self.pending: deque[Delivery] = deque()
        self._running = False

    def notify(self, transition: Transition) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.pending.popleft()
            self._on_outcome("dropped")
            logger.warning("alert webhook: %d deliveries waiting; dropped the oldest", MAX_PENDING)
        self.pending.append(Delivery(transition, self._clock()))

    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        """Deliver in order, forever (a background task; ``sleep`` yields to the event loop)."""
        self._running = True
        backoff = 1.0
        while self._running:
            if not self.pending:
                self._sleep(IDLE_SECONDS)
                continue
            delivery = self.pending[0]
            body = orjson.dumps({"event": delivery.transition.kind, "alert": delivery.transition.alert,
                                 "sent_at_ms": time.time_ns() // 1_000_000})
            outcome = self._deliver(body)
            if outcome in ("delivered", "rejected"):
                self.pending.popleft()
                self._on_outcome(outcome)
                backoff = 1.0
                continue
            if self._clock() - delivery.queued_at >= GIVE_UP_SECONDS:
                self.pending.popleft()
                self._on_outcome("given_up")
                logger.error("alert webhook: gave up a delivery after %.0f s of retries", GIVE_UP_SECONDS)
                backoff = 1.0
                continue
            self._on_outcome("retried")
            self._sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _deliver(self, body: bytes) -> str:
        """``delivered``, ``rejected`` (a 4xx that a retry cannot change) or ``failed`` (to retry)."""
        try:
            status = self._post(self.url, body)
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, timed out, not HTTP at all: retry
            logger.warning("alert webhook %s: %s: %s", self.url, type(exc).__name__, exc)
            return "failed"
        if 200 <= status < 300:
            return "delivered"
        if 400 <= status < 500 and status not in (408, 429):
            logger.error("alert webhook %s refused a delivery with %s; dropped", self.url, status)
            return "rejected"
        logger.warning("alert webhook %s answered %s", self.url, status)
        return "failed"


def post_json(url: str, body: bytes) -> int:
    """POST ``body`` as JSON; the status. The workers patch sockets, so this waits cooperatively."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - operator's URL
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
