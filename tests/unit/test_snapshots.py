"""The snapshot wire format: validation of untrusted records, the key, round trips and the size bound."""
from __future__ import annotations

import base64
import random
import time
import zlib

import orjson
import pytest

from eventdash import snapshots
from eventdash.consumer.dead_letters import INTERNAL_ERROR
from eventdash.events.model import MAX_PRODUCT_ID_CHARS, MAX_PRODUCT_NAME_CHARS, Event
from eventdash.events.validation import InvalidReason
from eventdash.snapshots import (
    FUNNEL_MINUTES,
    MAX_HORIZON_SECONDS,
    MAX_SNAPSHOT_BYTES,
    PRODUCER_MAX_MESSAGE_BYTES,
    PRODUCT_CANDIDATES,
    InvalidSnapshot,
    decode,
    encode,
    key_partition,
    worst_case_bytes,
)
from eventdash.stats.hll import REGISTERS
from eventdash.stats.partition_state import PartitionStats

T0 = 1_764_380_400_000  # a whole minute
BIG = 2**63 - 1  # the largest total a snapshot may hold
WINDOW_BIG = snapshots.MAX_WINDOW_COUNT  # the largest per-second or per-minute count


def ev(kind: str, ts: int, session: str = "s1", product: str = "p1", price_cents: int = 1000, qty: int = 1,
       name: str = "") -> Event:
    return Event(f"{kind}-{ts}-{session}", kind, ts, session, "u1", product, name, price_cents, qty)


def sample_state(partition: int = 3) -> PartitionStats:
    stats = PartitionStats(partition)
    for i, kind in enumerate(["productview", "addtobasket", "purchase", "productview", "removefrombasket"] * 4):
        stats.apply(ev(kind, T0 + i * 700, session=f"s{i % 3}", product=f"p-{i % 4}", name=f"Product {i % 4}",
                       qty=1 + i % 2))
    stats.record_invalid("not_json")
    return stats


def sample_doc(partition: int = 3) -> dict:
    """A valid encoded snapshot as a JSON document, to be corrupted by a test."""
    return orjson.loads(encode(sample_state(partition).to_snapshot(next_offset=42, updated_at_ms=T0 + 60_000)))


def sketch_text(registers: bytes) -> str:
    return base64.b64encode(zlib.compress(registers, 9)).decode()


def rejected(raw: bytes | None, partition: int = 3) -> InvalidSnapshot:
    with pytest.raises(InvalidSnapshot) as raised:
        decode(raw, partition=partition)
    return raised.value


def rejected_doc(doc: object, partition: int = 3) -> InvalidSnapshot:
    return rejected(orjson.dumps(doc), partition)


# -- decode: what it rejects -------------------------------------------------------------------------

@pytest.mark.parametrize("raw, reason", [
    (None, "empty"),
    (b"", "not_json"),
    (b"{not json", "not_json"),
    (b"\xff\xfe", "not_json"),
    (b"[1, 2, 3]", "not_json"),
    (b'"a string"', "not_json"),
    (b"42", "not_json"),
    (b'{"v": 2}', "wrong_partition"),
    (b'{"partition": 5}', "unsupported_version"),
    (b'{"v": 4, "partition": 3}', "unsupported_version"),
    (b'{"v": "2", "partition": 3}', "unsupported_version"),
    (b'{"v": null, "partition": 3}', "unsupported_version"),
    (b"x" * (PRODUCER_MAX_MESSAGE_BYTES + 1), "too_large"),
])
def test_decode_rejects_records_that_are_no_snapshot(raw, reason):
    error = rejected(raw)
    assert error.reason == reason, error


def test_decode_rejects_an_unsupported_version_of_a_full_document():
    doc = sample_doc()
    doc["v"] = 4
    assert rejected_doc(doc).reason == "unsupported_version"


@pytest.mark.parametrize("partition", [5, "3", 3.0, True, None])
def test_decode_rejects_a_snapshot_of_another_partition(partition):
    doc = sample_doc(3)
    doc["partition"] = partition
    assert rejected_doc(doc, partition=3).reason == "wrong_partition"


def test_decode_rejects_partition_1_as_true():
    doc = sample_doc(1)
    doc["partition"] = True
    assert rejected_doc(doc, partition=1).reason == "wrong_partition"


