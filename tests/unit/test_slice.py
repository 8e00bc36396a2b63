"""Category and product slices, and the category list of a window (pure, from real partition states)."""
from __future__ import annotations

import pytest

from eventdash.events.model import Event
from eventdash.snapshots import MAX_CATEGORIES, OTHER_CATEGORY
from eventdash.stats.partition_state import PartitionStats
from eventdash.stats.slice import Filter, InvalidFilter, parse_filter, slice_window
from eventdash.stats.view import LISTED_CATEGORIES, build_view

T0 = 1_764_380_400_000  # a whole minute
NOW_MS = T0 + 4 * 60_000 + 30_000
CT = NOW_MS // 1000 - 1  # every second before now is complete


def ev(kind, ts, product="p-1", category="", qty=1, session="s"):
    return Event("e", kind, ts, session, "u", product, f"name {product}", 100, qty, category)


def states() -> dict[int, object]:
    a, b = PartitionStats(0), PartitionStats(1)
    for minute in range(5):
        ts = T0 + minute * 60_000
        a.apply(ev("productview", ts, "p-1", "Tea"))
        a.apply(ev("productview", ts + 1, "p-2", "Coffee"))
        a.apply(ev("addtobasket", ts + 2, "p-1", "Tea"))
        b.apply(ev("productview", ts, "p-1", "Tea"))
        b.apply(ev("purchase", ts + 3, "p-1", "Tea", qty=3))
        b.apply(ev("removefrombasket", ts + 4, "p-3", ""))
    return {p: s.to_snapshot(next_offset=1, updated_at_ms=NOW_MS) for p, s in ((0, a), (1, b))}


def test_a_category_slice_counts_its_events_per_minute_exactly():
    doc = slice_window(states(), now_ms=NOW_MS, label="5m", where=Filter(category="Tea"), complete_through_s=CT)
    assert doc["counts"] == {"productview": 10, "addtobasket": 5, "removefrombasket": 0, "purchase": 5}
    assert doc["series"]["by_type"]["productview"] == [0] + [2] * 5 and doc["series"]["step_s"] == 60
    assert doc["series"]["start_s"] == (T0 // 60_000 - 1) * 60  # one minute before the window, to draw
    assert doc["events_per_second"] == round(20 / 270, 3)  # over the 4.5 minutes the window's minutes cover
    assert doc["funnel"]["basis"] == "events" and doc["funnel"]["conversion_rate"] == 0.5
    assert [row["product_id"] for row in doc["top_products"]["views"]] == ["p-1"]  # p-2 is Coffee
    assert doc["top_products"]["purchases"] == [{"product_id": "p-1", "name": "name p-1", "count": 15}]
    one = slice_window(states(), now_ms=NOW_MS, label="1m", where=Filter(category="Tea"), complete_through_s=CT)
    assert one["counts"]["productview"] == 2
    none = slice_window(states(), now_ms=NOW_MS, label="5m", where=Filter(category=""), complete_through_s=CT)
    assert none["counts"]["removefrombasket"] == 5 and none["events"] == 5
    tea_one = slice_window(states(), now_ms=NOW_MS, label="1m", where=Filter(category="Tea"), complete_through_s=CT)
    assert tea_one["series"]["by_type"]["productview"] == [2, 2]  # the minute before too: a complete one to draw


def test_a_product_slice_has_its_views_and_units():
    doc = slice_window(states(), now_ms=NOW_MS, label="15m", where=Filter(product="p-1"), complete_through_s=CT)
    assert doc["counts"] == {"productview": 10, "purchase_units": 15}
    assert doc["filter"] == {"product": "p-1", "name": "name p-1"}
    assert len(doc["series"]["by_type"]["purchase"]) == 16


def test_the_window_lists_categories_most_first_and_bounded():
    view = build_view(states(), now_ms=NOW_MS)
    listed = view["windows"]["5m"]["categories"]
    assert [row["category"] for row in listed] == ["Tea", "", "Coffee"]
    assert listed[0]["events"] == 20
    many = PartitionStats(0)
    for i in range(MAX_CATEGORIES + 10):  # past the per-minute cap: the rest count as (other)
        many.apply(ev("productview", T0 + 4 * 60_000 + i, category=f"c-{i:02d}"))
    minute = next(iter(many.minutes.values()))
    assert len(minute.categories) == MAX_CATEGORIES + 1 and minute.categories[OTHER_CATEGORY] == [10, 0, 0, 0]
    snaps = {0: many.to_snapshot(next_offset=1, updated_at_ms=NOW_MS),
             1: PartitionStats(1).to_snapshot(next_offset=0, updated_at_ms=NOW_MS)}
    listed = build_view(snaps, now_ms=NOW_MS)["windows"]["1m"]["categories"]
    assert len(listed) == MAX_CATEGORIES + 1 <= LISTED_CATEGORIES
    assert sum(row["events"] for row in listed) == MAX_CATEGORIES + 10
    assert listed[-1] == {"category": OTHER_CATEGORY, "events": 10, "sliceable": False}


def test_a_listing_longer_than_its_bound_sums_the_rest_with_the_overflow():
    states_ = {}
    for p in range(3):  # three partitions with 16 categories each, 48 in all: past the 24 listed
        state = PartitionStats(p)
        for i in range(MAX_CATEGORIES + 2):
            for _ in range(i + 1):
                state.apply(ev("productview", T0 + 4 * 60_000 + i, category=f"c{p}-{i:02d}"))
        states_[p] = state.to_snapshot(next_offset=1, updated_at_ms=NOW_MS)
    listed = build_view(states_, now_ms=NOW_MS)["windows"]["1m"]["categories"]
    assert len(listed) == LISTED_CATEGORIES and listed[-1]["category"] == OTHER_CATEGORY
    total = 3 * sum(i + 1 for i in range(MAX_CATEGORIES + 2))
    assert sum(row["events"] for row in listed) == total  # nothing lost, (other) included once


def test_the_uncategorized_slice_lists_its_products():
    doc = slice_window(states(), now_ms=NOW_MS, label="5m", where=Filter(category=""), complete_through_s=CT)
    assert doc["counts"]["removefrombasket"] == 5  # p-3 has no category and was only removed: no top list
    state = PartitionStats(0)
    state.apply(ev("productview", T0 + 4 * 60_000, "p-9", ""))
    doc = slice_window({0: state.to_snapshot(next_offset=1, updated_at_ms=NOW_MS)}, now_ms=NOW_MS, label="1m",
                       where=Filter(category=""), complete_through_s=CT)
    assert [row["product_id"] for row in doc["top_products"]["views"]] == ["p-9"]


def test_an_event_may_not_name_the_overflow_category():
    from eventdash.events.validation import InvalidEvent, parse_event
    with pytest.raises(InvalidEvent, match="category"):
        parse_event(b'{"event_id": "e", "type": "productview", "ts": 1, "session_id": "s", "user_id": "u", '
                    b'"product_id": "p", "price": 1, "quantity": 1, "category": "(other)"}', now_ms=10)


@pytest.mark.parametrize("category, product", [("Tea", "p-1"), ("x" * 33, None), ("caf\u00e9", None),
                                               (None, ""), (None, "p\n1")])
def test_unusable_filters_are_refused(category, product):
    with pytest.raises(InvalidFilter):
        parse_filter(category, product)


def test_filters():
    assert parse_filter(None, None) is None
    assert parse_filter("Tea", None) == Filter(category="Tea")
    assert parse_filter("", None) == Filter(category="")
    assert parse_filter(None, "p-1") == Filter(product="p-1")
