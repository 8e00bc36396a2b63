"""Child processes that die with their parent and stop as a whole process group."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: new session (own process group), SIGTERM when the parent dies."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the explicit stop() still applies
        pass


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdout: IO | int | None = None,
    stderr: IO | int | None = subprocess.STDOUT,
) -> subprocess.Popen:
    logger.debug("starting %s", " ".join(args))
    return subprocess.Popen(
        list(args),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=_die_with_parent,
    )


def stop_group(proc: subprocess.Popen, *, name: str, timeout: float = 20.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop within %.0f s, killing it", name, timeout)
        below = descendants(proc.pid)  # before the kill: orphans would be re-parented out of reach
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _sigkill(below)
        proc.wait(5)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group at once."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc), whatever process group or session it is in."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    stack.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the child and everything below it at once (supervisord puts each program in a
    process group of its own, so killing the child's group alone would orphan them)."""
    _sigkill([proc.pid, *descendants(proc.pid)])
    proc.wait(10)


def _sigkill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
