"""Freshness, fan-out and memory: the real programs as subprocesses against a real broker."""
from __future__ import annotations

import bisect
import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests
import socketio

from devstack import processes
from devstack.readiness import free_port, wait_until
from eventdash.dashboard.delta import DeltaFollower
from eventdash.producer.simulator import ShopperSimulator

from .common import ROOT, cpu_seconds, eventdash_env, eventdash_topics, fill_topic, metric_sum, percentile, rss_mb


@contextmanager
def stack(bootstrap: str, work_dir: Path, *, rate: float | None, **extra: str):
    """Consumer + dashboard (gunicorn/eventlet) [+ producer at ``rate``]; yields (base url, env, procs)."""
    port = free_port()
    env = eventdash_env(bootstrap, eventdash_topics("bench-live"), EVENTDASH_PORT=str(port),
                        EVENTDASH_HOST="127.0.0.1", **extra)
    procs: dict[str, subprocess.Popen] = {}
    work_dir.mkdir(parents=True, exist_ok=True)

    def start(name: str, *args: str, **more: str) -> None:
        log = open(work_dir / f"{name}.log", "ab")
        procs[name] = processes.spawn([sys.executable, "-m", "eventdash", *args], env={**env, **more},
                                      cwd=str(ROOT), stdout=log)
        log.close()

    try:
        start("consumer", "consume")
        start("dashboard", "dashboard")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="the dashboard", timeout=60)
        if rate is not None:
            start("producer", "produce", EVENTDASH_RATE=str(rate))
        yield base, env, procs
    finally:
        for name, proc in procs.items():
            processes.stop_group(proc, name=name, timeout=60)


def dashboard_worker_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return int(children[0])


LOADCLIENTS_SOURCE = Path(__file__).parent / "loadclients"
LOADCLIENTS = ROOT / ".cache" / "bench-loadclients" / "loadclients"


def ensure_loadclients() -> Path:
    """Build bench/loadclients (Go, gorilla/websocket from the Go module proxy) once per source change."""
    sources = sorted(LOADCLIENTS_SOURCE.iterdir())
    newest = max(p.stat().st_mtime for p in sources)
    if not LOADCLIENTS.exists() or LOADCLIENTS.stat().st_mtime < newest:
        LOADCLIENTS.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(LOADCLIENTS), "."], cwd=LOADCLIENTS_SOURCE, check=True, timeout=600)
    return LOADCLIENTS


