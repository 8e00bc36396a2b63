"""Ask the local supervisord (XML-RPC over its unix socket) for the programs' states."""
from __future__ import annotations

import http.client
import logging
import socket
import xmlrpc.client

logger = logging.getLogger(__name__)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host):
        return _UnixConnection(self._path, self._timeout)


def program_states(socket_path: str, timeout: float = 2.0) -> list[dict]:
    """``[{"name": "consumer", "state": "RUNNING", "uptime_s": 12}, ...]``; [] if unknown."""
    if not socket_path:
        return []
    proxy = xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(socket_path, timeout))
    try:
        infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        logger.debug("supervisord at %s: %s", socket_path, exc)
        return []
    return [{"name": info["name"], "group": info["group"], "state": info["statename"],
             "uptime_s": max(0, info["now"] - info["start"]) if info["statename"] == "RUNNING" else 0}
            for info in infos]
