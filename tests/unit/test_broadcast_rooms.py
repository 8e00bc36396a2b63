"""Who gets what at each broadcast: whole documents, bases and deltas (Flask-SocketIO's test client)."""
from __future__ import annotations

from eventdash.config import Settings
from eventdash.dashboard.app import create_app
from eventdash.dashboard.delta import DeltaFollower


def events(client) -> list[tuple[str, dict]]:
    return [(packet["name"], packet["args"][0]) for packet in client.get_received()]


def test_full_clients_get_documents_delta_clients_a_base_then_deltas_and_resync_only_for_them():
    app = create_app(Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}), start_background=False)
    socketio, live = app.extensions["socketio"], app.extensions["eventdash"]
    full = socketio.test_client(app)
    delta = socketio.test_client(app, auth={"delta": True})
    odd = socketio.test_client(app, auth={"delta": "yes"})  # anything but true: whole documents
    for client in (full, delta, odd):
        [(name, document)] = events(client)  # the state on connect, without seq
        assert name == "stats" and "seq" not in document and len(document["series"]["by_type"]["purchase"]) == 900

    first = live.broadcast(None)
    assert [(n, d["seq"]) for n, d in events(full)] == [("stats", 1)] == [(n, d["seq"]) for n, d in events(odd)]
    [(name, base)] = events(delta)
    assert name == "stats" and base["seq"] == 1
    follower = DeltaFollower()
    follower.on_full(base)

    second = live.broadcast(first)
    assert [n for n, _ in events(full)] == ["stats"]
    [(name, change)] = events(delta)
    assert name == "stats_delta" and change["base"] == 1 and change["seq"] == 2
    assert follower.on_delta(change) and follower.doc == {k: v for k, v in second.items()} | {"seq": 2}

    full.emit("resync")  # not a delta client: nothing changes for it
    delta.emit("resync")
    live.broadcast(second)
    assert [n for n, _ in events(full)] == ["stats"]
    assert [n for n, _ in events(delta)] == ["stats_delta", "stats"]  # the delta, then a whole document

    live.broadcast(None)  # after a failed broadcast: every delta client starts again from a whole document
    assert [n for n, _ in events(delta)] == ["stats"]
    delta.disconnect()
    assert live.awaiting_base == set()
