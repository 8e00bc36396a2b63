"""Judge every complete minute as it completes, keep the alert log, tell the gauge and the webhook.

Event rules judge minutes of event time, in order, once each: the newest complete minute and the
ones before it not judged yet. A minute is complete when every partition whose event time moved
in the last :data:`ACTIVE_SECONDS` has passed it (so a stream replayed from the past, or played
faster than the clock, is judged minute by minute as it arrives), else when the clock has
(``stats.export.last_complete_minute``). A
dashboard that starts judges the last :data:`REPLAY_MINUTES` first, from the per-minute history,
so it shows what another dashboard shows (detail rules need the snapshots' minute buckets, about
the last 15 minutes). It waits until the history topic has been read, so a half-read baseline
never raises an alert. ``dead_letter_spike`` judges minutes of the dead-letter topic's record
time; ``pipeline_stuck`` opens once the health has said "stuck" for ``stuck_seconds`` and
resolves as soon as it does not.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..alerts.facts import minute_facts
from ..alerts.log import AlertLog, Transition
from ..alerts.rules import (
    DEAD_LETTER_RULE,
    EVENT_RULES,
    RULES,
    STUCK_RULE,
    AlertSettings,
    Finding,
    evaluate_dead_letters,
    evaluate_minute,
)
from ..history import MinuteHistory
from ..stats.export import last_complete_minute

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
ACTIVE_SECONDS = 60.0
REPLAY_MINUTES = 60
DEAD_LETTER_BASELINE_MINUTES = 30


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
        self.next_minute: int | None = None  # the next event-time minute to judge
        self.dead_letter_minute: int | None = None  # the last record-time minute judged
        self.stuck_since_ms: int | None = None
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
            self._judge_minutes(view)

    def last_judgeable_minute(self, view: dict, now_ms: int) -> int:
        """The newest minute every partition whose event time moves has passed (else the clock's)."""
        for partition in view.get("partitions", []):
            seen = self._watermarks.get(partition["partition"])
            if seen is None or partition["watermark_ms"] != seen[0]:
                self._watermarks[partition["partition"]] = (partition["watermark_ms"], now_ms)
        moving = [w for w, moved in self._watermarks.values() if now_ms - moved <= ACTIVE_SECONDS * 1000]
        if moving:
            return min(min(moving) // 60_000 - 1, last_complete_minute(view))
        return last_complete_minute(view)

    def _judge_minutes(self, view: dict) -> None:
        last = self.last_judgeable_minute(view, self._clock_ms())
        if self.next_minute is None or self.next_minute < last - REPLAY_MINUTES:
            self.next_minute = last - REPLAY_MINUTES
        s = self.settings
        rules = [r for r in EVENT_RULES if r not in s.disabled]
        while self.next_minute <= last:
            minute = self.next_minute
            facts = minute_facts(self._snapshots(), self._history(), first_minute=minute - s.baseline_minutes,
                                 last_minute=minute, input_partitions=self._input_partitions())
            self._observe(minute * 60_000, evaluate_minute(facts, s), rules, s.resolve_minutes)
            self.next_minute = minute + 1

    def _judge_dead_letters(self, now_ms: int) -> None:
        minute = now_ms // 60_000 - 1  # the last complete minute of record time
        if self.dead_letter_minute is not None and minute <= self.dead_letter_minute:
            return
        self.dead_letter_minute = minute
        per_minute = self._dead_letters()
        counts = [sum(per_minute.get(m, {}).values()) for m in range(minute - DEAD_LETTER_BASELINE_MINUTES, minute + 1)]
        finding = evaluate_dead_letters(counts, self.settings)
        rules = [] if DEAD_LETTER_RULE in self.settings.disabled else [DEAD_LETTER_RULE]
        self._observe(minute * 60_000, [finding] if finding else [], rules, self.settings.resolve_minutes)

    def _judge_stuck(self, view: dict, now_ms: int) -> None:
        health = view.get("health") or {}
        if health.get("pipeline") != "stuck":
            self.stuck_since_ms = None
        elif self.stuck_since_ms is None:
            self.stuck_since_ms = now_ms
        findings = []
        if self.stuck_since_ms is not None and now_ms - self.stuck_since_ms >= self.settings.stuck_seconds * 1000:
            partitions = ", ".join(str(p) for p in health.get("stuck_partitions", []))
            findings.append(Finding(STUCK_RULE, None, f"The aggregation of partitions {partitions} has not advanced "
                                                      f"for {(now_ms - self.stuck_since_ms) // 1000} s or more"))
        rules = [] if STUCK_RULE in self.settings.disabled else [STUCK_RULE]
        self._observe(self.stuck_since_ms or now_ms, findings, rules, 1)

    def _observe(self, at_ms: int, findings: list[Finding], rules: list[str], resolve_after: int) -> None:
        for change in self.log.observe(at_ms, findings, rules=rules, resolve_after=resolve_after):
            logger.warning("alert %s: %s (%s)", change.kind, change.alert["rule"], change.alert["summary"])
            self._on_change(change)

    def active_by_rule(self) -> dict[str, int]:
        return {rule: int(rule in self.log.open) for rule in RULES}
