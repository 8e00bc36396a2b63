"""Detection on accelerated event time: the real simulator and scenario player on a synthetic clock,
aggregated by the real partition state, judged minute by minute as a dashboard does."""
from __future__ import annotations

import orjson
import pytest

from eventdash.alerts.facts import minute_facts
from eventdash.alerts.log import AlertLog
from eventdash.alerts.rules import (
    DEAD_LETTER_RULE,
    EVENT_RULES,
    AlertSettings,
    Finding,
    MinuteFacts,
    evaluate_dead_letters,
    evaluate_minute,
    robust,
)
from eventdash.events.validation import InvalidEvent, parse_event
from eventdash.history import HistoryRecord, MinuteHistory
from eventdash.producer.scenarios import ScenarioPlayer, Scheduled
from eventdash.producer.simulator import ShopperSimulator
from eventdash.stats.partition_state import PartitionStats

T0 = 1_764_380_400_000  # a whole minute
START = 30  # scenarios start 30 minutes in, for 3 minutes


def play(minutes: int, rate: float, schedule=(), seed: int = 1, settings: AlertSettings | None = None):
    """[(minute from T0, "opened"/"resolved", rule, subject)] of ``minutes`` of event time at ``rate`` events/s."""
    settings = settings or AlertSettings()
    clock = [T0]
    simulator = ShopperSimulator(seed=seed, clock_ms=lambda: clock[0])
    player = ScenarioPlayer(schedule, seed=seed, clock_ms=lambda: clock[0])
    states = {p: PartitionStats(p) for p in range(3)}
    history = MinuteHistory(max_partitions=3)
    rejected: dict[int, int] = {}
    log = AlertLog()
    judged = T0 // 60_000
    changes = []
    normal = 0
    for record, extra in player.apply(simulator.events()):
        if not extra:
            normal += 1
            clock[0] = T0 + int(normal * 1000 / rate)
        if clock[0] >= T0 + minutes * 60_000:
            break
        minute = clock[0] // 60_000
        try:
            if isinstance(record, bytes):
                raise InvalidEvent("not_json", "a scenario's malformed record")
            event = parse_event(orjson.dumps(record), now_ms=clock[0] + 1000)
        except InvalidEvent:
            rejected[minute] = rejected.get(minute, 0) + 1
            continue
        state = states[sum(event.session_id.encode()) % 3]
        state.apply(event)
        for finished, counts in state.take_finished_minutes():
            history.add(HistoryRecord(state.partition, finished, counts), now_minute=minute)
        while judged < minute - 1:  # every complete minute, in order
            judged += 1
            snaps = {p: s.to_snapshot(next_offset=0, updated_at_ms=clock[0]) for p, s in states.items()}
            facts = minute_facts(snaps, history, first_minute=judged - settings.baseline_minutes, last_minute=judged)
            findings = evaluate_minute(facts, settings)
            spike = evaluate_dead_letters([rejected.get(m, 0) for m in range(judged - 30, judged + 1)], settings)
            for change in log.observe(judged * 60_000, findings + ([spike] if spike else []),
                                      rules=(*EVENT_RULES, DEAD_LETTER_RULE), resolve_after=settings.resolve_minutes):
                changes.append((judged - T0 // 60_000, change.kind, change.alert["rule"], change.alert["subject"]))
    return changes


@pytest.mark.parametrize("rate, seed", [(3, 1), (20, 2), (50, 3)])
def test_thirty_minutes_of_the_normal_stream_raise_no_alert(rate, seed):
    assert play(35, rate, seed=seed) == []


@pytest.mark.parametrize("scenario, rule, subject", [
    ("checkout-outage", "purchase_collapse", None),
    pytest.param("checkout-outage", "purchase_collapse", None, id="checkout-outage-at-3-events-a-second"),
    ("flash-sale", "traffic_spike", None),
    ("bot-storm", "single_session_dominance", None),
    ("price-glitch", "price_drop", "product"),
    ("dlq-flood", DEAD_LETTER_RULE, None),
])
def test_each_scenario_raises_its_alert_within_two_minutes_and_it_resolves_after(scenario, rule, subject, request):
    schedule = (Scheduled(scenario, START * 60_000, 3 * 60_000),)
    slow = "3-events" in request.node.callspec.id
    changes = play(40, 3 if slow else 20, schedule, seed=4)
    opened = [c for c in changes if c[1] == "opened" and c[2] == rule]
    resolved = [c for c in changes if c[1] == "resolved" and c[2] == rule]
    assert opened and START <= opened[0][0] <= START + 1, changes  # within two evaluation windows
    assert resolved and START + 3 <= resolved[0][0] <= START + 5, changes  # after the scenario ends
    assert all(c[0] >= START for c in changes), changes  # nothing before the scenario
    if scenario == "price-glitch":
        glitched = ScenarioPlayer(schedule, seed=4, clock_ms=lambda: T0).glitch_product
        assert opened[0][3] == f"product {glitched.name} ({glitched.product_id})"
    if scenario == "bot-storm":  # the conversion the bots drag down is not reported as its own alert
        assert "conversion_drop" not in {c[2] for c in changes}


def test_rules_wait_for_a_baseline_with_volume():
    quiet = [MinuteFacts(m, (5, 1, 0, 1), None) for m in range(40)]  # 7 events a minute: below min_volume
    assert evaluate_minute([*quiet, MinuteFacts(40, (500, 0, 0, 0), None)], AlertSettings()) == []
    short = [MinuteFacts(m, (100, 10, 0, 10), None) for m in range(5)]  # 5 minutes of history only
    assert evaluate_minute([*short, MinuteFacts(5, (100, 10, 0, 0), None)], AlertSettings()) == []
    busy = [MinuteFacts(m, (100, 10, 0, 10), None) for m in range(20)]
    found = evaluate_minute([*busy, MinuteFacts(20, (100, 10, 0, 0), None)], AlertSettings())
    assert [f.rule for f in found] == ["purchase_collapse"]
    assert evaluate_minute([*busy, MinuteFacts(20, (100, 10, 0, 0), None)],
                           AlertSettings(disabled=frozenset({"purchase_collapse"}))) == []


def test_robust_baseline_ignores_the_outliers_it_looks_for():
    median, scale = robust([10, 11, 9, 10, 500], floor=1.0)
    assert median == 10 and scale == pytest.approx(1.4826)


def test_the_log_opens_once_updates_and_resolves_after_quiet_judgements():
    log = AlertLog()
    finding = Finding("traffic_spike", None, "many")
    assert [c.kind for c in log.observe(60_000, [finding], rules=EVENT_RULES, resolve_after=2)] == ["opened"]
    assert log.observe(120_000, [finding._replace(summary="more")], rules=EVENT_RULES, resolve_after=2) == []
    assert log.view(120_000)["active"][0]["summary"] == "more"
    assert log.observe(180_000, [], rules=EVENT_RULES, resolve_after=2) == []  # quiet once
    changes = log.observe(240_000, [], rules=EVENT_RULES, resolve_after=2)
    assert [c.kind for c in changes] == ["resolved"] and changes[0].alert["resolved_ms"] == 240_000
    view = log.view(240_000)
    assert view["active"] == [] and view["recent"][0]["id"] == "traffic_spike@60000"
    assert log.view(240_000 + 25 * 3_600_000)["recent"] == []  # a day later
