"""Broadcasts framed once and written to every WebSocket client without a queue hop (eventlet).

python-socketio sends a message to a room by putting it on each client's engine.io queue; each
client's writer greenlet then wakes (a hub timer per put), frames the text and writes it. That is
about 70 µs per client and update: 5,000 clients at 4 updates/s need more than a core.

:class:`Broadcaster` encodes and frames each broadcast once, and writes the same bytes to each
client with one non-blocking ``send``, but only when nothing else can be under way on that
connection: the client's engine.io queue is empty and its WebSocket's send lock is free with
nobody waiting for it. Then no frame can interleave with another and the order of messages is
kept. In every other case (a long-polling client, a busy or slow client, a connection whose
options are not the usual ones) the message takes python-socketio's own path, the same as
``socketio.emit``. A partial write keeps the send lock until a greenlet has written the rest, so
the client's writer waits behind it.

Compression: :class:`FramingWebSocketWSGI` answers a ``permessage-deflate`` offer with
``server_no_context_takeover`` (RFC 7692, 7.1.1.1 lets a server add it). Each message is then
compressed on its own, by eventlet for the usual path too, so one compressed frame serves every
client that negotiated deflate.

This couples to the pinned python-engineio and eventlet (``Socket.queue``, ``WebSocket._sendlock``,
``GreenSocket.fd``). :func:`install` checks their shape and leaves the plain path in place when it
differs, and under gevent.
"""
from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Iterable
from socket import SHUT_RDWR
from typing import NamedTuple

logger = logging.getLogger(__name__)

NAMESPACE = "/"
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # what a sync flush ends with; RFC 7692 drops it from the frame


