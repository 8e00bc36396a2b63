"""The aggregator's transactional id: stable across restarts, never shared by two live processes.

A restarted aggregator must come back with the id it had, so that ``init_transactions()``
aborts its dead predecessor's open transaction at once (otherwise readers with
``read_committed`` wait for the broker's transaction timeout). Two live aggregators must never
share an id: they would fence each other in a loop.

Ids default to ``eventdash-aggregator-<hostname>-<instance>``. A process claims its id with an
exclusive ``flock`` on a file in ``/tmp/eventdash-locks-<uid>/``, released by the kernel when it dies, so:
- with ``EVENTDASH_INSTANCE`` unset, a process takes the lowest free instance number: a second
  ``python -m eventdash consume`` beside the supervised one simply becomes instance 1, and a
  restarted process gets its own number back;
- with ``EVENTDASH_INSTANCE`` or ``EVENTDASH_TRANSACTIONAL_ID`` set to an id that a live
  process on this host holds, the process refuses to start with one line naming the variable.
Ids are only guarded per host; across hosts the hostname keeps defaults apart.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, Settings

logger = logging.getLogger(__name__)

MAX_AUTO_INSTANCES = 64
LOCK_ROOT = Path("/tmp")  # fixed, not $TMPDIR: every process on the host must see the same locks


@dataclass(frozen=True)
class ClaimedId:
    transactional_id: str
    lock_fd: int  # held open while the aggregator runs

    def release(self) -> None:
        os.close(self.lock_fd)


def lock_dir() -> Path:
    path = LOCK_ROOT / f"eventdash-locks-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RuntimeError(f"{path} is not a private directory of this user")
    return path


def _try_lock(transactional_id: str) -> int | None:
    fd = os.open(lock_dir() / f"{transactional_id}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _holder(transactional_id: str) -> str:
    try:
        return (lock_dir() / f"{transactional_id}.lock").read_text().strip() or "?"
    except OSError:
        return "?"


def claim_transactional_id(settings: Settings) -> ClaimedId:
    if settings.transactional_id:
        candidates, variable = [settings.transactional_id], "EVENTDASH_TRANSACTIONAL_ID"
    elif settings.instance is not None:
        candidates, variable = [default_id(settings.instance)], "EVENTDASH_INSTANCE"
    else:
        candidates, variable = [default_id(str(i)) for i in range(MAX_AUTO_INSTANCES)], "EVENTDASH_INSTANCE"
    for transactional_id in candidates:
        fd = _try_lock(transactional_id)
        if fd is not None:
            return ClaimedId(transactional_id, fd)
    value = settings.transactional_id or settings.instance or f"0..{MAX_AUTO_INSTANCES - 1}"
    raise ConfigError(f"{variable}={value!r} is invalid: transactional id {candidates[-1]} is held by another "
                      f"aggregator on this host (pid {_holder(candidates[-1])}); give each process its own {variable}")


def default_id(instance: str) -> str:
    return f"eventdash-aggregator-{socket.gethostname()}-{instance}"
