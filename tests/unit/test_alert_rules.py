"""Detection on accelerated event time: the real simulator and scenario player on a synthetic clock,
aggregated by the real partition state, judged minute by minute as a dashboard does."""
from __future__ import annotations

import random

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
    MinuteJudge,
    binomial_log10_lower,
    evaluate_dead_letters,
    evaluate_minute,
    poisson_log10_tail,
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
    """[(minute from T0, "opened"/"resolved", rule, subject)] of ``minutes`` of event time at ``rate`` events/s,
    arriving at random (exponential gaps): minutes hold Poisson-like counts, not the same number each."""
    settings = settings or AlertSettings()
    judge = MinuteJudge(settings)
    gaps = random.Random(f"gaps-{seed}")
    clock = [T0]
    simulator = ShopperSimulator(seed=seed, clock_ms=lambda: clock[0])
    player = ScenarioPlayer(schedule, seed=seed, clock_ms=lambda: clock[0])
    states = {p: PartitionStats(p) for p in range(3)}
    history = MinuteHistory(max_partitions=3)
    rejected: dict[int, int] = {}
    log = AlertLog()
    judged = T0 // 60_000
    changes = []
    flooded: set[int] = set()
    normal = 0
    for record, extra in player.apply(simulator.events()):
        if not extra:
            normal += 1
            clock[0] += max(1, round(gaps.expovariate(rate / 1000)))
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
            facts = minute_facts(snaps, history, first_minute=judged - judge.lookback(), last_minute=judged)
            findings = judge.judge(facts)
            spike = evaluate_dead_letters([rejected.get(m, 0) for m in range(judged - 30, judged + 1)
                                           if m == judged or m not in flooded], settings)
            if spike:
                flooded.add(judged)
            for change in log.observe(judged * 60_000, findings + ([spike] if spike else []),
                                      rules=(*EVENT_RULES, DEAD_LETTER_RULE), resolve_after=settings.resolve_minutes,
                                      now_ms=clock[0]):
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
    assert evaluate_minute(quiet, MinuteFacts(40, (500, 0, 0, 0), None), AlertSettings()) == []
    short = [MinuteFacts(m, (100, 10, 0, 10), None) for m in range(5)]  # 5 minutes of history only
    assert evaluate_minute(short, MinuteFacts(5, (100, 10, 0, 0), None), AlertSettings()) == []
    busy = [MinuteFacts(m, (100, 10, 0, 10), None) for m in range(20)]
    found = evaluate_minute(busy, MinuteFacts(20, (100, 10, 0, 0), None), AlertSettings())
    assert [f.rule for f in found] == ["purchase_collapse"]
    assert evaluate_minute(busy, MinuteFacts(20, (100, 10, 0, 0), None),
                           AlertSettings(disabled=frozenset({"purchase_collapse"}))) == []


def test_one_empty_minute_at_night_is_no_conversion_drop():
    night = [MinuteFacts(m, (38, 3, 0, 1 if m % 3 else 2), None) for m in range(30)]  # about one purchase a minute
    assert evaluate_minute(night, MinuteFacts(30, (38, 3, 0, 0), None), AlertSettings()) == []


def test_the_tails_are_exact_far_out_and_cheap_for_any_count():
    import time
    assert poisson_log10_tail(1000, 625, upper=True) < -40  # about 1e-40, not 1 - (1 - 1e-40) = 1e-13
    assert poisson_log10_tail(0, 15, upper=False) == pytest.approx(-15 / 2.302585, rel=1e-6)
    assert poisson_log10_tail(500, 625, upper=True) == 0.0  # the mean's side: no evidence
    assert binomial_log10_lower(0, 38, 1 / 38) > -1  # one missing purchase is no news
    started = time.perf_counter()
    assert poisson_log10_tail(2**53 - 1, 10.0, upper=True) < -1e15  # a hostile count: no loop over it
    assert poisson_log10_tail(1_800_000, 1_200_000, upper=True) < -1000
    assert time.perf_counter() - started < 0.05


def test_a_long_incident_stays_open_until_the_shop_is_back():
    schedule = (Scheduled("checkout-outage", START * 60_000, 20 * 60_000),)
    changes = play(55, 20, schedule, seed=4)
    assert [(m, kind, rule) for m, kind, rule, _ in changes] == [
        (START, "opened", "purchase_collapse"), (START + 21, "resolved", "purchase_collapse")]


def test_a_shop_wide_drop_names_no_product():
    from eventdash.alerts.rules import Detail
    def detail(scale):
        units = {"p-1": 60 * scale, "p-2": 30 * scale, "p-3": 10 * scale}
        return Detail(100, {"p-1": 600, "p-2": 300, "p-3": 100}, units, {k: v * 100 for k, v in units.items()},
                      {"Coffee": (600, 0, 0, 60 * scale), "Tea": (400, 0, 0, 40 * scale)}, {})
    base = [MinuteFacts(m, (1000, 100, 0, 100), detail(1)) for m in range(30)]
    found = evaluate_minute(base, MinuteFacts(30, (1000, 100, 0, 0), detail(0)), AlertSettings())
    assert [(f.rule, f.subject) for f in found] == [("purchase_collapse", None)]


def test_robust_baseline_ignores_the_outliers_it_looks_for():
    median, scale = robust([10, 11, 9, 10, 500], floor=1.0)
    assert median == 10 and scale == pytest.approx(1.4826)


def test_the_log_opens_once_updates_and_resolves_after_quiet_judgements():
    log = AlertLog()
    finding = Finding("traffic_spike", None, "many")
    wall = 10**12  # the clock: far from the event time judged
    assert [c.kind for c in log.observe(60_000, [finding], rules=EVENT_RULES, resolve_after=2, now_ms=wall)] == [
        "opened"]
    assert log.observe(120_000, [finding._replace(summary="more")], rules=EVENT_RULES, resolve_after=2,
                       now_ms=wall) == []
    assert log.view(wall)["active"][0]["summary"] == "more"
    assert log.observe(180_000, [], rules=EVENT_RULES, resolve_after=2, now_ms=wall) == []  # quiet once
    changes = log.observe(240_000, [], rules=EVENT_RULES, resolve_after=2, now_ms=wall)
    assert [c.kind for c in changes] == ["resolved"] and changes[0].alert["resolved_ms"] == 240_000
    assert changes[0].alert["ended_ms"] == 180_000  # the end of the last minute that fired: the chart's mark
    view = log.view(wall)
    assert view["active"] == [] and view["recent"][0]["id"] == "traffic_spike@60000"  # kept by the clock
    assert log.view(wall + 25 * 3_600_000)["recent"] == []  # a day later


def test_price_drops_are_one_alert_per_product():
    log = AlertLog()
    one = Finding("price_drop", "product A (p-1)", "cheap", key="p-1")
    two = Finding("price_drop", "product B (p-2)", "cheap", key="p-2")
    opened = log.observe(0, [one], rules=EVENT_RULES, resolve_after=2, now_ms=0)
    opened += log.observe(60_000, [one, two], rules=EVENT_RULES, resolve_after=2, now_ms=0)
    assert [(c.kind, c.alert["key"]) for c in opened] == [("opened", "p-1"), ("opened", "p-2")]
