"""Prometheus metrics of the three programs, each in a registry of its own.

The dashboard serves its registry at ``/metrics``; the producer and the consumer on ports of
their own (``EVENTDASH_PRODUCER_METRICS_PORT``, ``EVENTDASH_CONSUMER_METRICS_PORT``; 0 turns
them off). Nothing is created at import time.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..config import ConfigError

logger = logging.getLogger(__name__)


class ProducerMetrics:
    """Read at scrape time from the producer's own counters: nothing to do per event."""

    def __init__(self, delivered: Mapping[str, int], failed: Callable[[], int], queued: Callable[[], int]):
        self.registry = CollectorRegistry()
        self._delivered, self._failed, self._queued = delivered, failed, queued
        self.registry.register(self)

    def collect(self):
        produced = CounterMetricFamily("eventdash_producer_events", "Events acknowledged by Kafka", labels=["type"])
        for event_type, count in sorted(self._delivered.items()):
            produced.add_metric([event_type], count)
        yield produced
        yield CounterMetricFamily("eventdash_producer_delivery_failures", "Events Kafka did not acknowledge",
                                  value=self._failed())
        yield GaugeMetricFamily("eventdash_producer_queue_messages", "Events waiting in the local producer queue",
                                value=self._queued())


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.consumed = Counter("eventdash_consumer_events_total", "Valid events aggregated", ["type"],
                                registry=self.registry)
        self.invalid = Counter("eventdash_consumer_invalid_events_total", "Invalid events dead-lettered",
                               ["reason"], registry=self.registry)
        self.snapshots = Counter("eventdash_consumer_snapshots_published_total", "Snapshots published",
                                 registry=self.registry)
        self.commits = Counter("eventdash_consumer_transactions_committed_total", "Transactions committed",
                               registry=self.registry)
        self.aborts = Counter("eventdash_consumer_transaction_aborts_total", "Transactions aborted",
                              registry=self.registry)
        self.lag = Gauge("eventdash_consumer_lag_records", "Records behind the end of each input partition",
                         ["partition"], registry=self.registry)
        self.assigned = Gauge("eventdash_consumer_assigned_partitions", "Input partitions owned",
                              registry=self.registry)
        self.snapshots_skipped = Counter("eventdash_consumer_snapshots_skipped_total",
                                         "Invalid records skipped while restoring snapshots", ["reason"],
                                         registry=self.registry)


class DashboardMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.clients = Gauge("eventdash_dashboard_socketio_clients", "Connected Socket.IO clients",
                             registry=self.registry)
        self.broadcasts = Counter("eventdash_dashboard_broadcasts_total", "stats broadcasts sent",
                                  registry=self.registry)
        self.broadcast_seconds = Histogram("eventdash_dashboard_broadcast_seconds",
                                           "Time one broadcast holds the event loop (encoding, writing to every "
                                           "client, and the writes it queued)",
                                           buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                                           registry=self.registry)
        self.client_writes = Counter("eventdash_dashboard_client_writes_total",
                                     "Messages to clients, by path: direct (one frame written at once) or queued "
                                     "(python-socketio's per-client queue)", ["path"], registry=self.registry)
        self.snapshots = Counter("eventdash_dashboard_snapshots_read_total", "snapshots read from Kafka",
                                 registry=self.registry)
        self.snapshots_skipped = Counter("eventdash_dashboard_snapshots_skipped_total",
                                         "records on the statistics topic that are not valid snapshots", ["reason"],
                                         registry=self.registry)
        self.alert_active = Gauge("eventdash_alert_active", "1 while an alert of this rule is open", ["rule"],
                                  registry=self.registry)
        self.alert_webhook = Counter("eventdash_alert_webhook_total",
                                     "alert webhook deliveries by outcome (delivered, retried, dropped, given_up)",
                                     ["outcome"], registry=self.registry)
        self.history_skipped = Counter("eventdash_dashboard_history_records_skipped_total",
                                       "records on the history topic that are not valid history records",
                                       registry=self.registry)
        self.pipeline_stuck = Gauge("eventdash_dashboard_pipeline_stuck",
                                    "1 while some input partition's statistics have stopped advancing",
                                    registry=self.registry)
        self.update_age = Gauge("eventdash_dashboard_last_update_age_seconds",
                                "Seconds since the statistics last changed", registry=self.registry)
        self.kafka_up = Gauge("eventdash_dashboard_kafka_up", "1 when a broker connection is up",
                              registry=self.registry)
        self.lag = Gauge("eventdash_consumer_lag_records",
                         "Records of each input partition not yet aggregated (end offset - group's committed offset)",
                         ["partition"], registry=self.registry)


def serve(registry: CollectorRegistry, port: int, variable: str, host: str) -> None:
    """Serve ``/metrics`` on ``port`` (0: not at all); a busy port is a configuration error."""
    if not port:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"{variable}={port} is invalid: cannot listen there ({exc.strerror}); "
                          "give each process its own port or 0") from None
    logger.info("metrics at http://%s:%d/metrics", host, port)
