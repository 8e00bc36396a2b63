"""Delta updates: applying ``make_delta(old, new)`` to ``old`` gives ``new`` exactly, for any documents."""
from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventdash.dashboard.delta import DeltaFollower, apply_delta, make_delta, series_by_second
from eventdash.snapshots import Snapshot, TypeTotal, minute_counts_of
from eventdash.stats.view import build_view

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False),
                    st.text(max_size=5))
keys = st.sampled_from(["a", "b", "c", "totals", "0"])
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)), max_leaves=20)
documents = st.dictionaries(keys, json_values, max_size=5)


def series(start: int, rows: list[list[int]]) -> dict:
    return {"start_s": start, "step_s": 1,
            "by_type": {t: [r[i] for r in rows] for i, t in
                        enumerate(("productview", "addtobasket", "removefrombasket", "purchase"))}}


series_strategy = st.builds(series, st.integers(1000, 1010),
                            st.lists(st.lists(st.integers(0, 3), min_size=4, max_size=4), min_size=1, max_size=8))


def wire(value):
    return orjson.loads(orjson.dumps(value))  # what a client receives


@settings(max_examples=400, deadline=None)
@given(documents, documents, series_strategy, series_strategy)
def test_applying_the_delta_gives_the_new_document(old, new, old_series, new_series):
    old = {**old, "series": old_series, "seq": 1}
    new = {**new, "series": new_series, "seq": 2}
    delta = wire(make_delta(old, new, seq=2, base=1))
    history = series_by_second(old_series)
    client = apply_delta(wire(old), delta)
    for second, *counts in delta["series"]:
        history[second] = counts
    assert {k: v for k, v in client.items() if k != "series"} == wire({k: v for k, v in new.items() if k != "series"})
    # every second of the new series reads the same from the client's history (absent = zeros)
    for second, counts in series_by_second(new_series).items():
        assert history.get(second, [0, 0, 0, 0]) == counts


def test_types_that_compare_equal_in_python_still_change():
    old, new = {"seq": 1, "a": 1, "b": True, "c": [1]}, {"seq": 2, "a": 1.0, "b": 1, "c": [True]}
    assert wire(make_delta(old, new, seq=2, base=1))["patch"] == {"a": 1.0, "b": 1, "c": [[True]]}


def test_null_is_a_value_and_an_empty_list_a_deletion():
    old, new = {"seq": 1, "a": 5, "b": 1, "c": {"x": 1}}, {"seq": 2, "a": None, "c": {"x": 1, "y": []}}
    delta = wire(make_delta(old, new, seq=2, base=1))
    assert delta["patch"] == {"a": None, "b": [], "c": {"y": [[]]}}
    assert apply_delta(wire(old), delta) == {**new, "seq": 2}


def test_a_delta_on_another_base_is_refused():
    with pytest.raises(ValueError, match="based on 4"):
        apply_delta({"seq": 3}, {"seq": 5, "base": 4, "set": [], "del": [], "series": []})


def snapshot(seconds: dict[int, int]) -> Snapshot:
    count, last = sum(seconds.values()), max(seconds)
    return Snapshot(partition=0, next_offset=count, updated_at_ms=last * 1000, watermark_ms=last * 1000,
                    horizon_seconds=900, totals={t: TypeTotal(count, count, 0) for t in
                                                 ("productview", "addtobasket", "removefrombasket", "purchase")},
                    invalid={}, late_total=0, seconds={s: (n, 0, 0, 0) for s, n in seconds.items()}, minutes={},
                    product_names={}, product_categories={},
                    minute_counts=minute_counts_of({s: (n, 0, 0, 0) for s, n in seconds.items()}),
                    finished_through_minute=-1)


def test_real_documents_one_second_apart_shrink_to_a_small_delta():
    now_s = 1_764_380_400
    old = {**build_view({0: snapshot({now_s - 1: 5})}, now_ms=now_s * 1000, series_seconds=60), "seq": 1}
    new = {**build_view({0: snapshot({now_s - 1: 5, now_s: 7})}, now_ms=now_s * 1000 + 1000, series_seconds=60),
           "seq": 2}
    delta = wire(make_delta(old, new, seq=2, base=1))
    assert apply_delta(wire(copy.deepcopy(old)), delta)["totals"] == new["totals"]
    assert delta["series"] == [[now_s, 7, 0, 0, 0]]
    assert len(orjson.dumps(delta)) < len(orjson.dumps(new)) / 2


def test_a_follower_keeps_its_history_bounded_and_asks_for_a_resync_when_it_missed_a_delta():
    follower = DeltaFollower(history_seconds=60)
    follower.on_full({"seq": 1, "totals": {"purchase": 1}, "series": series(1000, [[1, 0, 0, 0]] * 200)})
    assert min(follower.history) == 1199 - 60 and len(follower.history) == 61
    assert follower.on_delta({"seq": 2, "base": 1, "patch": {"totals": {"purchase": 2}},
                              "series": [[1300, 5, 0, 0, 0]]})
    assert follower.doc["totals"] == {"purchase": 2} and follower.seq == 2
    assert follower.history == {1300: [5, 0, 0, 0]}  # everything 60 s before the newest second is gone
    assert not follower.on_delta({"seq": 4, "base": 3, "patch": {}, "series": []})  # missed 3: resync
    assert follower.seq == 2
