"""Scenarios played on top of the simulated stream: each does what it says, only while it runs,
the same way for the same seed, and leaves the normal stream's own events as they were."""
from __future__ import annotations

from collections import Counter

import orjson
import pytest

from eventdash.config import ConfigError, Settings
from eventdash.events.model import ADDTOBASKET, PRODUCTVIEW, PURCHASE
from eventdash.events.validation import InvalidEvent, parse_event
from eventdash.producer.scenarios import SCENARIOS, ScenarioPlayer, Scheduled, parse_duration_ms, parse_schedule
from eventdash.producer.simulator import ShopperSimulator

START = 1_800_000_000_000
MS_PER_EVENT = 10  # event time advances 10 ms per simulated event: 6,000 events a minute


def play(schedule, events=12_000, seed=7):
    """(elapsed ms, record) for ``events`` simulated events with ``schedule`` applied."""
    now = [START]

    def clock():
        return now[0]

    simulator = ShopperSimulator(seed=seed, clock_ms=clock)
    player = ScenarioPlayer(schedule, seed=seed, clock_ms=clock)

    def stream():
        for event in simulator.events():
            yield event
            now[0] += MS_PER_EVENT

    out = []
    for record, extra in player.apply(stream()):
        assert extra == (not isinstance(record, dict) or record["session_id"].startswith(("s-sale", "s-bot")))
        out.append((now[0] - START, record))
        if len(out) >= events:
            break
    return player, out


def during(records, start_ms, end_ms):
    return [r for at, r in records if start_ms <= at < end_ms]


WINDOW = Scheduled("x", 30_000, 60_000)  # from 30 s to 90 s


def scheduled(name):
    return (Scheduled(name, WINDOW.start_ms, WINDOW.duration_ms),)


def types(records):
    return Counter(r["type"] for r in records if isinstance(r, dict))


def test_checkout_outage_stops_purchases_only_while_it_runs():
    _, records = play(scheduled("checkout-outage"))
    inside, before = during(records, 31_000, 89_000), during(records, 0, 29_000)
    assert types(inside)[PURCHASE] == 0
    assert types(inside)[PRODUCTVIEW] > 1000 and types(inside)[ADDTOBASKET] > 100
    assert types(before)[PURCHASE] > 50 and types(during(records, 91_000, 120_000))[PURCHASE] > 50


def test_flash_sale_shoppers_view_add_and_buy_in_sessions_of_their_own():
    player, records = play(scheduled("flash-sale"))
    sale = [r for r in during(records, 30_000, 90_000) if r["session_id"].startswith("s-sale")]
    by_session: dict[str, list[str]] = {}
    for r in sale:
        by_session.setdefault(r["session_id"], []).append(r["type"])
    for kinds in by_session.values():  # a view first; a purchase only after an add
        assert kinds[0] == PRODUCTVIEW and (PURCHASE not in kinds or ADDTOBASKET in kinds)
    purchases = sum(kinds.count(PURCHASE) for kinds in by_session.values())
    assert 0.1 < purchases / len(sale) < 0.3


def test_flash_sale_multiplies_views_and_purchases_of_three_products():
    player, records = play(scheduled("flash-sale"))
    sale = {p.product_id for p in player.sale_products}
    assert len(sale) == 3

    def per_minute(window, kind):
        return sum(1 for r in window if isinstance(r, dict) and r["type"] == kind and r["product_id"] in sale)

    inside, before = during(records, 30_000, 90_000), during(records, 0, 30_000)
    for kind in (PRODUCTVIEW, PURCHASE):
        assert per_minute(inside, kind) >= 5 * max(1, per_minute(before, kind) * 2), kind  # per minute: x5+


def test_bot_storm_is_a_few_sessions_viewing_without_baskets():
    player, records = play(scheduled("bot-storm"))
    inside = [r for r in during(records, 30_000, 90_000) if isinstance(r, dict)]
    by_session = Counter(r["session_id"] for r in inside if r["type"] == PRODUCTVIEW)
    bots = set(player.bot_sessions)
    assert len(bots) == 5
    assert sum(n for s, n in by_session.items() if s in bots) > 0.6 * sum(by_session.values())
    assert not [r for r in inside if r["session_id"] in bots and r["type"] != PRODUCTVIEW]
    assert not [r for r in during(records, 0, 30_000) if isinstance(r, dict) and r["session_id"] in bots]


def test_price_glitch_sells_one_product_at_a_hundredth_of_its_price():
    player, records = play(scheduled("price-glitch"))
    glitch = player.glitch_product
    def of_glitch(window):
        return [r for r in window if isinstance(r, dict) and r["product_id"] == glitch.product_id]

    inside = of_glitch(during(records, 30_000, 90_000))
    assert inside and all(r["price"] == round(glitch.price * 0.01, 2) for r in inside)
    assert any(r["type"] == PURCHASE for r in inside)
    after = of_glitch(during(records, 90_000, 120_000))
    assert after and all(r["price"] == glitch.price for r in after)


def test_dlq_flood_adds_malformed_records_the_aggregator_rejects():
    _, records = play(scheduled("dlq-flood"))
    inside = during(records, 30_000, 90_000)
    malformed = [r for r in inside if isinstance(r, bytes)]
    assert len(malformed) > 0.3 * len(inside)
    for raw in malformed:
        with pytest.raises(InvalidEvent):
            parse_event(raw, now_ms=START)
    assert not [r for r in during(records, 0, 30_000) if isinstance(r, bytes)]


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_event_a_scenario_makes_is_valid_and_the_same_seed_plays_the_same(name):
    _, first = play(scheduled(name), events=9_000)
    _, again = play(scheduled(name), events=9_000)
    assert first == again
    for at, record in first:
        if isinstance(record, dict):
            parse_event(orjson.dumps(record), now_ms=START + at + 1)  # raises if the aggregator would reject it


def test_without_a_scenario_the_stream_is_the_simulators_own():
    _, plain = play(())
    _, other = play((Scheduled("checkout-outage", 10**9, 1000),))  # scheduled far later: nothing yet
    assert [r for _, r in plain] == [r for _, r in other]


def test_schedules_parse_or_fail_naming_the_variable():
    assert parse_schedule("checkout-outage@5m+2m, flash-sale@90s+30s") == (
        Scheduled("checkout-outage", 300_000, 120_000), Scheduled("flash-sale", 90_000, 30_000))
    assert parse_schedule("") == ()
    assert parse_duration_ms("500ms", "x") == 500 and parse_duration_ms("2", "x") == 2000
    for bad in ("checkout-outage", "refund@1m+1m", "flash-sale@soon+1m", "flash-sale@1m", "bot-storm@1m+8d"):
        with pytest.raises(ConfigError, match="EVENTDASH_SCENARIOS"):
            parse_schedule(bad)
    with pytest.raises(ConfigError, match="EVENTDASH_SCENARIOS"):
        Settings.from_env({"EVENTDASH_SCENARIOS": "checkout-outage@tomorrow+1m"})