@pytest.mark.parametrize("bad", [-1, 1.0, 1.5, True, False, None, "1", [1], 2**63, 2**64 - 1])
@pytest.mark.parametrize("where", ["totals.count", "totals.units", "invalid", "late_total", "next_offset",
                                   "seconds", "views", "purchases"])
def test_decode_rejects_bad_counts(where, bad):
    doc = sample_doc()
    if where.startswith("totals."):
        doc["totals"]["purchase"][where.split(".")[1]] = bad
    elif where == "invalid":
        doc["invalid"]["not_json"] = bad
    elif where == "seconds":
        doc["seconds"][0][2] = bad
    elif where in ("views", "purchases"):
        doc["minutes"][0][where]["p-0"] = bad
    else:
        doc[where] = bad
    assert rejected_doc(doc).reason == "bad_field"


@pytest.mark.parametrize("bad", ["-1", "", "1.5", "1e3", " 12", "\u0661\u0662", "9" * 41, 1.5, None, -3, True])
def test_decode_rejects_bad_revenue(bad):
    doc = sample_doc()
    doc["totals"]["purchase"]["revenue_cents"] = bad
    assert rejected_doc(doc).reason == "bad_field"


@pytest.mark.parametrize("field, bad", [
    ("totals", []), ("totals", {"refund": {"count": 1, "units": 1, "revenue_cents": "1"}}),
    ("totals", {"purchase": 5}), ("seconds", {}), ("minutes", {}), ("product_names", []),
    ("invalid", []), ("horizon_seconds", 86_401), ("horizon_seconds", -1), ("updated_at_ms", 10**14 + 1),
    ("watermark_ms", 1.0),
])
def test_decode_rejects_fields_of_the_wrong_shape(field, bad):
    doc = sample_doc()
    doc[field] = bad
    assert rejected_doc(doc).reason == "bad_field"


