"""Read the per-minute history topic inside the dashboard, from its start, never blocking the loop.

The topic holds one final record per input partition and minute for the last 25 hours (see
:mod:`eventdash.history`; a replay after a crash rewrites some keys until compaction), so
reading it whole at start is about 1,500 small records a partition. Its partitions are looked
up on a native thread; after that every librdkafka call is non-blocking
(:func:`~eventdash.dashboard.feed.follow`). ``caught_up`` turns true once every partition has
been read to the end it had when the reader joined: from then on a page gets the whole range at
once.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ..config import Settings
from ..history import InvalidHistoryRecord, MinuteHistory, decode
from ..kafka.clients import make_consumer
from .feed import follow
from .native import run_off_loop

logger = logging.getLogger(__name__)

IDLE_SECONDS = 0.1  # new records come once a minute per partition


class HistoryFeed:
    def __init__(self, settings: Settings, sleep: Callable[[float], None],
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 on_skip: Callable[[], None] = lambda: None,
                 input_partitions: Callable[[], int | None] = lambda: None):
        self.settings = settings
        self._sleep = sleep
        self._clock_ms = clock_ms
        self._on_skip = on_skip
        self.input_partitions = input_partitions
        self.history = MinuteHistory(max_partitions=0)  # replaced once the topic's partitions are known
        self._at_end: set[int] = set()
        self._partitions: int | None = None
        self._logged_skip = False
        self._running = False

    @property
    def caught_up(self) -> bool:
        return self._partitions is not None and len(self._at_end) >= self._partitions

    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        s = self.settings
        self._running = True
        self._at_end, self._partitions = set(), None  # a restarted feed reads everything again
        lookup = run_off_loop()
        partitions = lookup(self._partition_ids)
        while not partitions and self._running:  # no history topic yet (the aggregator creates it)
            self._sleep(5.0)
            partitions = lookup(self._partition_ids)
        if not partitions:
            return
        self.history = MinuteHistory(max_partitions=max(partitions) + 1)
        self._partitions = len(partitions)
        consumer = make_consumer(s, "dashboard-history", f"eventdash-dashboard-history-{uuid.uuid4().hex}",
                                 **{"enable.partition.eof": True})
        consumer.assign([TopicPartition(s.history_topic, p, OFFSET_BEGINNING) for p in partitions])
        logger.info("reading the per-minute history of %s from %s (%d partitions)", s.events_topic,
                    s.history_topic, len(partitions))
        try:
            follow(consumer, self.accept, self._sleep, lambda: self._running, idle_seconds=IDLE_SECONDS)
        finally:
            consumer.close()

    def _partition_ids(self) -> list[int]:
        """Blocking metadata lookup: runs on a native thread with a client that has no Python callbacks."""
        s = self.settings
        client = Consumer({"bootstrap.servers": s.bootstrap_servers, "enable.auto.commit": False,
                           "group.id": f"eventdash-dashboard-history-lookup-{uuid.uuid4().hex}"})
        try:
            topic = client.list_topics(s.history_topic, timeout=10).topics.get(s.history_topic)
            if topic is None or topic.error is not None:
                return []
            return sorted(topic.partitions)
        finally:
            client.close()

    def accept(self, msg) -> None:
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._at_end.add(msg.partition())
            else:
                logger.warning("history feed: %s", error)
            return
        prefix = f"{self.settings.events_topic}:".encode()
        key = msg.key()
        if not key or not key.startswith(prefix):
            return  # another events topic's history (topics can be shared)
        try:
            record = decode(key, msg.value(), events_topic=self.settings.events_topic, partition=msg.partition())
        except InvalidHistoryRecord as invalid:
            self._on_skip()
            if not self._logged_skip:
                self._logged_skip = True
                logger.warning("skipping invalid records on %s (first at %d/%d, further ones are only counted): "
                               "%s", msg.topic(), msg.partition(), msg.offset(), invalid)
            return
        self.history.add(record, now_minute=self._clock_ms() // 60_000)
