"""Operations: broker outage, readiness, metrics, JSON logs, HTTP errors."""
from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import orjson
import pytest
import requests
from prometheus_client import CONTENT_TYPE_LATEST

from devstack.localkafka import LocalKafka
from devstack.readiness import free_port, wait_until

from ..helpers import count_topic_by_type, ctl, produce, read_topic, status, totals_equal, wait_for_stats


@pytest.fixture
def own_kafka(tmp_path):
    """A broker of this test alone: the test stops and restarts it."""
    cluster = LocalKafka(tmp_path / "kafka").start()
    yield cluster
    cluster.stop()


def readyz(base: str) -> tuple[int, dict]:
    response = requests.get(f"{base}/readyz", timeout=5)
    return response.status_code, response.json()


def metric(port: int, line_start: str) -> float:
    """The sum of the samples whose line starts with ``line_start``; a missing metric is an error, not 0."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    assert values, f"no {line_start!r} sample in the metrics on port {port}"
    return sum(values)


def raw_get(base: str, path: str) -> tuple[int, str, bytes]:
    """GET ``path`` byte for byte: unlike requests/urllib3, http.client neither resolves dot segments
    nor re-encodes, so the server sees exactly this request line."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_broker_down_for_20_seconds_loses_and_duplicates_nothing(own_kafka, start_supervised):
    """The whole supervised stack rides out a 20 s broker outage with exact totals afterwards."""
    producer_metrics = free_port()
    supervisord, conf, base, env = start_supervised(KAFKA_BOOTSTRAP_SERVERS=own_kafka.bootstrap_servers,
                                                    EVENTDASH_RATE="200", EVENTDASH_STALE_AFTER_SECONDS="5",
                                                    EVENTDASH_PRODUCER_METRICS_PORT=str(producer_metrics))
    wait_for_stats(base, lambda s: s["events_total"] >= 1000, what="1000 events before the outage",
                   alive=supervisord.died)
    wait_until(lambda: readyz(base)[0] == 200, what="/readyz 200 before the outage", timeout=30)
    producer_state, producer_pid = status(conf)["producer"]
    assert producer_state == "RUNNING" and producer_pid
    assert metric(producer_metrics, "eventdash_producer_events_total{") > 0
    assert metric(producer_metrics, "eventdash_producer_delivery_failures_total") == 0

    own_kafka.stop_broker()
    outage_started = time.monotonic()
    status_code, body = wait_until(lambda: (r := readyz(base))[0] == 503 and r,
                                   what="/readyz 503 during the outage", timeout=20)
    assert body == {"ready": False, "reason": f"Kafka at {own_kafka.bootstrap_servers} is not reachable"}
    page = requests.get(f"{base}/api/stats", timeout=5).json()
    assert page["health"]["stale"] is True and page["events_total"] >= 1000  # last known numbers stay
    wait_until(lambda: time.monotonic() - outage_started >= 20, what="the end of the 20 s outage",
               timeout=25, interval=0.5, alive=supervisord.died)
    assert status(conf)["producer"] == ("RUNNING", producer_pid)  # it buffered instead of crashing
    own_kafka.start_broker()

    # The consumer may need a restart by supervisord (librdkafka#5456): /readyz tells when it is back.
    wait_until(lambda: readyz(base)[0] == 200, what="/readyz 200 after the broker is back", timeout=120,
               alive=supervisord.died)
    # The same producer process throughout (no restart by supervisord), and it has delivered again since.
    delivered_before = metric(producer_metrics, "eventdash_producer_events_total{")
    wait_until(lambda: metric(producer_metrics, "eventdash_producer_events_total{") > delivered_before,
               what="the producer to deliver after the outage", timeout=60, alive=supervisord.died)
    assert status(conf)["producer"] == ("RUNNING", producer_pid), "supervisord restarted the producer"
    # Nothing it held during the outage was given up (message.timeout.ms) or refused.
    assert metric(producer_metrics, "eventdash_producer_delivery_failures_total") == 0
    assert "producer: stopped" in ctl(conf, "stop", "producer")  # SIGTERM: flushes what it still holds
    in_topic = count_topic_by_type(own_kafka.bootstrap_servers, env["EVENTDASH_EVENTS_TOPIC"])
    assert sum(in_topic.values()) > 1000
    values = read_topic(own_kafka.bootstrap_servers, env["EVENTDASH_EVENTS_TOPIC"])
    distinct = {orjson.loads(value)["event_id"] for value in values}
    assert len(values) == sum(in_topic.values()) and len(distinct) == len(values), "an event was written twice"
    wait_for_stats(base, totals_equal(dict(in_topic)), what="exact totals after the outage", timeout=120,
                   alive=supervisord.died)


