"""Send simulated shopper events to Kafka: forever at ``EVENTDASH_RATE``, or exactly ``count``.

Idempotent producer with ``acks=all``; every delivery report is checked. When librdkafka's
local queue is full the loop waits for deliveries (back-pressure) instead of failing.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import KafkaError, Message

from ..config import Settings
from ..events.model import EVENT_TYPES
from ..kafka.admin import ensure_topics, make_admin, wait_for_broker
from ..kafka.clients import make_producer, produce_with_backpressure
from ..observability.metrics import ProducerMetrics, serve
from .rate import RateLimiter, wait_for_slot
from .scenarios import ScenarioPlayer, Scheduled, parse_schedule
from .simulator import ShopperSimulator

logger = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    delivered: Counter = field(default_factory=Counter)  # events, by type
    malformed: int = 0  # a scenario's malformed records (dlq-flood), not events
    failed: int = 0
    first_error: str | None = None

    @property
    def records(self) -> int:
        return sum(self.delivered.values()) + self.malformed

    def for_malformed(self) -> Callable[[KafkaError | None, Message], None]:
        return self.for_type(None)

    def for_type(self, event_type: str | None) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                if event_type is None:
                    self.malformed += 1
                else:
                    self.delivered[event_type] += 1
                return
            self.failed += 1
            if self.first_error is None:
                self.first_error = str(err)
            logger.error("delivery failed for %s: %s", msg.key(), err)
        return on_delivery


STOP_FLUSH_SECONDS = 3.0


MALFORMED = "malformed"  # what the delivery report counts a scenario's malformed record as


def run_producer(settings: Settings, *, count: int | None = None, rate: float | None = None,
                 stop: threading.Event | None = None, scenarios: tuple[Scheduled, ...] = ()) -> DeliveryReport:
    """Produce ``count`` records (or until ``stop`` is set); return what the broker acknowledged.

    ``scenarios`` (and ``EVENTDASH_SCENARIOS``) play incidents on top of the simulated stream."""
    stop = stop or threading.Event()
    admin = make_admin(settings)
    wait_for_broker(admin, settings)
    ensure_topics(admin, settings)
    producer = make_producer(settings, "producer")
    report = DeliveryReport()
    metrics = ProducerMetrics(report.delivered, lambda: report.failed, lambda: len(producer))
    serve(metrics.registry, settings.producer_metrics_port, "EVENTDASH_PRODUCER_METRICS_PORT", settings.metrics_host)
    on_delivery = {event_type: report.for_type(event_type) for event_type in EVENT_TYPES}
    on_delivery[MALFORMED] = report.for_malformed()
    limiter = RateLimiter(settings.rate if rate is None else rate, clock=time.monotonic)
    clock_ms = lambda: time.time_ns() // 1_000_000  # noqa: E731
    simulator = ShopperSimulator(seed=settings.producer_seed, clock_ms=clock_ms)
    player = ScenarioPlayer((*parse_schedule(settings.scenarios), *scenarios), seed=settings.producer_seed,
                            clock_ms=clock_ms)
    for scheduled in player.schedule:
        logger.info("scenario %s from %.0f s for %.0f s", scheduled.name, scheduled.start_ms / 1000,
                    scheduled.duration_ms / 1000)
    topic = settings.events_topic
    sent = 0
    logger.info("producing to %s at %s events/s%s", topic, limiter.rate or "max",
                f", {count} events" if count is not None else "")
    try:
        for record, extra in player.apply(simulator.events()):
            if stop.is_set() or (count is not None and sent >= count):
                break
            if not extra:  # a scenario's records come on top of the rate
                wait_for_slot(limiter, producer.poll, clock=time.monotonic, stopped=stop.is_set)
            if isinstance(record, bytes):  # a scenario's malformed record: no key, any partition
                produce_with_backpressure(producer, topic, record, on_delivery=on_delivery[MALFORMED])
            else:
                produce_with_backpressure(producer, topic, orjson.dumps(record), key=record["session_id"],
                                          on_delivery=on_delivery[record["type"]])
            sent += 1
    finally:
        # Stopped: a short flush (what is left is reported, not hidden). Counted run: wait for all.
        remaining = producer.flush(STOP_FLUSH_SECONDS if stop.is_set() else 30)
        while remaining and not stop.is_set():
            logger.warning("%d events still waiting for delivery", remaining)
            remaining = producer.flush(STOP_FLUSH_SECONDS)
        if remaining:
            report.failed += remaining
            report.first_error = report.first_error or f"{remaining} events undelivered at shutdown"
    logger.info("producer done: %d delivered (%d malformed), %d failed", report.records, report.malformed,
                report.failed)
    return report
