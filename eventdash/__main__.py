"""``python -m eventdash {produce,consume,dashboard}``: the three programs supervisord runs."""
from __future__ import annotations

import argparse
import faulthandler
import getpass
import logging
import os
import resource
import signal
import sys
import threading
from pathlib import Path

import orjson

from .config import ConfigError, Settings
from .logging_setup import configure_logging

logger = logging.getLogger(__name__)


SHUTDOWN_DEADLINE_SECONDS = 6.0  # supervisord's stopwaitsecs for each program leave room above this
EXIT_SHUTDOWN_DEADLINE = 75


def _stop_on_signals(deadline_seconds: float = SHUTDOWN_DEADLINE_SECONDS) -> threading.Event:
    """SIGTERM/SIGINT set the returned event; the program then has ``deadline_seconds`` to finish
    (every step it takes has its own shorter deadline); past that, or on a second signal, it
    exits at once. Whatever it had not committed is redone by the next start: nothing is lost."""
    stop = threading.Event()

    def force_exit(reason: str) -> None:
        logger.critical("%s: exiting now without finishing in-flight work (the next start redoes it)", reason)
        logging.shutdown()
        os._exit(EXIT_SHUTDOWN_DEADLINE)

    def handle(signum, _frame):
        name = signal.Signals(signum).name
        if stop.is_set():
            force_exit(f"second {name}")
        logger.info("received %s, finishing in-flight work (at most %.0f s)", name, deadline_seconds)
        stop.set()
        timer = threading.Timer(deadline_seconds, force_exit, args=(f"not stopped within {deadline_seconds:.0f} s",))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    from .producer.runner import run_producer
    from .producer.scenarios import Scheduled, parse_duration_ms

    scenarios = ()
    if args.scenario is not None:
        scenarios = (Scheduled(args.scenario, 0, parse_duration_ms(args.duration, "--for")),)
    report = run_producer(settings, count=args.count, rate=args.rate, stop=_stop_on_signals(), scenarios=scenarios)
    if args.count is not None:
        by_type = dict(sorted(report.delivered.items()))
        summary = {"produced": report.records, "by_type": by_type}
        if report.malformed:
            summary["malformed"] = report.malformed
        print(orjson.dumps(summary).decode(), flush=True)
    if report.failed:
        print(f"error: {report.failed} events were not delivered: {report.first_error}", file=sys.stderr)
        return 1
    delivered = report.records
    if args.count is not None and delivered != args.count:
        print(f"error: stopped after {delivered} of {args.count} events", file=sys.stderr)
        return 1
    return 0


def _consume(settings: Settings, args: argparse.Namespace) -> int:
    from .consumer.aggregator import Aggregator

    Aggregator(settings, stop=_stop_on_signals()).run()
    return 0


def _dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this process with gunicorn (one worker: Socket.IO keeps state in the process)."""
    _allow_open_files(settings.max_clients + OPEN_FILES_BESIDES_CLIENTS)
    argv = [
        sys.executable, "-m", "eventdash.dashboard.serve",
        "--worker-class", settings.worker_class,
        "--workers", "1",
        "--worker-connections", str(settings.max_clients),
        "--bind", f"{settings.dashboard_host}:{settings.dashboard_port}",
        "--graceful-timeout", "3",
        "--access-logfile", "-" if args.access_log else "/dev/null",
        "--error-logfile", "-",
        "eventdash.dashboard.app:create_app()",
    ]
    os.execv(sys.executable, argv)
    return 0  # not reached


def _hash_password(user: str, users_file: Path | None) -> int:
    """The password from the terminal (asked twice) or from one line of stdin; a ``name:hash`` line out."""
    from .dashboard.passwords import user_line, user_names

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {user}: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        line = user_line(user, password)
        if users_file is not None and users_file.exists() and user in user_names(users_file):
            print(f"{users_file} already has user {user!r}", file=sys.stderr)
            return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if users_file is None:
        print(line)
        return 0
    fd = os.open(users_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():  # a file that does not end in a newline gets one first
            f.seek(-1, os.SEEK_END)
            ends_in_newline = f.read(1) == b"\n"
        else:
            ends_in_newline = True
        f.write(("" if ends_in_newline else "\n").encode() + line.encode() + b"\n")
    print(f"added {user!r} to {users_file}", file=sys.stderr)
    return 0


OPEN_FILES_BESIDES_CLIENTS = 256  # Kafka sockets, log files, the listening socket, libraries


def _allow_open_files(needed: int) -> None:
    """Raise this process's (and so gunicorn's) soft limit on open files to ``needed``, up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            logger.warning("EVENTDASH_MAX_CLIENTS needs %d open files but the hard limit is %d: at most about %d "
                           "clients can connect", needed, hard, hard - OPEN_FILES_BESIDES_CLIENTS)


def main(argv: list[str] | None = None) -> int:
    from .producer.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(prog="eventdash", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    produce = sub.add_parser("produce", help="simulate shoppers and send events to Kafka")
    produce.add_argument("--count", type=int, help="send exactly N events, print a JSON summary, exit")
    produce.add_argument("--rate", type=float, help="events/s (default EVENTDASH_RATE; 0 = as fast as possible)")
    produce.add_argument("--scenario", choices=SCENARIOS,
                         help="play an incident on top of the normal stream (docs/operator.md, Scenarios)")
    produce.add_argument("--for", dest="duration", default="120s", metavar="DURATION",
                         help="how long the --scenario lasts (default 120s; e.g. 90s, 5m)")
    sub.add_parser("consume", help="aggregate events into statistics (exactly once)")
    dashboard = sub.add_parser("dashboard", help="serve the live dashboard with gunicorn")
    dashboard.add_argument("--access-log", action="store_true", help="log every HTTP request")
    hasher = sub.add_parser("hash-password", help="write a users-file line for EVENTDASH_AUTH=basic")
    hasher.add_argument("--user", required=True, help="the user name")
    hasher.add_argument("--file", type=Path, help="append the line to this users file (else print it)")
    args = parser.parse_args(argv)
    if args.command == "hash-password":
        return _hash_password(args.user, args.file)
    if args.command == "produce" and args.count is not None and args.count < 0:
        parser.error("--count must be >= 0")

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, program=args.command)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>` prints every stack
    handlers = {"produce": _produce, "consume": _consume, "dashboard": _dashboard}
    try:
        return handlers[args.command](settings, args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        logger.exception("%s failed", args.command)
        return 1


def main_exit() -> None:
    """The ``eventdash`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
