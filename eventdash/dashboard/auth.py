"""Access control for the dashboard (``EVENTDASH_AUTH``): off, HTTP Basic against a users file, or a
trusted reverse-proxy header.

A WSGI middleware in front of everything, Socket.IO included: the page, the API, the static
files and the Socket.IO handshake (polling and WebSocket) need credentials; ``/healthz`` and
``/readyz`` never do, ``/metrics`` only with ``EVENTDASH_METRICS_AUTH=protected``. A refusal is a
401 with a fixed JSON body: it does not say whether the user exists.

Checking a password costs about 0.1 s of scrypt. It runs on a native thread (the event loop
never waits for it), at most ``MAX_CONCURRENT_CHECKS`` at once; a login that finds
``MAX_WAITING_CHECKS`` others waiting, or waits ``CHECK_WAIT_SECONDS`` for a slot, gets a 503 with
``Retry-After`` (a flood of wrong passwords delays new logins by at most that). A success is remembered for
``CACHE_SECONDS`` (at most ``CACHE_ENTRIES`` user/password digests), so a page's requests and
reconnects cost one check, not one each. An unknown user costs the same check as a wrong password.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from ..config import ConfigError, Settings
from .native import run_off_loop
from .passwords import DUMMY, PasswordFileError, StoredHash, load_users

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 1024
MAX_CONCURRENT_CHECKS = 2
MAX_WAITING_CHECKS = 32  # more logins than this waiting for a check slot: 503 at once
CHECK_WAIT_SECONDS = 2.0  # a login that waits longer for a slot: 503 (a flood of wrong passwords)
BUSY = object()  # "could not check now": answered 503 with Retry-After, not 401
MAX_HEADER_CHARS = 2048
REALM = "eventdash"
_BODY = b'{"error":"unauthorized","status":401}'


class BasicAuthenticator:
    def __init__(self, users: dict[str, StoredHash], clock: Callable[[], float] = time.monotonic):
        self.users = users
        self.clock = clock
        self._run = run_off_loop()
        self._checks = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)  # green under gunicorn's workers
        self._waiting = 0  # logins waiting for a slot (one event loop thread: a plain int)
        self._recent: OrderedDict[bytes, float] = OrderedDict()  # digest of user and password -> valid until

    def user(self, environ: dict) -> str | None | object:
        """The user name, None (no or wrong credentials) or BUSY (no check slot free in time)."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header[:6].lower() == "basic " or len(header) > MAX_HEADER_CHARS:
            return None
        try:  # WSGI headers are latin-1 strings: anything outside base64's alphabet is refused here
            name, sep, password = base64.b64decode(header[6:].strip().encode("ascii"), validate=True) \
                .decode().partition(":")
        except (ValueError, UnicodeError):  # binascii.Error is a ValueError
            return None
        if not sep:
            return None
        digest = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        now = self.clock()
        valid_until = self._recent.get(digest)
        if valid_until is not None and valid_until > now:
            self._recent.move_to_end(digest)
            return name
        stored = self.users.get(name)
        if self._waiting >= MAX_WAITING_CHECKS:
            return BUSY
        self._waiting += 1
        try:
            acquired = self._checks.acquire(timeout=CHECK_WAIT_SECONDS)
        finally:
            self._waiting -= 1
        if not acquired:
            return BUSY
        try:
            ok = self._run((stored or DUMMY).matches, password)
        finally:
            self._checks.release()
        if not ok or stored is None:
            logger.info("refused a login as %r", name[:64])
            return None
        self._recent[digest] = now + CACHE_SECONDS
        self._recent.move_to_end(digest)
        while len(self._recent) > CACHE_ENTRIES:
            self._recent.popitem(last=False)
        return name


class ProxyHeaderAuthenticator:
    """The user a trusted reverse proxy (SSO) puts in a header. Only safe when nothing else can reach
    the dashboard: bind it to the proxy's network (EVENTDASH_HOST) and let the proxy strip the header
    from what clients send."""

    def __init__(self, header: str):
        if not (header.lower().startswith("x-") or header.lower() == "remote-user"):
            raise ConfigError(f"EVENTDASH_AUTH_PROXY_HEADER={header!r} is invalid: use the header your proxy sets "
                              "for the user, an X-... header (X-Forwarded-User) or Remote-User; a header that "
                              "every client sends would let everyone in")
        self.key = "HTTP_" + header.upper().replace("-", "_")

    def user(self, environ: dict) -> str | None:
        value = environ.get(self.key, "").strip()
        if not value or len(value) > 256 or not value.isprintable():
            return None
        return value


class AuthMiddleware:
    def __init__(self, app: Callable, authenticator, *, metrics_open: bool, basic: bool):
        self.app = app
        self.authenticator = authenticator
        self.open_paths = OPEN_PATHS | ({"/metrics"} if metrics_open else set())
        self.basic = basic

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.open_paths:
            return self.app(environ, start_response)
        user = self.authenticator.user(environ)
        if user is BUSY:
            body = b'{"error":"too many logins being checked, retry","status":503}'
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Retry-After", "2"),
                ("Cache-Control", "no-store")])
            return [body]
        if user is None:
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY))),
                       ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
            if self.basic:
                headers.append(("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'))
            start_response("401 Unauthorized", headers)
            return [_BODY]
        environ["REMOTE_USER"] = user
        return self.app(environ, start_response)


def protect(wsgi_app: Callable, settings: Settings) -> Callable:
    """``wsgi_app`` behind the access control ``settings`` ask for (unchanged with EVENTDASH_AUTH=none)."""
    if settings.auth == "none":
        return wsgi_app
    if settings.auth == "proxy":
        authenticator = ProxyHeaderAuthenticator(settings.auth_proxy_header)
    else:
        try:
            authenticator = BasicAuthenticator(load_users(Path(settings.auth_users_file)))
        except PasswordFileError as exc:
            raise ConfigError(f"EVENTDASH_AUTH_USERS_FILE={settings.auth_users_file!r} is invalid: {exc}") from None
    logger.info("access control: %s%s", settings.auth,
                "" if settings.metrics_auth == "protected" else " (/metrics open)")
    return AuthMiddleware(wsgi_app, authenticator, metrics_open=settings.metrics_auth == "open",
                          basic=settings.auth == "basic")