@pytest.mark.parametrize("row", [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6], "row", [T0 // 1000, 1, 2, 3, -4]])
def test_decode_rejects_bad_seconds_rows(row):
    doc = sample_doc()
    doc["seconds"].append(row)
    assert rejected_doc(doc).reason == "bad_field"


def test_decode_rejects_more_seconds_rows_than_the_horizon():
    doc = sample_doc()
    doc["horizon_seconds"] = 60
    newest = doc["watermark_ms"] // 1000
    doc["seconds"] = [[newest - i, 1, 0, 0, 0] for i in range(62)]
    assert rejected_doc(doc).reason == "bad_field"
    doc["seconds"] = doc["seconds"][:60]
    decode(orjson.dumps(doc), partition=3)


def test_decode_rejects_too_many_minutes():
    doc = sample_doc()
    template = doc["minutes"][0]
    doc["minutes"] = [{**template, "minute": T0 // 60_000 - i} for i in range(FUNNEL_MINUTES + 2)]
    assert rejected_doc(doc).reason == "bad_field"


@pytest.mark.parametrize("kind", ["views", "purchases"])
def test_decode_rejects_oversized_product_counters(kind):
    doc = sample_doc()
    doc["minutes"][0][kind] = {f"p{i}": 1 for i in range(PRODUCT_CANDIDATES + 1)}
    assert rejected_doc(doc).reason == "bad_field"
    doc["minutes"][0][kind] = {"x" * (MAX_PRODUCT_ID_CHARS + 1): 1}
    assert rejected_doc(doc).reason == "bad_field"


def test_decode_rejects_oversized_product_names():
    doc = sample_doc()
    doc["product_names"] = {f"p{i}": "n" for i in range((FUNNEL_MINUTES + 1) * 2 * PRODUCT_CANDIDATES + 1)}
    assert rejected_doc(doc).reason == "bad_field"
    doc["product_names"] = {"p": "n" * (MAX_PRODUCT_NAME_CHARS + 1)}
    assert rejected_doc(doc).reason == "bad_field"
    doc["product_names"] = {"x" * (MAX_PRODUCT_ID_CHARS + 1): "n"}
    assert rejected_doc(doc).reason == "bad_field"
    doc["product_names"] = {"p": 7}
    assert rejected_doc(doc).reason == "bad_field"


def test_decode_rejects_too_many_invalid_reasons():
    doc = sample_doc()
    doc["invalid"] = {f"reason-{i}": 1 for i in range(snapshots.MAX_INVALID_REASONS + 1)}
    assert rejected_doc(doc).reason == "bad_field"


@pytest.mark.parametrize("sketch", [
    None, 5, "!!!!", "AAAA=", "not base64 at all", "é" * 8,
    base64.b64encode(b"not zlib data").decode(),
    sketch_text(bytes(REGISTERS - 1)),  # too few registers
    sketch_text(bytes(REGISTERS + 1)),  # too many
    sketch_text(bytes([snapshots._MAX_RANK + 1]) + bytes(REGISTERS - 1)),  # a register > 55
    sketch_text(bytes([255] * REGISTERS)),
    sketch_text(bytes(REGISTERS)) + "=AAA",  # data after the padding
    base64.b64encode(zlib.compress(bytes(REGISTERS))[:-6]).decode(),  # truncated stream
], ids=lambda s: repr(s)[:30])
def test_decode_rejects_bad_sketches(sketch):
    doc = sample_doc()
    doc["minutes"][0]["added"] = sketch
    assert rejected_doc(doc).reason == "bad_sketch"


def test_a_register_of_55_is_valid():
    doc = sample_doc()
    doc["minutes"][0]["viewed"] = sketch_text(bytes([55]) * REGISTERS)
    assert decode(orjson.dumps(doc), partition=3).minutes[doc["minutes"][0]["minute"]].sketches["viewed"] \
        .registers == bytearray([55]) * REGISTERS


@pytest.fixture
def inflated(monkeypatch) -> list[int]:
    """The number of bytes each zlib decompress call returns while the test runs."""
    sizes: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self, *args, **kwargs):
            self._inner = real(*args, **kwargs)

        def decompress(self, data, max_length=0):
            out = self._inner.decompress(data, max_length)
            sizes.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._inner, name)

    monkeypatch.setattr(snapshots.zlib, "decompressobj", Spy)
    return sizes


@pytest.mark.parametrize("size", [10_000_000, 1_000_000])
def test_a_zlib_bomb_in_a_sketch_is_rejected_quickly_without_inflating_it(inflated, size):
    bomb = base64.b64encode(zlib.compress(b"\0" * size, 9)).decode()
    doc = sample_doc()
    doc["minutes"][0]["purchased"] = bomb
    raw = orjson.dumps(doc)
    start = time.perf_counter()
    error = rejected(raw)
    elapsed = time.perf_counter() - start
    assert error.reason == "bad_sketch"
    assert elapsed < 0.2
    # the valid sketches of the document inflate to 1,024 bytes each; the bomb to at most 1 KiB + 1
    assert sum(inflated) <= len(doc["minutes"]) * 3 * (REGISTERS + 1)
    assert max(inflated, default=0) <= REGISTERS + 1


# -- decode: what it accepts ----------------------------------------------------------------------

def test_round_trip():
    snapshot = sample_state().to_snapshot(next_offset=42, updated_at_ms=T0 + 60_000)
    raw = encode(snapshot)
    assert decode(raw, partition=3) == snapshot
    assert encode(decode(raw, partition=3)) == raw


def test_round_trip_of_an_empty_state():
    snapshot = PartitionStats(0).to_snapshot(next_offset=0, updated_at_ms=0)
    assert decode(encode(snapshot), partition=0) == snapshot


def test_version_1_with_integer_revenue_and_a_lag_field_still_decodes():
    doc = sample_doc()
    doc["v"] = 1
    doc["lag"] = 17
    for total in doc["totals"].values():
        total["revenue_cents"] = int(total["revenue_cents"])
    snapshot = decode(orjson.dumps(doc), partition=3)
    expected = decode(orjson.dumps(sample_doc()), partition=3)
    assert snapshot == expected
    assert snapshot.totals["purchase"].revenue_cents == int(sample_doc()["totals"]["purchase"]["revenue_cents"]) > 0


def test_missing_event_types_in_totals_read_as_zero():
    doc = sample_doc()
    del doc["totals"]["removefrombasket"]
    assert decode(orjson.dumps(doc), partition=3).totals["removefrombasket"] == (0, 0, 0)


def test_revenue_above_2_to_the_64_cents_is_exact():
    stats = PartitionStats(0)
    for i in range(200):  # the largest price (1e9: 1e11 cents) x the largest quantity (1e6): 1e17 cents each
        stats.apply(ev("purchase", T0 + i, price_cents=10**11, qty=10**6))
    revenue = stats.totals["purchase"][2]
    assert revenue == 200 * 10**17 > 2**64
    stats.totals["addtobasket"][2] = 2**64 * 10**15 + 7  # 35 digits
    snapshot = stats.to_snapshot(next_offset=200, updated_at_ms=T0)
    decoded = decode(encode(snapshot), partition=0)
    assert decoded == snapshot
    assert decoded.totals["purchase"].revenue_cents == 200 * 10**17
    assert decoded.totals["addtobasket"].revenue_cents == 2**64 * 10**15 + 7
    assert PartitionStats.from_snapshot(decoded).totals["purchase"][2] == revenue


# -- key -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, expected", [
    (b"events:3", 3), (b"events:0", 0), (b"events:123456", 123456),
    (b"events.dlq:3", None), (b"events:x", None), (b"events:", None), (b"events:-1", None),
    (b"events:1234567", None), (b"events:\xd9\xa1", None), (b"other:3", None), (b"", None), (None, None),
])
def test_key_partition(key, expected):
    assert key_partition(key, "events") == expected


