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


def test_only_clients_with_the_tail_open_get_it():
    app = create_app(Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}), start_background=False)
    socketio, live = app.extensions["socketio"], app.extensions["eventdash"]
    viewer, bystander, odd = socketio.test_client(app), socketio.test_client(app), socketio.test_client(app)
    for client in (viewer, bystander, odd):
        client.get_received()
    viewer.emit("tail", {"open": True})
    odd.emit("tail", {"open": "yes"})  # anything but true: not a viewer
    assert live._has_members("tail")
    live._emit("tail", {"events": [{"type": "purchase"}]}, to="tail")
    assert events(viewer) == [("tail", {"events": [{"type": "purchase"}]})]
    assert events(bystander) == [] and events(odd) == []
    viewer.emit("tail", {"open": False})
    assert not live._has_members("tail")
    live._emit("tail", {"events": []}, to="tail")
    assert events(viewer) == []


def test_broadcasts_stretch_so_they_take_at_most_their_share_of_the_loop(monkeypatch):
    """20/s while a broadcast is cheap; when one costs 300 ms, a period of 300 / 0.6 = 500 ms (2/s)."""
    from unittest.mock import MagicMock

    from eventdash.dashboard import live as live_module

    app = create_app(Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}), start_background=False)
    live = app.extensions["eventdash"]
    now = [1000.0]
    cost = [0.01]
    sends: list[float] = []
    monkeypatch.setattr(live_module.time, "monotonic", lambda: now[0])

    def broadcast(previous):
        sends.append(now[0])
        now[0] += cost[0]
        return {"seq": len(sends)}

    def sleep(seconds):
        now[0] += seconds
        live.feed.version += 1  # new statistics all the time
        if now[0] >= 1005 and cost[0] < 0.3:
            cost[0] = 0.3  # e.g. many more clients
        if now[0] >= 1015:
            raise StopIteration

    live.broadcast = broadcast
    live.socketio.sleep = sleep
    live.collector = MagicMock(between_broadcasts=lambda: 0.0)
    try:
        live._broadcast_loop()
    except StopIteration:
        pass
    cheap = [t for t in sends if 1001 <= t < 1005]
    costly = [t for t in sends if 1007 <= t < 1015]
    assert 14 <= len(cheap) / 4 <= 20  # at most EVENTDASH_BROADCAST_PER_SECOND (20)
    assert 1.5 <= len(costly) / 8 <= 2.0  # stretched: 0.3 s of every 0.5 s at most
    assert min(b - a for a, b in zip(costly, costly[1:])) >= 0.5
