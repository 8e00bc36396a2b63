"""All configuration, read once from environment variables into one typed, frozen object.

Every program calls :meth:`Settings.from_env` once at start. A bad value raises
:class:`ConfigError` whose message names the variable; the CLI prints it as one line and exits 2.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .alerts.rules import RULES, AlertSettings
from .snapshots import HEARTBEAT_SECONDS, MAX_HORIZON_SECONDS, PRODUCT_CANDIDATES

T = TypeVar("T")

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:(\d{1,5})$")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class ConfigError(ValueError):
    """A configuration variable has a value we cannot use."""


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "localhost:9092"
    events_topic: str = "events"
    statistics_topic: str = "event_statistics"
    dlq_topic: str = "events.dlq"
    history_topic: str = "event_history"
    events_partitions: int = 6
    replication_factor: int = 1
    # producer
    rate: float = 50.0
    producer_seed: int | None = None
    scenarios: str = ""  # EVENTDASH_SCENARIOS, e.g. checkout-outage@5m+2m (eventdash/producer/scenarios.py)
    # consumer / statistics engine
    consumer_group: str = "eventdash-aggregator"
    instance: str | None = None  # None: the lowest free number on this host (consumer/identity.py)
    transactional_id: str = ""  # "": eventdash-aggregator-<hostname>-<instance>
    snapshot_interval_ms: int = 100  # Kafka Streams' commit.interval.ms under exactly-once
    horizon_seconds: int = 900
    future_tolerance_ms: int = 60_000
    max_event_bytes: int = 65_536
    top_n: int = 10
    engine: str = "auto"  # native (Rust, eventdash_native), python (the reference), auto: native when installed
    # dashboard
    dashboard_host: str = "0.0.0.0"
    dashboard_port: int = 5002
    worker_class: str = "eventlet"
    broadcast_per_second: float = 20.0  # the most; many clients stretch the period (dashboard/live.py)
    max_clients: int = 10_000  # open connections per dashboard process (gunicorn --worker-connections)
    cors_origins: tuple[str, ...] = ()
    stale_after_seconds: float = 15.0
    currency: str = "EUR"
    web_root: str = ""  # folder with templates/, static/, node_modules/; "": the project the package runs from
    auth: str = "none"  # none, basic (users file of scrypt hashes), proxy (a trusted reverse proxy's header)
    auth_users_file: str = ""
    auth_proxy_header: str = "X-Forwarded-User"
    metrics_auth: str = "open"  # /metrics: open (for Prometheus on a private network) or protected
    # alerts (docs/alerts.md)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    alert_webhook_url: str = ""
    # operations
    startup_timeout_seconds: float = 60.0
    log_level: str = "INFO"
    log_format: str = "plain"
    supervisor_socket: str = ""
    metrics_host: str = "127.0.0.1"
    producer_metrics_port: int = 9101
    consumer_metrics_port: int = 9102

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        settings = cls(
            bootstrap_servers=env.parse("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers, _bootstrap),
            events_topic=env.text("EVENTDASH_EVENTS_TOPIC", cls.events_topic, _TOPIC_NAME),
            statistics_topic=env.text("EVENTDASH_STATISTICS_TOPIC", cls.statistics_topic, _TOPIC_NAME),
            dlq_topic=env.text("EVENTDASH_DLQ_TOPIC", cls.dlq_topic, _TOPIC_NAME),
            history_topic=env.text("EVENTDASH_HISTORY_TOPIC", cls.history_topic, _TOPIC_NAME),
            events_partitions=env.integer("EVENTDASH_EVENTS_PARTITIONS", cls.events_partitions, 1, 1000),
            replication_factor=env.integer("EVENTDASH_REPLICATION_FACTOR", cls.replication_factor, 1, 10),
            rate=env.number("EVENTDASH_RATE", cls.rate, 0.0, 1_000_000.0),
            producer_seed=env.optional_integer("EVENTDASH_PRODUCER_SEED"),
            scenarios=env.raw("EVENTDASH_SCENARIOS", ""),
            consumer_group=env.text("EVENTDASH_CONSUMER_GROUP", cls.consumer_group, _ID),
            instance=env.text("EVENTDASH_INSTANCE", "", _ID) if env.raw("EVENTDASH_INSTANCE", "") else None,
            transactional_id=env.text("EVENTDASH_TRANSACTIONAL_ID", "", _ID)
            if env.raw("EVENTDASH_TRANSACTIONAL_ID", "") else "",
            snapshot_interval_ms=env.integer("EVENTDASH_SNAPSHOT_INTERVAL_MS", cls.snapshot_interval_ms, 10, 20_000),
            horizon_seconds=env.integer("EVENTDASH_HORIZON_SECONDS", cls.horizon_seconds, 60, MAX_HORIZON_SECONDS),
            future_tolerance_ms=env.integer("EVENTDASH_FUTURE_TOLERANCE_MS", cls.future_tolerance_ms, 0, 86_400_000),
            max_event_bytes=env.integer("EVENTDASH_MAX_EVENT_BYTES", cls.max_event_bytes, 256, 1_000_000),
            top_n=env.integer("EVENTDASH_TOP_N", cls.top_n, 1, PRODUCT_CANDIDATES // 2),
            engine=env.choice("EVENTDASH_ENGINE", cls.engine, ("auto", "native", "python")),
            dashboard_host=env.text("EVENTDASH_HOST", cls.dashboard_host, re.compile(r"^[A-Za-z0-9.:\-\[\]]+$")),
            dashboard_port=env.integer("EVENTDASH_PORT", cls.dashboard_port, 1, 65_535),
            worker_class=env.choice("EVENTDASH_WORKER_CLASS", cls.worker_class, ("eventlet", "gevent")),
            broadcast_per_second=env.number("EVENTDASH_BROADCAST_PER_SECOND", cls.broadcast_per_second, 0.1, 50.0),
            max_clients=env.integer("EVENTDASH_MAX_CLIENTS", cls.max_clients, 10, 100_000),
            cors_origins=env.parse("EVENTDASH_CORS_ORIGINS", "", _origins),
            stale_after_seconds=env.number("EVENTDASH_STALE_AFTER_SECONDS", cls.stale_after_seconds,
                                           2 * HEARTBEAT_SECONDS, 3600.0),
            currency=env.text("EVENTDASH_CURRENCY", cls.currency, re.compile(r"^[A-Z]{3}$")),
            web_root=env.raw("EVENTDASH_WEB_ROOT", ""),
            auth=env.choice("EVENTDASH_AUTH", cls.auth, ("none", "basic", "proxy")),
            auth_users_file=env.raw("EVENTDASH_AUTH_USERS_FILE", ""),
            auth_proxy_header=env.text("EVENTDASH_AUTH_PROXY_HEADER", cls.auth_proxy_header,
                                       re.compile(r"^[A-Za-z0-9-]{1,64}$")),
            metrics_auth=env.choice("EVENTDASH_METRICS_AUTH", cls.metrics_auth, ("open", "protected")),
            alerts=AlertSettings(
                z=env.number("EVENTDASH_ALERT_Z", AlertSettings.z, 2.0, 12.0),
                min_volume=env.integer("EVENTDASH_ALERT_MIN_VOLUME", AlertSettings.min_volume, 1, 10**9),
                baseline_minutes=env.integer("EVENTDASH_ALERT_BASELINE_MINUTES", AlertSettings.baseline_minutes,
                                             10, 720),
                min_baseline_minutes=AlertSettings.min_baseline_minutes,
                resolve_minutes=env.integer("EVENTDASH_ALERT_RESOLVE_MINUTES", AlertSettings.resolve_minutes, 1, 60),
                stuck_seconds=env.number("EVENTDASH_ALERT_STUCK_SECONDS", AlertSettings.stuck_seconds, 0.0, 86_400.0),
                dlq_min=env.integer("EVENTDASH_ALERT_DLQ_MIN", AlertSettings.dlq_min, 1, 10**9),
                disabled=env.parse("EVENTDASH_ALERTS_DISABLED", "", _rules),
            ),
            alert_webhook_url=env.parse("EVENTDASH_ALERT_WEBHOOK_URL", "", _webhook_url),
            startup_timeout_seconds=env.number(
                "EVENTDASH_STARTUP_TIMEOUT_SECONDS", cls.startup_timeout_seconds, 1.0, 3600.0),
            log_level=env.choice("EVENTDASH_LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=env.choice("EVENTDASH_LOG_FORMAT", cls.log_format, ("plain", "json")),
            supervisor_socket=env.raw("EVENTDASH_SUPERVISOR_SOCKET", ""),
            metrics_host=env.text("EVENTDASH_METRICS_HOST", cls.metrics_host, re.compile(r"^[A-Za-z0-9.:\-\[\]]+$")),
            producer_metrics_port=env.integer("EVENTDASH_PRODUCER_METRICS_PORT", cls.producer_metrics_port, 0, 65_535),
            consumer_metrics_port=env.integer("EVENTDASH_CONSUMER_METRICS_PORT", cls.consumer_metrics_port, 0, 65_535),
        )
        settings.cross_check()
        return settings

    def cross_check(self) -> None:
        """Settings that are valid alone but not together (and the scenario schedule's syntax)."""
        from .producer.scenarios import parse_schedule

        parse_schedule(self.scenarios)
        topics = {"EVENTDASH_EVENTS_TOPIC": self.events_topic, "EVENTDASH_STATISTICS_TOPIC": self.statistics_topic,
                  "EVENTDASH_DLQ_TOPIC": self.dlq_topic, "EVENTDASH_HISTORY_TOPIC": self.history_topic}
        if len(set(topics.values())) < len(topics):
            raise ConfigError(f"{', '.join(f'{k}={v!r}' for k, v in topics.items())} are invalid: "
                              "the four topics must be distinct")
        if self.future_tolerance_ms >= self.horizon_seconds * 1000:
            raise ConfigError(f"EVENTDASH_FUTURE_TOLERANCE_MS={self.future_tolerance_ms} is invalid: it must be "
                              f"smaller than EVENTDASH_HORIZON_SECONDS={self.horizon_seconds} (in ms)")
        if self.stale_after_seconds * 1000 <= self.snapshot_interval_ms + HEARTBEAT_SECONDS * 1000:
            raise ConfigError(f"EVENTDASH_STALE_AFTER_SECONDS={self.stale_after_seconds:g} is invalid: it must exceed "
                              f"EVENTDASH_SNAPSHOT_INTERVAL_MS={self.snapshot_interval_ms} plus the aggregator's "
                              f"{HEARTBEAT_SECONDS:g} s heartbeat, or every busy partition looks stuck")
        if self.auth == "basic" and not self.auth_users_file:
            raise ConfigError("EVENTDASH_AUTH_USERS_FILE is invalid: EVENTDASH_AUTH=basic needs a users file "
                              "(lines written by `python -m eventdash hash-password`)")
        ports = [(name, port) for name, port in (("EVENTDASH_PORT", self.dashboard_port),
                                                 ("EVENTDASH_PRODUCER_METRICS_PORT", self.producer_metrics_port),
                                                 ("EVENTDASH_CONSUMER_METRICS_PORT", self.consumer_metrics_port))
                 if port]
        for i, (name, port) in enumerate(ports):
            for other, other_port in ports[i + 1:]:
                if port == other_port:
                    raise ConfigError(f"{other}={other_port} is invalid: {name} uses the same port")


class _Env:
    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def raw(self, name: str, default: str) -> str:
        value = self._environ.get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def parse(self, name: str, default: str, parser: Callable[[str], T]) -> T:
        value = self.raw(name, default)
        try:
            return parser(value)
        except ValueError as exc:
            raise ConfigError(f"{name}={value!r} is invalid: {exc}") from None

    def text(self, name: str, default: str, pattern: re.Pattern[str]) -> str:
        value = self.raw(name, default)
        if not pattern.match(value):
            raise ConfigError(f"{name}={value!r} is invalid: it must match {pattern.pattern}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name, str(default))
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is invalid: expected a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"{name}={value!r} is invalid: expected {low} to {high}")
        return number

    def optional_integer(self, name: str) -> int | None:
        if self.raw(name, "") == "":
            return None
        return self.integer(name, 0, -(2**63), 2**63 - 1)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name, str(default))
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is invalid: expected a number") from None
        if not low <= number <= high:  # also rejects nan
            raise ConfigError(f"{name}={value!r} is invalid: expected {low:g} to {high:g}")
        return number

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(name, default)
        normalized = value.upper() if allowed[0].isupper() else value.lower()
        if normalized not in allowed:
            raise ConfigError(f"{name}={value!r} is invalid: expected one of {', '.join(allowed)}")
        return normalized


def _bootstrap(value: str) -> str:
    servers = [s.strip() for s in value.split(",") if s.strip()]
    if not servers:
        raise ValueError("expected host:port[,host:port...]")
    for server in servers:
        match = _HOST_PORT.match(server)
        if not match or not 1 <= int(match.group(1)) <= 65_535:
            raise ValueError(f"{server!r} is not host:port")
    return ",".join(servers)


def _rules(value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = sorted(names - set(RULES))
    if unknown:
        raise ValueError(f"unknown rules {', '.join(unknown)} (rules: {', '.join(RULES)})")
    return names


def _webhook_url(value: str) -> str:
    if value and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
            raise ValueError(f"{origin!r} is not an origin like https://dash.example.com or *")
    return origins
