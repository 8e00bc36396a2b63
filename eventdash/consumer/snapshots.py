"""Find the latest committed snapshot of input partitions in ``event_statistics``.

The aggregator writes the snapshot of input partition *p* to partition *p* of the statistics
topic, one snapshot per transaction, so the latest one sits in the last few offsets (the rest
are transaction markers). We read a short tail of every wanted partition at once with
``read_committed`` and widen a partition's tail if it holds no snapshot (for example after a
run of aborted transactions).
"""
from __future__ import annotations

import logging
import time

import orjson
from confluent_kafka import Consumer, TopicPartition

logger = logging.getLogger(__name__)

TAIL = 16


def snapshot_key(events_topic: str, partition: int) -> bytes:
    return f"{events_topic}:{partition}".encode()


def read_latest_snapshots(reader: Consumer, topic: str, keys: dict[int, bytes],
                          timeout: float = 30.0) -> dict[int, dict | None]:
    """``{partition: latest snapshot or None}`` for the partitions in ``keys``."""
    bounds = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout) for p in keys}
    found: dict[int, dict | None] = {p: None for p in keys}
    tail = TAIL
    pending = {p for p, (low, high) in bounds.items() if high > low}
    while pending:
        starts = {p: max(bounds[p][0], bounds[p][1] - tail) for p in pending}
        found.update(_scan(reader, topic, keys, starts, {p: bounds[p][1] for p in pending}, timeout))
        pending = {p for p in pending if found[p] is None and starts[p] > bounds[p][0]}
        tail *= 4
    return found


def _scan(reader: Consumer, topic: str, keys: dict[int, bytes], starts: dict[int, int], ends: dict[int, int],
          timeout: float) -> dict[int, dict | None]:
    reader.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
    latest: dict[int, dict | None] = {p: None for p in starts}
    remaining = set(starts)
    deadline = time.monotonic() + timeout
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading snapshots of {topic} partitions {sorted(remaining)} took over {timeout:.0f} s")
            for msg in reader.consume(num_messages=500, timeout=0.05):
                if msg.error():
                    logger.warning("reading snapshots: %s", msg.error())
                    continue
                if msg.key() == keys[msg.partition()] and msg.value():
                    latest[msg.partition()] = orjson.loads(msg.value())
            positions = reader.position([TopicPartition(topic, p) for p in remaining])
            remaining -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return latest
    finally:
        reader.unassign()
