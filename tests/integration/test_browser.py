"""The live page in real headless Chromium (Debian's), driven by Playwright."""
from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest
import requests
from confluent_kafka import Producer

from devstack.readiness import wait_until

from ..helpers import EVENT_TYPES, consumer_with_topics, flowing_stack, produce, totals_equal, wait_for_stats

CHROMIUM = "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.browser



def require_chromium() -> None:
    """Missing Chromium: each browser test fails in CI (with this message) and is skipped elsewhere."""
    if Path(CHROMIUM).exists():
        return
    hint = f"browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium (or `make browser-deps`)"
    if os.environ.get("CI"):
        pytest.fail(f"{hint}; in CI it must be there, .ci/run installs it", pytrace=False)
    pytest.skip(hint)


# In every page: record the CSP violations the browser reports (the init script is injected by the
# DevTools protocol, which the page's CSP does not govern).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.effectiveDirective, blocked: e.blockedURI});
});
"""


@pytest.fixture
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def new_page(browser, *, bypass_csp: bool):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    return page


@pytest.fixture
def page(browser):
    # bypass_csp: Playwright's polling (wait_for_function) evaluates strings, which the page's CSP forbids. It
    # also makes the XSS check stricter: without the CSP as a backstop, only text insertion keeps the payload
    # inert. test_page_works_under_its_own_csp runs without it.
    return new_page(browser, bypass_csp=True)


@pytest.fixture
def strict_page(browser):
    """A page whose CSP the browser enforces: no bypass, so no wait_for_function (it needs eval)."""
    return new_page(browser, bypass_csp=False)


def tile_text(page, type_name: str) -> str:
    return page.locator(f"#kpi-total-{type_name}").inner_text()


def number(text: str) -> int:
    return int("".join(ch for ch in text if ch.isdigit()))


def test_page_shows_exact_totals_reconnects_and_escapes_html(page, kafka, stack_env, start_program, start_dashboard,
                                                             tmp_path):
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

    handshakes: list[dict] = []  # the WebSocket upgrade responses Chromium saw
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.webSocketHandshakeResponseReceived", lambda event: handshakes.append(event["response"]["headers"]))
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

    # A record that is not JSON: the dead-letter panel shows it redacted, as text, with its source offset.
    producer.produce(env["EVENTDASH_EVENTS_TOPIC"], b'{"session_id": "s-private", "x": "' + XSS.encode() + b'"',
                     key=b"s-bad", partition=0)
    assert producer.flush(30) == 0
    page.wait_for_function("document.getElementById('dlq-recent').textContent.includes('not json')",
                           timeout=30_000)
    row = page.locator("#dlq-recent tr").first
    assert XSS in row.locator("td.preview").inner_text() and "s-private" not in row.inner_text()
    assert page.locator("#dlq-recent img").count() == 0 and page.dialogs == []
    assert page.locator("#dlq-minutes li").first.inner_text().endswith("not json 1")

    # Chromium negotiated compression without server context takeover, and its updates were the shared
    # frames written straight to its WebSocket (eventdash/dashboard/fanout.py): the exact figures above
    # came through them.
    extensions = [{k.lower(): v for k, v in headers.items()}.get("sec-websocket-extensions", "")
                  for headers in handshakes]
    assert any("permessage-deflate" in e and "server_no_context_takeover" in e for e in extensions), handshakes
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    direct = [line for line in metrics.splitlines()
              if line.startswith('eventdash_dashboard_client_writes_total{path="direct"}')]
    assert direct and float(direct[0].rsplit(" ", 1)[1]) > 0, direct

    shot = tmp_path / "dashboard.png"  # tests never write into tracked files (`make screenshot` renews docs/)
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


def test_page_works_under_its_own_csp(strict_page, stack_env, start_program, start_dashboard):
    """Without bypass_csp: the enforced CSP (connect-src 'self') lets the page go live over a WebSocket to
    its own origin, updates arrive over it, and nothing on the page is blocked; other origins are."""
    page = strict_page
    env = stack_env()
    consumer = start_program("consumer", ["consume"], env)
    _, base = start_dashboard(env)
    first = produce(env, 500)
    wait_for_stats(base, totals_equal(first["by_type"]), what="first batch counted", alive=consumer.died)

    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    response = page.goto(base + "/")
    assert "connect-src 'self';" in response.headers["content-security-policy"]

    def tiles() -> dict[str, int]:
        return {t: number(tile_text(page, t)) if any(ch.isdigit() for ch in tile_text(page, t)) else -1
                for t in EVENT_TYPES}

    def shows(expected: dict[str, int]) -> bool:
        return tiles() == {t: expected.get(t, 0) for t in EVENT_TYPES}

    connection = page.locator("#connection")
    wait_until(lambda: connection.get_attribute("data-state") == "live", what="the page to go live", timeout=20)
    # The Engine.IO transport in use is the WebSocket ("polling" would mean the CSP blocked ws://).
    assert page.evaluate("window.eventdash.socket.io.engine.transport.name") == "websocket"
    ws_base = "ws" + base.removeprefix("http")
    assert any(url.startswith(f"{ws_base}/socket.io/") for url in sockets), sockets
    wait_until(lambda: shows(first["by_type"]), what="the first batch on the page", timeout=20)

    # Live data: a second batch reaches the open page through the broadcasts.
    second = produce(env, 300)
    expected = {t: first["by_type"].get(t, 0) + second["by_type"].get(t, 0) for t in EVENT_TYPES}
    try:
        wait_until(lambda: shows(expected), what="the second batch on the page", timeout=30, alive=consumer.died)
    except Exception as exc:
        raise AssertionError(f"{exc}; the page shows {tiles()}, expected {expected}") from None
    assert page.evaluate("window.eventdash.socket.io.engine.transport.name") == "websocket"
    assert page.evaluate("window.__cspViolations") == [] and page.dialogs == []

    # Control: the CSP is really enforced in this context, and 'self' is this origin only (not any ws:).
    foreign = "ws://127.0.0.1:9/"
    violation = page.evaluate("""(url) => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation", (e) => resolve(e.effectiveDirective), {once: true});
        try { new WebSocket(url); } catch (e) { /* some browsers also throw */ }
        setTimeout(() => resolve(null), 5000);
    })""", foreign)
    assert violation == "connect-src"


def test_the_chart_draws_complete_seconds_readable_times_and_quiet_grid_lines(browser, stack_env, start_program,
                                                                             start_dashboard):
    """The three problems screenshots showed: a drop to 0 at the right edge (the second still filling),
    date and time labels overlapping at the left edge, glaring grid lines in dark mode."""
    base = flowing_stack(stack_env, start_program, start_dashboard, rate=300, events=1500)
    for scheme, width in (("dark", 390), ("light", 1280)):
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme,
                                      bypass_csp=True)
        page = context.new_page()
        page.goto(base + "/")
        page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
        # Steady 300 events/s: every drawn second has views, the newest drawn one included.
        for _ in range(8):
            last = page.evaluate("""(() => { const d = window.eventdash.chart.data;
                return {x: d[0][d[0].length - 1], views: d[1][d[1].length - 1],
                        complete: window.eventdash.completeThrough()}; })()""")
            assert last["x"] == last["complete"] and last["views"] > 0, (scheme, last)
            page.wait_for_timeout(400)
        # Time labels only, and no more of them than fit side by side.
        axis = page.evaluate("""(() => { const a = window.eventdash.chart.axes[0];
            const ctx = document.createElement('canvas').getContext('2d'); ctx.font = a.font[0];
            const labels = a._values || [];
            return {labels, widest: Math.max(0, ...labels.map((l) => ctx.measureText(l).width)),
                    width: window.eventdash.chart.bbox.width / devicePixelRatio}; })()""")
        assert axis["labels"] and all("/" not in label and "\n" not in label for label in axis["labels"]), axis
        assert len(axis["labels"]) * (axis["widest"] + 8) <= axis["width"], axis
        if scheme == "light":  # the aria-live summary: announced at once, then at most every 30 s
            page.evaluate("""window.__summaries = [];
                new MutationObserver(() => window.__summaries.push(Date.now())).observe(
                  document.getElementById('summary'), {childList: true, characterData: true, subtree: true});""")
            assert "events per second" in page.locator("#summary").inner_text()
            page.wait_for_function("window.__summaries.length >= 1", timeout=40_000)
            page.wait_for_timeout(5_000)  # 20 more updates arrive meanwhile
            changes = page.evaluate("window.__summaries")
            assert len(changes) == 1, changes
        # Grid lines: at most 10 % opacity in both themes.
        grid = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--grid').trim()")
        alpha = float(grid.rsplit(",", 1)[1].rstrip(")"))
        assert alpha <= 0.1, (scheme, grid)
        context.close()


def test_pause_counts_held_updates_resume_shows_now_and_the_url_keeps_the_view(page, stack_env, start_program,
                                                                              start_dashboard):
    base = flowing_stack(stack_env, start_program, start_dashboard, rate=200, events=200)

    page.goto(base + "/?window=1m&theme=dark")
    page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
    assert page.locator('.window-picker button[data-window="1m"]').get_attribute("aria-pressed") == "true"
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.locator("#download-series").get_attribute("href") == "/api/series.csv?window=1m"

    # Pause from the keyboard: the tiles freeze while updates are counted.
    page.locator("#pause").focus()
    page.keyboard.press("Enter")
    assert page.locator("#pause").get_attribute("aria-pressed") == "true"
    assert "paused=1" in page.url and "window=1m" in page.url and "theme=dark" in page.url
    frozen = tile_text(page, "productview")
    page.wait_for_function("/^\\+\\d+ updates$/.test(document.getElementById('held').textContent) && "
                           "parseInt(document.getElementById('held').textContent.slice(1)) >= 3", timeout=20_000)
    assert tile_text(page, "productview") == frozen
    newer = page.evaluate("window.eventdash.latest.totals.productview")
    assert newer > number(frozen)  # the page kept receiving while it showed the frozen state

    # Resume: the current state at once, and the counter is gone.
    page.keyboard.press("Enter")
    shown = page.evaluate("""(() => [document.getElementById('kpi-total-productview').textContent,
                                     window.eventdash.latest.totals.productview])()""")
    assert number(shown[0]) == shown[1] and page.locator("#held").inner_text() == ""
    assert "paused" not in page.url

    # A shared link opens the same view, paused included; the CSV is what the chart shows.
    page.goto(base + "/?window=15m&paused=1")
    page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
    assert page.locator("#pause").inner_text() == "Resume"
    page.wait_for_function("document.getElementById('kpi-total-productview').textContent !== '–'", timeout=20_000)
    csv_text = page.request.get(base + page.locator("#download-series").get_attribute("href")).text()
    assert len(csv_text.splitlines()) == 1 + 900
    assert page.dialogs == []


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.parametrize(("scheme", "width"), [("light", 1280), ("dark", 1280), ("light", 390), ("dark", 390)])
def test_axe_finds_no_serious_or_critical_violations(browser, stack_env, start_program, start_dashboard, scheme,
                                                     width):
    """axe-core (npm, package-lock.json) on the live page with every panel filled and open and the pause
    buttons pressed, in both themes, on a desktop and a phone-width screen: no serious or critical
    violation (contrast, names, roles, ...), and nothing wider than the screen."""
    base = flowing_stack(stack_env, start_program, start_dashboard, rate=200, events=600)
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(f"{base}/?theme={scheme}&tail=all&category=Tea")  # the live events panel and a filter too
        page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
        page.wait_for_function("document.querySelectorAll('#top-views tr').length > 0", timeout=20_000)
        page.wait_for_function("document.querySelectorAll('#top-categories tr').length > 0", timeout=20_000)
        page.wait_for_function("document.querySelectorAll('#tail-rows tr').length > 0", timeout=20_000)
        page.locator("#pause").click()  # pressed buttons have their own colours
        page.locator("#tail-pause").click()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = page.evaluate("""() => [...document.querySelectorAll("body *")]
            .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 8).map(el => el.tagName + (el.id ? "#" + el.id : "") + "." + el.className)""")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px screen: {wide}"
        page.evaluate(AXE.read_text() + "\n;undefined")
        violations = page.evaluate("""() => axe.run(document, {resultTypes: ["violations"]}).then(r =>
            r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + ": " + n.failureSummary)})))""")
    finally:
        context.close()
    assert violations == [], "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"])
                                       for v in violations)


def test_the_live_event_tail_panel_filters_pauses_and_lives_in_the_url(page, stack_env, start_program,
                                                                       start_dashboard):
    base = flowing_stack(stack_env, start_program, start_dashboard, rate=300, events=300)
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
    assert page.locator("#tail-body").is_hidden() and page.locator("#tail-pause").is_disabled()
    page.locator("#tail-toggle").click()  # open: the page joins the tail room and rows arrive, newest on top
    page.wait_for_function("document.querySelectorAll('#tail-rows tr').length >= 10", timeout=20_000)
    assert page.locator("#tail-toggle").get_attribute("aria-expanded") == "true"
    assert "tail=all" in page.url
    rows = page.locator("#tail-rows tr")
    assert rows.count() <= 50
    session_cells = page.locator("#tail-rows td.id").all_inner_texts()
    assert session_cells and all(text.startswith("#") and len(text) == 9 for text in session_cells)

    page.select_option("#tail-type", "purchase")  # only purchases from now on
    page.wait_for_function("document.querySelectorAll('#tail-rows tr').length >= 2", timeout=30_000)
    assert set(page.eval_on_selector_all("#tail-rows tr", "rows => rows.map(r => r.dataset.type)")) == {"purchase"}
    assert "tail=purchase" in page.url

    page.locator("#tail-pause").click()  # paused: rows stay, arrivals are counted
    frozen = page.eval_on_selector_all("#tail-rows tr", "rows => rows.map(r => r.textContent)")
    page.wait_for_function("document.getElementById('tail-held').textContent.startsWith('+')", timeout=30_000)
    assert page.eval_on_selector_all("#tail-rows tr", "rows => rows.map(r => r.textContent)") == frozen
    page.locator("#tail-pause").click()
    assert page.locator("#tail-held").inner_text() == ""

    page.reload()  # the URL keeps the open panel and its filter
    page.wait_for_function("document.querySelectorAll('#tail-rows tr').length >= 1", timeout=30_000)
    assert page.locator("#tail-type").input_value() == "purchase"
    page.locator("#tail-toggle").click()
    assert page.locator("#tail-body").is_hidden() and "tail=" not in page.url


def test_hour_windows_show_their_whole_range_at_once_on_a_phone_in_dark_mode(browser, stack_env, start_program,
                                                                            start_dashboard):
    """2.5 hours of event time (accelerated): the 24 h and 1 h windows draw every minute as soon as they
    are picked or opened from a link, with the exact counts, on a 390 px dark page and a desktop one."""

    from .test_history import plan, produce_plan
    env = stack_env()
    counts = plan(time.time_ns() // 60_000_000_000)
    consumer_with_topics(env, start_program)
    bootstrap, events_topic = env["KAFKA_BOOTSTRAP_SERVERS"], env["EVENTDASH_EVENTS_TOPIC"]
    totals = produce_plan(bootstrap, events_topic, counts)
    _, base = start_dashboard(env)
    wait_for_stats(base, totals_equal(dict(totals)), what="every event counted")
    wait_until(lambda: requests.get(f"{base}/api/stats?window=24h", timeout=5).json()["window"]["complete"],
               what="the history read", timeout=30)

    def drawn(page) -> dict:
        return page.evaluate("""(() => { const d = window.eventdash.chart.data;
            return {points: d[0].length, step: d[0].length > 1 ? d[0][1] - d[0][0] : null,
                    first: d[0][0], per_type: d.slice(1).map((ys) => Math.round(ys.reduce((a, b) => a + b, 0) * 60))};
            })()""")

    def expected_from(first_s: int, minutes: int) -> list[int]:
        rows = [counts.get(first_s // 60 + k, [0, 0, 0, 0]) for k in range(minutes)]
        return [sum(row[i] for row in rows) for i in range(4)]

    for scheme, width in (("dark", 390), ("light", 1280)):
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme,
                                      bypass_csp=True)
        page = context.new_page()
        page.goto(f"{base}/?window=24h&theme={scheme}")
        page.wait_for_function("window.eventdash.minuteDoc !== null && window.eventdash.chart.data[0].length > 0",
                               timeout=20_000)
        shown = drawn(page)
        assert shown["points"] == 1440 and shown["step"] == 60
        assert shown["per_type"] == expected_from(shown["first"], 1440) == [totals[t] for t in EVENT_TYPES]
        assert page.locator("#series-window").inner_text() == "24 h"
        assert {el.inner_text() for el in page.locator(".detail-window").all()} == {"15 min"}
        assert page.locator("#download-top").get_attribute("href") == "/api/top.csv?window=15m"
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

        page.locator('.window-picker button[data-window="1h"]').click()
        page.wait_for_function("window.eventdash.chart.data[0].length === 60", timeout=10_000)
        shown = drawn(page)
        assert shown["per_type"] == expected_from(shown["first"], 60)
        assert "window=1h" in page.url
        assert page.locator("#download-series").get_attribute("href") == "/api/series.csv?window=1h"
        page.locator('.window-picker button[data-window="5m"]').click()  # back to seconds: 300 of them
        page.wait_for_function("window.eventdash.chart.data[0].length === 300", timeout=10_000)
        context.close()


def test_filtering_by_category_or_product_slices_the_page_and_a_chip_clears_it(page, stack_env, start_program,
                                                                              start_dashboard):
    from eventdash.producer.catalog import CATALOG

    base = flowing_stack(stack_env, start_program, start_dashboard, rate=300, events=1500)
    page.goto(base + "/?window=15m")
    page.wait_for_function("document.querySelectorAll('#top-categories button.pick').length >= 5", timeout=20_000)
    assert page.locator("#filter-chip").is_hidden()

    # A category from the keyboard: the chip, the URL and every panel show that slice.
    page.locator("#top-categories button.pick", has_text="Tea").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("window.eventdash.sliceDoc !== null", timeout=10_000)
    assert "category=Tea" in page.url and "Category: Tea" in page.locator("#filter-text").inner_text()
    page.locator("#pause").click()  # hold the page still to compare what it shows with what it was sent
    shown = page.evaluate("""(() => { const w = window.eventdash.sliceDoc.window;
        return {counts: w.counts, tile: document.getElementById('kpi-total-productview').textContent,
                viewed: document.getElementById('funnel-viewed').textContent,
                rows: [...document.querySelectorAll('#top-views button.pick')].map(b => b.textContent),
                points: window.eventdash.chart.data[0].length}; })()""")
    assert number(shown["tile"]) == shown["counts"]["productview"] == number(shown["viewed"]) > 0
    tea = {p.name for p in CATALOG if p.category == "Tea"}
    assert shown["rows"] and set(shown["rows"]) <= tea
    assert 14 <= shown["points"] <= 15  # complete minutes only
    assert page.locator('.window-picker button[data-window="1h"]').is_disabled()
    page.locator("#pause").click()

    # A reload keeps the slice; a product from a top list replaces it; the chip's button clears it.
    page.reload()
    page.wait_for_function("window.eventdash.sliceDoc !== null", timeout=10_000)
    assert "Category: Tea" in page.locator("#filter-text").inner_text()
    first = page.locator("#top-views button.pick").first
    name = first.inner_text()
    first.click()
    page.wait_for_function("window.eventdash.sliceDoc !== null && window.eventdash.sliceDoc.window.filter.product",
                           timeout=10_000)
    assert "product=p-" in page.url and f"Product: {name}" in page.locator("#filter-text").inner_text()
    assert page.locator("#kpi-total-addtobasket").inner_text() == "–"  # not kept per product
    assert page.locator("#kpi-revenue").inner_text() == "–"
    page.locator("#filter-clear").click()
    assert page.locator("#filter-chip").is_hidden() and "product=" not in page.url
    page.wait_for_function("document.getElementById('kpi-revenue').textContent !== '–'", timeout=10_000)
    assert not page.locator('.window-picker button[data-window="1h"]').is_disabled()
    assert page.dialogs == []
