"""Broadcasts framed once and written straight to each WebSocket (eventdash.dashboard.fanout).

The framing is checked byte for byte against eventlet's own. The write path runs on a real
eventlet hub with a real socket pair whose buffers are tiny, against a writer greenlet that
behaves like engine.io's: most writes are then partial or refused, and the reader must still
get every message whole and in order, plain or deflated (read with one inflater that keeps its
context, as a browser does).
"""
from __future__ import annotations

import random
import socket as std_socket
import string
import struct
import zlib
from types import SimpleNamespace
from unittest.mock import MagicMock

import orjson
import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from eventdash.dashboard.collector import CollectorPolicy
from eventdash.dashboard.fanout import Broadcaster, SharedFrames, Writes, deflate_message, frame_text

DEFLATE_OPTIONS = {"server_no_context_takeover": True, "client_max_window_bits": 15}


def eventlet_ws(extensions: dict | None = None):
    from eventlet.websocket import RFC6455WebSocket

    return RFC6455WebSocket(std_socket.socket(), {}, 13, extensions=extensions or {})


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_frames_are_byte_identical_to_eventlets(length):
    text = "4" + "x" * max(0, length - 1) if length else ""
    assert frame_text(text.encode()) == eventlet_ws()._pack_message(text)
    deflated = eventlet_ws({"permessage-deflate": dict(DEFLATE_OPTIONS)})._pack_message(text)
    assert SharedFrames(text).for_options(DEFLATE_OPTIONS) == deflated if text else True


def test_shared_frames_per_connection_options():
    frames = SharedFrames('42["stats",{"seq":1}]')
    assert frames.for_options(None) == frames.plain
    assert frames.for_options({"server_no_context_takeover": False}) is None  # eventlet's compressor keeps history
    small = frames.for_options({"server_no_context_takeover": True, "server_max_window_bits": 9})
    assert small[0] == 0xC1  # FIN, RSV1 (compressed), text
    inflater = zlib.decompressobj(-9)
    assert inflater.decompress(small[2:] + b"\x00\x00\xff\xff") == frames.payload
    assert frames.for_options({"server_no_context_takeover": True, "server_max_window_bits": 9}) is small  # once


def test_a_deflated_message_stands_alone():
    payload = b'42["stats",' + b'{"a":1},' * 200 + b"]"
    assert zlib.decompressobj(-15).decompress(deflate_message(payload, 15) + b"\x00\x00\xff\xff") == payload


# -- the write path on a real hub ----------------------------------------------------------------

class EngineSocket:
    """What Broadcaster reads of engine.io's Socket, with an eventlet queue like engine.io's."""

    def __init__(self):
        from eventlet.queue import Queue

        self.queue = Queue()
        self.closed = False
        self.upgrading = False
        self.upgraded = True


def socketio_stub(engine_socket: EngineSocket):
    eio = SimpleNamespace(sockets={"e1": engine_socket}, send_packet=lambda sid, pkt: engine_socket.queue.put(pkt))
    manager = SimpleNamespace(get_participants=lambda namespace, room: iter([("s1", "e1")]),
                              eio_sid_from_sid=lambda sid, namespace: "e1" if sid == "s1" else None)
    return SimpleNamespace(server=SimpleNamespace(eio=eio, manager=manager, packet_class=sio_packet.Packet))


def read_frames(sock: std_socket.socket, count: int, deflated: bool, pause=lambda: None) -> list[bytes]:
    """``count`` WebSocket messages from ``sock``, unmasked server frames, inflated with one context,
    read in small pieces with ``pause()`` between them (a slow client)."""
    inflater = zlib.decompressobj(-15)
    buffer = b""
    messages = []
    while len(messages) < count:
        pause()
        buffer += sock.recv(2048)
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, offset = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < offset + length:
                break
            payload, buffer = buffer[offset:offset + length], buffer[offset + length:]
            assert first & 0x80 and first & 0x0F == 1, "a whole text frame"
            assert bool(first & 0x40) == deflated
            messages.append(inflater.decompress(payload + b"\x00\x00\xff\xff") if deflated else payload)
    return messages


@pytest.mark.parametrize("deflated", [False, True], ids=["plain", "deflate"])
def test_partial_and_refused_writes_keep_every_message_whole_and_in_order(deflated):
    import eventlet
    from eventlet.green import socket as green_socket
    from eventlet.websocket import RFC6455WebSocket

    server_end, client_end = green_socket.socketpair()
    server_end.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, 4096)
    extensions = {"permessage-deflate": dict(DEFLATE_OPTIONS)} if deflated else {}
    ws = RFC6455WebSocket(server_end, {}, 13, extensions=extensions)
    engine_socket = EngineSocket()

    def writer():  # engine.io's websocket writer: one packet at a time through ws.send
        while (pkt := engine_socket.queue.get()) is not None:
            ws.send(pkt.encode())

    writer_task = eventlet.spawn(writer)
    broadcaster = Broadcaster(socketio_stub(engine_socket), {"e1": ws}, spawn=eventlet.spawn)
    total = Writes()
    messages = 300
    pings = len(range(0, messages, 3))
    reader = eventlet.spawn(read_frames, client_end, messages + pings, deflated, lambda: eventlet.sleep(0.0002))
    for seq in range(messages):
        # letters at random: compresses poorly, so the tiny buffers fill in both modes
        padding = "".join(random.Random(seq).choices(string.ascii_letters, k=2_000 + seq % 5 * 700))
        writes = broadcaster.emit("stats", {"seq": seq, "padding": padding}, to="full" if seq % 2 else ["s1"])
        total = Writes(total.direct + writes.direct, total.queued + writes.queued)
        if seq % 3 == 0:
            engine_socket.queue.put(eio_packet.Packet(eio_packet.PING))  # engine.io's own traffic in between
        eventlet.sleep(0)  # the writer, the finishers and the reader take turns
    engine_socket.queue.put(None)
    received = reader.wait()
    writer_task.wait()
    events = [orjson.loads(m[2:]) for m in received if m.startswith(b"42")]
    assert [event[1]["seq"] for event in events] == list(range(messages))
    assert sum(1 for m in received if m == b"2") == pings  # engine.io's own packets, all there
    assert total.direct > 0 and total.queued > 0, total  # both paths taken
    assert ws._sendlock.balance == 1  # every partial write finished and gave the lock back


