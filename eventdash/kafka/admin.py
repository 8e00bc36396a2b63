"""Wait for the broker and create the topics we need, idempotently, with a deadline."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ..config import Settings
from ..history import RETENTION_HOURS
from .clients import base_config

logger = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """``events``, its per-partition snapshots (compacted), the per-minute history (compacted, and
    deleted after a day and an hour) and the dead-letter topic."""
    return [
        TopicSpec(settings.events_topic, settings.events_partitions),
        TopicSpec(settings.statistics_topic, settings.events_partitions, {
            "cleanup.policy": "compact",
            "segment.ms": "600000",
            "min.cleanable.dirty.ratio": "0.2",
            "max.message.bytes": "8388608",
        }),
        TopicSpec(settings.history_topic, settings.events_partitions, {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(RETENTION_HOURS * 3_600_000),
            "segment.ms": "3600000",
        }),
        TopicSpec(settings.dlq_topic, settings.events_partitions, {"retention.ms": str(14 * 86_400_000)}),
    ]


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(base_config(settings, "admin"))


def wait_for_broker(admin: AdminClient, settings: Settings) -> None:
    deadline = time.monotonic() + settings.startup_timeout_seconds
    delay = 0.2
    while True:
        try:
            metadata = admin.list_topics(timeout=min(5.0, settings.startup_timeout_seconds))
            if metadata.brokers:
                return
        except KafkaException as exc:
            error = exc
        else:
            error = "no brokers in metadata"
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(
                f"Kafka at {settings.bootstrap_servers} did not answer within "
                f"{settings.startup_timeout_seconds:.0f} s (EVENTDASH_STARTUP_TIMEOUT_SECONDS): {error}")
        logger.info("waiting for Kafka at %s (%s); retrying in %.1f s", settings.bootstrap_servers, error, delay)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def ensure_topics(admin: AdminClient, settings: Settings, specs: list[TopicSpec] | None = None) -> None:
    """Create missing topics (another program may race us: that is fine); wait for leaders."""
    specs = specs if specs is not None else topic_specs(settings)
    existing = admin.list_topics(timeout=10).topics
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics([
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=settings.replication_factor,
                     config=s.config) for s in missing
        ], operation_timeout=30)
        for name, future in futures.items():
            try:
                future.result()
                logger.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    deadline = time.monotonic() + settings.startup_timeout_seconds
    for spec in specs:
        while True:
            topic = admin.list_topics(spec.name, timeout=10).topics.get(spec.name)
            ready = (topic is not None and topic.error is None and topic.partitions
                     and all(p.leader >= 0 for p in topic.partitions.values()))
            if ready:
                break
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(f"topic {spec.name} has no leader for every partition yet")
            time.sleep(0.1)


def partition_count(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