class ClientFleet:
    """``clients`` Socket.IO clients in one Go process (bench/loadclients: Python clients would need more
    CPU than the server), all connected when constructed; :meth:`measure` opens their measuring window,
    :meth:`results` closes it."""

    def __init__(self, base: str, clients: int, directory: Path, mode: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.output = directory / "clients.json"
        self.runner = subprocess.Popen([str(ensure_loadclients()), base, str(clients), mode, str(directory),
                                        str(self.output)])
        wait_until(lambda: connected_clients(base) >= clients, what=f"{clients} Socket.IO clients connected",
                   timeout=60 + clients / 50, interval=0.5,
                   alive=lambda: None if self.runner.poll() is None else f"loadclients exited {self.runner.returncode}")

    def measure(self) -> None:
        (self.directory / "measure").touch()

    def results(self) -> dict:
        (self.directory / "stop").touch()
        if self.runner.wait(120):
            raise RuntimeError(f"loadclients failed: exit {self.runner.returncode}")
        return json.loads(self.output.read_text())

    def kill(self) -> None:
        if self.runner.poll() is None:
            self.runner.kill()
            self.runner.wait()


def freshness(bootstrap: str, work_dir: Path, rate: float, seconds: float, other_clients: int,
              **settings: str) -> dict:
    """Delay from an event's ts to the first update a delta client (the page's mode) receives that
    includes it, with ``other_clients`` more delta clients connected; and the bytes per second one
    client receives in delta mode and with whole documents."""
    received: list[tuple[int, int]] = []  # (receive ms, min partition watermark ms)
    sizes = {"delta": 0, "full": 0}
    measuring = threading.Event()
    directory = work_dir / f"fresh-{int(rate)}-{len(settings)}"
    with stack(bootstrap, directory, rate=rate, **settings) as (base, env, procs):
        wait_until(lambda: requests.get(f"{base}/api/stats", timeout=2).json()["events_total"] > rate * 3,
                   what="the pipeline to warm up", timeout=90)
        others = ClientFleet(base, other_clients, directory / "others", "delta") if other_clients else None
        follower = DeltaFollower(history_seconds=60)
        delta_client = socketio.Client(reconnection=False)
        full_client = socketio.Client(reconnection=False)

        def record(event: str, payload: dict, document: dict, mode: str) -> None:
            if measuring.is_set():
                sizes[mode] += 2 + len(json.dumps([event, payload], separators=(",", ":")).encode())
            marks = [p["watermark_ms"] for p in document["partitions"]]
            if len(marks) == 6 and mode == "delta":
                received.append((time.time_ns() // 1_000_000, min(marks)))

        @delta_client.on("stats")
        def on_stats(payload):
            follower.on_full(payload)
            record("stats", payload, payload, "delta")

        @delta_client.on("stats_delta")
        def on_delta(delta):
            if follower.on_delta(delta):
                record("stats_delta", delta, follower.doc, "delta")
            else:
                delta_client.emit("resync")

        @full_client.on("stats")
        def on_full(payload):
            record("stats", payload, payload, "full")

        try:
            delta_client.connect(base, transports=["websocket"], auth={"delta": True})
            full_client.connect(base, transports=["websocket"])
            wait_until(lambda: follower.seq is not None, what="the delta client's base document", timeout=30)
            measuring.set()  # bytes after the first full state; delays from now on
            started = time.time_ns() // 1_000_000
            time.sleep(seconds)  # measuring window: the clients collect broadcasts meanwhile
            measuring.clear()
            window_seconds = (time.time_ns() // 1_000_000 - started) / 1000
            delta_client.disconnect()
            full_client.disconnect()
            achieved = requests.get(f"{base}/api/stats", timeout=5).json()["events_per_second"]  # last 10 s
        finally:
            if others is not None:
                others.kill()
    marks = [m for _, m in received]
    delays = []
    for ts in range(started + 1000, received[-1][1] if received else started, 2):
        i = bisect.bisect_left(marks, ts)
        if i < len(received):
            delays.append(received[i][0] - ts)
    return {"rate": rate, "achieved_rate": achieved, "other_clients": other_clients, "broadcasts": len(received),
            "settings": settings,
            "delta_bytes_per_second": sizes["delta"] / window_seconds,
            "full_bytes_per_second": sizes["full"] / window_seconds,
            "p50": percentile(delays, 50), "p95": percentile(delays, 95), "p99": percentile(delays, 99)}


def fanout(bootstrap: str, work_dir: Path, clients: int, seconds: float, mode: str = "delta") -> dict:
    """N Socket.IO clients (bench/loadclients) on one dashboard process."""
    directory = work_dir / f"fanout-{clients}"
    with stack(bootstrap, directory, rate=500) as (base, env, procs):
        wait_until(lambda: requests.get(f"{base}/api/stats", timeout=2).json()["events_total"] > 500,
                   what="the pipeline to warm up", timeout=90)
        worker = dashboard_worker_pid(procs["dashboard"].pid)
        fleet = ClientFleet(base, clients, directory, mode)
        try:
            fleet.measure()  # CPU and delays with every client on
            cpu_before, t_before = cpu_seconds(worker), time.monotonic()
            rss_peak = 0.0
            while time.monotonic() - t_before < seconds:
                rss_peak = max(rss_peak, rss_mb(worker))
                time.sleep(0.5)
            cpu = (cpu_seconds(worker) - cpu_before) / (time.monotonic() - t_before)
            result = fleet.results()
        finally:
            fleet.kill()
    delays = result["delays"]
    return {"clients": clients, "connected": result["connected"], "messages": len(delays),
            "p50": percentile(delays, 50), "p99": percentile(delays, 99), "cpu_percent": 100 * cpu,
            "rss_mb": rss_peak, "resyncs": result["resyncs"], "seconds": result["seconds"],
            "bytes_per_client_second": result["bytes"] / max(1, result["connected"]) / result["seconds"]}


def memory(bootstrap: str, work_dir: Path, checkpoints: list[int]) -> list[tuple[int, float]]:
    """Consumer RSS after each checkpoint of consumed events (event time spans hours: eviction runs)."""
    total = checkpoints[-1]
    topics = eventdash_topics("bench-mem")
    metrics_port = free_port()
    env = eventdash_env(bootstrap, topics, EVENTDASH_CONSUMER_METRICS_PORT=str(metrics_port))
    from eventdash.config import Settings
    from eventdash.kafka.admin import ensure_topics, make_admin

    settings = Settings.from_env(env)
    ensure_topics(make_admin(settings), settings)
    start = time.time_ns() // 1_000_000 - 3 * 3_600_000
    clock = iter(range(start, start + total + 1))  # 1 ms of event time per event: 10M events = 2.8 h
    fill_topic(bootstrap, topics["events"], total, ShopperSimulator(seed=3, clock_ms=lambda: next(clock)).events())
    log = open(work_dir / "memory-consumer.log", "ab")
    proc = processes.spawn([sys.executable, "-m", "eventdash", "consume"], env=env, cwd=str(ROOT), stdout=log)
    log.close()
    results = []
    try:
        for checkpoint in checkpoints:
            wait_until(lambda checkpoint=checkpoint: consumed(metrics_port) >= checkpoint,
                       what=f"{checkpoint:,} events consumed", timeout=3600, interval=0.5)
            results.append((checkpoint, rss_mb(proc.pid)))
    finally:
        processes.stop_group(proc, name="consumer", timeout=60)
    return results


def connected_clients(base: str) -> float:
    return metric_sum(f"{base}/metrics", "eventdash_dashboard_socketio_clients ")


def consumed(port: int) -> float:
    return metric_sum(f"http://127.0.0.1:{port}/metrics", "eventdash_consumer_events_total{")
