"""A token bucket that says how long to wait before the next event may go out."""
from __future__ import annotations

from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate_per_second: float, *, clock: Callable[[], float], burst: float | None = None):
        self.rate = rate_per_second
        self._clock = clock
        self._capacity = burst if burst is not None else max(1.0, rate_per_second / 10)
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
