"""The dashboard's Socket.IO endpoint over plain HTTP and WebSocket (no browser needed).

Against the real gunicorn + eventlet dashboard. It runs with an unreachable broker: the
handshake, the origin check and the size limits do not depend on Kafka, and these tests then
need no broker at all.
"""
from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests
import socketio
import websocket

from devstack.readiness import free_port, wait_until
from eventdash.dashboard.passwords import user_line

from ..helpers import python_env

MAX_CLIENT_MESSAGE_BYTES = 4096  # eventdash.dashboard.app.MAX_CLIENT_MESSAGE_BYTES


@pytest.fixture
def dashboard_env():
    def make(**extra: str) -> dict[str, str]:
        return python_env({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
                           "EVENTDASH_PRODUCER_METRICS_PORT": "0", "EVENTDASH_CONSUMER_METRICS_PORT": "0", **extra})

    return make


def polling_handshake(base: str, origin: str | None) -> requests.Response:
    headers = {"Origin": origin} if origin is not None else {}
    return requests.get(f"{base}/socket.io/?EIO=4&transport=polling", headers=headers, timeout=5)


def websocket_open(base: str, origin: str) -> websocket.WebSocket:
    """A WebSocket straight away (no polling first), as the page does; raises on a refused handshake."""
    url = "ws" + base.removeprefix("http") + "/socket.io/?EIO=4&transport=websocket"
    return websocket.create_connection(url, origin=origin, timeout=5)


def open_packet(text: str) -> dict:
    assert text.startswith("0{"), text[:200]
    return orjson.loads(text[1:])


# (EVENTDASH_CORS_ORIGINS, accepted origins, refused origins); {base} and {port} are the dashboard's.
ORIGIN_CASES = {
    "unset: same origin only": (
        None,
        ["{base}"],
        ["http://evil.example", "http://localhost:{port}", "https://127.0.0.1:{port}", "http://127.0.0.1:1", "null"],
    ),
    "explicit list": (
        "https://dash.example.com, http://ops.example.com:8080/",
        ["https://dash.example.com", "http://ops.example.com:8080"],
        ["http://evil.example", "http://dash.example.com", "https://dash.example.com:8443",
         "https://dash.example.com.evil.example", "http://ops.example.com"],
    ),
    "any origin": (
        "*",
        ["{base}", "http://evil.example", "https://dash.example.com"],
        [],
    ),
}


@pytest.mark.parametrize("case", list(ORIGIN_CASES))
def test_socketio_handshake_accepts_only_the_configured_origins(case, dashboard_env, start_dashboard):
    cors, accepted, refused = ORIGIN_CASES[case]
    extra = {"EVENTDASH_CORS_ORIGINS": cors} if cors is not None else {}
    _, base = start_dashboard(dashboard_env(**extra))
    port = base.rsplit(":", 1)[1]
    accepted = [o.format(base=base, port=port) for o in accepted]
    refused = [o.format(base=base, port=port) for o in refused]

    for origin in accepted:
        response = polling_handshake(base, origin)
        assert response.status_code == 200, (origin, response.status_code, response.text[:200])
        assert open_packet(response.text)["sid"]
        assert response.headers.get("Access-Control-Allow-Origin") == origin
        ws = websocket_open(base, origin)
        try:
            assert open_packet(ws.recv())["sid"]
        finally:
            ws.close()

    for origin in refused:
        response = polling_handshake(base, origin)
        assert response.status_code == 400, (origin, response.status_code, response.text[:200])
        assert "Access-Control-Allow-Origin" not in response.headers and "sid" not in response.text
        # Browsers do not apply CORS to WebSockets: this server-side check is what protects them.
        with pytest.raises(websocket.WebSocketBadStatusException) as refused_ws:
            websocket_open(base, origin)
        assert refused_ws.value.status_code == 400, origin

    # No Origin header at all is not a browser (CORS protects browsers): always accepted.
    response = polling_handshake(base, None)
    assert response.status_code == 200 and open_packet(response.text)["sid"]


