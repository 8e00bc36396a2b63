"""Which implementation aggregates: the Rust hot path (``eventdash_native``) or the Python reference.

The reference is :class:`~eventdash.stats.partition_state.PartitionStats` with
:func:`~eventdash.events.validation.parse_event`. The native engine keeps the same state in Rust
(:class:`NativePartitionStats` wraps it with the reference's interface) and aggregates whole runs
of a batch in one call (:meth:`NativeEngine.aggregate_run`). Any message it is not sure about
(an error event, a record the reference might judge differently, a partition on the reference's
state) ends the run: the caller gives that one message to the reference and calls again. So
every rejection, reason and dead letter comes from the reference, and a differential property
test (tests/unit/test_native_engine.py) checks that both produce identical snapshots.

``EVENTDASH_ENGINE``: ``auto`` (native when installed), ``native`` (required), ``python``.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

from ..config import ConfigError
from ..events import validation
from ..events.model import EVENT_TYPES, MAX_CATEGORY_CHARS, MAX_PRODUCT_ID_CHARS, MAX_PRODUCT_NAME_CHARS, Event
from ..snapshots import (
    FUNNEL_MINUTES,
    FUNNEL_STAGES,
    MAX_CATEGORIES,
    OTHER_CATEGORY,
    PRODUCT_CANDIDATES,
    MinuteSummary,
    Snapshot,
    TypeTotal,
)
from .hll import PRECISION, HyperLogLog
from .partition_state import TYPE_INDEX, PartitionStats

logger = logging.getLogger(__name__)

PartitionState = PartitionStats  # or NativePartitionStats: the same interface
# Totals at or above this stay on the reference: 2^126 cents leaves room for 8e20 events at the largest
# revenue an event can carry (price 1e9 x quantity 1e6) before the native 128-bit totals would overflow.
NATIVE_TOTALS_LIMIT = 2**126


class RunResult(NamedTuple):
    """What :meth:`NativeEngine.aggregate_run` did: ``messages[start:stop]`` aggregated."""

    stop: int
    counts: dict[str, int]  # valid events aggregated per type
    last_offsets: list[tuple[int, int]]  # (partition, offset of the last message aggregated)


class NativePartitionStats:
    """:class:`PartitionStats`' interface over the Rust ``PartitionCore`` (``invalid`` stays here)."""

    def __init__(self, native, partition: int, *, horizon_seconds: int = 900,
                 max_product_candidates: int = PRODUCT_CANDIDATES):
        self.partition = partition
        self.horizon_seconds = horizon_seconds
        self.invalid: dict[str, int] = {}
        self.core = native.PartitionCore(horizon_seconds=horizon_seconds, funnel_minutes=FUNNEL_MINUTES,
                                         max_product_candidates=max_product_candidates, hll_precision=PRECISION,
                                         max_categories=MAX_CATEGORIES, other_category=OTHER_CATEGORY)

    def apply(self, event: Event) -> None:
        self.core.apply(TYPE_INDEX[event.type], event.ts, event.session_id, event.product_id, event.product_name,
                        event.price_cents, event.quantity, event.category)

    def record_invalid(self, reason: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1

    def shed_detail(self) -> None:
        self.core.shed_detail()

    def take_finished_minutes(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        return [(minute, tuple(counts)) for minute, counts in self.core.take_finished_minutes()]

    def to_snapshot(self, *, next_offset: int, updated_at_ms: int) -> Snapshot:
        (totals, late_total, watermark_ms, seconds, minutes, names, minute_counts, finished,
         categories) = self.core.export()
        return Snapshot(
            partition=self.partition,
            next_offset=next_offset,
            updated_at_ms=updated_at_ms,
            watermark_ms=watermark_ms,
            horizon_seconds=self.horizon_seconds,
            totals={name: TypeTotal(*total) for name, total in zip(EVENT_TYPES, totals, strict=True)},
            invalid=dict(self.invalid),
            late_total=late_total,
            seconds={second: tuple(counts) for second, counts in seconds},
            minutes={minute: MinuteSummary({stage: HyperLogLog(bytearray(registers))
                                            for stage, registers in zip(FUNNEL_STAGES, sketches, strict=True)},
                                           dict(views), dict(purchases), {c: tuple(n) for c, n in category_rows},
                                           dict(revenue))
                     for minute, sketches, views, purchases, category_rows, revenue in minutes},
            product_names=dict(names),
            product_categories=dict(categories),
            minute_counts={minute: tuple(counts) for minute, counts in minute_counts},
            finished_through_minute=finished,
        )

    def load(self, snapshot: Snapshot) -> None:
        """The snapshot's state (OverflowError if a figure does not fit the native types)."""
        self.core.load(
            [tuple(snapshot.totals[name]) for name in EVENT_TYPES], snapshot.late_total, snapshot.watermark_ms,
            list(snapshot.seconds.items()),
            [(minute, [bytes(summary.sketches[stage].registers) for stage in FUNNEL_STAGES],
              list(summary.views.items()), list(summary.purchases.items()), list(summary.categories.items()),
              list(summary.revenue.items()))
             for minute, summary in sorted(snapshot.minutes.items())],
            list(snapshot.product_names.items()), list(snapshot.minute_counts.items()),
            snapshot.finished_through_minute, list(snapshot.product_categories.items()))
        self.invalid = dict(snapshot.invalid)


class PythonEngine:
    """The reference: every record through ``parse_event`` and ``PartitionStats.apply``."""

    name = "python"
    fast = False  # no aggregate_run: every message takes the reference path

    def new_state(self, partition: int, *, horizon_seconds: int) -> PartitionState:
        return PartitionStats(partition, horizon_seconds=horizon_seconds)

    def restore(self, snapshot: Snapshot, *, horizon_seconds: int) -> PartitionState:
        return PartitionStats.from_snapshot(snapshot, horizon_seconds=horizon_seconds)


class NativeEngine(PythonEngine):
    name = "native"
    fast = True

    def __init__(self, native):
        if tuple(native.EVENT_TYPES) != EVENT_TYPES:
            raise RuntimeError(f"eventdash_native was built for event types {native.EVENT_TYPES}, not {EVENT_TYPES}")
        self._native = native
        self._rules: dict[tuple[int, int], object] = {}  # (future tolerance, max bytes) -> EventRules

    def new_state(self, partition: int, *, horizon_seconds: int) -> PartitionState:
        return NativePartitionStats(self._native, partition, horizon_seconds=horizon_seconds)

    def restore(self, snapshot: Snapshot, *, horizon_seconds: int) -> PartitionState:
        state = NativePartitionStats(self._native, snapshot.partition, horizon_seconds=horizon_seconds)
        if max(max(total) for total in snapshot.totals.values()) < NATIVE_TOTALS_LIMIT:
            state.load(snapshot)
            return state
        logger.warning("partition %d: its totals are near the native engine's 128-bit limit; aggregating this "
                       "partition with the Python reference", snapshot.partition)
        return PartitionStats.from_snapshot(snapshot, horizon_seconds=horizon_seconds)

    def _rules_for(self, future_tolerance_ms: int, max_bytes: int):
        key = (future_tolerance_ms, max_bytes)
        rules = self._rules.get(key)
        if rules is None:
            rules = self._rules[key] = self._native.EventRules(
                max_bytes=max_bytes, max_text_chars=validation.MAX_TEXT, max_ts=validation.MAX_TS,
                future_tolerance_ms=future_tolerance_ms, max_price=validation.MAX_PRICE,
                max_quantity=validation.MAX_QUANTITY, max_product_id_chars=MAX_PRODUCT_ID_CHARS,
                max_product_name_chars=MAX_PRODUCT_NAME_CHARS, max_category_chars=MAX_CATEGORY_CHARS,
                reserved_category=OTHER_CATEGORY)
        return rules

    def aggregate_run(self, messages: list, start: int, states: dict[int, PartitionState], *,
                      now_ms: int, future_tolerance_ms: int, max_bytes: int) -> RunResult:
        cores = {p: state.core for p, state in states.items() if type(state) is NativePartitionStats}
        stop, counts, last_offsets = self._native.process_batch(
            messages, start, cores, self._rules_for(future_tolerance_ms, max_bytes), now_ms)
        return RunResult(stop, {name: n for name, n in zip(EVENT_TYPES, counts, strict=True) if n}, last_offsets)


def load_engine(choice: str) -> PythonEngine:
    """The engine ``EVENTDASH_ENGINE`` asks for (``auto``: native when installed)."""
    if choice == "python":
        return PythonEngine()
    try:
        import eventdash_native
    except ImportError as exc:
        if choice == "native":
            raise ConfigError(f"EVENTDASH_ENGINE=native is invalid here: the Rust extension eventdash_native is not "
                              f"installed ({exc}); `make setup` builds it where cargo is installed") from None
        logger.info("eventdash_native is not installed: aggregating with the Python reference engine")
        return PythonEngine()
    return NativeEngine(eventdash_native)
