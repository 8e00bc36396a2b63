"""The live page in real headless Chromium (Debian's), driven by Playwright."""
from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from ..helpers import EVENT_TYPES, ROOT, produce, totals_equal, wait_for_stats

CHROMIUM = "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing in CI: .ci/run must install Debian's chromium")
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}: sudo apt-get install chromium "
                "(or `make browser-deps` as root)", allow_module_level=True)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        # bypass_csp: Playwright's polling evaluates strings, which the page's CSP forbids. It also makes the
        # XSS check stricter: without the CSP as a backstop, only text insertion keeps the payload inert.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        yield page
        browser.close()


def tile_text(page, type_name: str) -> str:
    return page.locator(f"#kpi-total-{type_name}").inner_text()


def number(text: str) -> int:
    return int("".join(ch for ch in text if ch.isdigit()))


def test_page_shows_exact_totals_reconnects_and_escapes_html(page, kafka, stack_env, start_program, start_dashboard):
    env = stack_env()
    consumer = start_program("consumer", ["consume"], env)
    dashboard, base = start_dashboard(env)
    summary = produce(env, 1234)

    # One event whose product name is an XSS attempt: it must show as text.
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    xss_event = {"event_id": "xss-1", "type": "productview", "ts": time.time_ns() // 1_000_000,
                 "session_id": "s-xss", "user_id": "u-xss", "product_id": "p-xss", "product_name": XSS,
                 "price": 1.0, "quantity": 1}
    for i in range(400):  # clearly the most viewed product
        producer.produce(env["EVENTDASH_EVENTS_TOPIC"], orjson.dumps({**xss_event, "event_id": f"xss-{i}"}),
                         key=b"s-xss")
    assert producer.flush(30) == 0
    expected = dict(summary["by_type"])
    expected["productview"] = expected.get("productview", 0) + 400
    wait_for_stats(base, totals_equal(expected), what="totals incl. the XSS events", alive=consumer.died)

    page.goto(base + "/")
    page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
    for type_name in EVENT_TYPES:
        page.wait_for_function(
            f"(() => {{ const t = document.getElementById('kpi-total-{type_name}').textContent;"
            f" return t.replace(/\\D/g, '') === '{expected.get(type_name, 0)}'; }})()", timeout=20_000)
        assert number(tile_text(page, type_name)) == expected.get(type_name, 0)
    assert page.locator("#kpi-total-productview").inner_text() == f"{expected['productview']:,}"

    top = page.locator("#top-views tr").first.locator("td.product")
    assert top.inner_text() == XSS
    assert page.locator("#top-views img").count() == 0 and page.dialogs == []

    shot = ROOT / "docs" / "dashboard.png"
    page.locator("#kpi-invalid").scroll_into_view_if_needed()
    page.screenshot(path=str(shot), full_page=True)

    # Restart the dashboard process: the page goes to "reconnecting", then back to live with full state.
    port = base.rsplit(":", 1)[1]
    dashboard.stop()
    page.wait_for_function("document.getElementById('connection').dataset.state === 'reconnecting'", timeout=20_000)
    page.evaluate("document.getElementById('kpi-total-purchase').textContent = 'cleared'")
    start_dashboard(env, port=int(port))
    page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=30_000)
    purchases = expected.get("purchase", 0)
    page.wait_for_function(
        f"document.getElementById('kpi-total-purchase').textContent.replace(/\\D/g, '') === '{purchases}'",
        timeout=20_000)
    assert number(tile_text(page, "productview")) == expected["productview"]
    assert page.dialogs == []


def test_cross_origin_socketio_handshake_is_rejected(stack_env, start_dashboard):
    import requests

    _, base = start_dashboard(stack_env())
    url = f"{base}/socket.io/?EIO=4&transport=polling"
    same = requests.get(url, headers={"Origin": base}, timeout=5)
    other = requests.get(url, headers={"Origin": "http://evil.example"}, timeout=5)
    assert same.status_code == 200 and same.text.startswith("0{")
    assert other.status_code == 400
