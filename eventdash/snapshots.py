"""The statistics snapshot: the one owner of its key, wire format, limits, validation and tail read.

The aggregator writes the state of input partition *p* as one JSON record, keyed
``<events topic>:<p>``, to partition *p* of the compacted ``event_statistics`` topic, in the same
Kafka transaction as its input offsets. The dashboard and the aggregator's restore read it back
with :func:`decode`, which validates every field and never trusts the record: a corrupt or
foreign record raises :class:`InvalidSnapshot` and readers skip it.

Wire format, version 3 (versions 1, with integer ``revenue_cents`` and a ``lag`` field, and 2,
without ``minute_counts``, are still read)::

    {"v": 3, "partition": 0, "next_offset": 1234, "updated_at_ms": ..., "watermark_ms": ...,
     "horizon_seconds": 900,
     "totals": {"purchase": {"count": 3, "units": 5, "revenue_cents": "12900"}, ...},
     "invalid": {"not_json": 1}, "late_total": 0,
     "seconds": [[epoch_second, views, adds, removes, purchases], ...],
     "minute_counts": [[epoch_minute, views, adds, removes, purchases], ...],
     "finished_through_minute": 29406325,
     "minutes": [{"minute": m, "viewed": "<base64 zlib HLL>", "added": ..., "purchased": ...,
                  "views": {"p-001": 4}, "purchases": {"p-001": [1, "2490"]},
                  "categories": {"Coffee": [views, adds, removes, purchases], "": [...]}}, ...],
     "product_names": {"p-001": "Espresso cups", "p-002": ["Kettle", "Brewing"]}}

A minute's ``purchases`` are ``[units, revenue_cents]`` (revenue a decimal string; version 2 had
units only). Its ``categories`` count every event of the minute by the event's category (``""``: none),
for at most :data:`MAX_CATEGORIES` categories, then under :data:`OTHER_CATEGORY`. A counted
product's entry in ``product_names`` is ``[name, category]`` when its category is known (the
name may then be ``""``).

``minute_counts`` are the per-minute counts of every minute with a second in the horizon, exact
even for the oldest one whose first seconds have left ``seconds``. A minute that leaves the horizon
entirely is final: the aggregator publishes it to the history topic (:mod:`eventdash.history`) in
the same transaction, and ``finished_through_minute`` (the newest final minute, -1 for none) keeps
it final even if the state is restored with a longer horizon. A version 1 or 2 snapshot derives both
from its seconds: its oldest minute may then be short of the seconds that had already left.

``revenue_cents`` is a decimal string: exact integer cents of any size, which JSON numbers are
not. Every map and list is bounded by the limits below; :func:`worst_case_bytes` is the largest
record those limits allow, and it stays under :data:`MAX_SNAPSHOT_BYTES`, itself below the
transactional producer's ``message.max.bytes``.
"""
from __future__ import annotations

import base64
import binascii
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import orjson
from confluent_kafka import Consumer, TopicPartition

from .events.model import (
    EVENT_TYPES,
    MAX_CATEGORY_CHARS,
    MAX_PRODUCT_ID_CHARS,
    MAX_PRODUCT_NAME_CHARS,
    OTHER_CATEGORY,
    is_category,
    is_product_id,
    is_product_name,
)
from .events.validation import InvalidReason
from .stats.hll import REGISTERS, HyperLogLog

logger = logging.getLogger(__name__)

VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
HEARTBEAT_SECONDS = 2.0  # a live aggregator commits every partition's snapshot at least this often

