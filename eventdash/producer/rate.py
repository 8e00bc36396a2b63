"""A token bucket that says how long to wait before the next event may go out."""
from __future__ import annotations

from collections.abc import Callable

MIN_WAIT_SECONDS = 0.001  # librdkafka's poll() resolution


class RateLimiter:
    def __init__(self, rate_per_second: float, *, clock: Callable[[], float], burst: float | None = None):
        self.rate = rate_per_second
        self._clock = clock
        # At least two minimum waits' worth, or waiting MIN_WAIT_SECONDS would lose tokens (and rate).
        self._capacity = max(burst if burst is not None else rate_per_second / 10, 1.0,
                             2 * rate_per_second * MIN_WAIT_SECONDS)
        self._tokens = self._capacity
        self._last = clock()

    def delay(self) -> float:
        """Take one token; return the seconds to wait first (0 when one is available)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


def wait_for_slot(limiter: RateLimiter, serve: Callable[[float], object], *, clock: Callable[[], float],
                  stopped: Callable[[], bool]) -> None:
    """Wait until ``limiter`` lets the next event go, calling ``serve(timeout)`` meanwhile.

    ``serve`` is the producer's ``poll``, which returns as soon as it has served one delivery
    report: keep serving until the deadline, or the rate would follow delivery latency instead.
    ``poll`` counts whole milliseconds (a shorter timeout does not wait at all), so a wait is at
    least MIN_WAIT_SECONDS: at high rates events then leave in small bursts instead of the loop
    spinning between them; the bucket keeps the rate exact.
    """
    wait = limiter.delay()
    if wait <= 0:
        return
    deadline = clock() + max(wait, MIN_WAIT_SECONDS)
    while not stopped():
        remaining = deadline - clock()
        if remaining <= 0:
            return
        serve(max(remaining, MIN_WAIT_SECONDS))