def frame_text(payload: bytes, *, compressed: bool = False) -> bytes:
    """One final, unmasked RFC 6455 text frame (a server never masks)."""
    first = 0x81 | (0x40 if compressed else 0)
    length = len(payload)
    if length <= 125:
        header = struct.pack("!BB", first, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def deflate_message(payload: bytes, window_bits: int) -> bytes:
    """``payload`` compressed on its own, as permessage-deflate without context takeover sends it."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-len(DEFLATE_TAIL)] if data.endswith(DEFLATE_TAIL) else data


class SharedFrames:
    """The frames of one message: plain, and compressed per window size (made on first use)."""

    def __init__(self, text: str):
        self.payload = text.encode()
        self.plain = frame_text(self.payload)
        self._deflated: dict[int, bytes] = {}  # at most the 8 window sizes RFC 7692 allows

    def for_options(self, deflate: dict | None) -> bytes | None:
        if deflate is None:
            return self.plain
        if not deflate.get("server_no_context_takeover"):
            return None  # the connection's compressor has history: only its own path may write
        bits = deflate.get("server_max_window_bits", zlib.MAX_WBITS)
        frame = self._deflated.get(bits)
        if frame is None:
            frame = self._deflated[bits] = frame_text(deflate_message(self.payload, bits), compressed=True)
        return frame


class Writes(NamedTuple):
    """How one emit reached its clients."""
    direct: int = 0  # the shared frame written at once (or finished by a greenlet)
    queued: int = 0  # handed to python-socketio's per-client queue


class Broadcaster:
    """Sends Socket.IO events to a room or a list of clients; see the module doc.

    ``connections`` maps an engine.io session id to its WebSocket while the connection lasts (kept
    by :class:`FramingWebSocketWSGI`; a session id with ``None`` takes the queue); ``None`` instead
    of a map means the plain path only (gevent, or a shape check failed).
    """

    def __init__(self, socketio, connections: dict | None, spawn: Callable[..., object]):
        self.socketio = socketio
        self.connections = connections
        self._spawn = spawn

    def emit(self, event: str, data: object, to: str | list[str]) -> Writes:
        if self.connections is None:
            return self._emit_queued(event, data, to)
        from engineio import packet as eio_packet
        from socketio import packet as sio_packet

        server = self.socketio.server
        encoded = server.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, data]).encode()
        if not isinstance(encoded, str):  # binary attachments: several packets
            return self._emit_queued(event, data, to)
        message = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frames = SharedFrames(message.encode())
        direct = queued = 0
        for eio_sid in self._recipients(to):
            if self._write(eio_sid, frames):
                direct += 1
            else:
                queued += 1
                server.eio.send_packet(eio_sid, message)
        return Writes(direct, queued)

    def _emit_queued(self, event: str, data: object, to: str | list[str]) -> Writes:
        recipients = len(self._recipients(to))
        self.socketio.emit(event, data, to=to)
        return Writes(0, recipients)

    def _recipients(self, to: str | list[str]) -> Iterable[str]:
        manager = self.socketio.server.manager
        if isinstance(to, str):
            return [eio_sid for _, eio_sid in manager.get_participants(NAMESPACE, to)]
        return [eio_sid for eio_sid in (manager.eio_sid_from_sid(sid, NAMESPACE) for sid in to)
                if eio_sid is not None]

    def _write(self, eio_sid: str, frames: SharedFrames) -> bool:
        """Write the whole frame now, or start a greenlet that finishes it; False: take the queue."""
        ws = self.connections.get(eio_sid)
        if ws is None:
            return False
        socket = self.socketio.server.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or socket.upgrading or not socket.upgraded or socket.queue.qsize():
            return False
        frame = frames.for_options(ws.extensions.get("permessage-deflate"))
        lock = ws._sendlock
        if frame is None or lock.balance <= 0:  # being written to, or someone waits to
            return False
        lock.acquire(blocking=False)
        try:
            sent = ws.socket.fd.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            lock.release()
            return False  # broken: the usual path finds out and closes the connection
        if sent == len(frame):
            lock.release()
        else:
            self._spawn(self._finish, ws, lock, memoryview(frame)[sent:])
        return True

    @staticmethod
    def _finish(ws, lock, rest: memoryview) -> None:
        try:
            ws.socket.sendall(rest)
        except OSError:  # broken or timed out mid-frame: nothing more may follow on this connection
            try:
                ws.socket.shutdown(SHUT_RDWR)
            except OSError:
                pass
        finally:
            lock.release()


def install(socketio, async_mode: str) -> Broadcaster:
    """A :class:`Broadcaster` for ``socketio``, with direct writes when the server is eventlet's
    and has the expected shape; the plain path otherwise."""
    if async_mode != "eventlet":
        return Broadcaster(socketio, None, spawn=lambda *args: None)
    try:
        import eventlet
        from engineio.async_drivers.eventlet import WebSocketWSGI
        from eventlet.semaphore import Semaphore
    except ImportError:
        WebSocketWSGI = None
    eio = socketio.server.eio
    if (WebSocketWSGI is None or not isinstance(getattr(eio, "_async", None), dict)
            or eio._async.get("websocket") is not WebSocketWSGI or not hasattr(Semaphore, "balance")):
        logger.warning("engine.io or eventlet is not the version this was written for: broadcasts take the "
                       "per-client queue")
        return Broadcaster(socketio, None, spawn=lambda *args: None)
    connections: dict = {}  # at most one entry per open WebSocket (EVENTDASH_MAX_CLIENTS)
    eio._async = {**eio._async, "websocket": framing_wsgi(WebSocketWSGI, connections)}
    return Broadcaster(socketio, connections, spawn=eventlet.spawn)


def framing_wsgi(base: type, connections: dict) -> type:
    """engine.io's eventlet WebSocket app, which also records each RFC 6455 connection in
    ``connections`` while it lasts and answers deflate offers without server context takeover."""
    from eventlet.semaphore import Semaphore
    from eventlet.websocket import RFC6455WebSocket

    class FramingWebSocketWSGI(base):
        def __init__(self, handler, server):
            eio_socket = getattr(handler, "__self__", None)

            def handle(ws):
                sid = getattr(eio_socket, "sid", None)
                usable = (sid is not None and isinstance(ws, RFC6455WebSocket) and not ws.client
                          and isinstance(getattr(ws, "_sendlock", None), Semaphore)
                          and isinstance(getattr(ws, "extensions", None), dict)
                          and getattr(getattr(ws.socket, "fd", None), "gettimeout", lambda: None)() == 0.0)
                if usable and connections.setdefault(sid, ws) is not ws:
                    connections[sid] = None  # two WebSockets for one session: which one engine.io uses is unclear
                try:
                    return handler(ws)
                finally:
                    if usable and connections.get(sid, ws) in (ws, None):
                        connections.pop(sid, None)
                    ws.iterator = None  # its frame generator refers back to ws: without it, no cycle to collect

            super().__init__(handle, server)

        def _negotiate_permessage_deflate(self, extensions):
            config = super()._negotiate_permessage_deflate(extensions)
            if config is not None:
                config["server_no_context_takeover"] = True
            return config

    return FramingWebSocketWSGI
