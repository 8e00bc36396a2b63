"""The dashboard's live state: the feed, the merged view, the throttled broadcaster."""
from __future__ import annotations

import logging
import time

from flask_socketio import SocketIO

from ..config import Settings
from ..observability.metrics import DashboardMetrics
from ..stats.view import build_view
from .feed import StatisticsFeed
from .supervisor_status import program_states

logger = logging.getLogger(__name__)

FULL_SERIES_SECONDS = 900
BROADCAST_SERIES_SECONDS = 60  # pages keep their own history; broadcasts carry the recent tail
HEARTBEAT_SECONDS = 2.0  # broadcast this often even without new statistics (ages, health, decay)
TICK_SECONDS = 0.05  # how often the broadcaster looks for a change


class LiveStats:
    def __init__(self, settings: Settings, socketio: SocketIO, metrics: DashboardMetrics):
        self.settings = settings
        self.socketio = socketio
        self.metrics = metrics
        self.feed = StatisticsFeed(settings, socketio.sleep, on_snapshot=metrics.snapshots.inc)
        self.programs: list[dict] = []
        self._cache: tuple[tuple, dict] | None = None

    def start(self) -> None:
        self.socketio.start_background_task(self.feed.run)
        self.socketio.start_background_task(self._broadcast_loop)
        if self.settings.supervisor_socket:
            self.socketio.start_background_task(self._programs_loop)

    def view(self, series_seconds: int = FULL_SERIES_SECONDS) -> dict:
        now_ms = time.time_ns() // 1_000_000
        key = (self.feed.version, now_ms // 250, series_seconds)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        view = build_view(self.feed.snapshots, now_ms=now_ms, top_n=self.settings.top_n,
                          series_seconds=series_seconds)
        view["health"] = self.health(view, now_ms)
        view["currency"] = self.settings.currency
        self._cache = (key, view)
        return view

    def health(self, view: dict, now_ms: int) -> dict:
        updated = view["updated_at_ms"]
        age = None if updated is None else max(0.0, (now_ms - updated) / 1000)
        lags = {str(p): s["lag"] for p, s in self.feed.snapshots.items() if s.get("lag") is not None}
        self.metrics.kafka_up.set(1 if self.feed.broker_up else 0)
        if age is not None:
            self.metrics.update_age.set(age)
        for partition, lag in lags.items():
            self.metrics.lag.labels(partition=partition).set(lag)
        return {
            "kafka_up": self.feed.broker_up,
            "last_update_age_s": None if age is None else round(age, 1),
            "stale": age is None or age > self.settings.stale_after_seconds or not self.feed.broker_up,
            "consumer_lag": sum(lags.values()) if lags else None,
            "consumer_lag_by_partition": lags,
            "programs": self.programs,
        }

    def readiness(self) -> tuple[bool, str]:
        if not self.feed.broker_up:
            return False, f"Kafka at {self.settings.bootstrap_servers} is not reachable"
        if not self.feed.snapshots:
            return False, f"no statistics read from {self.settings.statistics_topic} yet"
        health = self.view(series_seconds=0)["health"]
        if health["stale"]:
            return False, (f"statistics are {health['last_update_age_s']} s old "
                           f"(EVENTDASH_STALE_AFTER_SECONDS={self.settings.stale_after_seconds:g})")
        return True, "ok"

    def _broadcast_loop(self) -> None:
        """Leading-edge throttle: a change goes out as soon as ``period`` has passed since the last
        broadcast (checked every 50 ms), so a lone change waits at most 50 ms, never a full period."""
        period = 1.0 / self.settings.broadcast_per_second
        sent_version, sent_at = -1, 0.0
        while True:
            self.socketio.sleep(min(TICK_SECONDS, period))
            now = time.monotonic()
            if now - sent_at < period:
                continue
            if self.feed.version == sent_version and now - sent_at < HEARTBEAT_SECONDS:
                continue
            try:
                payload = self.view(series_seconds=BROADCAST_SERIES_SECONDS)
                self.socketio.emit("stats", payload)
            except Exception:  # a bad snapshot must not end the broadcasts
                logger.exception("broadcast failed")
                continue
            self.metrics.broadcasts.inc()
            sent_version, sent_at = self.feed.version, now

    def _programs_loop(self) -> None:
        while True:
            self.programs = program_states(self.settings.supervisor_socket)
            self.socketio.sleep(2.0)
