"""Read ``event_statistics`` inside the dashboard without ever blocking the event loop.

Each dashboard process is a stateless reader with its own throw-away consumer group, so every
process gets every partition. On assignment it starts a few records before the end of each
partition (``OFFSET_TAIL``), which always holds the latest committed snapshot, and then follows
new ones. All librdkafka calls are non-blocking (``consume(timeout=0)``); waiting is done by
``socketio.sleep`` so eventlet or gevent keep serving browsers.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import orjson
from confluent_kafka import KafkaError, TopicPartition

from ..config import Settings
from ..kafka.clients import make_consumer
from ..snapshots import InvalidSnapshot, Snapshot, decode, key_partition

logger = logging.getLogger(__name__)

TAIL_RECORDS = 16
BATCH = 500
SLICE_SECONDS = 0.02  # the most the feed holds the event loop before yielding
IDLE_SECONDS = 0.01  # how often a caught-up feed asks librdkafka for more (a non-blocking call)
_OFFSET_TAIL_BASE = -2000  # librdkafka's RD_KAFKA_OFFSET_TAIL_BASE


def offset_tail(count: int) -> int:
    return _OFFSET_TAIL_BASE - count


def follow(consumer, accept: Callable[[object], None], sleep: Callable[[float], None], running: Callable[[], bool],
           *, idle_seconds: float) -> None:
    """Hand every record to ``accept`` without holding the event loop: non-blocking batches, a yield
    at least every SLICE_SECONDS (a run of large records lets the browsers in) and on every pass, and
    a wait of ``idle_seconds`` only when caught up."""
    while running():
        messages = consumer.consume(num_messages=BATCH, timeout=0)
        slice_ends = time.monotonic() + SLICE_SECONDS
        for msg in messages:
            accept(msg)
            if time.monotonic() > slice_ends:
                sleep(0)
                slice_ends = time.monotonic() + SLICE_SECONDS
        sleep(idle_seconds if len(messages) < BATCH else 0)


class StatisticsFeed:
    """Latest valid snapshot per input partition, a version that bumps on change, and broker health.

    Records that are not valid snapshots of an input partition (corrupt, foreign, another
    version, a key or partition outside the events topic) are skipped: counted through
    ``on_skip(reason)`` and logged once per partition and reason. The last good snapshot of
    each partition stays, so state is bounded by the number of input partitions.
    """

    def __init__(self, settings: Settings, sleep: Callable[[float], None],
                 on_snapshot: Callable[[], None] = lambda: None, on_skip: Callable[[str], None] = lambda reason: None,
                 input_partitions: Callable[[], int | None] = lambda: None):
        self.settings = settings
        self._sleep = sleep
        self._on_snapshot = on_snapshot
        self._on_skip = on_skip
        self._input_partitions = input_partitions
        self._logged_skips: set[tuple[int, str]] = set()  # at most partitions x reasons
        self.snapshots: dict[int, Snapshot] = {}
        self.version = 0
        self.broker_up = False
        self.broker_checked_at = 0.0
        self.last_error: str | None = None
        self.records_read = 0
        self._running = False

    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        s = self.settings
        consumer = make_consumer(s, "dashboard", f"eventdash-dashboard-{uuid.uuid4().hex}", **{
            "statistics.interval.ms": 1000,
            "stats_cb": self._on_client_stats,
            "error_cb": self._on_error,
            "session.timeout.ms": 10_000,
        })
        consumer.subscribe([s.statistics_topic], on_assign=self._tail_assign)
        self._running = True
        logger.info("following %s", s.statistics_topic)
        try:
            follow(consumer, self._accept, self._sleep, lambda: self._running, idle_seconds=IDLE_SECONDS)
        finally:
            consumer.close()

    def _tail_assign(self, consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = offset_tail(TAIL_RECORDS)
        consumer.assign(partitions)

    def _accept(self, msg) -> None:
        error = msg.error()
        if error is not None:
            logger.warning("statistics feed: %s", error)
            return
        self.broker_up = True
        self.broker_checked_at = time.monotonic()
        partition = key_partition(msg.key(), self.settings.events_topic)
        if partition is None:
            return  # another events topic's snapshot (topics can be shared), or no key at all
        input_partitions = self._input_partitions()
        try:
            if partition != msg.partition() or (input_partitions is not None and partition >= input_partitions):
                raise InvalidSnapshot("foreign_partition", f"key {msg.key()[:40]!r} on partition {msg.partition()}")
            snapshot = decode(msg.value(), partition=partition)
        except InvalidSnapshot as invalid:
            self._skip(msg, invalid)
            return
        self.records_read += 1
        self._on_snapshot()
        if input_partitions is not None:
            for gone in [p for p in self.snapshots if p >= input_partitions]:
                del self.snapshots[gone]
        self.snapshots[partition] = snapshot
        self.version += 1

    def _skip(self, msg, invalid: InvalidSnapshot) -> None:
        self._on_skip(invalid.reason)
        seen = (msg.partition(), invalid.reason)
        if seen not in self._logged_skips:
            self._logged_skips.add(seen)
            logger.warning("skipping invalid snapshots on %s[%d] (first at offset %d, further ones are only "
                           "counted): %s", msg.topic(), msg.partition(), msg.offset(), invalid)

    def _on_client_stats(self, stats_json: str) -> None:
        """librdkafka's statistics say whether any real broker connection is up."""
        stats = orjson.loads(stats_json)
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
        self.broker_up = any(b.get("state") == "UP" for b in brokers)
        self.broker_checked_at = time.monotonic()

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka repeats an error while it lasts (every few ms while a broker is down): log a change only."""
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.broker_up = False
        if str(err) != self.last_error:
            logger.warning("statistics feed: kafka error: %s", err)
        self.last_error = str(err)
