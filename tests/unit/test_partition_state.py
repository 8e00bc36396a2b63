from __future__ import annotations

from eventdash.events.model import Event
from eventdash.snapshots import decode, encode
from eventdash.stats.partition_state import PartitionStats

T0 = 1_764_380_400_000  # a whole minute (…:00.000)


def ev(kind: str, ts: int, session: str = "s1", product: str = "p1", price_cents: int = 1000, qty: int = 1,
       name: str = "") -> Event:
    return Event(f"{kind}-{ts}-{session}", kind, ts, session, "u1", product, name, price_cents, qty)


def test_totals_units_and_revenue():
    stats = PartitionStats(0)
    for event in [ev("productview", T0), ev("addtobasket", T0 + 1, qty=3), ev("purchase", T0 + 2, qty=3),
                  ev("purchase", T0 + 3, price_cents=250, qty=2), ev("removefrombasket", T0 + 4)]:
        stats.apply(event)
    assert stats.totals == {"productview": [1, 1, 0], "addtobasket": [1, 3, 0],
                            "removefrombasket": [1, 1, 0], "purchase": [2, 5, 3 * 1000 + 2 * 250]}


def test_per_second_buckets_by_event_time():
    stats = PartitionStats(0)
    for offset_ms, kind in [(0, "productview"), (999, "productview"), (1000, "purchase"), (2500, "addtobasket")]:
        stats.apply(ev(kind, T0 + offset_ms))
    second = T0 // 1000
    assert stats.seconds == {second: [2, 0, 0, 0], second + 1: [0, 0, 0, 1], second + 2: [0, 1, 0, 0]}


def test_events_older_than_the_horizon_are_late_but_counted_in_totals():
    stats = PartitionStats(0, horizon_seconds=60)
    stats.apply(ev("productview", T0 + 120_000))
    stats.apply(ev("productview", T0 + 59_000))  # 61 s before the watermark: late
    stats.apply(ev("productview", T0 + 61_000))  # 59 s before: in the window
    assert stats.totals["productview"][0] == 3
    assert stats.late_total == 1
    assert sum(c[0] for c in stats.seconds.values()) == 2


def test_buckets_beyond_the_horizon_are_evicted():
    stats = PartitionStats(0, horizon_seconds=60)
    stats.apply(ev("productview", T0))
    stats.apply(ev("productview", T0 + 30_000))
    stats.apply(ev("productview", T0 + 75_000))  # oldest kept second: T0+16 s
    assert sorted(stats.seconds) == [T0 // 1000 + 30, T0 // 1000 + 75]
    assert sorted(stats.minutes) == [T0 // 60_000, T0 // 60_000 + 1]


def test_invalid_counts_by_reason():
    stats = PartitionStats(0)
    for reason in ["not_json", "not_json", "unknown_type"]:
        stats.record_invalid(reason)
    assert stats.invalid == {"not_json": 2, "unknown_type": 1}


def test_product_candidates_stay_bounded():
    stats = PartitionStats(0, max_product_candidates=10)
    for i in range(100):
        stats.apply(ev("productview", T0 + i, product=f"p{i}"))
    assert len(stats.minutes[T0 // 60_000].views) <= 10


def test_snapshot_round_trip_preserves_everything():
    stats = PartitionStats(3, horizon_seconds=900)
    for i, kind in enumerate(["productview", "addtobasket", "purchase", "productview", "removefrombasket"]):
        stats.apply(ev(kind, T0 + i * 1500, session=f"s{i % 2}", product=f"p{i % 3}", name=f"Product {i % 3}"))
    stats.record_invalid("not_json")
    snapshot = stats.to_snapshot(next_offset=42, updated_at_ms=T0 + 10_000)
    decoded = decode(encode(snapshot), partition=3)
    assert decoded == snapshot
    restored = PartitionStats.from_snapshot(decoded)
    assert restored.to_snapshot(next_offset=42, updated_at_ms=T0 + 10_000) == snapshot
    assert snapshot.next_offset == 42 and snapshot.partition == 3
    # and it keeps counting from there
    restored.apply(ev("purchase", T0 + 9000, qty=2))
    assert restored.totals["purchase"] == [2, 3, 3000]


def test_minute_counts_keep_the_boundary_minute_whole_and_finish_each_minute_once():
    stats = PartitionStats(0, horizon_seconds=60)
    stats.apply(ev("productview", T0 + 10_000))  # minute 0, second 10
    stats.apply(ev("purchase", T0 + 50_000))  # minute 0, second 50
    stats.apply(ev("productview", T0 + 65_000))  # minute 1: the horizon now starts at second 6
    minute0 = T0 // 60_000
    assert stats.minute_counts == {minute0: [1, 0, 0, 1], minute0 + 1: [1, 0, 0, 0]}
    stats.apply(ev("addtobasket", T0 + 100_000))  # the horizon starts at second 41: second 10 is gone
    assert min(stats.seconds) == T0 // 1000 + 50
    assert stats.minute_counts[minute0] == [1, 0, 0, 1]  # whole, though its first seconds left
    assert stats.take_finished_minutes() == []
    stats.apply(ev("productview", T0 + 121_000))  # horizon from second 62: minute 0 has left entirely
    assert stats.take_finished_minutes() == [(minute0, (1, 0, 0, 1))]
    assert stats.take_finished_minutes() == []
    assert sorted(stats.minute_counts) == [minute0 + 1, minute0 + 2]


def test_a_v2_snapshot_restores_its_minute_counts_from_its_seconds():
    import orjson
    stats = PartitionStats(0)
    for i in range(5):
        stats.apply(ev("productview", T0 + i * 20_000))
    doc = orjson.loads(encode(stats.to_snapshot(next_offset=5, updated_at_ms=T0)))
    doc["v"] = 2
    del doc["minute_counts"]
    restored = PartitionStats.from_snapshot(decode(orjson.dumps(doc), partition=0))
    assert restored.minute_counts == stats.minute_counts == {T0 // 60_000: [3, 0, 0, 0], T0 // 60_000 + 1: [2, 0, 0, 0]}