# -- limits: the state is bounded by these, the encoded record by their worst case -------------
PRODUCER_MAX_MESSAGE_BYTES = 1_000_000  # the aggregator's producer sets message.max.bytes to this
MAX_SNAPSHOT_BYTES = 900_000  # the budget: room for record overhead below the producer's limit
# product ids: printable ASCII, at most 2 encoded bytes a character (\" and \\); names: printable
# text, at most 4 (validated in events.validation)
PRODUCT_CANDIDATES = 32  # product counters per minute and kind; pruned to half beyond
FUNNEL_MINUTES = 16  # minute buckets kept: the longest window (15 min) and the current minute
MAX_CATEGORIES = 16  # categories counted per minute bucket; any further one counts as OTHER_CATEGORY
MAX_INVALID_REASONS = 16
INVALID_REASONS = frozenset((*InvalidReason.ALL, "internal_error"))  # all that the aggregator records
MAX_COUNT = 2**63 - 1  # totals: any count a partition can reach; readers sum them as exact integers
MAX_WINDOW_COUNT = 2**53 - 1  # per second or minute: far above any real rate, and exact in JavaScript
MAX_COUNT_DIGITS = 19
MAX_WINDOW_DIGITS = len(str(MAX_WINDOW_COUNT))
MAX_REVENUE_DIGITS = 40
MAX_SKETCH_CHARS = 4 * ((REGISTERS + 64) // 3 + 1)  # base64 of zlib(1,024 registers), worst case
_MAX_RANK = 64 - 10 + 1
_MAX_MS = 10**14
FUNNEL_STAGES = ("viewed", "added", "purchased")
PRODUCT_KINDS = ("views", "purchases")

_SECOND_ROW_BYTES = 1 + 11 + 4 * (1 + MAX_WINDOW_DIGITS) + 2  # [second,a,b,c,d],
_MINUTE_ROW_BYTES = _SECOND_ROW_BYTES  # [minute,a,b,c,d],
_PRODUCT_ENTRY_BYTES = 2 * MAX_PRODUCT_ID_CHARS + 3 + MAX_WINDOW_DIGITS + 1  # "id":n,
_REVENUE_EXTRA_BYTES = 2 + 1 + MAX_REVENUE_DIGITS + 2  # "id":[n,"cents"], beyond "id":n,
_NAME_ENTRY_BYTES = 2 * MAX_PRODUCT_ID_CHARS + 3 + 4 * MAX_PRODUCT_NAME_CHARS + 3  # "id":"name",
_CATEGORY_NAME_BYTES = 2 * MAX_CATEGORY_CHARS + 2  # "name" (printable ASCII: at most \" or \\ a character)
_NAME_CATEGORY_EXTRA_BYTES = 3 + _CATEGORY_NAME_BYTES  # "id":["name","category"], beyond "id":"name",
_CATEGORY_ROW_BYTES = _CATEGORY_NAME_BYTES + 1 + 4 * (1 + MAX_WINDOW_DIGITS) + 2  # "category":[a,b,c,d],
_MINUTE_BYTES = (64 + len(FUNNEL_STAGES) * (MAX_SKETCH_CHARS + 16)
                 + len(PRODUCT_KINDS) * (16 + PRODUCT_CANDIDATES * _PRODUCT_ENTRY_BYTES)
                 + PRODUCT_CANDIDATES * _REVENUE_EXTRA_BYTES
                 + 16 + (MAX_CATEGORIES + 1) * _CATEGORY_ROW_BYTES)
_FIXED_BYTES = 4096  # version, partition, offsets, times, totals (4 x 3 numbers), invalid reasons


def count_minutes(horizon_seconds: int) -> int:
    """``minute_counts`` rows at most: every minute a horizon of that many seconds can touch."""
    return horizon_seconds // 60 + 2


def worst_case_bytes(horizon_seconds: int) -> int:
    """The largest encoded snapshot the limits allow for ``horizon_seconds`` of per-second rows."""
    names = FUNNEL_MINUTES * len(PRODUCT_KINDS) * PRODUCT_CANDIDATES
    return (_FIXED_BYTES + horizon_seconds * _SECOND_ROW_BYTES + count_minutes(horizon_seconds) * _MINUTE_ROW_BYTES
            + FUNNEL_MINUTES * _MINUTE_BYTES + names * (_NAME_ENTRY_BYTES + _NAME_CATEGORY_EXTRA_BYTES))


MAX_HORIZON_SECONDS = max(h for h in range(60, 86_400, 60) if worst_case_bytes(h) <= MAX_SNAPSHOT_BYTES)


class InvalidSnapshot(ValueError):
    """A record on the statistics topic that is not a usable snapshot."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SnapshotTooLarge(ValueError):
    """An encoded snapshot over :data:`MAX_SNAPSHOT_BYTES`: a broken limit, never expected."""


class TypeTotal(NamedTuple):
    count: int
    units: int
    revenue_cents: int


class MinuteSummary(NamedTuple):
    sketches: dict[str, HyperLogLog]  # FUNNEL_STAGES -> sessions seen at that stage in the minute
    views: dict[str, int]
    purchases: dict[str, int]
    categories: dict[str, tuple[int, int, int, int]] = {}  # category -> counts per type  # noqa: RUF012
    revenue: dict[str, int] = {}  # product id -> cents of its units in ``purchases``  # noqa: RUF012


@dataclass(frozen=True)
class Snapshot:
    """One input partition's statistics as of ``next_offset``. Decoded ones are validated."""

    partition: int
    next_offset: int
    updated_at_ms: int
    watermark_ms: int
    horizon_seconds: int
    totals: dict[str, TypeTotal]
    invalid: dict[str, int]
    late_total: int
    seconds: dict[int, tuple[int, int, int, int]]
    minutes: dict[int, MinuteSummary]
    product_names: dict[str, str]
    product_categories: dict[str, str]
    # every minute with a second in the horizon -> its counts per type (exact: see the module doc)
    minute_counts: dict[int, tuple[int, int, int, int]]
    finished_through_minute: int  # minutes up to this one are final (on the history topic)


# -- key ---------------------------------------------------------------------------------------

def snapshot_key(events_topic: str, partition: int) -> bytes:
    return f"{events_topic}:{partition}".encode()


def key_partition(key: bytes | None, events_topic: str) -> int | None:
    """The input partition a key names, or None for a key of another topic or no key."""
    prefix = f"{events_topic}:".encode()
    if not key or not key.startswith(prefix):
        return None
    digits = key[len(prefix):]
    if not digits.isdigit() or len(digits) > 6:
        return None
    return int(digits)


# -- encode ------------------------------------------------------------------------------------

def encode_sketch(sketch: HyperLogLog) -> str:
    return base64.b64encode(zlib.compress(bytes(sketch.registers), 6)).decode()


def encode(snapshot: Snapshot) -> bytes:
    doc = {
        "v": VERSION,
        "partition": snapshot.partition,
        "next_offset": snapshot.next_offset,
        "updated_at_ms": snapshot.updated_at_ms,
        "watermark_ms": snapshot.watermark_ms,
        "horizon_seconds": snapshot.horizon_seconds,
        "totals": {name: {"count": t.count, "units": t.units, "revenue_cents": str(t.revenue_cents)}
                   for name, t in snapshot.totals.items()},
        "invalid": snapshot.invalid,
        "late_total": snapshot.late_total,
        "seconds": [[second, *counts] for second, counts in sorted(snapshot.seconds.items())],
        "minute_counts": [[minute, *counts] for minute, counts in sorted(snapshot.minute_counts.items())],
        "finished_through_minute": snapshot.finished_through_minute,
        "minutes": [{"minute": minute,
                     **{stage: encode_sketch(m.sketches[stage]) for stage in FUNNEL_STAGES},
                     "views": m.views,
                     "purchases": {pid: [units, str(m.revenue.get(pid, 0))] for pid, units in m.purchases.items()},
                     "categories": {c: list(n) for c, n in m.categories.items()}}
                    for minute, m in sorted(snapshot.minutes.items())],
        "product_names": _names_doc(snapshot.product_names, snapshot.product_categories),
    }
    raw = orjson.dumps(doc)
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise SnapshotTooLarge(f"snapshot of partition {snapshot.partition} is {len(raw)} bytes, "
                               f"over the budget of {MAX_SNAPSHOT_BYTES}")
    return raw


def _names_doc(names: Mapping[str, str], categories: Mapping[str, str]) -> dict[str, str | list[str]]:
    doc: dict[str, str | list[str]] = {pid: [name, categories[pid]] if pid in categories else name
                                       for pid, name in names.items()}
    for pid, category in categories.items():
        if pid not in names:
            doc[pid] = ["", category]
    return doc


# -- decode and validate -----------------------------------------------------------------------

def _fail(detail: str, reason: str = "bad_field") -> InvalidSnapshot:
    return InvalidSnapshot(reason, detail)


def _int(doc: Mapping, name: str, high: int = MAX_COUNT) -> int:
    value = doc.get(name)
    if type(value) is not int or not 0 <= value <= high:
        raise _fail(f"{name} must be an integer from 0 to {high}")
    return value


def _count_map(value: object, name: str, max_entries: int, is_key, high: int = MAX_COUNT) -> dict[str, int]:
    if type(value) is not dict or len(value) > max_entries:
        raise _fail(f"{name} must be an object of at most {max_entries} entries")
    for key, count in value.items():
        if not is_key(key) or type(count) is not int or not 0 <= count <= high:
            raise _fail(f"{name} has a bad entry")
    return value


def _reasons(value: object) -> dict[str, int]:
    return _count_map(value, "invalid", MAX_INVALID_REASONS, INVALID_REASONS.__contains__)


def _revenue(value: object) -> int:
    if type(value) is int and value >= 0:
        return value  # version 1
    if type(value) is str and 0 < len(value) <= MAX_REVENUE_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    raise _fail("revenue_cents must be a decimal string of digits")


def decode_sketch(text: object) -> HyperLogLog:
    """Bounded: never inflates more than one register array, whatever the input claims."""
    if type(text) is not str or len(text) > MAX_SKETCH_CHARS:
        raise _fail(f"a sketch must be a string of at most {MAX_SKETCH_CHARS} characters", "bad_sketch")
    try:
        inflater = zlib.decompressobj()
        registers = inflater.decompress(base64.b64decode(text, validate=True), REGISTERS + 1)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise _fail(f"sketch does not decode: {exc}", "bad_sketch") from None
    if len(registers) != REGISTERS or not inflater.eof or inflater.unconsumed_tail:
        raise _fail(f"a sketch must inflate to exactly {REGISTERS} registers", "bad_sketch")
    if max(registers) > _MAX_RANK:
        raise _fail("a sketch register is out of range", "bad_sketch")
    return HyperLogLog(bytearray(registers))


def _categories(value: object) -> dict[str, tuple[int, int, int, int]]:
    if value is None:
        return {}  # before version 3
    if type(value) is not dict or len(value) > MAX_CATEGORIES + (OTHER_CATEGORY in value):
        raise _fail(f"categories must be an object of at most {MAX_CATEGORIES} categories and {OTHER_CATEGORY}")
    rows = {}
    for name, row in value.items():
        if (not (is_category(name) or name == OTHER_CATEGORY) or type(row) is not list or len(row) != 4
                or not all(type(x) is int and 0 <= x <= MAX_WINDOW_COUNT for x in row)):
            raise _fail("categories must map a category to [views, adds, removes, purchases]")
        rows[name] = tuple(row)
    return rows


def _product_names(value: object) -> tuple[dict[str, str], dict[str, str]]:
    """(names, categories) of ``product_names``: ``{id: name}`` or ``{id: [name, category]}``."""
    max_names = FUNNEL_MINUTES * len(PRODUCT_KINDS) * PRODUCT_CANDIDATES
    if type(value) is not dict or len(value) > max_names:
        raise _fail(f"product_names must map at most {max_names} product ids to names")
    names: dict[str, str] = {}
    categories: dict[str, str] = {}
    for pid, entry in value.items():
        name, category = (entry[0], entry[1]) if type(entry) is list and len(entry) == 2 else (entry, None)
        if not (is_product_id(pid) and is_product_name(name)
                and (category is None or (is_category(category) and category))):
            raise _fail("product_names must map product ids to names or [name, category] (printable, bounded)")
        if name:
            names[pid] = name
        if category is not None:
            categories[pid] = category
    return names, categories


def _minute(doc: object, newest_minute: int) -> tuple[int, MinuteSummary]:
    if type(doc) is not dict:
        raise _fail("minutes[] must be objects")
    minute = _int(doc, "minute", _MAX_MS // 60_000)
    if not newest_minute - FUNNEL_MINUTES < minute <= newest_minute:
        raise _fail(f"minute {minute} is outside the {FUNNEL_MINUTES} minutes up to the watermark")
    sketches = {stage: decode_sketch(doc.get(stage)) for stage in FUNNEL_STAGES}
    views = _count_map(doc.get("views"), "views", PRODUCT_CANDIDATES, is_product_id, MAX_WINDOW_COUNT)
    purchases, revenue = _purchases(doc.get("purchases"))
    return minute, MinuteSummary(sketches, views, purchases, _categories(doc.get("categories")), revenue)


def _purchases(value: object) -> tuple[dict[str, int], dict[str, int]]:
    """``{id: units}`` (version 2) or ``{id: [units, "revenue cents"]}``: (units, revenue)."""
    if type(value) is not dict or len(value) > PRODUCT_CANDIDATES:
        raise _fail(f"purchases must be an object of at most {PRODUCT_CANDIDATES} entries")
    units: dict[str, int] = {}
    revenue: dict[str, int] = {}
    for pid, entry in value.items():
        count, cents = (entry[0], entry[1]) if type(entry) is list and len(entry) == 2 else (entry, None)
        if not is_product_id(pid) or type(count) is not int or not 0 <= count <= MAX_WINDOW_COUNT:
            raise _fail("purchases has a bad entry")
        units[pid] = count
        if cents is not None:
            revenue[pid] = _revenue(cents)
    return units, revenue


def decode(raw: bytes | None, *, partition: int) -> Snapshot:
    """Validate and decode the snapshot of input ``partition``; :class:`InvalidSnapshot` if it is not one."""
    try:
        return _decode(raw, partition)
    except InvalidSnapshot:
        raise
    except Exception as exc:  # noqa: BLE001 - a reader skips any record, whatever breaks on it
        raise _fail(type(exc).__name__, "malformed") from None


def _scalar(value: object) -> str:
    return repr(value)[:20] if type(value) in (int, str, float, bool, type(None)) else type(value).__name__


def _decode(raw: bytes | None, partition: int) -> Snapshot:
    if raw is None:
        raise _fail("empty record (a tombstone)", "empty")
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise _fail(f"{len(raw)} bytes, more than any snapshot", "too_large")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _fail(str(exc)[:120], "not_json") from None
    if type(doc) is not dict:
        raise _fail("not a JSON object", "not_json")
    if type(doc.get("v")) is not int or doc["v"] not in READABLE_VERSIONS:
        raise _fail(f"version {_scalar(doc.get('v'))} (readable: {READABLE_VERSIONS})", "unsupported_version")
    if doc.get("partition") != partition or type(doc.get("partition")) is not int:
        raise _fail(f"partition {_scalar(doc.get('partition'))} in a record for partition {partition}",
                    "wrong_partition")
    horizon = _int(doc, "horizon_seconds", 86_400)
    watermark_ms = _int(doc, "watermark_ms", _MAX_MS)
    newest_second = watermark_ms // 1000
    totals_doc = doc.get("totals")
    if type(totals_doc) is not dict or not set(totals_doc) <= set(EVENT_TYPES):
        raise _fail("totals must be an object keyed by event type")
    totals = {}
    for name in EVENT_TYPES:
        total = totals_doc.get(name, {"count": 0, "units": 0, "revenue_cents": 0})
        if type(total) is not dict:
            raise _fail(f"totals.{name} must be an object")
        totals[name] = TypeTotal(_int(total, "count"), _int(total, "units"), _revenue(total.get("revenue_cents")))
    seconds_doc = doc.get("seconds")
    if type(seconds_doc) is not list or len(seconds_doc) > horizon:
        raise _fail("seconds must be a list of at most horizon_seconds rows")
    seconds = {}
    for row in seconds_doc:
        if (type(row) is not list or len(row) != 5
                or not all(type(x) is int and 0 <= x <= MAX_WINDOW_COUNT for x in row)):
            raise _fail("seconds rows must be [second, views, adds, removes, purchases]")
        if not newest_second - horizon < row[0] <= newest_second:
            raise _fail(f"second {row[0]} is outside the horizon up to the watermark")
        seconds[row[0]] = (row[1], row[2], row[3], row[4])
    if doc["v"] >= 3:
        finished_through = doc.get("finished_through_minute")
        if type(finished_through) is not int or not -1 <= finished_through <= newest_second // 60:
            raise _fail("finished_through_minute must be a minute up to the watermark's, or -1")
        minute_counts = _minute_counts(doc.get("minute_counts"), newest_second, horizon, finished_through)
    else:
        finished_through = max(-1, (newest_second - horizon + 1) // 60 - 1)
        minute_counts = minute_counts_of(seconds)
    minutes_doc = doc.get("minutes")
    if type(minutes_doc) is not list or len(minutes_doc) > FUNNEL_MINUTES:
        raise _fail(f"minutes must be a list of at most {FUNNEL_MINUTES} buckets")
    names, product_categories = _product_names(doc.get("product_names"))
    return Snapshot(
        partition=partition,
        next_offset=_int(doc, "next_offset"),
        updated_at_ms=_int(doc, "updated_at_ms", _MAX_MS),
        watermark_ms=watermark_ms,
        horizon_seconds=horizon,
        totals=totals,
        invalid=_reasons(doc.get("invalid")),
        late_total=_int(doc, "late_total"),
        seconds=seconds,
        minutes=dict(_minute(m, newest_second // 60) for m in minutes_doc),
        product_names=names,
        product_categories=product_categories,
        minute_counts=minute_counts,
        finished_through_minute=finished_through,
    )


def minute_counts_of(seconds: Mapping[int, tuple[int, ...]]) -> dict[int, tuple[int, int, int, int]]:
    """Per-minute sums of per-second rows: a version 2 snapshot's best estimate of its minute counts
    (exact but for the oldest minute, whose first seconds may have left the horizon)."""
    sums: dict[int, list[int]] = {}
    for second, row in seconds.items():
        counts = sums.setdefault(second // 60, [0, 0, 0, 0])
        for i in range(4):
            counts[i] += row[i]
    return {minute: tuple(counts) for minute, counts in sorted(sums.items())}


def _minute_counts(rows: object, newest_second: int, horizon: int,
                   finished_through: int) -> dict[int, tuple[int, int, int, int]]:
    limit = count_minutes(horizon)
    if type(rows) is not list or len(rows) > limit:
        raise _fail(f"minute_counts must be a list of at most {limit} rows")
    oldest_minute = max((newest_second - horizon + 1) // 60, finished_through + 1)
    counts = {}
    for row in rows:
        if (type(row) is not list or len(row) != 5
                or not all(type(x) is int and 0 <= x <= MAX_WINDOW_COUNT for x in row)):
            raise _fail("minute_counts rows must be [minute, views, adds, removes, purchases]")
        if not oldest_minute <= row[0] <= newest_second // 60:
            raise _fail(f"minute {row[0]} is outside the horizon up to the watermark")
        counts[row[0]] = (row[1], row[2], row[3], row[4])
    return counts


# -- reading the latest valid snapshots --------------------------------------------------------

TAIL = 16
InvalidCallback = Callable[[int, int, InvalidSnapshot], None]  # (partition, offset, error)


def read_latest(reader: Consumer, topic: str, events_topic: str, partitions: list[int], *,
                on_invalid: InvalidCallback, timeout: float = 30.0) -> dict[int, Snapshot | None]:
    """``{partition: newest valid snapshot or None}``, read with ``reader`` (``read_committed``).

    The newest snapshot sits in the last few offsets (the rest are transaction markers). A
    partition's tail is widened (x4 each time) while it holds no valid snapshot, down to the
    start of the partition; invalid records on the way are reported to ``on_invalid`` and skipped.
    """
    bounds = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout) for p in partitions}
    found: dict[int, Snapshot | None] = {p: None for p in partitions}
    tail = TAIL
    pending = {p for p, (low, high) in bounds.items() if high > low}
    while pending:
        starts = {p: max(bounds[p][0], bounds[p][1] - tail) for p in pending}
        found.update(_scan(reader, topic, events_topic, starts, {p: bounds[p][1] for p in pending}, timeout,
                           on_invalid))
        pending = {p for p in pending if found[p] is None and starts[p] > bounds[p][0]}
        tail *= 4
    return found


def _scan(reader: Consumer, topic: str, events_topic: str, starts: dict[int, int], ends: dict[int, int],
          timeout: float, on_invalid: InvalidCallback) -> dict[int, Snapshot | None]:
    reader.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
    latest: dict[int, Snapshot | None] = {p: None for p in starts}
    remaining = set(starts)
    deadline = time.monotonic() + timeout
    try:
        while remaining:
            if time.monotonic() > deadline:
                # An open transaction (of a crashed writer with another transactional id) holds
                # read_committed readers back until the broker times it out. Go on with the newest
                # valid snapshots read so far: resuming from an older one re-reads more input, exactly.
                logger.warning("reading snapshots of %s partitions %s stopped short of their end after %.0f s "
                               "(an open transaction?); going on with what was read", topic, sorted(remaining),
                               timeout)
                return latest
            for msg in reader.consume(num_messages=500, timeout=0.05):
                if msg.error():
                    logger.warning("reading snapshots: %s", msg.error())
                    continue
                partition = msg.partition()
                if partition not in latest or key_partition(msg.key(), events_topic) != partition:
                    continue  # another topic's snapshot, or a foreign record
                try:
                    latest[partition] = decode(msg.value(), partition=partition)
                except InvalidSnapshot as invalid:
                    on_invalid(partition, msg.offset(), invalid)
            positions = reader.position([TopicPartition(topic, p) for p in remaining])
            remaining -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return latest
    finally:
        reader.unassign()
