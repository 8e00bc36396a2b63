"""Fixtures: one real Kafka + ZooKeeper per test session, fresh topics per test, real programs."""
from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest
import requests

from devstack import processes
from devstack.localkafka import LocalKafka
from devstack.readiness import free_port, wait_until

from .helpers import ROOT, Program, python_env, status


def pytest_addoption(parser):
    parser.addoption("--container", action="store_true",
                     help="also run tests/container: docker compose on a real Docker engine (make test-container)")


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == "container" and not config.getoption("--container"):
        return True
    return None


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    cluster = LocalKafka(tmp_path_factory.mktemp("kafka"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def stack_env(kafka):
    """Environment for eventdash programs with topic names of this test only."""
    suffix = uuid.uuid4().hex[:10]

    def make(**extra: str) -> dict[str, str]:
        return python_env({
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "EVENTDASH_EVENTS_TOPIC": f"events-{suffix}",
            "EVENTDASH_STATISTICS_TOPIC": f"event_statistics-{suffix}",
            "EVENTDASH_DLQ_TOPIC": f"events.dlq-{suffix}",
            "EVENTDASH_HISTORY_TOPIC": f"event_history-{suffix}",
            "EVENTDASH_CONSUMER_GROUP": f"aggregator-{suffix}",
            "EVENTDASH_TRANSACTIONAL_ID": f"aggregator-{suffix}-0",
            "EVENTDASH_SNAPSHOT_INTERVAL_MS": "200",
            "EVENTDASH_STARTUP_TIMEOUT_SECONDS": "60",
            "EVENTDASH_PRODUCER_METRICS_PORT": "0",
            "EVENTDASH_CONSUMER_METRICS_PORT": "0",
            **extra,
        })

    make.suffix = suffix
    return make


@pytest.fixture
def start_program(tmp_path):
    """Factory: start a real program; every one is stopped (and its log shown on failure) at teardown."""
    started: list[Program] = []

    def start(name: str, command: list[str], env: dict[str, str]) -> Program:
        program = Program(name, [sys.executable, "-m", "eventdash", *command], env,
                          tmp_path / f"{name}-{len(started)}.log").start()
        started.append(program)
        return program

    yield start
    for program in started:
        program.stop()
    for program in started:
        print(f"----- {program.name} log tail -----\n{program.log_tail(25)}")


@pytest.fixture
def start_dashboard(start_program):
    """Factory: gunicorn + eventlet (or gevent) on a free port; waits for /healthz."""

    def start(env: dict[str, str], worker_class: str = "eventlet", port: int | None = None,
              **extra: str) -> tuple[Program, str]:
        port = port or free_port()
        program = start_program(f"dashboard-{worker_class}", ["dashboard"], {
            **env, "EVENTDASH_PORT": str(port), "EVENTDASH_HOST": "127.0.0.1",
            "EVENTDASH_WORKER_CLASS": worker_class, **extra})
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200,
                   what=f"dashboard ({worker_class}) at {base}/healthz", timeout=60, alive=program.died)
        return program, base

    return start


@pytest.fixture
def start_supervised(tmp_path, stack_env):
    """Factory: supervisord with an unmodified copy of deploy/supervisord.conf in a private folder.

    Returns (supervisord, conf path, dashboard base URL, env) once all three programs are RUNNING.
    """
    started: list[Program] = []

    def start(**extra: str):
        home = tmp_path / f"app{len(started)}"
        (home / "deploy").mkdir(parents=True)
        (home / ".run").mkdir()
        conf = home / "deploy" / "supervisord.conf"
        shutil.copyfile(ROOT / "deploy" / "supervisord.conf", conf)
        port = free_port()
        env = stack_env(**{"EVENTDASH_PORT": str(port), "EVENTDASH_HOST": "127.0.0.1", "EVENTDASH_RATE": "300",
                           "EVENTDASH_SUPERVISOR_SOCKET": str(home / ".run" / "supervisor.sock"), **extra})
        program = Program("supervisord", [str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)], env,
                          tmp_path / f"supervisord-{len(started)}.log").start()
        started.append(program)
        wait_until(lambda: len(s := status(conf)) == 3 and all(state == "RUNNING" for state, _ in s.values()),
                   what="producer, consumer and dashboard RUNNING", timeout=90, alive=program.died)
        return program, conf, f"http://127.0.0.1:{port}", env

    yield start
    for program in started:
        processes.stop_group(program.proc, name="supervisord", timeout=90)
        print(f"----- supervisord log tail -----\n{program.log_tail(60)}")
