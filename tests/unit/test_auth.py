"""Access control: the users file, password checks, the cache, and the middleware in front of everything."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventdash.config import ConfigError, Settings
from eventdash.dashboard import auth
from eventdash.dashboard.app import create_app
from eventdash.dashboard.auth import CACHE_ENTRIES, CACHE_SECONDS, BasicAuthenticator
from eventdash.dashboard.passwords import PasswordFileError, StoredHash, hash_password, load_users


def cheap_line(name: str, password: str) -> str:  # 2^10: fast enough for many tests, same format
    return f"{name}:{hash_password(password, log2_n=10)}"


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def users_file(tmp_path) -> Path:
    path = tmp_path / "users"
    path.write_text(f"# dashboard users\n\n{cheap_line('alice', 'correct horse')}\n{cheap_line('bob', 'b')}\n")
    return path


def test_a_hash_checks_its_password_only():
    stored = StoredHash(hash_password("pässwörd", log2_n=10))
    assert stored.matches("pässwörd")
    assert not stored.matches("passwörd") and not stored.matches("") and not stored.matches("x" * 5000)
    assert hash_password("p", log2_n=10) != hash_password("p", log2_n=10)  # salted


@pytest.mark.parametrize(("content", "message"), [
    ("alice:scrypt$16$16$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "=\n", "more than 64 MiB per check"),
    ("", "has no users"),
    ("alice\n", "the hash of 'alice' is invalid"),
    ("bad name:scrypt$10$8$1$AAAAAAAAAAA=$AAAA\n", "a line is NAME:HASH"),
    ("alice:plain\n", "the hash of 'alice' is invalid"),
    ("alice:scrypt$20$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "=\n", "log2_n must be from 10 to 16"),
    ("alice:scrypt$10$8$1$!!$AAAA\n", "the hash of 'alice' is invalid"),
])
def test_a_bad_users_file_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "users"
    path.write_text(content)
    with pytest.raises(PasswordFileError, match=message) as caught:
        load_users(path)
    assert str(path) in str(caught.value)


def test_a_user_twice_is_refused(tmp_path):
    path = tmp_path / "users"
    path.write_text(cheap_line("alice", "a") + "\n" + cheap_line("alice", "b") + "\n")
    with pytest.raises(PasswordFileError, match=":2: user 'alice' appears twice"):
        load_users(path)


def test_logins_are_checked_once_then_remembered_for_a_while(users_file, monkeypatch):
    now = [1000.0]
    checks: list[str] = []
    real = StoredHash.matches
    monkeypatch.setattr(StoredHash, "matches", lambda self, p: checks.append(p) or real(self, p))
    authenticator = BasicAuthenticator(load_users(users_file), clock=lambda: now[0])
    good = {"HTTP_AUTHORIZATION": basic("alice", "correct horse")}
    assert authenticator.user(good) == "alice" and authenticator.user(good) == "alice"
    assert checks == ["correct horse"]
    now[0] += CACHE_SECONDS + 1
    assert authenticator.user(good) == "alice" and len(checks) == 2
    # wrong password, unknown user (checked against a dummy hash: as slow), malformed headers
    assert authenticator.user({"HTTP_AUTHORIZATION": basic("alice", "wrong")}) is None
    assert authenticator.user({"HTTP_AUTHORIZATION": basic("mallory", "correct horse")}) is None
    assert len(checks) == 4
    for header in ("", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                   "Basic " + base64.b64encode(b"\xff:x").decode(), "Basic " + "A" * 5000, "Basic \u00e9",
                   "Basic \u00e9" + base64.b64encode(b"alice:correct horse").decode()):
        assert authenticator.user({"HTTP_AUTHORIZATION": header}) is None, header
    assert len(checks) == 4


def test_the_login_cache_is_bounded(users_file, monkeypatch):
    monkeypatch.setattr(StoredHash, "matches", lambda self, p: True)  # every password "right": fills the cache
    authenticator = BasicAuthenticator(load_users(users_file))
    for i in range(CACHE_ENTRIES + 50):
        assert authenticator.user({"HTTP_AUTHORIZATION": basic("alice", f"p{i}")}) == "alice"
    assert len(authenticator._recent) == CACHE_ENTRIES


def test_a_flood_of_logins_gets_503_instead_of_queueing_without_end(users_file, monkeypatch):
    authenticator = BasicAuthenticator(load_users(users_file))
    good = {"HTTP_AUTHORIZATION": basic("alice", "correct horse")}
    for _ in range(auth.MAX_CONCURRENT_CHECKS):  # every check slot busy
        authenticator._checks.acquire()
    monkeypatch.setattr(auth, "CHECK_WAIT_SECONDS", 0.05)
    assert authenticator.user(good) is auth.BUSY
    authenticator._waiting = auth.MAX_WAITING_CHECKS
    started = time.monotonic()
    assert authenticator.user(good) is auth.BUSY and time.monotonic() - started < 0.05  # at once
    authenticator._waiting = 0
    for _ in range(auth.MAX_CONCURRENT_CHECKS):
        authenticator._checks.release()
    assert authenticator.user(good) == "alice"
    app = auth.AuthMiddleware(lambda environ, start: [b"ok"], authenticator, metrics_open=True, basic=True)
    authenticator.user = lambda environ: auth.BUSY
    statuses: list = []
    body = app({"PATH_INFO": "/api/stats"}, lambda status, headers: statuses.append((status, dict(headers))))
    assert statuses[0][0].startswith("503") and statuses[0][1]["Retry-After"] == "2" and b"retry" in body[0]


def settings(**env: str) -> Settings:
    return Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env})


def test_basic_auth_without_a_users_file_fails_fast_naming_the_variable():
    with pytest.raises(ConfigError, match="EVENTDASH_AUTH_USERS_FILE"):
        settings(EVENTDASH_AUTH="basic")


def test_an_unusable_users_file_stops_the_dashboard_naming_the_variable(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        create_app(settings(EVENTDASH_AUTH="basic", EVENTDASH_AUTH_USERS_FILE=str(tmp_path / "missing")),
                   start_background=False)
    assert exited.value.code == 2
    assert "EVENTDASH_AUTH_USERS_FILE=" in capsys.readouterr().err


@pytest.mark.parametrize("metrics_auth", ["open", "protected"])
def test_everything_but_health_needs_credentials(users_file, metrics_auth):
    app = create_app(settings(EVENTDASH_AUTH="basic", EVENTDASH_AUTH_USERS_FILE=str(users_file),
                              EVENTDASH_METRICS_AUTH=metrics_auth), start_background=False)
    client = app.test_client()
    protected = ["/", "/api/stats", "/static/app.js", "/vendor/socket.io.min.js", "/nope",
                 "/socket.io/?EIO=4&transport=polling"] + (["/metrics"] if metrics_auth == "protected" else [])
    for path in protected:
        for headers in ({}, {"Authorization": basic("alice", "wrong")}, {"Authorization": basic("eve", "x")}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.data == b'{"error":"unauthorized","status":401}'  # the same for every refusal
            assert response.headers["WWW-Authenticate"] == 'Basic realm="eventdash", charset="UTF-8"'
        assert client.get(path, headers={"Authorization": basic("alice", "correct horse")}).status_code != 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503  # open (not ready: no Kafka)
    assert (client.get("/metrics").status_code == 200) == (metrics_auth == "open")


def test_proxy_mode_trusts_its_header_only():
    app = create_app(settings(EVENTDASH_AUTH="proxy", EVENTDASH_AUTH_PROXY_HEADER="X-Auth-Request-User"),
                     start_background=False)
    client = app.test_client()
    assert client.get("/api/stats").status_code == 401
    assert client.get("/api/stats", headers={"X-Forwarded-User": "alice"}).status_code == 401
    assert client.get("/api/stats", headers={"X-Auth-Request-User": "alice"}).status_code == 200
    assert client.get("/api/stats", headers={"X-Auth-Request-User": "  "}).status_code == 401
    assert "WWW-Authenticate" not in client.get("/").headers


@pytest.mark.parametrize("header", ["Host", "User-Agent", "Cookie"])
def test_proxy_mode_refuses_a_header_every_client_sends(header, capsys):
    with pytest.raises(SystemExit):
        create_app(settings(EVENTDASH_AUTH="proxy", EVENTDASH_AUTH_PROXY_HEADER=header), start_background=False)
    assert "EVENTDASH_AUTH_PROXY_HEADER" in capsys.readouterr().err


def test_hash_password_writes_a_line_the_dashboard_accepts(tmp_path):
    path = tmp_path / "users"
    command = [sys.executable, "-m", "eventdash", "hash-password", "--user", "carol", "--file", str(path)]
    done = subprocess.run(command, input="open sesame\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_users(path)["carol"].matches("open sesame")
    again = subprocess.run(command, input="other\n", capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already has user 'carol'" in again.stderr
    for bad in ("bad name", "bob\n"):
        printed = subprocess.run([sys.executable, "-m", "eventdash", "hash-password", "--user", bad],
                                 input="x\n", capture_output=True, text=True, timeout=60)
        assert printed.returncode == 2 and "user name" in printed.stderr


def test_hash_password_adds_to_an_empty_file_and_one_without_a_final_newline(tmp_path):
    path = tmp_path / "users"
    path.touch(mode=0o600)
    for user, typed in (("dave", "pw\r\n"), ("erin", "other\n")):
        done = subprocess.run([sys.executable, "-m", "eventdash", "hash-password", "--user", user, "--file",
                               str(path)], input=typed, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        path.write_text(path.read_text().rstrip("\n"))  # as an editor may leave it
    users = load_users(path)
    assert users["dave"].matches("pw") and users["erin"].matches("other")

