"""`docker compose up` on a real Docker engine, as a user meets eventdash (`make test-container`).

Starts a Docker engine if none runs (and stops only the one it started), builds local stand-ins
for the base images only where they can be neither found nor pulled, and runs the project's own
docker-compose.yml under a project name of its own, publishing free loopback ports only.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from devstack.readiness import free_port, wait_until

from ..helpers import ROOT, count_topic_by_type, totals_equal, wait_for_stats

pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]

STANDINS = ROOT.parent / "shared" / "container-standins" / "build-standins.sh"
STANDIN_TAGS = {"PYTHON_TAG": "python", "NODE_TAG": "node", "ZOOKEEPER_TAG": "confluentinc/cp-zookeeper",
                "KAFKA_TAG": "confluentinc/cp-kafka"}


def run(*args: str, timeout: float = 120, check: bool = True, env: dict | None = None) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}"
                             f"{result.stderr[-3000:]}")
    return result.stdout


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """The running engine, or one started here (as root) and stopped again at the end."""
    if engine_answers():
        yield
        return
    log = open(tmp_path_factory.mktemp("dockerd") / "dockerd.log", "wb")
    # Its own session: a Ctrl-C of the test run must not kill the engine before the teardown ran.
    daemon = subprocess.Popen(["dockerd", "--storage-driver=overlay2"], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_until(engine_answers, what="the Docker engine to answer", timeout=60,
                   alive=lambda: daemon.poll() is not None and f"dockerd exited {daemon.returncode}")
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()


def base_images() -> list[str]:
    text = (ROOT / "Dockerfile").read_text() + (ROOT / "docker-compose.yml").read_text()
    return sorted(set(re.findall(r"(?:FROM |image: )((?:python|node|confluentinc/cp-[a-z]+):[\w.-]+)", text)))


def pulled(tag: str) -> bool:
    """Pull from a registry; where none is reachable this fails (or hangs: then it counts as failed)."""
    try:
        return subprocess.run(["docker", "pull", tag], capture_output=True, timeout=45).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def images(docker_engine):
    """The base images: found locally, else pulled, else (no registry) built as stand-ins."""
    missing = [tag for tag in base_images()
               if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode != 0]
    missing = [tag for tag in missing if not pulled(tag)]
    if missing:
        assert STANDINS.exists(), f"cannot pull {missing} and there are no stand-ins at {STANDINS}"
        # The script builds all four kinds; send the ones that exist to throwaway tags.
        env = dict(os.environ)
        for variable, kind in STANDIN_TAGS.items():
            tag = next(t for t in base_images() if t.split(":")[0] == kind)
            if tag not in missing:
                env[variable] = f"standin/unused-{kind.rsplit('/', 1)[-1]}:{uuid.uuid4().hex[:8]}"
        run("bash", str(STANDINS), timeout=900, env=env)
        for variable in STANDIN_TAGS:
            if env.get(variable, "").startswith("standin/unused-"):
                subprocess.run(["docker", "image", "rm", env[variable]], capture_output=True)


class Compose:
    def __init__(self, tmp_path: Path):
        self.project = f"eventdash-ct-{uuid.uuid4().hex[:8]}"
        self.dashboard_port, self.kafka_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTDASH_", "KAFKA_"))}
        self.image = f"eventdash:ct-{self.project.rsplit('-', 1)[1]}"  # never the user's eventdash:latest
        self.env.update({"EVENTDASH_IMAGE": self.image, "EVENTDASH_PUBLISH_PORT": str(self.dashboard_port),
                         "EVENTDASH_KAFKA_HOST_PORT": str(self.kafka_port), "EVENTDASH_RATE": "100",
                         "DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false"})

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return run("docker", "compose", "-p", self.project, "--profile", "scale", *args, timeout=timeout,
                   env=self.env)

    def up(self, *args: str) -> None:
        run("docker", "compose", "-p", self.project, "up", "-d", *args, timeout=600, env=self.env)

    def container(self, service: str) -> str:
        return run("docker", "compose", "-p", self.project, "--profile", "scale", "ps", "-q", service,
                   env=self.env).split()[0]

    def inspect(self, service: str) -> dict:
        return json.loads(run("docker", "inspect", self.container(service)))[0]

    def supervisor(self, *args: str) -> str:
        return run("docker", "compose", "-p", self.project, "exec", "-T", "app", "supervisorctl", *args,
                   env=self.env, check=False)

    def programs(self) -> dict[str, tuple[str, int | None]]:
        states = {}
        for line in self.supervisor("status").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                states[parts[0]] = (parts[1], int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid"
                                    else None)
        return states

    def wait_healthy(self, timeout: float = 240) -> None:
        wait_until(lambda: self.inspect("app")["State"].get("Health", {}).get("Status") == "healthy",
                   what="the app container's HEALTHCHECK to report healthy", timeout=timeout, interval=2,
                   max_interval=5)

    def exact_totals(self) -> Counter:
        """Stop the producer, then the dashboard must show exactly what the topic holds."""
        self.supervisor("stop", "producer")
        assert self.programs()["producer"][0] == "STOPPED"
        in_topic = count_topic_by_type(self.bootstrap, "events")
        wait_for_stats(self.base, totals_equal(dict(in_topic)), what="exact totals", timeout=120)
        return in_topic


@pytest.fixture
def compose(images, tmp_path):
    stack = Compose(tmp_path)
    yield stack
    logs = subprocess.run(["docker", "compose", "-p", stack.project, "--profile", "scale", "logs", "--no-color",
                           "--tail", "40"], capture_output=True, text=True, cwd=ROOT, env=stack.env)
    print(logs.stdout[-6000:])
    stack("down", "-v", "--remove-orphans", timeout=180)
    subprocess.run(["docker", "image", "rm", stack.image], capture_output=True, timeout=120)


def test_compose_up_supervisorctl_restarts_and_scaling(compose):
    started = time.monotonic()
    compose.up("--build")
    compose.wait_healthy()
    wait_for_stats(compose.base, lambda s: s["events_total"] > 0, what="live data on the dashboard", timeout=120)
    live_after = time.monotonic() - started
    programs = compose.programs()
    assert {name: state for name, (state, _) in programs.items()} == {
        "consumer": "RUNNING", "dashboard": "RUNNING", "producer": "RUNNING"}

    # The image aggregates with the Rust engine it built (EVENTDASH_ENGINE=auto picks it up).
    assert run("docker", "compose", "-p", compose.project, "exec", "-T", "app", "python", "-c",
               "import eventdash_native, eventdash.stats.engine as e; print(e.load_engine('auto').name)",
               env=compose.env).strip() == "native"

    # `supervisorctl restart consumer` restarts the consumer only.
    assert "consumer: started" in compose.supervisor("restart", "consumer")
    after = compose.programs()
    assert after["consumer"][1] != programs["consumer"][1]
    assert after["producer"] == programs["producer"] and after["dashboard"] == programs["dashboard"]
    first = compose.exact_totals()
    assert sum(first.values()) > 0

    # Totals survive `stop`/`up` and `down`/`up` (named volumes).
    for stop in (("stop",), ("down",)):
        compose(*stop, timeout=120)
        compose.up()
        compose.wait_healthy()
        kept = sum(first.values())
        wait_for_stats(compose.base, lambda s, kept=kept: s["events_total"] >= kept,
                       what=f"totals kept across {stop[0]}/up", timeout=120)
        first = compose.exact_totals()

    # Two more aggregator processes in the group: they stay up, own partitions, totals stay exact.
    compose.supervisor("start", "producer")
    compose.up("--scale", "consumer-worker=2", "consumer-worker")
    workers = run("docker", "compose", "-p", compose.project, "--profile", "scale", "ps", "-q", "consumer-worker",
                  env=compose.env).split()
    assert len(workers) == 2

    def worker_logs() -> list[str]:
        return [subprocess.run(["docker", "logs", w], capture_output=True, text=True, timeout=30).stderr
                + subprocess.run(["docker", "logs", w], capture_output=True, text=True, timeout=30).stdout
                for w in workers]

    wait_until(lambda: all("restored" in log for log in worker_logs()), what="both workers to own partitions",
               timeout=120)
    compose.exact_totals()
    for worker in workers:
        state = json.loads(run("docker", "inspect", worker))[0]
        assert state["State"]["Running"] and state["RestartCount"] == 0, state["State"]
    assert compose.inspect("app")["State"]["Health"]["Status"] == "healthy"
    print(f"live data {live_after:.0f} s after `up --build`")
