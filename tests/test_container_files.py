"""Dockerfile and docker-compose.yml: linted and validated by the real tools (no engine needed)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT


def test_dockerfile_is_hadolint_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 3
    assert "AS browser-libs" in text and "npm ci" in text
    assert "\nUSER eventdash" in final_stage
    assert "HEALTHCHECK" in final_stage and "/readyz" in final_stage  # catches a stuck pipeline
    assert "FROM node:20" not in text  # past end of life since April 2026
    assert 'CMD ["supervisord", "-c", "/app/deploy/supervisord.conf"]' in final_stage
    # The programs' /metrics listen on 127.0.0.1 by default; in the image, on the container's network.
    assert "EVENTDASH_METRICS_HOST=0.0.0.0" in final_stage
    for tool in ("gcc", "build-essential", "apt-get install", "nodejs"):
        assert tool not in final_stage


def compose_config(*profiles: str) -> dict:
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"],
                                                        capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            raise AssertionError("`docker compose` is missing in CI: .ci/run runs `make system-deps`")
        pytest.skip("needs the docker client with the compose plugin (`make compose-plugin`)")
    # Without the caller's EVENTDASH_* variables: the file's own defaults are what is checked.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTDASH_")}
    options = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), *options, "config",
                             "--format", "json"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid_and_waits_for_healthy_kafka():
    config = compose_config()
    services = config["services"]
    assert {"zookeeper", "kafka", "app"} <= set(services)
    assert services["zookeeper"]["healthcheck"]["test"] and services["kafka"]["healthcheck"]["test"]
    assert services["kafka"]["depends_on"]["zookeeper"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["zookeeper"]["image"].startswith("confluentinc/cp-zookeeper:7.9")
    assert services["kafka"]["image"].startswith("confluentinc/cp-kafka:7.9")
    published = [p["published"] for p in services["app"]["ports"]]
    assert published == ["5002"]  # the dashboard only: supervisord's control socket is never published
    volumes = {v["source"] for v in services["kafka"]["volumes"] if v["type"] == "volume"}
    assert volumes == {"kafka-data"} and "kafka-data" in config["volumes"]


def test_compose_app_and_workers_build_run_under_init_and_stop_in_time():
    services = compose_config("scale")["services"]
    for name in ("app", "consumer-worker"):
        assert services[name]["build"] and services[name]["init"] is True, name
    # Programs stop within 6 s; supervisord stops the three one after another with 8 s backstops.
    conf = (ROOT / "deploy" / "supervisord.conf").read_text()
    backstops = [int(line.split("=")[1]) for line in conf.splitlines() if line.startswith("stopwaitsecs=")]
    assert len(backstops) == 3
    grace = int(services["app"]["stop_grace_period"].rstrip("s")) if isinstance(
        services["app"]["stop_grace_period"], str) else services["app"]["stop_grace_period"] / 1e9
    assert grace > sum(backstops)
    assert services["app"]["hostname"] == "eventdash-app"  # a stable transactional id across recreation


def test_python_code_is_ruff_clean():
    result = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "eventdash", "devstack", "bench",
                             "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_compose_publishes_ports_on_loopback_only():
    """Kafka's plaintext host listener and the dashboard are not reachable from other machines by default."""
    services = compose_config()["services"]
    published = {(name, p["published"]): p.get("host_ip") for name, service in services.items()
                 for p in service.get("ports", [])}
    assert published == {("kafka", "29092"): "127.0.0.1", ("app", "5002"): "127.0.0.1"}
