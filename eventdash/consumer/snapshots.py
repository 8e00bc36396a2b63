"""Find the latest committed snapshot of one input partition in ``event_statistics``.

The aggregator writes the snapshot of input partition *p* to partition *p* of the statistics
topic, one snapshot per transaction, so the latest one sits in the last few offsets (the rest
are transaction markers). We read a short tail with ``read_committed`` and widen it if it holds
no snapshot (for example after a run of aborted transactions).
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


def read_latest_snapshot(reader: Consumer, topic: str, partition: int, key: bytes,
                         timeout: float = 30.0) -> dict | None:
    low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    if high <= low:
        return None
    tail = TAIL
    while True:
        start = max(low, high - tail)
        found = _scan(reader, topic, partition, key, start, high, timeout)
        if found is not None or start == low:
            return found
        tail *= 4


def _scan(reader: Consumer, topic: str, partition: int, key: bytes, start: int, end: int,
          timeout: float) -> dict | None:
    tp = TopicPartition(topic, partition, start)
    reader.assign([tp])
    latest = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for msg in reader.consume(num_messages=500, timeout=0.2):
                if msg.error():
                    logger.warning("reading snapshots of partition %d: %s", partition, msg.error())
                    continue
                if msg.key() == key and msg.value():
                    latest = orjson.loads(msg.value())
                if msg.offset() >= end - 1:
                    return latest
            position = reader.position([TopicPartition(topic, partition)])[0].offset
            if position >= end:
                return latest
        raise TimeoutError(f"reading snapshots of {topic}[{partition}] up to offset {end} took over {timeout:.0f} s")
    finally:
        reader.unassign()
