"""Keep the cyclic garbage collector's long pauses out of broadcasts.

Each connected client owns a few hundred tracked objects (greenlets, sockets, queues). With 5,000
clients a full collection walks all of them and stops the event loop for about half a second; one
that lands in the middle of a broadcast delays every client after that point by as much.

:class:`CollectorPolicy` runs at the end of each broadcast, so whatever it does never splits one:

- every ``freeze_seconds`` it collects and then *freezes* the survivors (``gc.freeze``): they
  move to the permanent generation, which later collections, automatic ones included, skip. So a
  collection walks only what was created since, and stays short.
- every ``full_seconds`` it unfreezes everything and runs a full collection, so cyclic garbage
  among frozen objects (left by clients that disconnected) is reclaimed. That is the one long
  pause, once per ``full_seconds``, between two broadcasts.
"""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

FREEZE_SECONDS = 10.0
FULL_SECONDS = 300.0


class CollectorPolicy:
    def __init__(self, *, freeze_seconds: float = FREEZE_SECONDS, full_seconds: float = FULL_SECONDS,
                 clock: Callable[[], float] = time.monotonic, collector=gc):
        self.freeze_seconds = freeze_seconds
        self.full_seconds = full_seconds
        self._clock = clock
        self._gc = collector
        now = clock()
        self.last_freeze = now
        self.last_full = now
        self.full_collections = 0
        self.freezes = 0

    def between_broadcasts(self) -> float:
        """Collect now if due; returns the seconds it took."""
        now = self._clock()
        started = time.perf_counter()
        if now - self.last_full >= self.full_seconds:
            self._gc.unfreeze()
            self._gc.collect()
            self._gc.freeze()
            self.last_full = self.last_freeze = now
            self.full_collections += 1
            logger.debug("full collection in %.0f ms", (time.perf_counter() - started) * 1000)
        elif now - self.last_freeze >= self.freeze_seconds:
            self._gc.collect()
            self._gc.freeze()
            self.last_freeze = now
            self.freezes += 1
        return time.perf_counter() - started
