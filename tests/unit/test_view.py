from __future__ import annotations

from eventdash.events.model import Event
from eventdash.stats.partition_state import PartitionStats
from eventdash.stats.view import build_view

T0 = 1_764_380_400_000  # …:00.000, a minute boundary
NOW = T0 + 300_000 + 500  # five minutes and half a second later


def ev(kind, ts, session, product="p1", qty=1, price_cents=1000, name=""):
    return Event(f"{kind}{ts}{session}{product}", kind, ts, session, "u", product, name, price_cents, qty)


def snapshots(partitions: dict[int, list[Event]]) -> dict[int, dict]:
    out = {}
    for number, events in partitions.items():
        stats = PartitionStats(number)
        for event in events:
            stats.apply(event)
        out[number] = stats.to_snapshot(next_offset=len(events), updated_at_ms=NOW - 100)
    return out


def test_merges_totals_across_partitions():
    view = build_view(snapshots({
        0: [ev("productview", T0, "a"), ev("purchase", T0 + 1, "a", qty=2, price_cents=1250)],
        1: [ev("productview", T0, "b"), ev("addtobasket", T0, "b")],
    }), now_ms=NOW)
    assert view["totals"] == {"productview": 2, "addtobasket": 1, "removefrombasket": 0, "purchase": 1}
    assert view["revenue_cents"] == 2500 and view["revenue"] == 25.0
    assert view["events_total"] == 4
    assert [p["next_offset"] for p in view["partitions"]] == [2, 2]


def test_rolling_windows_count_by_event_time():
    now_s = NOW // 1000
    events = [
        ev("productview", (now_s - 30) * 1000, "a"),    # in 1m, 5m, 15m
        ev("productview", (now_s - 59) * 1000, "a"),    # in 1m (oldest second of it)
        ev("productview", (now_s - 60) * 1000, "a"),    # just outside 1m
        ev("addtobasket", (now_s - 200) * 1000, "b"),   # in 5m, 15m
        ev("purchase", (now_s - 600) * 1000, "c"),      # in 15m only
    ]
    view = build_view(snapshots({0: events}), now_ms=NOW)
    assert view["windows"]["1m"]["counts"] == {"productview": 2, "addtobasket": 0, "removefrombasket": 0, "purchase": 0}
    assert view["windows"]["5m"]["events"] == 4
    assert view["windows"]["15m"]["events"] == 5
    assert view["windows"]["1m"]["events_per_second"] == round(2 / 60, 3)


def test_events_per_second_is_the_mean_of_the_last_ten_complete_seconds():
    now_s = NOW // 1000
    events = [ev("productview", (now_s - k) * 1000, f"s{k}-{i}") for k in range(1, 11) for i in range(3)]
    events += [ev("productview", now_s * 1000, "current")]  # the running second does not count
    events += [ev("purchase", (now_s - 11) * 1000, "old")]   # nor does the 11th second back
    view = build_view(snapshots({0: events}), now_ms=NOW)
    assert view["events_per_second"] == 3.0
    assert view["events_per_second_by_type"]["productview"] == 3.0


def test_funnel_counts_distinct_sessions_across_partitions():
    minute = NOW // 60_000 * 60_000
    view = build_view(snapshots({
        0: [ev("productview", minute, "a"), ev("productview", minute + 1, "a"), ev("addtobasket", minute + 2, "a"),
            ev("purchase", minute + 3, "a"), ev("productview", minute + 4, "b")],
        1: [ev("productview", minute, "c"), ev("addtobasket", minute + 1, "c"), ev("removefrombasket", minute + 2, "c"),
            ev("productview", minute + 3, "d")],
    }), now_ms=NOW)
    funnel = view["windows"]["1m"]["funnel"]
    assert (funnel["viewed"], funnel["added"], funnel["purchased"]) == (4, 2, 1)
    assert funnel["conversion_rate"] == 0.25
    assert funnel["view_to_basket_rate"] == 0.5
    assert funnel["basket_abandonment_rate"] == 0.5  # 1 remove per 2 adds


def test_top_products_rank_by_views_and_units_purchased():
    minute = NOW // 60_000 * 60_000
    events = ([ev("productview", minute, f"s{i}", "p1", name="Kettle") for i in range(3)]
              + [ev("productview", minute, f"t{i}", "p2", name="<img src=x onerror=alert(1)>") for i in range(5)]
              + [ev("purchase", minute, "u1", "p1", qty=4), ev("purchase", minute, "u2", "p2", qty=1)])
    view = build_view(snapshots({0: events}), now_ms=NOW, top_n=1)
    top = view["windows"]["5m"]["top_products"]
    assert top["views"] == [{"product_id": "p2", "name": "<img src=x onerror=alert(1)>", "count": 5}]
    assert top["purchases"] == [{"product_id": "p1", "name": "Kettle", "count": 4}]


def test_series_holds_one_count_per_second_and_type():
    now_s = NOW // 1000
    view = build_view(snapshots({0: [ev("addtobasket", (now_s - 1) * 1000, "a")]}), now_ms=NOW, series_seconds=5)
    assert view["series"]["start_s"] == now_s - 5
    assert view["series"]["by_type"]["addtobasket"] == [0, 0, 0, 0, 1]
    assert view["series"]["by_type"]["productview"] == [0, 0, 0, 0, 0]


def test_no_snapshots_gives_zeros_not_errors():
    view = build_view({}, now_ms=NOW)
    assert view["totals"] == {"productview": 0, "addtobasket": 0, "removefrombasket": 0, "purchase": 0}
    assert view["updated_at_ms"] is None and view["windows"]["1m"]["funnel"]["conversion_rate"] is None