def test_socketio_connects_gets_state_and_refuses_large_client_messages(dashboard_env, start_dashboard):
    """Clients only listen, so the server accepts a few KB from them at most, on both transports."""
    _, base = start_dashboard(dashboard_env())

    # WebSocket: the Socket.IO connect gets the full state at once; an oversized frame ends the connection.
    ws = websocket_open(base, base)
    try:
        handshake = open_packet(ws.recv())
        assert handshake["maxPayload"] == MAX_CLIENT_MESSAGE_BYTES
        ws.send("40")
        # The CONNECT acknowledgement (with the client's sid) and the "stats" event the connect handler emits.
        replies = sorted((ws.recv(), ws.recv()))
        assert replies[0].startswith("40{") and replies[1].startswith('42["stats",'), [r[:80] for r in replies]
        assert "totals" in orjson.loads(replies[1][2:])[1]
        # An event of 3 KB (nobody handles it) is within the limit: the connection stays up, as an
        # Engine.IO upgrade packet ("5") answered with a noop ("6") shows.
        ws.send('42["ignored","' + "x" * 3000 + '"]')
        ws.send("5")
        assert ws.recv() == "6"
        ws.send('42["ignored","' + "x" * MAX_CLIENT_MESSAGE_BYTES + '"]')  # over the limit
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
            ws.send("5")
            for _ in range(20):  # anything the server had queued before it closed, then the close
                if ws.recv() in ("", None, b""):
                    raise websocket.WebSocketConnectionClosedException("closed")
    finally:
        ws.close()

    # Long-polling: a small POST is accepted, an oversized one is refused and ends the session.
    url = f"{base}/socket.io/?EIO=4&transport=polling"
    headers = {"Origin": base}
    sid = open_packet(requests.get(url, headers=headers, timeout=5).text)["sid"]
    url = f"{url}&sid={sid}"
    ok = requests.post(url, data="40", headers=headers, timeout=5)
    assert ok.status_code == 200 and ok.text == "OK"
    queued = requests.get(url, headers=headers, timeout=5).text  # packets are separated by \x1e
    assert any(p.startswith('42["stats",') for p in queued.split("\x1e")), queued[:200]
    with ThreadPoolExecutor(1) as pool:
        too_long = pool.submit(requests.post, url, data="4" + "x" * (MAX_CLIENT_MESSAGE_BYTES + 100),
                               headers=headers, timeout=5)
        # The session ends at once: the next poll is refused.
        after = wait_until(lambda: (r := requests.get(url, headers=headers, timeout=5)).status_code == 400 and r.text,
                           what="the oversized POST to end the session", timeout=10)
        assert "disconnected" in after or "Invalid session" in after, after
        # python-engineio 4.15 answers that POST 400 only once a poll drains the session's CLOSE packet, which
        # the refused poll above does not: the POST may stay unanswered until the client gives up.
        try:
            assert too_long.result().status_code == 400
        except requests.ReadTimeout:
            pass


@pytest.mark.parametrize("worker_class", ["eventlet", "gevent"])
def test_basic_auth_guards_the_page_the_api_and_the_socketio_handshake(dashboard_env, start_dashboard, tmp_path,
                                                                      worker_class):
    users = tmp_path / "users"
    users.write_text(user_line("alice", "correct horse") + "\n")  # the real cost: about 0.1 s per check
    _, base = start_dashboard(dashboard_env(EVENTDASH_AUTH="basic", EVENTDASH_AUTH_USERS_FILE=str(users)),
                              worker_class)
    good = {"Authorization": "Basic " + base64.b64encode(b"alice:correct horse").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}

    for path in ("/", "/api/stats", "/static/app.js", "/socket.io/?EIO=4&transport=polling"):
        for headers in ({}, bad):
            response = requests.get(base + path, headers={"Origin": base, **headers}, timeout=10)
            assert response.status_code == 401 and response.json() == {"error": "unauthorized", "status": 401}
        assert requests.get(base + path, headers={"Origin": base, **good}, timeout=10).status_code == 200
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
    with pytest.raises(websocket.WebSocketBadStatusException, match="401"):
        websocket_open(base, base)

    client = socketio.Client(reconnection=False)
    states: list[dict] = []
    client.on("stats", states.append)
    client.connect(base, headers=good, transports=["websocket"], wait_timeout=10)
    try:
        wait_until(lambda: states, what="the stats document over an authenticated WebSocket", timeout=10)
    finally:
        client.disconnect()

    # Password checks run off the event loop: 16 wrong logins (about 1.6 s of scrypt) leave /healthz quick.
    with ThreadPoolExecutor(16) as pool:
        attempts = [pool.submit(requests.get, base + "/api/stats", headers=bad, timeout=30) for _ in range(16)]
        time.sleep(0.2)
        started = time.monotonic()
        assert requests.get(base + "/healthz", timeout=10).status_code == 200
        assert time.monotonic() - started < 0.5
        assert all(a.result().status_code == 401 for a in attempts)
