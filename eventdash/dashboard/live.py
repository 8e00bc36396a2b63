"""The dashboard's live state: the feed, the merged view, the throttled broadcaster."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask_socketio import SocketIO

from ..alerts.log import PUSHED_RECENT, Transition
from ..alerts.rules import RULES
from ..alerts.webhook import WebhookNotifier
from ..config import Settings
from ..history import WINDOWS as MINUTE_WINDOWS
from ..observability.metrics import DashboardMetrics
from ..stats.export import (
    DOCUMENT_FIELDS,
    EXPORT_SERIES_SECONDS,
    MinuteSeries,
    UnknownWindow,
    complete_through,
    last_complete_minute,
    window_seconds,
)
from ..stats.slice import Filter, slice_window
from ..stats.view import WINDOWS, build_view
from .alert_monitor import AlertMonitor
from .collector import CollectorPolicy
from .dead_letter_feed import DeadLetterFeed
from .delta import make_delta
from .event_tail import TAIL_ROOM, EventTail, tail_loop
from .fanout import Broadcaster
from .feed import StatisticsFeed
from .history_feed import HistoryFeed
from .lag import INTERVAL_SECONDS as LAG_INTERVAL_SECONDS
from .lag import GroupLagMonitor
from .supervisor_status import program_states

logger = logging.getLogger(__name__)

FULL_SERIES_SECONDS = 900
BROADCAST_SERIES_SECONDS = 60  # pages keep their own history; broadcasts carry the recent tail
BROADCAST_HEARTBEAT_SECONDS = 2.0  # broadcast this often even without new statistics (ages, health, decay)
IDLE_AFTER_SECONDS = 10.0  # no input aggregated this long, and none waiting: the shop is idle
TICK_SECONDS = 0.01  # how often the broadcaster looks for a change
BROADCAST_LOOP_SHARE = 0.6  # the most of the event loop's time broadcasts may take (it stretches the period)
FULL_ROOM = "full"  # clients that get every broadcast as a whole document (`stats`)
DELTA_ROOM = "delta"  # clients that get `stats_delta` (see delta.py)


class LiveStats:
    def __init__(self, settings: Settings, socketio: SocketIO, metrics: DashboardMetrics,
                 broadcaster: Broadcaster | None = None):
        self.settings = settings
        self.socketio = socketio
        self.broadcaster = broadcaster or Broadcaster(socketio, None, spawn=lambda *args: None)
        self.metrics = metrics
        self.lag_monitor = GroupLagMonitor(settings)
        self.feed = StatisticsFeed(settings, socketio.sleep, on_snapshot=metrics.snapshots.inc,
                                   on_skip=lambda reason: metrics.snapshots_skipped.labels(reason=reason).inc(),
                                   input_partitions=lambda: self.lag_monitor.partitions)
        self.dead_letters = DeadLetterFeed(settings, socketio.sleep)
        self.history = HistoryFeed(settings, socketio.sleep,
                                   on_skip=metrics.history_skipped.inc,
                                   input_partitions=lambda: self.lag_monitor.partitions)
        self.tail = EventTail(settings, socketio.sleep, wanted=lambda: self._has_members(TAIL_ROOM),
                              partitions=lambda: self.lag_monitor.partitions)
        self.alerts = AlertMonitor(
            settings.alerts, view=lambda: self.view(series_seconds=0), snapshots=lambda: self.feed.snapshots,
            history=lambda: self.history.history, history_ready=lambda: self.history.caught_up,
            dead_letters_per_minute=lambda: self.dead_letters.per_minute,
            input_partitions=lambda: self.lag_monitor.partitions, on_change=self._alert_changed, sleep=socketio.sleep)
        self.webhook = (WebhookNotifier(settings.alert_webhook_url, socketio.sleep,
                                        on_outcome=lambda outcome: metrics.alert_webhook.labels(outcome=outcome).inc())
                        if settings.alert_webhook_url else None)
        for rule in RULES:
            metrics.alert_active.labels(rule=rule).set(0)
        self.programs: list[dict] = []
        self._offsets, self._offsets_changed_at = -1, time.monotonic()  # input aggregated so far, and when
        self._cache: dict[int, tuple[tuple, dict]] = {}  # series_seconds -> (key, view): a few sizes only
        # Delta clients waiting for their base document: at most the connected clients (EVENTDASH_MAX_CLIENTS).
        self.awaiting_base: set[str] = set()
        self.broadcast_seq = 0
        self.collector = CollectorPolicy()

    def start(self) -> None:
        self.lag_monitor.start()
        self.socketio.start_background_task(self._supervised(self.feed.run, "statistics feed"))
        self.socketio.start_background_task(self._supervised(self.dead_letters.run, "dead-letter feed"))
        self.socketio.start_background_task(self._supervised(self.history.run, "history feed"))
        self.socketio.start_background_task(self._broadcast_loop)
        self.socketio.start_background_task(self._supervised(self.tail.run, "event tail"))
        self.socketio.start_background_task(self._supervised(
            lambda: tail_loop(self.tail, lambda: self._has_members(TAIL_ROOM),
                              lambda events: self._emit("tail", {"events": events}, to=TAIL_ROOM), self.socketio.sleep),
            "event tail broadcaster"))
        self.socketio.start_background_task(self._supervised(self.alerts.run, "alert monitor"))
        if self.webhook is not None:
            self.socketio.start_background_task(self._supervised(self.webhook.run, "alert webhook"))
        if self.settings.supervisor_socket:
            self.socketio.start_background_task(self._programs_loop)

    def _alert_changed(self, change: Transition) -> None:
        for rule, active in self.alerts.active_by_rule().items():
            self.metrics.alert_active.labels(rule=rule).set(active)
        if self.webhook is not None:
            self.webhook.notify(change)

    def view(self, series_seconds: int = FULL_SERIES_SECONDS) -> dict:
        now_ms = time.time_ns() // 1_000_000
        key = (self.feed.version, now_ms // 250, self.alerts.log.version)
        cached = self._cache.get(series_seconds)
        if cached is not None and cached[0] == key:
            return cached[1]
        view = build_view(self.feed.snapshots, now_ms=now_ms, top_n=self.settings.top_n,
                          series_seconds=series_seconds)
        view["health"] = self.health(view, now_ms)
        view["currency"] = self.settings.currency
        view["alerts"] = self.alerts.log.view(now_ms, recent_limit=PUSHED_RECENT)
        self._cache[series_seconds] = (key, view)  # one per size asked for: the broadcaster's and the others
        return view

    def window_inputs(self, label: str) -> tuple[dict, str, MinuteSeries | None]:
        """What the exports of window ``label`` are made from (``stats.export``): the view, the label
        and, for a per-minute window, its complete minutes (final ones from the history topic, the
        newer ones from the snapshots)."""
        window_seconds(label)  # UnknownWindow for anything else
        view = self.view(series_seconds=EXPORT_SERIES_SECONDS)
        if label not in MINUTE_WINDOWS:
            return view, label, None
        last = last_complete_minute(view)
        first = last - MINUTE_WINDOWS[label] + 1
        history = self.history.history
        history.expire(view["generated_at_ms"] // 60_000)
        rows = history.series(self.feed.snapshots, first_minute=first, last_minute=last,
                              input_partitions=self.lag_monitor.partitions)
        return view, label, MinuteSeries(first, rows, self.history.caught_up)

    def slice_document(self, label: str, where: Filter) -> dict:
        """``/api/stats?window=&category=|product=``: now's totals and health, and the slice's window."""
        if label not in WINDOWS:
            raise UnknownWindow(label, WINDOWS, "window (a filter covers at most 15 minutes)")
        view = self.view(series_seconds=BROADCAST_SERIES_SECONDS)
        now_ms = view["generated_at_ms"]
        return {**{key: view[key] for key in DOCUMENT_FIELDS if key in view},
                "window": slice_window(self.feed.snapshots, now_ms=now_ms, label=label, where=where,
                                       complete_through_s=complete_through(view, now_ms), top_n=self.settings.top_n)}

    def health(self, view: dict, now_ms: int) -> dict:
        """Kafka reachable, every partition's statistics advancing (a live aggregator commits each
        partition at least every ``HEARTBEAT_SECONDS``, input or not), and the group's lag."""
        stale_ms = self.settings.stale_after_seconds * 1000
        updated = view["updated_at_ms"]
        age = None if updated is None else max(0.0, (now_ms - updated) / 1000)
        reading = self.lag_monitor.reading
        if reading is not None and time.monotonic() - reading.measured_at > 3 * LAG_INTERVAL_SECONDS + 10:
            reading = None  # too old to speak for now
        lags = reading.by_partition if reading is not None else {}
        snapshots = self.feed.snapshots
        self._note_progress(sum(snap.next_offset for snap in snapshots.values()))
        # Stuck: a partition whose statistics stopped advancing, or one with input but no statistics.
        stuck = sorted({p for p, snap in snapshots.items() if now_ms - snap.updated_at_ms > stale_ms}
                       | {p for p, lag in lags.items() if lag > 0 and p not in snapshots})
        kafka_up = self.feed.broker_up
        if not kafka_up:
            pipeline = "kafka_down"
        elif stuck:
            pipeline = "stuck"
        elif not snapshots:
            pipeline = "waiting"
        elif reading is not None and not any(lags.values()) and self._input_quiet_for() >= IDLE_AFTER_SECONDS:
            pipeline = "idle"  # nothing waiting, and no input aggregated for a while
        else:
            pipeline = "live"
        self.metrics.kafka_up.set(1 if kafka_up else 0)
        self.metrics.pipeline_stuck.set(1 if stuck else 0)
        if age is not None:
            self.metrics.update_age.set(age)
        for partition, lag in lags.items():
            self.metrics.lag.labels(partition=str(partition)).set(lag)
        return {
            "kafka_up": kafka_up,
            "pipeline": pipeline,
            "stuck_partitions": stuck,
            "last_update_age_s": None if age is None else round(age, 1),
            "oldest_update_age_s": (None if view["oldest_update_ms"] is None
                                    else round(max(0.0, (now_ms - view["oldest_update_ms"]) / 1000), 1)),
            "stale": not kafka_up or bool(stuck) or age is None,
            "consumer_lag": reading.total if reading is not None else None,
            "consumer_lag_by_partition": {str(p): lag for p, lag in sorted(lags.items())},
            "lag_error": self.lag_monitor.error,
            "programs": self.programs,
        }

    def _note_progress(self, offsets: int) -> None:
        if offsets != self._offsets:
            self._offsets, self._offsets_changed_at = offsets, time.monotonic()

    def _input_quiet_for(self) -> float:
        return time.monotonic() - self._offsets_changed_at

    def readiness(self) -> tuple[bool, str]:
        if not self.feed.broker_up:
            return False, f"Kafka at {self.settings.bootstrap_servers} is not reachable"
        if not self.feed.snapshots:
            return False, f"no statistics read from {self.settings.statistics_topic} yet"
        health = self.view(series_seconds=0)["health"]
        if health["stuck_partitions"]:
            return False, (f"aggregation stuck: statistics of partitions {health['stuck_partitions']} are older "
                           f"than EVENTDASH_STALE_AFTER_SECONDS={self.settings.stale_after_seconds:g} s")
        return True, "ok"

    def _broadcast_loop(self) -> None:
        """Leading-edge throttle: a change goes out as soon as the period has passed since the last
        broadcast (checked every TICK_SECONDS), so a lone change waits at most a tick, never a period.

        The period is ``1 / EVENTDASH_BROADCAST_PER_SECOND``, stretched so that broadcasting takes at
        most BROADCAST_LOOP_SHARE of the event loop: with many clients a broadcast takes longer,
        and updates then come less often instead of queueing behind each other. A broadcast's cost
        runs until the loop comes back to the broadcaster, so it includes the writes it left to
        each client's writer (the gevent worker, long-polling or busy clients)."""
        min_period = 1.0 / self.settings.broadcast_per_second
        period = min_period
        sent_version, sent_at = -1, 0.0
        previous: dict | None = None
        measuring_since: float | None = None  # a broadcast's start, until the loop is back to the broadcaster
        while True:
            self.socketio.sleep(TICK_SECONDS)
            now = time.monotonic()
            if measuring_since is not None:
                # The broadcast itself, and the writes it queued that ran before this tick came round.
                cost = now - measuring_since - TICK_SECONDS
                period = max(min_period, cost / BROADCAST_LOOP_SHARE)
                self.metrics.broadcast_seconds.observe(cost)
                measuring_since = None
            if now - sent_at < period:
                continue
            if self.feed.version == sent_version and now - sent_at < BROADCAST_HEARTBEAT_SECONDS:
                continue
            sent_at = now  # a failed broadcast, too, waits a period before the next attempt
            collecting = 0.0
            try:
                previous = self.broadcast(previous)
            except Exception:  # a bad snapshot must not end the broadcasts
                logger.exception("broadcast failed")
                previous = None  # delta clients start again from the next whole document
                continue
            finally:
                collecting = self.collector.between_broadcasts()
            self.metrics.broadcasts.inc()
            sent_version, measuring_since = self.feed.version, now + collecting

    def broadcast(self, previous: dict | None) -> dict:
        """One broadcast: the whole document to the full room and to delta clients awaiting a base,
        the changes since ``previous`` to the delta room. Returns the document sent."""
        self.broadcast_seq += 1
        seq = self.broadcast_seq
        document = {**self.view(series_seconds=BROADCAST_SERIES_SECONDS), "seq": seq}
        manager = self.socketio.server.manager
        if self._has_members(FULL_ROOM):  # encoding a document for nobody costs as much as for everybody
            self._emit("stats", document, to=FULL_ROOM)
        if previous is not None:
            self._emit("stats_delta", make_delta(previous, document, seq=seq, base=previous["seq"]), to=DELTA_ROOM)
        else:  # nothing to diff from: every delta client starts again from this document
            self.awaiting_base.update(sid for sid, _ in manager.get_participants("/", DELTA_ROOM))
        waiting, self.awaiting_base = self.awaiting_base, set()
        if waiting:
            try:
                self._emit("stats", document, to=list(waiting))  # one encoding for all of them
            except Exception:
                self.awaiting_base |= waiting  # they wait for the next broadcast instead
                raise
            for sid in waiting:
                try:
                    self.socketio.server.enter_room(sid, DELTA_ROOM, namespace="/")
                except (KeyError, ValueError):
                    pass  # disconnected meanwhile
        return document

    def _emit(self, event: str, data: dict, to: str | list[str]) -> None:
        writes = self.broadcaster.emit(event, data, to=to)
        if writes.direct:
            self.metrics.client_writes.labels(path="direct").inc(writes.direct)
        if writes.queued:
            self.metrics.client_writes.labels(path="queued").inc(writes.queued)

    def _has_members(self, room: str) -> bool:
        """Without copying the room, as get_participants would (python-socketio drops empty rooms)."""
        return bool(self.socketio.server.manager.rooms.get("/", {}).get(room))

    def resync(self, sid: str) -> None:
        """A delta client missed a delta: a whole document at the next broadcast (others: ignored)."""
        if DELTA_ROOM in self.socketio.server.rooms(sid, namespace="/"):
            self.awaiting_base.add(sid)

    def _supervised(self, run: Callable[[], None], what: str) -> Callable[[], None]:
        """``run`` forever: whatever ends it (a reader is this process's only input), it starts again."""
        def loop() -> None:
            while True:
                try:
                    run()
                except Exception:  # noqa: BLE001
                    logger.exception("%s failed; restarting it in 1 s", what)
                self.socketio.sleep(1.0)
        return loop

    def _programs_loop(self) -> None:
        while True:
            self.programs = program_states(self.settings.supervisor_socket)
            self.socketio.sleep(2.0)
