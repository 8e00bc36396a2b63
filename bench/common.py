"""Shared benchmark plumbing: machine facts, statistics, a real local Kafka, topic filling."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import orjson
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.environment import program_env
from devstack.localkafka import KAFKA_VERSION, LocalKafka
from eventdash.kafka.clients import produce_with_backpressure
from eventdash.producer.catalog import CATALOG, Product
from eventdash.producer.simulator import ShopperSimulator

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6


@dataclass
class Runs:
    """Several measurements of one thing (higher is better unless said)."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self, fmt: str = "{:,.0f}") -> str:
        """Median (min–max) of n runs; a single run says so."""
        if len(self.values) == 1:
            return f"{fmt.format(self.values[0])} (1 run)"
        return (f"{fmt.format(self.median)} ({fmt.format(min(self.values))}–{fmt.format(max(self.values))}, "
                f"{len(self.values)} runs)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "python": platform.python_version(),
        "confluent-kafka": version("confluent-kafka"),
        "librdkafka": __import__("confluent_kafka").libversion()[0],
        "kafka": f"Apache Kafka {KAFKA_VERSION} (ZooKeeper mode, one broker on loopback)",
        "java": java,
        "gunicorn/eventlet": f"{version('gunicorn')}/{version('eventlet')}",
    }


def start_kafka(work_dir: Path) -> LocalKafka:
    return LocalKafka(work_dir, heap="1g").start()


def new_topic(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result()
    return name


def simulated_events(seed: int = 1, catalog: tuple[Product, ...] = CATALOG):
    """Realistic events with real-time timestamps (the simulator's own clock)."""
    return ShopperSimulator(seed=seed, clock_ms=lambda: time.time_ns() // 1_000_000, catalog=catalog).events()


def synthetic_catalog(products: int) -> tuple[Product, ...]:
    """``products`` products with the shop catalog's Zipf-like popularity, for the scaling runs."""
    return tuple(Product(f"p-{i + 1:06d}", f"Product {i + 1}", f"Category {i % 12}", 5.0 + (i % 200),
                         1.0 / (i + 1) ** 0.8) for i in range(products))


def encoded_events(count: int, seed: int = 2) -> list[tuple[bytes, bytes]]:
    """``count`` real simulated events, pre-encoded as (key, value), for raw loops to cycle."""
    events = simulated_events(seed)
    pairs = []
    for _ in range(count):
        event = next(events)
        pairs.append((event["session_id"].encode(), orjson.dumps(event)))
    return pairs


def fill_topic(bootstrap: str, topic: str, count: int, events=None) -> float:
    """Write ``count`` simulated events (keyed by session) as fast as Kafka takes them; mean size."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                         "enable.idempotence": True, "queue.buffering.max.messages": 500_000})
    size = 0
    events = events if events is not None else simulated_events()
    for _ in range(count):
        event = next(events)
        value = orjson.dumps(event)
        size += len(value)
        produce_with_backpressure(producer, topic, value, key=event["session_id"])
    if producer.flush(300):
        raise RuntimeError("could not fill the benchmark topic")
    return size / max(1, count)


def eventdash_env(bootstrap: str, topics: dict[str, str], **extra: str) -> dict[str, str]:
    return program_env({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EVENTDASH_EVENTS_TOPIC": topics["events"],
        "EVENTDASH_STATISTICS_TOPIC": topics["statistics"],
        "EVENTDASH_DLQ_TOPIC": topics["dlq"],
        "EVENTDASH_HISTORY_TOPIC": topics["history"],
        "EVENTDASH_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
        "EVENTDASH_TRANSACTIONAL_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "EVENTDASH_PRODUCER_METRICS_PORT": "0",
        "EVENTDASH_CONSUMER_METRICS_PORT": "0",
        "EVENTDASH_LOG_LEVEL": "WARNING",
        **extra,
    }, inherit_config=False)


def eventdash_topics(prefix: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {"events": f"{prefix}-events-{suffix}", "statistics": f"{prefix}-stats-{suffix}",
            "dlq": f"{prefix}-dlq-{suffix}", "history": f"{prefix}-history-{suffix}"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(url: str, prefix: str, timeout: float = 5) -> float:
    """The sum of the Prometheus text lines at ``url`` that start with ``prefix`` (raises if unreachable)."""
    text = requests.get(url, timeout=timeout).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))
