"""The dashboard's alert monitor: a process that starts late shows what a live one showed; a stuck
pipeline opens and resolves; dead letters are judged per minute of record time."""
from __future__ import annotations

import orjson

from eventdash.alerts.rules import AlertSettings
from eventdash.dashboard.alert_monitor import AlertMonitor
from eventdash.events.validation import parse_event
from eventdash.history import HistoryRecord, MinuteHistory
from eventdash.producer.scenarios import ScenarioPlayer, Scheduled
from eventdash.producer.simulator import ShopperSimulator
from eventdash.stats.partition_state import PartitionStats

from .test_alert_rules import START, T0, play


def final_state(minutes: int, schedule) -> tuple[dict, MinuteHistory, int]:
    clock = [T0]
    simulator = ShopperSimulator(seed=4, clock_ms=lambda: clock[0])
    player = ScenarioPlayer(schedule, seed=4, clock_ms=lambda: clock[0])
    states = {p: PartitionStats(p) for p in range(3)}
    history = MinuteHistory(max_partitions=3)
    normal = 0
    for record, extra in player.apply(simulator.events()):
        if not extra:
            normal += 1
            clock[0] = T0 + normal * 50  # 20 events a second
        if clock[0] >= T0 + minutes * 60_000:
            break
        event = parse_event(orjson.dumps(record), now_ms=clock[0] + 1000)
        state = states[sum(event.session_id.encode()) % 3]
        state.apply(event)
        for finished, counts in state.take_finished_minutes():
            history.add(HistoryRecord(state.partition, finished, counts), now_minute=clock[0] // 60_000)
    return {p: s.to_snapshot(next_offset=0, updated_at_ms=clock[0]) for p, s in states.items()}, history, clock[0]


def monitor_of(view: dict, snapshots: dict, history: MinuteHistory, now: list[int], changes: list,
               dead_letters: dict | None = None) -> AlertMonitor:
    return AlertMonitor(AlertSettings(), view=lambda: view, snapshots=lambda: snapshots, history=lambda: history,
                        history_ready=lambda: True, dead_letters_per_minute=lambda: dead_letters or {},
                        input_partitions=lambda: 3, on_change=changes.append, sleep=lambda s: None,
                        clock_ms=lambda: now[0])


def test_a_dashboard_that_starts_later_shows_the_alerts_a_live_one_showed():
    schedule = (Scheduled("checkout-outage", START * 60_000, 3 * 60_000),)
    live = [(m, kind, rule) for m, kind, rule, _ in play(40, 20, schedule, seed=4)]
    snapshots, history, end_ms = final_state(40, schedule)
    now = [end_ms + 90_000]  # the stream ended 90 s ago: its partitions are idle, the clock completes minutes
    view = {"generated_at_ms": now[0], "health": {"pipeline": "idle"},
            "partitions": [{"partition": p, "watermark_ms": s.watermark_ms} for p, s in snapshots.items()]}
    changes: list = []
    monitor = monitor_of(view, snapshots, history, now, changes)
    monitor.tick()
    replayed = []
    for alert in reversed(monitor.log.view(now[0])["recent"]):
        replayed.append((alert["started_ms"] // 60_000 - T0 // 60_000, "opened", alert["rule"]))
        replayed.append((alert["resolved_ms"] // 60_000 - T0 // 60_000, "resolved", alert["rule"]))
    assert replayed == live == [(START, "opened", "purchase_collapse"), (START + 4, "resolved", "purchase_collapse")]
    assert changes == []  # a replay tells only what is still open; the live process told the rest


def test_a_stuck_pipeline_opens_after_its_time_and_resolves_at_once():
    view = {"generated_at_ms": T0, "partitions": [], "health": {"pipeline": "stuck", "stuck_partitions": [2, 5]}}
    now, changes = [T0], []
    monitor = monitor_of(view, {}, MinuteHistory(1), now, changes)
    monitor.tick()
    now[0] += 29_000
    monitor.tick()
    assert changes == []
    now[0] += 1_000
    monitor.tick()
    assert [(c.kind, c.alert["rule"]) for c in changes] == [("opened", "pipeline_stuck")]
    assert "partitions 2, 5" in changes[0].alert["summary"]
    version = monitor.log.version
    now[0] += 1_000
    monitor.tick()
    assert monitor.log.version == version  # an open stuck alert does not change every second
    view["health"] = {"pipeline": "kafka_down"}  # nothing is known: neither resolved nor reopened
    for _ in range(10):
        now[0] += 1_000
        monitor.tick()
    assert len(changes) == 1
    view["health"] = {"pipeline": "live"}
    for _ in range(4):  # a few good ticks are not yet a recovery
        now[0] += 1_000
        monitor.tick()
    assert len(changes) == 1
    now[0] += 1_000
    monitor.tick()
    assert [c.kind for c in changes] == ["opened", "resolved"]


def test_dead_letters_are_judged_once_a_minute_of_record_time():
    minute = T0 // 60_000
    per_minute = {minute - k: {"not_json": 1} for k in range(1, 31)}
    per_minute[minute] = {"not_json": 300}
    now, changes = [(minute + 1) * 60_000 + 20_000], []
    view = {"generated_at_ms": now[0], "partitions": [], "health": {"pipeline": "live"}}
    monitor = monitor_of(view, {}, MinuteHistory(1), now, changes, per_minute)
    monitor.tick()
    monitor.tick()  # the same minute again: judged once
    assert [(c.kind, c.alert["rule"]) for c in changes] == [("opened", "dead_letter_spike")]
    assert "300 records rejected" in changes[0].alert["summary"]