def test_writes_only_when_nothing_else_can_be_under_way():
    engine_socket = SimpleNamespace(queue=MagicMock(qsize=lambda: 0), closed=False, upgrading=False, upgraded=True)
    sent = []
    fd = SimpleNamespace(send=lambda frame: sent.append(frame) or len(frame))
    lock = MagicMock(balance=1)
    ws = SimpleNamespace(extensions={}, _sendlock=lock, socket=SimpleNamespace(fd=fd))
    stub = socketio_stub(engine_socket)
    queued = []
    stub.server.eio.send_packet = lambda sid, pkt: queued.append(pkt)
    broadcaster = Broadcaster(stub, {"e1": ws}, spawn=MagicMock())

    assert broadcaster.emit("stats", {"seq": 1}, to="full") == Writes(1, 0)
    lock.acquire.assert_called_once_with(blocking=False)
    lock.release.assert_called_once()
    for blocker in ({"closed": True}, {"upgrading": True}, {"upgraded": False}):
        for key, value in blocker.items():
            setattr(engine_socket, key, value)
        assert broadcaster.emit("stats", {"seq": 2}, to="full") == Writes(0, 1), blocker
        engine_socket.closed, engine_socket.upgrading, engine_socket.upgraded = False, False, True
    engine_socket.queue.qsize = lambda: 1  # the writer has packets to send first
    assert broadcaster.emit("stats", {"seq": 3}, to="full") == Writes(0, 1)
    engine_socket.queue.qsize = lambda: 0
    lock.balance = 0  # being written to, or a writer waits for the lock
    assert broadcaster.emit("stats", {"seq": 4}, to="full") == Writes(0, 1)
    lock.balance = 1
    ws.extensions = {"permessage-deflate": {"server_no_context_takeover": False}}
    assert broadcaster.emit("stats", {"seq": 5}, to="full") == Writes(0, 1)
    assert broadcaster.emit("stats", {"seq": 6}, to=["gone"]) == Writes(0, 0)
    assert len(sent) == 1 and len(queued) == 6


def test_a_broken_connection_is_left_to_engineio():
    engine_socket = SimpleNamespace(queue=MagicMock(qsize=lambda: 0), closed=False, upgrading=False, upgraded=True)

    def broken(frame):
        raise ConnectionResetError

    lock = MagicMock(balance=1)
    ws = SimpleNamespace(extensions={}, _sendlock=lock, socket=SimpleNamespace(fd=SimpleNamespace(send=broken)))
    stub = socketio_stub(engine_socket)
    queued = []
    stub.server.eio.send_packet = lambda sid, pkt: queued.append(pkt)
    assert Broadcaster(stub, {"e1": ws}, spawn=MagicMock()).emit("stats", {}, to="full") == Writes(0, 1)
    lock.release.assert_called_once()
    assert len(queued) == 1


def test_without_direct_writes_everything_takes_socketios_path():
    stub = socketio_stub(SimpleNamespace())
    stub.emit = MagicMock()
    assert Broadcaster(stub, None, spawn=MagicMock()).emit("stats", {"a": 1}, to="full") == Writes(0, 1)
    stub.emit.assert_called_once_with("stats", {"a": 1}, to="full")


# -- the collector policy --------------------------------------------------------------------------

def test_collections_freeze_survivors_and_a_full_one_runs_rarely():
    now = [0.0]
    collector = MagicMock(spec_set=["collect", "freeze", "unfreeze"])
    policy = CollectorPolicy(freeze_seconds=10, full_seconds=900, clock=lambda: now[0], collector=collector)
    policy.between_broadcasts()
    assert collector.method_calls == []  # nothing due yet
    now[0] = 10.0
    policy.between_broadcasts()
    assert [c[0] for c in collector.method_calls] == ["collect", "freeze"]
    collector.reset_mock()
    now[0] = 15.0
    policy.between_broadcasts()
    assert collector.method_calls == []
    now[0] = 900.0
    policy.between_broadcasts()
    assert [c[0] for c in collector.method_calls] == ["unfreeze", "collect", "freeze"]
    assert (policy.freezes, policy.full_collections) == (1, 1)
