"""The dashboard's Prometheus metrics, in a registry of its own (no import-time globals)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DashboardMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.clients = Gauge("eventdash_dashboard_socketio_clients", "Connected Socket.IO clients",
                             registry=self.registry)
        self.broadcasts = Counter("eventdash_dashboard_broadcasts_total", "stats broadcasts sent",
                                  registry=self.registry)
        self.snapshots = Counter("eventdash_dashboard_snapshots_read_total", "snapshots read from Kafka",
                                 registry=self.registry)
        self.update_age = Gauge("eventdash_dashboard_last_update_age_seconds",
                                "Seconds since the statistics last changed", registry=self.registry)
        self.kafka_up = Gauge("eventdash_dashboard_kafka_up", "1 when a broker connection is up",
                              registry=self.registry)
        self.lag = Gauge("eventdash_consumer_lag_records", "Aggregator lag per input partition",
                         ["partition"], registry=self.registry)
