"""``make screenshot``: docs/dashboard.png from a real stack that has run for a few minutes.

Runs ``make dev``'s stack from a private folder on free ports, waits until the chart holds
``minutes`` of data and supervisord's programs show on the page, takes a full-page screenshot
in Debian's Chromium, and stops the stack.
"""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from .environment import program_env
from .localkafka import ROOT
from .readiness import free_port, wait_until

logger = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"


def _stats(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/api/stats", timeout=5) as response:
        return json.load(response)


def _filled(base: str, seconds: int) -> bool:
    stats = _stats(base)
    series = stats["series"]["by_type"]["productview"]
    return sum(1 for n in series[-seconds:] if n) >= seconds * 0.9 and len(stats["health"]["programs"]) == 3


def take_screenshot(out: Path, minutes: float = 3.0) -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = program_env({"EVENTDASH_PORT": str(port), "EVENTDASH_HOST": "127.0.0.1",
                           "EVENTDASH_PRODUCER_METRICS_PORT": "0", "EVENTDASH_CONSUMER_METRICS_PORT": "0",
                           # a short burst of malformed records, so the dead-letter panel has something to show
                           "EVENTDASH_SCENARIOS": "dlq-flood@60s+2s", "EVENTDASH_PRODUCER_SEED": "1"},
                          inherit_config=False)
        dev = subprocess.Popen([sys.executable, "-m", "devstack", "dev", "--kafka-port", str(free_port()),
                                "--zookeeper-port", str(free_port()), "--home", home], cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            seconds = int(minutes * 60)
            logger.info("letting the stack run until the chart holds %d s of data", seconds)
            wait_until(lambda: _filled(base, seconds), what=f"{seconds} s of data on the dashboard",
                       timeout=seconds + 180, interval=2, max_interval=5,
                       alive=lambda: dev.poll() is not None and f"the stack exited {dev.returncode}")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                # bypass_csp: wait_for_function evaluates strings, which the page's CSP forbids
                page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
                page.goto(base + "/?tail=all")  # with the live events panel open
                page.wait_for_function("document.getElementById('connection').dataset.state === 'live'",
                                       timeout=30_000)
                page.wait_for_function("document.querySelectorAll('#tail-rows tr').length >= 12", timeout=30_000)
                page.wait_for_timeout(1500)  # let the chart draw its first frames after connecting
                page.screenshot(path=str(out), full_page=True)
                browser.close()
            logger.info("wrote %s", out)
        finally:
            dev.send_signal(signal.SIGINT)
            dev.wait(60)