def test_snapshot_key_round_trips():
    assert key_partition(snapshots.snapshot_key("events", 11), "events") == 11


# -- size bounds -----------------------------------------------------------------------------------

def worst_id(i: int) -> str:
    """A distinct 64-character printable ASCII id of only '"' and '\\': each escapes to 2 bytes."""
    return format(i, f"0{MAX_PRODUCT_ID_CHARS}b").replace("0", '"').replace("1", "\\")


WORST_NAME = "\U0001F600" * MAX_PRODUCT_NAME_CHARS  # 4 bytes a character


def worst_state() -> PartitionStats:
    horizon = MAX_HORIZON_SECONDS
    stats = PartitionStats(0, horizon_seconds=horizon)
    last_ts = 10**14 - 1  # the largest ts validation allows: 11-digit seconds, 10-digit minutes
    newest_second = last_ts // 1000
    newest_minute = last_ts // 60_000
    ids = iter(range(10**6))
    for second in range(newest_second - horizon + 1, newest_second + 1):
        ts = second * 1000 + (999 if second == newest_second else 0)
        stats.apply(ev("removefrombasket", ts))
        minute = ts // 60_000
        if ts % 60_000 == 0 and minute > newest_minute - FUNNEL_MINUTES:
            stats.apply(ev("addtobasket", ts, session=f"a{minute}"))
            for _ in range(PRODUCT_CANDIDATES):
                stats.apply(ev("productview", ts, product=worst_id(next(ids)), name=WORST_NAME))
                stats.apply(ev("purchase", ts, product=worst_id(next(ids)), name=WORST_NAME, qty=10**6,
                               price_cents=10**11))
    # everything the events could fill is full
    assert len(stats.seconds) == horizon
    assert len(stats.minutes) == FUNNEL_MINUTES
    assert all(len(b.views) == len(b.purchases) == PRODUCT_CANDIDATES for b in stats.minutes.values())
    assert len(stats.product_names) == FUNNEL_MINUTES * 2 * PRODUCT_CANDIDATES
    # and the counts and sketches that only a long life could fill are set to their largest
    rng = random.Random(1)
    for counts in (*stats.seconds.values(), *stats.minute_counts.values()):
        counts[:] = [WINDOW_BIG - rng.randrange(1000) for _ in counts]
    assert len(stats.minute_counts) == horizon // 60 + 1  # an unaligned horizon touches one minute more
    worst_categories = ['"' * (snapshots.MAX_CATEGORY_CHARS - 2) + f"{i:02d}" for i in range(snapshots.MAX_CATEGORIES)]
    for pid in stats.product_names:
        stats.product_categories[pid] = worst_categories[0]
    for bucket in stats.minutes.values():
        bucket.categories = {name: [WINDOW_BIG - rng.randrange(1000) for _ in range(4)]
                             for name in (*worst_categories, snapshots.OTHER_CATEGORY)}
        for sketch in bucket.sketches.values():
            sketch.registers = bytearray(rng.randint(1, snapshots._MAX_RANK) for _ in range(REGISTERS))
        for counter in (bucket.views, bucket.purchases):
            for pid in counter:
                counter[pid] = WINDOW_BIG - rng.randrange(1000)
        bucket.revenue = {pid: 10**snapshots.MAX_REVENUE_DIGITS - 1 - rng.randrange(1000) for pid in bucket.purchases}
    for reason in (*InvalidReason.ALL, INTERNAL_ERROR):
        stats.record_invalid(reason)
        stats.invalid[reason] = BIG
    stats.totals = {name: [BIG, BIG, 10**snapshots.MAX_REVENUE_DIGITS - 1] for name in stats.totals}
    stats.late_total = BIG
    return stats


