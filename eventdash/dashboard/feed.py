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

logger = logging.getLogger(__name__)

TAIL_RECORDS = 16
_OFFSET_TAIL_BASE = -2000  # librdkafka's RD_KAFKA_OFFSET_TAIL_BASE


def offset_tail(count: int) -> int:
    return _OFFSET_TAIL_BASE - count


class StatisticsFeed:
    """Latest snapshot per partition, a version that bumps on change, and broker health."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None],
                 on_snapshot: Callable[[], None] = lambda: None):
        self.settings = settings
        self._sleep = sleep
        self._on_snapshot = on_snapshot
        self.snapshots: dict[int, dict] = {}
        self.version = 0
        self.broker_up = False
        self.broker_checked_at = 0.0
        self.last_error: str | None = None
        self.records_read = 0
        self._running = False
        self._key_prefix = f"{settings.events_topic}:".encode()

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
            while self._running:
                messages = consumer.consume(num_messages=500, timeout=0)
                for msg in messages:
                    self._accept(msg)
                # Yield to the browsers on every pass; wait a little only when caught up.
                self._sleep(0.05 if len(messages) < 500 else 0)
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
        key = msg.key() or b""
        if not key.startswith(self._key_prefix):
            return
        try:
            snapshot = orjson.loads(msg.value())
            partition = int(snapshot["partition"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("ignoring malformed snapshot at %s[%d]@%d: %s", msg.topic(), msg.partition(),
                           msg.offset(), exc)
            return
        self.records_read += 1
        self._on_snapshot()
        self.snapshots[partition] = snapshot
        self.version += 1
        self.broker_up = True
        self.broker_checked_at = time.monotonic()

    def _on_client_stats(self, stats_json: str) -> None:
        """librdkafka's statistics say whether any real broker connection is up."""
        stats = orjson.loads(stats_json)
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
        self.broker_up = any(b.get("state") == "UP" for b in brokers)
        self.broker_checked_at = time.monotonic()

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = str(err)
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.broker_up = False
        logger.warning("statistics feed: kafka error: %s", err)