def test_dashboard_without_kafka_is_alive_not_ready_and_errors_are_json(stack_env, start_dashboard):
    dead = f"127.0.0.1:{free_port()}"
    _, base = start_dashboard(stack_env(KAFKA_BOOTSTRAP_SERVERS=dead))
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
    status, body = readyz(base)
    assert status == 503 and body == {"ready": False, "reason": f"Kafka at {dead} is not reachable"}
    not_found = {"error": "not found", "status": 404}
    for path in ("/api/does-not-exist", "/does-not-exist", "/vendor/not-a-vendor-file.js"):
        missing = requests.get(f"{base}{path}", timeout=5)
        assert missing.status_code == 404 and missing.json() == not_found, path
        assert missing.headers["Content-Type"] == "application/json", path
    wrong_method = requests.post(f"{base}/healthz", timeout=5)
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "method not allowed", "status": 405}
    assert "GET" in wrong_method.headers["Allow"]
    # Path traversal through /vendor/, sent as is (percent-encoded slashes and dots, and raw dot segments):
    # node_modules/../package.json and /etc/passwd exist, so a traversal would show their content.
    traversals = ("/vendor/..%2Fpackage.json", "/vendor/..%2F..%2Fetc%2Fpasswd",
                  "/vendor/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/vendor/%2E%2E%2Fpackage.json",
                  "/vendor/" + "..%2F" * 12 + "etc%2Fpasswd", "/vendor/../package.json", "/vendor/../../etc/passwd",
                  "/vendor/..%5Cpackage.json")
    for path in traversals:
        code, content_type, body = raw_get(base, path)
        assert code == 404 and content_type == "application/json", (path, code, body[:200])
        assert orjson.loads(body) == not_found, (path, body[:200])
    page = requests.get(f"{base}/", timeout=5)
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for vendor in ("socket.io.min.js", "uPlot.iife.min.js", "uPlot.min.css"):
        assert requests.get(f"{base}/vendor/{vendor}", timeout=5).status_code == 200


def test_metrics_of_all_three_programs(stack_env, start_program, start_dashboard):
    producer_port, consumer_port = free_port(), free_port()
    env = stack_env(EVENTDASH_PRODUCER_METRICS_PORT=str(producer_port),
                    EVENTDASH_CONSUMER_METRICS_PORT=str(consumer_port), EVENTDASH_LOG_FORMAT="json")
    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    summary = produce({**env, "EVENTDASH_PRODUCER_METRICS_PORT": "0"}, 500)
    wait_for_stats(base, totals_equal(summary["by_type"]), what="500 events counted", alive=consumer.died)

    wait_until(lambda: metric(consumer_port, "eventdash_consumer_events_total{") == 500,
               what="consumer metrics to count 500 events", timeout=30)
    assert metric(consumer_port, "eventdash_consumer_assigned_partitions") == 6
    assert metric(consumer_port, "eventdash_consumer_transactions_committed_total") >= 1
    scrape = requests.get(f"{base}/metrics", timeout=5)
    assert scrape.headers["Content-Type"] == CONTENT_TYPE_LATEST  # charset=utf-8 once, not twice
    dashboard_metrics = scrape.text
    assert "eventdash_dashboard_socketio_clients" in dashboard_metrics
    assert "eventdash_dashboard_kafka_up 1.0" in dashboard_metrics

    producer = start_program("producer", ["produce"], {**env, "EVENTDASH_RATE": "100"})
    wait_until(lambda: metric(producer_port, "eventdash_producer_events_total{") >= 50,
               what="producer metrics to count deliveries", timeout=30, alive=producer.died)
    assert metric(producer_port, "eventdash_producer_delivery_failures_total") == 0

    # EVENTDASH_LOG_FORMAT=json: every line the consumer logged is one JSON object.
    consumer.stop()
    lines = [line for line in consumer.log_path.read_text().splitlines() if line.strip()]
    records = [orjson.loads(line) for line in lines]
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert any("restored" in r["message"] for r in records)