def test_the_worst_case_snapshot_fits_its_bound():
    stats = worst_state()
    snapshot = stats.to_snapshot(next_offset=BIG, updated_at_ms=10**14)
    raw = encode(snapshot)
    bound = worst_case_bytes(MAX_HORIZON_SECONDS)
    assert len(raw) <= bound <= MAX_SNAPSHOT_BYTES < PRODUCER_MAX_MESSAGE_BYTES, (len(raw), bound)
    assert len(raw) > 0.9 * bound  # the case is really near the worst
    decoded = decode(raw, partition=0)
    assert decoded == snapshot
    restored = PartitionStats.from_snapshot(decoded, horizon_seconds=MAX_HORIZON_SECONDS)
    assert encode(restored.to_snapshot(next_offset=BIG, updated_at_ms=10**14)) == raw


def test_product_counters_and_names_stay_bounded():
    stats = PartitionStats(0)
    for i in range(10_000):
        kind = "purchase" if i % 3 == 0 else "productview"
        stats.apply(ev(kind, T0 + i, session=f"s{i}", product=f"p-{i}", name=f"Product number {i}"))
    assert len(stats.minutes) == 1
    assert len(stats.product_names) <= FUNNEL_MINUTES * 2 * PRODUCT_CANDIDATES
    for bucket in stats.minutes.values():
        assert len(bucket.views) <= PRODUCT_CANDIDATES
        assert len(bucket.purchases) <= PRODUCT_CANDIDATES
        assert set(stats.product_names) <= set(bucket.views) | set(bucket.purchases)
    assert len(encode(stats.to_snapshot(next_offset=10_000, updated_at_ms=T0))) <= worst_case_bytes(900)


def test_max_horizon_is_a_whole_number_of_minutes_within_the_budget():
    assert MAX_HORIZON_SECONDS % 60 == 0 and MAX_HORIZON_SECONDS >= 900
    assert worst_case_bytes(MAX_HORIZON_SECONDS) <= MAX_SNAPSHOT_BYTES
    assert worst_case_bytes(MAX_HORIZON_SECONDS + 60) > MAX_SNAPSHOT_BYTES


# decode rejects per-second rows (and minute buckets) outside the snapshot's own window, e.g. after its
# watermark. No writer produces them, and a restored state holding them could not be encoded again:
# Checkpoint.commit() would raise SnapshotTooLarge on every restart from this record, a crash loop.
def test_a_snapshot_decode_accepts_restores_to_a_state_that_encodes():
    doc = orjson.loads(encode(PartitionStats(0).to_snapshot(next_offset=5, updated_at_ms=T0)))
    doc["horizon_seconds"] = 86_400
    doc["watermark_ms"] = 1_000_000
    doc["seconds"] = [[s, 0, 0, 0, 0] for s in range(1, 62_000)]  # 981 kB, under the 1 MB read limit
    raw = orjson.dumps(doc)
    try:
        snapshot = decode(raw, partition=0)
    except InvalidSnapshot:
        return  # rejecting it is fine too
    restored = PartitionStats.from_snapshot(snapshot, horizon_seconds=900)
    assert len(restored.seconds) <= 900
    encode(restored.to_snapshot(next_offset=5, updated_at_ms=T0))


def test_a_minute_holds_at_most_its_categories_and_the_overflow():
    from eventdash.snapshots import MAX_CATEGORIES, OTHER_CATEGORY
    doc = sample_doc()
    doc["minutes"][0]["categories"] = {f"c{i}": [1, 0, 0, 0] for i in range(MAX_CATEGORIES)}
    doc["minutes"][0]["categories"][OTHER_CATEGORY] = [1, 0, 0, 0]
    assert len(decode(orjson.dumps(doc), partition=3).minutes[doc["minutes"][0]["minute"]].categories) == 17
    del doc["minutes"][0]["categories"][OTHER_CATEGORY]
    doc["minutes"][0]["categories"]["c-extra"] = [1, 0, 0, 0]  # 17 named: the aggregator never writes that
    assert rejected_doc(doc).reason == "bad_field"
