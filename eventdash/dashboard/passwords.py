"""The users file of ``EVENTDASH_AUTH=basic``: one ``name:hash`` line per user, scrypt hashes.

Format of a hash (all one line, no spaces)::

    scrypt$<log2 N>$<r>$<p>$<salt, base64>$<key, base64>

scrypt (RFC 7914) with N = 2^15, r = 8, p = 1 by default: 32 MiB and about 0.1 s per check, so a
stolen file costs an attacker the same per guess. ``python -m eventdash hash-password`` writes
lines; blank lines and lines starting with ``#`` are ignored. Parsing is strict: a bad line is a
configuration error naming the file and line, never a silently missing user.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

SCHEME = "scrypt"
LOG2_N, R, P = 15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_PASSWORD_BYTES = 1024  # longer input is refused before any hashing (no CPU or memory on junk)
MAX_USERS = 10_000
_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
# What a users file may ask for: at most 64 MiB and about 0.5 s per check. Costs other than the defaults
# that `hash-password` writes make those users' checks take another time than an unknown user's.
_LIMITS = {"log2_n": (10, 16), "r": (1, 16), "p": (1, 2)}
MAX_CHECK_MEMORY = 64 * 2**20


class PasswordFileError(ValueError):
    """The users file cannot be used; the message names the file and line."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=1 << log2_n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=(128 * r * (1 << log2_n)) + 2**20)


def hash_password(password: str, *, log2_n: int = LOG2_N, r: int = R, p: int = P) -> str:
    if not password:
        raise ValueError("the password is empty")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    salt = os.urandom(SALT_BYTES)
    return f"{SCHEME}${log2_n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, log2_n, r, p))}"


def user_line(name: str, password: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError("a user name is 1 to 64 of letters, digits and . _ @ + -")
    return f"{name}:{hash_password(password)}"


class StoredHash:
    __slots__ = ("log2_n", "r", "p", "salt", "key")

    def __init__(self, text: str):
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError(f"not a {SCHEME}$log2N$r$p$salt$key hash")
        self.log2_n, self.r, self.p = (int(x) for x in parts[1:4])
        for (name, (low, high)), value in zip(_LIMITS.items(), (self.log2_n, self.r, self.p), strict=True):
            if not low <= value <= high:
                raise ValueError(f"{name} must be from {low} to {high}")
        self.salt = base64.b64decode(parts[4], validate=True)
        self.key = base64.b64decode(parts[5], validate=True)
        if len(self.salt) < 8 or len(self.key) != KEY_BYTES:
            raise ValueError("salt or key of the wrong length")
        if 128 * self.r * (1 << self.log2_n) > MAX_CHECK_MEMORY:
            raise ValueError(f"its cost needs more than {MAX_CHECK_MEMORY // 2**20} MiB per check")

    def matches(self, password: str) -> bool:
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            return False
        return hmac.compare_digest(_scrypt(password, self.salt, self.log2_n, self.r, self.p), self.key)


# Checked for unknown users, so that a wrong name costs as long as a wrong password.
DUMMY = StoredHash(f"{SCHEME}${LOG2_N}${R}${P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(KEY_BYTES))}")


def user_names(path: Path) -> set[str]:
    """The names a users file already has (for adding one), without checking the hashes."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.partition(":")[0])
    return names


def load_users(path: Path) -> dict[str, StoredHash]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileError(f"cannot read {path}: {exc}") from None
    users: dict[str, StoredHash] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, stored = line.partition(":")
        if not _NAME.fullmatch(name):
            raise PasswordFileError(f"{path}:{number}: a line is NAME:HASH with a name of 1 to 64 of letters, "
                                    "digits and . _ @ + -")
        if name in users:
            raise PasswordFileError(f"{path}:{number}: user {name!r} appears twice")
        try:
            users[name] = StoredHash(stored)
        except ValueError as exc:
            raise PasswordFileError(f"{path}:{number}: the hash of {name!r} is invalid ({exc}); "
                                    "write it with `python -m eventdash hash-password`") from None
        if len(users) > MAX_USERS:
            raise PasswordFileError(f"{path}: more than {MAX_USERS} users")
    if not users:
        raise PasswordFileError(f"{path} has no users; add one with `python -m eventdash hash-password`")
    return users
