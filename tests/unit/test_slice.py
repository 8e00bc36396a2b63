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
    doc = slice_window(states(), now_ms=NOW_MS, label="5m", where=Filter(category="Tea"))
    assert doc["counts"] == {"productview": 10, "addtobasket": 5, "removefrombasket": 0, "purchase": 5}
    assert doc["series"]["by_type"]["productview"] == [2] * 5 and doc["series"]["step_s"] == 60
    assert doc["funnel"]["basis"] == "events" and doc["funnel"]["conversion_rate"] == 0.5
    assert [row["product_id"] for row in doc["top_products"]["views"]] == ["p-1"]  # p-2 is Coffee
    assert doc["top_products"]["purchases"] == [{"product_id": "p-1", "name": "name p-1", "count": 15}]
    one = slice_window(states(), now_ms=NOW_MS, label="1m", where=Filter(category="Tea"))
    assert one["counts"]["productview"] == 2
    none = slice_window(states(), now_ms=NOW_MS, label="5m", where=Filter(category=""))
    assert none["counts"]["removefrombasket"] == 5 and none["events"] == 5


def test_a_product_slice_has_its_views_and_units():
    doc = slice_window(states(), now_ms=NOW_MS, label="15m", where=Filter(product="p-1"))
    assert doc["counts"] == {"productview": 10, "purchase_units": 15}
    assert doc["filter"] == {"product": "p-1", "name": "name p-1"}
    assert len(doc["series"]["by_type"]["purchase"]) == 15


def test_the_window_lists_categories_most_first_and_bounded():
    view = build_view(states(), now_ms=NOW_MS)
    listed = view["windows"]["5m"]["categories"]
    assert [row["category"] for row in listed] == ["Tea", "", "Coffee"]
    assert listed[0]["events"] == 20 and listed[0]["counts"]["purchase"] == 5
    many = PartitionStats(0)
    for i in range(MAX_CATEGORIES + 10):  # past the per-minute cap: the rest count as (other)
        many.apply(ev("productview", T0 + 4 * 60_000 + i, category=f"c-{i:02d}"))
    minute = next(iter(many.minutes.values()))
    assert len(minute.categories) == MAX_CATEGORIES + 1 and minute.categories[OTHER_CATEGORY] == [10, 0, 0, 0]
    snaps = {0: many.to_snapshot(next_offset=1, updated_at_ms=NOW_MS),
             1: PartitionStats(1).to_snapshot(next_offset=0, updated_at_ms=NOW_MS)}
    listed = build_view(snaps, now_ms=NOW_MS)["windows"]["1m"]["categories"]
    assert len(listed) <= LISTED_CATEGORIES
    assert sum(row["events"] for row in listed) == MAX_CATEGORIES + 10


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
