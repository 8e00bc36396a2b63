"""produce --count N → consumer → event_statistics → dashboard: exact totals, HTTP and Socket.IO."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
import requests
import socketio

from devstack.readiness import wait_until
from eventdash.config import Settings
from eventdash.dashboard.delta import DeltaFollower, series_by_second

from ..helpers import EVENT_TYPES, flowing_stack, produce, totals_equal, wait_for_stats


def receive_stats_until(base_url: str, predicate, timeout: float = 60) -> dict:
    """Connect a real python-socketio client; return the first ``stats`` payload that matches."""
    client = socketio.Client(reconnection=False)
    matched: dict = {}
    done = threading.Event()

    @client.on("stats")
    def on_stats(payload):
        if not done.is_set() and predicate(payload):
            matched.update(payload)
            done.set()

    client.connect(base_url, transports=["websocket"], wait_timeout=10)
    try:
        assert done.wait(timeout), "no matching stats event over Socket.IO"
    finally:
        client.disconnect()
    return matched


def packet_bytes(payload: dict) -> int:
    return len(json.dumps(payload, separators=(",", ":")))


class DeltaClient:
    """A Socket.IO client that asks for delta updates and rebuilds each broadcast document."""

    def __init__(self):
        self.client = socketio.Client(reconnection=False)
        self.follower = DeltaFollower()
        self.by_seq: dict[int, tuple[dict, dict]] = {}  # seq -> (document without series, history then)
        self.deltas = self.delta_bytes = self.resyncs = 0
        self.client.on("stats", self._on_stats)
        self.client.on("stats_delta", self._on_delta)

    @property
    def doc(self) -> dict | None:
        return self.follower.doc

    def connect(self, base: str) -> None:
        self.client.connect(base, transports=["websocket"], wait_timeout=10, auth={"delta": True})

    def _record(self) -> None:
        if self.doc is not None:
            self.by_seq[self.doc["seq"]] = ({k: v for k, v in copy.deepcopy(self.doc).items() if k != "series"},
                                            dict(self.follower.history))

    def _on_stats(self, payload):
        self.follower.on_full(payload)
        self._record()

    def _on_delta(self, delta):
        self.deltas += 1
        self.delta_bytes += packet_bytes(delta)
        if self.follower.on_delta(delta):
            self._record()
        else:
            self.resyncs += 1
            self.client.emit("resync")


@pytest.mark.parametrize("worker_class", ["eventlet", "gevent"])
def test_produced_events_reach_the_dashboard_exactly(stack_env, start_program, start_dashboard, worker_class):
    env = stack_env()
    summary = produce(env, 3000)
    assert summary["produced"] == 3000
    assert sum(summary["by_type"].values()) == 3000
    assert set(summary["by_type"]) <= set(EVENT_TYPES)

    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env, worker_class)

    stats = wait_for_stats(base, totals_equal(summary["by_type"]), what="dashboard totals = produced counts",
                           alive=consumer.died)
    assert stats["invalid_total"] == 0
    assert stats["events_total"] == 3000
    assert sum(p["next_offset"] for p in stats["partitions"]) == 3000

    # A Socket.IO client gets the full state on connect, without waiting for a change.
    payload = receive_stats_until(base, totals_equal(summary["by_type"]), timeout=10)
    assert payload["totals"] == stats["totals"]
    assert len(payload["series"]["by_type"]["productview"]) == 900

    # ... and live broadcasts when the statistics change, at most EVENTDASH_BROADCAST_PER_SECOND however fast.
    # A delta client (as the page) rebuilds every broadcast document exactly from far fewer bytes.
    client = socketio.Client(reconnection=False)
    arrivals: list[float] = []
    full_by_seq: dict[int, dict] = {}

    @client.on("stats")
    def on_stats(payload):
        arrivals.append(time.monotonic())
        if "seq" in payload:
            full_by_seq[payload["seq"]] = payload

    delta_client = DeltaClient()
    client.connect(base, transports=["websocket"], wait_timeout=10)
    delta_client.connect(base)
    try:
        more = produce(env, 20_000)  # snapshots change every 200 ms for several seconds
        expected = {t: summary["by_type"].get(t, 0) + more["by_type"].get(t, 0) for t in EVENT_TYPES}
        pushed = receive_stats_until(base, totals_equal(expected), timeout=60)
        wait_until(lambda: delta_client.doc is not None and totals_equal(expected)(delta_client.doc),
                   what="the delta client's totals = produced counts", timeout=30)
        wait_until(lambda: len(set(full_by_seq) & set(delta_client.by_seq)) >= 4 and delta_client.deltas >= 4,
                   what="four broadcasts seen by both clients (heartbeats come every 2 s)", timeout=30)
    finally:
        client.disconnect()
        delta_client.client.disconnect()
    assert pushed["events_total"] == 23_000
    common = sorted(set(full_by_seq) & set(delta_client.by_seq))
    for seq in common:
        rebuilt, history = delta_client.by_seq[seq]
        assert rebuilt == {k: v for k, v in full_by_seq[seq].items() if k != "series"}, seq
        for second, counts in series_by_second(full_by_seq[seq]["series"]).items():
            assert history.get(second, [0, 0, 0, 0]) == counts, (seq, second)
    assert delta_client.resyncs == 0
    mean_full = sum(map(packet_bytes, full_by_seq.values())) / len(full_by_seq)
    assert delta_client.delta_bytes / delta_client.deltas < mean_full / 2
    broadcasts = arrivals[1:]  # the first one is the on-connect state
    assert len(broadcasts) >= 2
    most = int(Settings().broadcast_per_second)
    for earlier, later in zip(broadcasts, broadcasts[most:]):
        assert later - earlier >= 0.9, f"more than {most} broadcasts within one second"
    # Under eventlet, broadcasts are framed once and written straight to each WebSocket; gevent
    # keeps python-socketio's per-client queue.
    metrics = requests.get(f"{base}/metrics", timeout=5).text.splitlines()
    writes = {path: sum(float(line.rsplit(" ", 1)[1]) for line in metrics
                        if line.startswith(f'eventdash_dashboard_client_writes_total{{path="{path}"}}'))
              for path in ("direct", "queued")}
    if worker_class == "eventlet":
        assert writes["direct"] >= 2 * len(common), writes
    else:
        assert writes["direct"] == 0 and writes["queued"] >= 2 * len(common), writes


def test_the_eventdash_command_is_installed_and_produces(stack_env):
    """`pip install .` (`-e .` in make setup) puts `eventdash` on the PATH: `eventdash produce --count 10`."""
    command = Path(sys.executable).parent / "eventdash"
    env = {k: v for k, v in stack_env().items() if k != "PYTHONPATH"}  # the installed package, not the tree
    result = subprocess.run([str(command), "produce", "--count", "10", "--rate", "0"], env=env, cwd="/",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert orjson.loads(result.stdout.strip().splitlines()[-1])["produced"] == 10


def test_the_live_tail_reaches_only_its_viewers_sampled_and_with_hashed_ids(stack_env, start_program,
                                                                            start_dashboard):
    base = flowing_stack(stack_env, start_program, start_dashboard, rate=400, events=400)
    viewer, bystander = socketio.Client(reconnection=False), socketio.Client(reconnection=False)
    batches: list[tuple[float, list[dict]]] = []
    bystander_batches: list[list[dict]] = []
    viewer.on("tail", lambda payload: batches.append((time.monotonic(), payload["events"])))
    bystander.on("tail", lambda payload: bystander_batches.append(payload["events"]))
    viewer.connect(base, transports=["websocket"], wait_timeout=10)
    bystander.connect(base, transports=["websocket"], wait_timeout=10)
    try:
        viewer.emit("tail", {"open": True})
        wait_until(lambda: len(batches) >= 12, what="a dozen tail batches", timeout=30)
        viewer.emit("tail", {"open": False})
        time.sleep(1.0)  # a closed panel gets nothing more (a batch in flight may still land)
        closed_at = len(batches)
        time.sleep(1.5)
        after_close = len(batches) - closed_at
    finally:
        viewer.disconnect()
        bystander.disconnect()
    assert bystander_batches == []
    assert after_close == 0
    events = [e for _, batch in batches for e in batch]
    assert all(1 <= len(batch) <= 5 for _, batch in batches)  # at most 5 per 250 ms: 20/s
    arrivals = [at for at, _ in batches]
    gaps = sorted(later - earlier for earlier, later in zip(arrivals, arrivals[1:]))
    assert gaps[len(gaps) // 2] >= 0.2  # one batch per 250 ms (delivery jitter may bunch a pair)
    assert len(events) <= 5 * 4 * (arrivals[-1] - arrivals[0] + 0.5)  # 20 per second at most
    assert {e["type"] for e in events} <= set(EVENT_TYPES)
    assert all(e["session"].startswith("#") and len(e["session"]) == 9 for e in events)
    assert all(isinstance(e["offset"], int) and 0 <= e["partition"] < 6 for e in events)
    assert len({(e["partition"], e["offset"]) for e in events}) == len(events)  # no record twice


def test_a_scenario_played_by_the_producer_reaches_the_statistics_exactly(stack_env, start_program, start_dashboard):
    """`produce --scenario checkout-outage` (no purchase) and `--scenario dlq-flood` (malformed records
    among the events): the summary counts them, and the dashboard shows exactly that."""
    env = stack_env(EVENTDASH_PRODUCER_SEED="11")
    outage = produce(env, 3000, 300, "--scenario", "checkout-outage", "--for", "10m")
    assert outage["produced"] == 3000 and outage["by_type"].get("purchase", 0) == 0
    flood = produce(env, 2000, 300, "--scenario", "dlq-flood", "--for", "10m")
    malformed = flood["malformed"]
    assert flood["produced"] == 2000 and 500 < malformed < 1500
    start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    expected = Counter(outage["by_type"]) + Counter(flood["by_type"])
    stats = wait_for_stats(base, lambda s: s["invalid_total"] == malformed and totals_equal(dict(expected))(s),
                           what="valid events and malformed records counted exactly")
    assert stats["events_total"] == 5000 - malformed


def test_category_and_product_slices_are_exact(stack_env, start_program, start_dashboard):
    """3,000 simulated events (the catalog's 7 categories): every category slice of the last 15 minutes
    counts exactly the events of that category read back from Kafka, and a product slice its views and
    units (30 products: within the counters' 32 candidates, so exact)."""
    from eventdash.producer.catalog import CATALOG

    from ..helpers import read_topic

    env = stack_env(EVENTDASH_PRODUCER_SEED="5")
    summary = produce(env, 3000)
    start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    wait_for_stats(base, totals_equal(summary["by_type"]), what="every event counted")
    events = [orjson.loads(v) for v in read_topic(env["KAFKA_BOOTSTRAP_SERVERS"], env["EVENTDASH_EVENTS_TOPIC"])]
    by_category = Counter((e["category"], e["type"]) for e in events)
    categories = {p.category for p in CATALOG}
    assert {e["category"] for e in events} == categories
    listed = requests.get(f"{base}/api/stats", timeout=5).json()["windows"]["15m"]["categories"]
    assert {row["category"]: row["events"] for row in listed} == {
        c: sum(n for (cat, _), n in by_category.items() if cat == c) for c in categories}
    for category in categories:
        doc = requests.get(f"{base}/api/stats", params={"window": "15m", "category": category}, timeout=5).json()
        assert doc["window"]["counts"] == {t: by_category[(category, t)] for t in EVENT_TYPES}, category
        assert doc["window"]["funnel"]["basis"] == "events"
        products = {row["product_id"] for kind in ("views", "purchases") for row in doc["window"]["top_products"][kind]}
        assert products and products <= {p.product_id for p in CATALOG if p.category == category}
    views = Counter(e["product_id"] for e in events if e["type"] == "productview")
    units = Counter()
    for e in events:
        if e["type"] == "purchase":
            units[e["product_id"]] += e["quantity"]
    doc = requests.get(f"{base}/api/stats", params={"window": "15m", "product": "p-001"}, timeout=5).json()
    assert doc["window"]["counts"] == {"productview": views["p-001"], "purchase_units": units["p-001"]}
    assert doc["window"]["filter"]["name"] == CATALOG[0].name
    for bad in ({"window": "1h", "category": "Tea"}, {"category": "x" * 40}, {"category": "Tea", "product": "p-1"}):
        assert requests.get(f"{base}/api/stats", params=bad, timeout=5).status_code == 400
