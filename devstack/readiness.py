"""Wait for things with a deadline and an honest message, never a fixed sleep."""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class NotReady(RuntimeError):
    pass


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.1,
    max_interval: float = 1.0,
    alive: Callable[[], str | None] | None = None,
) -> T:
    """Call ``probe`` until it returns a truthy value; back off up to ``max_interval``.

    ``alive`` may return a reason string when the thing we wait for has died, which ends
    the wait early with that reason instead of running out the clock.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    logger.info("waiting up to %.0f s for %s", timeout, what)
    while True:
        if alive is not None:
            reason = alive()
            if reason:
                raise NotReady(f"{what}: {reason}")
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # the probe's failure is the normal not-ready case
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise NotReady(f"gave up after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zookeeper_serving(host: str, port: int) -> bool:
    """ZooKeeper's ``srvr`` four-letter command answers only when it serves requests."""
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"srvr")
        reply = s.recv(4096)
    return b"Mode:" in reply


def zookeeper_ephemeral_paths(host: str, port: int) -> str:
    """ZooKeeper's ``dump`` four-letter command: the live sessions' ephemeral nodes, as text."""
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"dump")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
