"""The aggregators' lag, measured from Kafka itself: the consumer group's committed offsets
against the input topic's end offsets. A dead or stuck aggregator shows a lag that grows.

Measured every ``INTERVAL_SECONDS`` on a native thread (librdkafka calls block), with a client
that has no Python callbacks; the latest :class:`LagReading` is read by the event loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from ..config import Settings
from .native import native_sleep, start_native_thread

INTERVAL_SECONDS = 2.0
CALL_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class LagReading:
    measured_at: float  # time.monotonic()
    by_partition: dict[int, int]  # records not yet aggregated, per input partition

    @property
    def total(self) -> int:
        return sum(self.by_partition.values())


class GroupLagMonitor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.reading: LagReading | None = None
        self.error: str | None = None
        self.partitions: int | None = None  # of the events topic, once known
        self._running = False

    def start(self) -> None:
        self._running = True
        start_native_thread(self._run)

    def stop(self) -> None:
        self._running = False

    def _run(self) -> None:
        sleep = native_sleep()
        client: Consumer | None = None
        try:
            while self._running:
                try:
                    client = client or self._client()
                    self.reading = self.measure(client)
                    self.error = None
                except Exception as exc:  # noqa: BLE001 - reported as health, never raised
                    self.error = f"{type(exc).__name__}: {exc}"
                sleep(INTERVAL_SECONDS)
        finally:
            if client is not None:
                client.close()

    def _client(self) -> Consumer:
        s = self.settings
        return Consumer({
            "bootstrap.servers": s.bootstrap_servers,
            "group.id": s.consumer_group,  # only to read its committed offsets: never subscribes
            "client.id": "eventdash-dashboard-lag",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 2,  # the feed's client reports connection trouble; this one stays quiet
        })

    def measure(self, client: Consumer) -> LagReading:
        topic = self.settings.events_topic
        metadata = client.list_topics(topic, timeout=CALL_TIMEOUT_SECONDS).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise LookupError(f"topic {topic} not found")
        self.partitions = len(metadata.partitions)
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        committed = {tp.partition: tp.offset for tp in client.committed(partitions, timeout=CALL_TIMEOUT_SECONDS)}
        lag = {}
        for tp in partitions:
            low, high = client.get_watermark_offsets(tp, timeout=CALL_TIMEOUT_SECONDS)
            position = committed.get(tp.partition, -1)
            lag[tp.partition] = max(0, high - (position if position >= 0 else low))
        return LagReading(time.monotonic(), lag)
