import subprocess
import sys

import pytest

from eventdash.config import ConfigError, Settings

from ..helpers import ROOT, python_env


def test_defaults():
    s = Settings.from_env({})
    assert (s.bootstrap_servers, s.events_topic, s.statistics_topic, s.dlq_topic) == (
        "localhost:9092", "events", "event_statistics", "events.dlq")
    assert (s.dashboard_port, s.worker_class, s.events_partitions, s.rate) == (5002, "eventlet", 6, 50.0)
    assert s.cors_origins == ()


def test_values_are_parsed():
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9093", "EVENTDASH_RATE": "2.5",
                           "EVENTDASH_CORS_ORIGINS": "https://a.example, http://b.example:8080/",
                           "EVENTDASH_LOG_FORMAT": "JSON"})
    assert s.bootstrap_servers == "k1:9092,k2:9093" and s.rate == 2.5 and s.log_format == "json"
    assert s.cors_origins == ("https://a.example", "http://b.example:8080")


@pytest.mark.parametrize("name, value", [
    ("EVENTDASH_EVENTS_TOPIC", "events/with slash"),
    ("EVENTDASH_DLQ_TOPIC", "dlq!"),
    ("EVENTDASH_RATE", "fast"),
    ("EVENTDASH_RATE", "-1"),
    ("EVENTDASH_RATE", "nan"),
    ("EVENTDASH_PORT", "70000"),
    ("EVENTDASH_PORT", "http"),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
    ("KAFKA_BOOTSTRAP_SERVERS", "host:99999"),
    ("EVENTDASH_WORKER_CLASS", "threads"),
    ("EVENTDASH_CORS_ORIGINS", "example.com"),
    ("EVENTDASH_SNAPSHOT_INTERVAL_MS", "0"),
    ("EVENTDASH_HORIZON_SECONDS", "86400"),  # past the snapshot budget (MAX_HORIZON_SECONDS)
    ("EVENTDASH_TOP_N", "100"),  # more rows than the per-minute product candidates support
    ("EVENTDASH_STALE_AFTER_SECONDS", "1"),  # below two aggregator heartbeats
    ("EVENTDASH_METRICS_HOST", "0.0.0.0 ; rm"),
])
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(f"{name}=")


def test_topics_must_differ():
    with pytest.raises(ConfigError, match="EVENTDASH_STATISTICS_TOPIC"):
        Settings.from_env({"EVENTDASH_STATISTICS_TOPIC": "events"})


@pytest.mark.parametrize("command", ["produce", "consume", "dashboard"])
def test_programs_fail_fast_with_one_line(command):
    result = subprocess.run([sys.executable, "-m", "eventdash", command], cwd=ROOT, capture_output=True, text=True,
                            env=python_env({"EVENTDASH_PORT": "not-a-port"}), timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: EVENTDASH_PORT='not-a-port' is invalid: expected a whole number"]


def test_repeated_librdkafka_lines_are_held_back_and_counted():
    import logging

    from eventdash.logging_setup import RepeatFilter

    clock = [0.0]
    f = RepeatFilter(window=30)
    import eventdash.logging_setup as setup

    original = setup.time.monotonic
    setup.time.monotonic = lambda: clock[0]
    try:
        def record(text):
            return logging.LogRecord("eventdash.kafka.librdkafka", logging.WARNING, "", 0, text, (), None)

        passed = []
        for second in range(0, 65):
            clock[0] = float(second)
            r = record(f"Connect to 127.0.0.1:9092 failed (after {second}ms in state CONNECT)")
            if f.filter(r):
                passed.append(r.getMessage())
    finally:
        setup.time.monotonic = original
    assert len(passed) == 3  # at 0 s, 30 s and 60 s
    assert passed[1].endswith("(29 similar messages held back in the last 30 s)")


def test_a_busy_metrics_port_is_a_configuration_error():
    import socket

    from eventdash.observability.metrics import ConsumerMetrics, serve

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^EVENTDASH_CONSUMER_METRICS_PORT={port} is invalid: cannot listen"):
            serve(ConsumerMetrics().registry, port, "EVENTDASH_CONSUMER_METRICS_PORT", host="127.0.0.1")


@pytest.mark.parametrize("env, named", [
    ({"EVENTDASH_DLQ_TOPIC": "event_statistics"}, "the four topics must be distinct"),
    ({"EVENTDASH_STATISTICS_TOPIC": "events"}, "the four topics must be distinct"),
    ({"EVENTDASH_HISTORY_TOPIC": "event_statistics"}, "the four topics must be distinct"),
    ({"EVENTDASH_FUTURE_TOLERANCE_MS": "900000"}, "EVENTDASH_FUTURE_TOLERANCE_MS=900000 is invalid"),
    ({"EVENTDASH_HORIZON_SECONDS": "60", "EVENTDASH_FUTURE_TOLERANCE_MS": "60000"},
     "smaller than EVENTDASH_HORIZON_SECONDS=60"),
    ({"EVENTDASH_PORT": "9102"}, "EVENTDASH_CONSUMER_METRICS_PORT=9102 is invalid: EVENTDASH_PORT uses the same"),
    ({"EVENTDASH_SNAPSHOT_INTERVAL_MS": "20000", "EVENTDASH_STALE_AFTER_SECONDS": "15"},
     "EVENTDASH_STALE_AFTER_SECONDS=15 is invalid: it must exceed EVENTDASH_SNAPSHOT_INTERVAL_MS=20000"),
    ({"EVENTDASH_PRODUCER_METRICS_PORT": "9102"},
     "EVENTDASH_CONSUMER_METRICS_PORT=9102 is invalid: EVENTDASH_PRODUCER_METRICS_PORT uses the same"),
])
def test_settings_are_cross_checked(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        Settings.from_env(env)


def test_metrics_bind_to_loopback_unless_told_otherwise():
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    assert Settings.from_env({"EVENTDASH_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
    assert Settings.from_env({"EVENTDASH_PRODUCER_METRICS_PORT": "0", "EVENTDASH_CONSUMER_METRICS_PORT": "0",
                              "EVENTDASH_PORT": "5002"}).dashboard_port == 5002  # 0 = off never collides
