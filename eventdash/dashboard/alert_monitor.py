"""Judge every complete minute as it completes, keep the alert log, tell the gauge and the webhook.

Event rules judge minutes of event time, in order, once each (:class:`~eventdash.alerts.rules.MinuteJudge`).
A minute is complete when every partition whose event time has moved in the last
:data:`ACTIVE_SECONDS` has passed it (so a stream replayed from the past, or played faster than
the clock, is judged minute by minute as it arrives), else when the clock has
(``stats.export.last_complete_minute``). It waits until the history topic has been read, so a
half-read baseline never raises an alert.

A dashboard that starts judges the last :data:`REPLAY_MINUTES` first, from the per-minute history,
so it raises the alerts another process raised (rules that need the snapshots' per-minute detail
have it for about the last 15 minutes). The replay notifies nothing but the alerts still open at
its end. ``dead_letter_spike`` judges minutes of the dead-letter topic's record time,
:data:`DEAD_LETTER_GRACE_SECONDS` after each ends; ``pipeline_stuck`` opens once the health has
said "stuck" for ``stuck_seconds``, resolves once it has said anything but "stuck" or "kafka_down"
for :data:`STUCK_RESOLVE_TICKS` ticks, and is left as it is while Kafka is down.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ..alerts.facts import minute_facts
from ..alerts.log import AlertLog, Transition
from ..alerts.rules import (
    DEAD_LETTER_RULE,
    EVENT_RULES,
    RULES,
    STUCK_RULE,
    AlertSettings,
    Finding,
    MinuteJudge,
    evaluate_dead_letters,
)
from ..history import MinuteHistory
from ..stats.export import last_complete_minute

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
ACTIVE_SECONDS = 60.0
REPLAY_MINUTES = 60
DEAD_LETTER_BASELINE_MINUTES = 30
DEAD_LETTER_GRACE_SECONDS = 15.0
STUCK_RESOLVE_TICKS = 5


class AlertMonitor:
    def __init__(self, settings: AlertSettings, *, view: Callable[[], dict], snapshots: Callable[[], dict],
                 history: Callable[[], MinuteHistory], history_ready: Callable[[], bool],
                 dead_letters_per_minute: Callable[[], dict[int, dict[str, int]]],
                 input_partitions: Callable[[], int | None], on_change: Callable[[Transition], None],
                 sleep: Callable[[float], None], clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000):
        self.settings = settings
        self._view = view
        self._snapshots = snapshots
        self._history = history
        self._history_ready = history_ready
        self._dead_letters = dead_letters_per_minute
        self._input_partitions = input_partitions
        self._on_change = on_change
        self._sleep = sleep
        self._clock_ms = clock_ms
        self.log = AlertLog()
        self.judge = MinuteJudge(settings)
        self.next_minute: int | None = None  # the next event-time minute to judge
        self.dead_letter_minute: int | None = None  # the last record-time minute judged
        self.dead_letter_abnormal: set[int] = set()  # record minutes where dead_letter_spike fired
        self.stuck_since_ms: int | None = None
        self.unstuck_ticks = 0
        self._watermarks: dict[int, tuple[int, int]] = {}  # partition -> (watermark_ms, when it last moved)
        self._running = False

    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        self._running = True
        while self._running:
            self.tick()
            self._sleep(TICK_SECONDS)

    def tick(self) -> None:
        view = self._view()
        now_ms = self._clock_ms()
        self._judge_stuck(view, now_ms)
        self._judge_dead_letters(now_ms)
        if self._snapshots() and self._history_ready():
            self._judge_minutes(view, now_ms)

    # -- event time ------------------------------------------------------------------------

    def last_judgeable_minute(self, view: dict, now_ms: int) -> int:
        """The newest minute every partition whose event time moves has passed (else the clock's)."""
        for partition in view.get("partitions", []):
            seen = self._watermarks.get(partition["partition"])
            # First seen counts as moving: a stream that is being replayed is judged as it comes from the
            # first tick. An idle partition first seen with an old watermark holds judging back for
            # ACTIVE_SECONDS at most; the jump to the clock after it is a replay, which notifies nothing
            # but what is open at its end.
            if seen is None or partition["watermark_ms"] != seen[0]:
                self._watermarks[partition["partition"]] = (partition["watermark_ms"], now_ms)
        moving = [w for w, moved in self._watermarks.values() if now_ms - moved <= ACTIVE_SECONDS * 1000]
        clock_minute = last_complete_minute(view)
        return min(min(moving) // 60_000 - 1, clock_minute) if moving else clock_minute

    def _judge_minutes(self, view: dict, now_ms: int) -> None:
        last = self.last_judgeable_minute(view, now_ms)
        replaying = self.next_minute is None or self.next_minute < last - REPLAY_MINUTES
        if replaying:
            self.next_minute = last - REPLAY_MINUTES
        rules = [r for r in EVENT_RULES if r not in self.settings.disabled]
        changes: list[Transition] = []
        while self.next_minute <= last:
            minute = self.next_minute
            self.next_minute = minute + 1  # a minute that fails is logged and skipped, never retried forever
            try:
                facts = minute_facts(self._snapshots(), self._history(), first_minute=minute - self.judge.lookback(),
                                     last_minute=minute, input_partitions=self._input_partitions())
                findings = self.judge.judge(facts)
            except Exception:  # noqa: BLE001 - one odd minute must not stop the judging of the next ones
                logger.exception("alerts: judging the minute of %s failed; skipped", _clock(minute))
                continue
            changes += self.log.observe(minute * 60_000, findings, rules=rules,
                                        resolve_after=self.settings.resolve_minutes, now_ms=now_ms)
            self._sleep(0)  # let the browsers in between minutes (a replay judges 61)
        if replaying:  # tell only what is still open: the rest was told by whoever judged it live
            still_open = {a.id for a in self.log.open.values()}
            changes = [c for c in changes if c.kind == "opened" and c.alert["id"] in still_open]
        for change in changes:
            self._changed(change)

    # -- record time and the clock -----------------------------------------------------------

    def _judge_dead_letters(self, now_ms: int) -> None:
        minute = (now_ms - int(DEAD_LETTER_GRACE_SECONDS * 1000)) // 60_000 - 1
        if self.dead_letter_minute is not None and minute <= self.dead_letter_minute:
            return
        self.dead_letter_minute = minute
        per_minute = self._dead_letters()
        baseline = [sum(per_minute.get(m, {}).values()) for m in range(minute - DEAD_LETTER_BASELINE_MINUTES, minute)
                    if m not in self.dead_letter_abnormal]
        finding = evaluate_dead_letters([*baseline, sum(per_minute.get(minute, {}).values())], self.settings)
        if finding is not None:
            self.dead_letter_abnormal.add(minute)
        self.dead_letter_abnormal = {m for m in self.dead_letter_abnormal
                                     if m >= minute - DEAD_LETTER_BASELINE_MINUTES}
        rules = [] if DEAD_LETTER_RULE in self.settings.disabled else [DEAD_LETTER_RULE]
        for change in self.log.observe(minute * 60_000, [finding] if finding else [], rules=rules,
                                       resolve_after=self.settings.resolve_minutes, now_ms=now_ms):
            self._changed(change)

    def _judge_stuck(self, view: dict, now_ms: int) -> None:
        health = view.get("health") or {}
        pipeline = health.get("pipeline")
        if pipeline == "kafka_down":
            return  # nothing is known about the aggregation while the dashboard cannot read Kafka
        if pipeline == "stuck":
            self.unstuck_ticks = 0
            if self.stuck_since_ms is None:
                self.stuck_since_ms = now_ms
        else:
            self.unstuck_ticks += 1
            if self.unstuck_ticks >= STUCK_RESOLVE_TICKS:
                self.stuck_since_ms = None
        findings = []
        since = self.stuck_since_ms
        if since is not None and now_ms - since >= self.settings.stuck_seconds * 1000 and pipeline == "stuck":
            partitions = ", ".join(str(p) for p in health.get("stuck_partitions", []))
            findings.append(Finding(STUCK_RULE, None, f"The aggregation of partitions {partitions} has not advanced "
                                                      f"since {_clock_ms(since)} at the latest"))
        rules = [] if STUCK_RULE in self.settings.disabled else [STUCK_RULE]
        resolve_after = 1 if since is None else 10**9  # resolves once the hysteresis above has cleared it
        for change in self.log.observe(since or now_ms, findings, rules=rules, resolve_after=resolve_after,
                                       now_ms=now_ms, span_ms=0):
            self._changed(change)

    def _changed(self, change: Transition) -> None:
        logger.warning("alert %s: %s (%s)", change.kind, change.alert["rule"], change.alert["summary"])
        self._on_change(change)

    def active_by_rule(self) -> dict[str, int]:
        active = {a.rule for a in self.log.open.values()}
        return {rule: int(rule in active) for rule in RULES}


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clock_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")
