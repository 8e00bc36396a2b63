"""Alerts on the real stack, on accelerated event time: 28 minutes of the simulated shop, played 30 times
faster than the clock, with a checkout outage from minute 18 to 21. The outage raises exactly one alert,
purchase_collapse, within two minutes; it resolves after; the gauge, /api/alerts and the webhook (down at
first, then up) say so; Chromium shows the banner and the chart's marks."""
from __future__ import annotations

import http.server
import threading
import time

import orjson
import pytest
import requests
from confluent_kafka import Producer

from devstack.readiness import free_port, wait_until
from eventdash.producer.scenarios import ScenarioPlayer, Scheduled
from eventdash.producer.simulator import ShopperSimulator

from ..helpers import consumer_with_topics
from .test_browser import browser  # noqa: F401 - the fixture

MINUTES = 28
OUTAGE = (18, 3)  # start minute, minutes
SPEED = 30  # event-time seconds per second
RATE = 20  # events per event-time second


class Receiver:
    """A webhook receiver on a fixed port that can be started late."""

    def __init__(self, port: int):
        self.port = port
        self.bodies: list[dict] = []
        self.server: http.server.HTTPServer | None = None

    def start(self) -> None:
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                bodies.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def play(bootstrap: str, topic: str, start_ms: int, stop: threading.Event) -> None:
    """The simulator and the scenario player on a clock that starts at ``start_ms`` and runs SPEED times faster."""
    began = time.monotonic()
    clock = [start_ms]
    schedule = (Scheduled("checkout-outage", OUTAGE[0] * 60_000, OUTAGE[1] * 60_000),)
    simulator = ShopperSimulator(seed=21, clock_ms=lambda: clock[0])
    player = ScenarioPlayer(schedule, seed=21, clock_ms=lambda: clock[0])
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    sent = 0
    for record, extra in player.apply(simulator.events()):
        if stop.is_set():
            break
        if not extra:
            sent += 1
            clock[0] = start_ms + sent * 1000 // RATE
            if clock[0] >= start_ms + MINUTES * 60_000:
                break
            ahead = (clock[0] - start_ms) / 1000 / SPEED - (time.monotonic() - began)
            if ahead > 0:
                producer.poll(0)
                time.sleep(ahead)
        producer.produce(topic, orjson.dumps(record), key=record["session_id"])
    producer.flush(30)


def metric(base: str, rule: str) -> float:
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'eventdash_alert_active{{rule="{rule}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no eventdash_alert_active for {rule}")


@pytest.mark.browser
def test_a_checkout_outage_raises_one_alert_everywhere_and_it_resolves(browser, stack_env, start_program,  # noqa: F811
                                                                        start_dashboard):
    receiver = Receiver(free_port())
    env = stack_env(EVENTDASH_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook")
    consumer_with_topics(env, start_program)
    _, base = start_dashboard(env)
    bootstrap, topic = env["KAFKA_BOOTSTRAP_SERVERS"], env["EVENTDASH_EVENTS_TOPIC"]
    start_ms = (time.time_ns() // 60_000_000_000 - MINUTES - 2) * 60_000  # ends two minutes before now
    outage_ms = start_ms + OUTAGE[0] * 60_000
    stop = threading.Event()
    player = threading.Thread(target=play, args=(bootstrap, topic, start_ms, stop), daemon=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(base + "/?window=1h")
        page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
        player.start()

        # The outage: the banner, a mark on the chart at its start, the gauge; the webhook receiver is down.
        page.wait_for_function("!document.getElementById('alert-banner').hidden", timeout=90_000)
        assert page.locator("#alert-list li").first.get_attribute("data-rule") == "purchase_collapse"
        assert "Purchases fell to 0" in page.locator("#alert-list").inner_text()
        page.wait_for_function("window.eventdash.alertMarks.some(m => !m.end && m.rule === 'purchase_collapse')",
                               timeout=20_000)
        active = requests.get(f"{base}/api/alerts", timeout=5).json()["active"]
        assert [a["rule"] for a in active] == ["purchase_collapse"]
        assert 0 <= active[0]["started_ms"] - outage_ms <= 60_000  # within two evaluation windows (minutes)
        assert metric(base, "purchase_collapse") == 1.0
        wait_until(lambda: 'eventdash_alert_webhook_total{outcome="retried"}' in
                   requests.get(f"{base}/metrics", timeout=5).text, what="a failed delivery", timeout=30)
        receiver.start()  # the webhook comes back: the "opened" delivery is retried until it arrives

        # After it: the banner goes, the chart marks the end, the alert is resolved everywhere.
        page.wait_for_function("document.getElementById('alert-banner').hidden", timeout=90_000)
        page.wait_for_function("window.eventdash.alertMarks.some(m => m.end && m.rule === 'purchase_collapse')",
                               timeout=20_000)
        player.join(120)
        alerts = requests.get(f"{base}/api/alerts", timeout=5).json()
        assert alerts["active"] == []
        assert [a["rule"] for a in alerts["recent"]] == ["purchase_collapse"]  # nothing else, before or after
        resolved = alerts["recent"][0]["resolved_ms"]
        assert outage_ms + OUTAGE[1] * 60_000 <= resolved <= outage_ms + (OUTAGE[1] + 3) * 60_000
        assert metric(base, "purchase_collapse") == 0.0
        wait_until(lambda: len(receiver.bodies) >= 2, what="both webhook deliveries", timeout=120)
        assert [(b["event"], b["alert"]["rule"]) for b in receiver.bodies] == [
            ("opened", "purchase_collapse"), ("resolved", "purchase_collapse")]
        assert receiver.bodies[0]["alert"]["id"] == receiver.bodies[1]["alert"]["id"]
        assert 'eventdash_alert_webhook_total{outcome="delivered"} 2.0' in requests.get(f"{base}/metrics",
                                                                                     timeout=5).text
    finally:
        stop.set()
        context.close()
        receiver.stop()
