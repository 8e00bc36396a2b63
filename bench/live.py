"""Freshness, fan-out and memory: the real programs as subprocesses against a real broker."""
from __future__ import annotations

import bisect
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests
import socketio

from devstack import processes
from devstack.readiness import free_port, wait_until
from eventdash.producer.simulator import ShopperSimulator

from .common import ROOT, cpu_seconds, eventdash_env, eventdash_topics, fill_topic, percentile, rss_mb


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


def freshness(bootstrap: str, work_dir: Path, rate: float, seconds: float) -> dict:
    """Delay from an event's ts to the first ``stats`` a client receives that includes it."""
    received: list[tuple[int, int]] = []  # (receive ms, min partition watermark ms)
    sizes: list[int] = []  # bytes of each stats packet as the server encodes it
    with stack(bootstrap, work_dir / f"fresh-{int(rate)}", rate=rate) as (base, env, procs):
        client = socketio.Client(reconnection=False)

        @client.on("stats")
        def on_stats(payload):
            now = time.time_ns() // 1_000_000
            sizes.append(len(b"42") + len(json.dumps(["stats", payload], separators=(",", ":")).encode()))
            marks = [p["watermark_ms"] for p in payload["partitions"]]
            if len(marks) == 6:
                received.append((now, min(marks)))

        wait_until(lambda: requests.get(f"{base}/api/stats", timeout=2).json()["events_total"] > rate * 3,
                   what="the pipeline to warm up", timeout=90)
        client.connect(base, transports=["websocket"])
        started = time.time_ns() // 1_000_000
        time.sleep(seconds)  # measuring window: the client collects broadcasts meanwhile
        client.disconnect()
        window_seconds = (time.time_ns() // 1_000_000 - started) / 1000
        achieved = requests.get(f"{base}/api/stats", timeout=5).json()["events_per_second"]  # last 10 s
    marks = [m for _, m in received]
    delays = []
    for ts in range(started + 1000, received[-1][1] if received else started, 2):
        i = bisect.bisect_left(marks, ts)
        if i < len(received):
            delays.append(received[i][0] - ts)
    return {"rate": rate, "achieved_rate": achieved, "broadcasts": len(received),
            "bytes_per_second": sum(sizes) / window_seconds,
            "p50": percentile(delays, 50), "p95": percentile(delays, 95), "p99": percentile(delays, 99)}


def fanout(bootstrap: str, work_dir: Path, clients: int, seconds: float, processes_n: int = 4) -> dict:
    """N Socket.IO clients (asyncio, spread over processes) on one dashboard process."""
    with stack(bootstrap, work_dir / f"fanout-{clients}", rate=500) as (base, env, procs):
        wait_until(lambda: requests.get(f"{base}/api/stats", timeout=2).json()["events_total"] > 500,
                   what="the pipeline to warm up", timeout=90)
        worker = dashboard_worker_pid(procs["dashboard"].pid)
        per_process = [clients // processes_n + (1 if i < clients % processes_n else 0) for i in range(processes_n)]
        outputs = [work_dir / f"fanout-{clients}" / f"clients-{i}.json" for i in range(processes_n)]
        runners = [subprocess.Popen([sys.executable, str(Path(__file__).parent / "fanout_clients.py"), base,
                                     str(n), str(seconds), str(out)])
                   for n, out in zip(per_process, outputs) if n]
        wait_until(lambda: connected_clients(base) >= clients, what=f"{clients} Socket.IO clients connected",
                   timeout=60, interval=0.2)  # CPU is measured with every client on
        cpu_before, t_before = cpu_seconds(worker), time.monotonic()
        rss_peak = 0.0
        while any(r.poll() is None for r in runners):
            rss_peak = max(rss_peak, rss_mb(worker))
            time.sleep(0.5)
        cpu = (cpu_seconds(worker) - cpu_before) / (time.monotonic() - t_before)
        if any(r.returncode for r in runners):
            raise RuntimeError(f"a fan-out client process failed: {[r.returncode for r in runners]}")
        results = [json.loads(out.read_text()) for out, n in zip(outputs, per_process) if n]
    delays = [d for r in results for d in r["delays"]]
    return {"clients": clients, "connected": sum(r["connected"] for r in results), "messages": len(delays),
            "p50": percentile(delays, 50), "p99": percentile(delays, 99), "cpu_percent": 100 * cpu,
            "rss_mb": rss_peak}


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
    text = requests.get(f"{base}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("eventdash_dashboard_socketio_clients "))


def consumed(port: int) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("eventdash_consumer_events_total{"))
