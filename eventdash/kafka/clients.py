"""Thin factories for confluent-kafka clients with one place for the shared settings.

librdkafka's own log lines and errors go into Python logging (logger ``eventdash.kafka.librdkafka``)
instead of stderr; transient broker errors are WARNING, fatal ones ERROR.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer

from ..config import Settings

logger = logging.getLogger(__name__)
librdkafka_logger = logging.getLogger("eventdash.kafka.librdkafka")


def _on_error(err: KafkaError) -> None:
    if err.fatal():
        level = logging.ERROR
    elif err.code() == KafkaError._TRANSPORT:
        level = logging.DEBUG  # librdkafka's own log line already reported the connection failure
    else:
        level = logging.WARNING
    librdkafka_logger.log(level, "kafka client error: %s", err)


def base_config(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"eventdash-{role}-{socket.gethostname()}-{os.getpid()}",
        "logger": librdkafka_logger,
        "error_cb": _on_error,
        "socket.keepalive.enable": True,
    }


def make_producer(settings: Settings, role: str, **overrides: Any) -> Producer:
    config = {
        **base_config(settings, role),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200_000,
        **overrides,
    }
    return Producer(config)


def produce_with_backpressure(producer: Producer, topic: str, value: bytes | None, **kwargs: Any) -> None:
    """``produce`` that waits for deliveries while librdkafka's local queue is full, then ``poll(0)``."""
    while True:
        try:
            producer.produce(topic, value, **kwargs)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


# The aggregator's fetch settings; benchmarks give the same to every consumer they compare with it.
AGGREGATOR_FETCH_SETTINGS: dict[str, Any] = {
    "fetch.wait.max.ms": 100,
    "fetch.queue.backoff.ms": 10,  # refill the local queue at once instead of idling up to 1 s
    "queued.max.messages.kbytes": 8192,  # prefetch at most 8 MB (default 64 MB): bounded RSS
}


def make_consumer(settings: Settings, role: str, group_id: str, **overrides: Any) -> Consumer:
    config = {
        **base_config(settings, role),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
        **overrides,
    }
    return Consumer(config)
