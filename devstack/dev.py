"""``make dev``: ZooKeeper, Kafka, then supervisord with the three programs, in the foreground.

Ctrl-C or SIGTERM stops supervisord (which stops its programs one after another, each within
its own deadline), then Kafka, then ZooKeeper: at most ``STOP_BUDGET_SECONDS`` in all, whatever
state the stack is in. A second Ctrl-C kills everything at once. Kafka's data lives in
``.run/kafka`` and survives any stop, a SIGKILL of every process included: the next start waits
for ZooKeeper to expire a killed broker's registration.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
import urllib.request
from pathlib import Path

from . import processes
from .environment import program_env
from .localkafka import ROOT, LocalKafka
from .readiness import NotReady, wait_until

logger = logging.getLogger(__name__)

# Each program stops within 6 s of SIGTERM (eventdash.__main__), in practice the producer within
# 3 s (its flush) and the dashboard within 4 s (gunicorn's graceful timeout): 12 s for supervisord,
# and a second of margin for the waits after a SIGKILL.
SUPERVISORD_STOP_SECONDS = 12
KAFKA_STOP_SECONDS = 1.5  # past this, SIGKILL: Kafka recovers its log at the next start
ZOOKEEPER_STOP_SECONDS = 0.5
STOP_BUDGET_SECONDS = SUPERVISORD_STOP_SECONDS + KAFKA_STOP_SECONDS + ZOOKEEPER_STOP_SECONDS + 1


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_dev(*, kafka_port: int, zookeeper_port: int, home: Path = ROOT) -> int:
    """Run the stack from ``home`` (default: this project; a test passes a private folder, into which
    deploy/supervisord.conf is copied unchanged, so that ``.run/`` is its own)."""
    dashboard_port = os.environ.get("EVENTDASH_PORT", "5002").strip() or "5002"
    ports = [("Kafka", kafka_port), ("ZooKeeper", zookeeper_port)]
    if dashboard_port.isdigit():  # anything else: the dashboard itself names the bad variable
        ports.append(("the dashboard", int(dashboard_port)))
    for name, port in ports:
        if not _port_free(port):
            logger.error("port %d for %s is in use: is another `make dev`, Kafka or `docker compose up` running? "
                         "(EVENTDASH_PORT moves the dashboard)", port, name)
            return 1
    stop = threading.Event()
    children: list = []  # supervisord, once started (Kafka's processes are the LocalKafka's)

    def on_signal(signum, _frame) -> None:
        if not stop.is_set():
            logger.info("stopping (at most %.0f s; Ctrl-C again to kill everything at once)", STOP_BUDGET_SECONDS)
            stop.set()
            if not children:
                raise KeyboardInterrupt  # still starting Kafka: abandon the start, stop what runs
            return
        logger.warning("killing everything now")
        for proc in children:
            processes.kill_tree(proc)
        kafka.kill()
        os._exit(130)

    home = home.resolve()
    conf = home / "deploy" / "supervisord.conf"
    if home != ROOT:
        conf.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "deploy" / "supervisord.conf", conf)
    (home / ".run").mkdir(exist_ok=True)
    kafka = LocalKafka(home / ".run" / "kafka", kafka_port=kafka_port, zookeeper_port=zookeeper_port,
                       stop_timeouts=(KAFKA_STOP_SECONDS, ZOOKEEPER_STOP_SECONDS))
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal was closed
        signal.signal(signum, on_signal)
    supervisord = None
    try:
        kafka.start()
        env = program_env({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                           "EVENTDASH_SUPERVISOR_SOCKET": str(home / ".run" / "supervisor.sock")})
        supervisord = processes.spawn(
            [str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)],
            env=env, cwd=str(ROOT), stdout=None, stderr=None)
        children.append(supervisord)
        threading.Thread(target=_announce, args=(dashboard_port, stop, supervisord), daemon=True).start()
        while not stop.wait(0.5):
            if supervisord.poll() is not None:
                logger.error("supervisord exited with code %s", supervisord.returncode)
                return 1
        logger.info("stopping supervisord and its programs")
        return 0
    except NotReady as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if supervisord is not None:
            processes.stop_group(supervisord, name="supervisord", timeout=SUPERVISORD_STOP_SECONDS)
        kafka.stop()
        logger.info("everything stopped")


def _announce(port: str, stop: threading.Event, supervisord) -> None:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        wait_until(lambda: urllib.request.urlopen(url, timeout=2).status == 200,
                   what=f"the dashboard at {url}", timeout=90,
                   alive=lambda: "stopping" if stop.is_set() or supervisord.poll() is not None else None)
    except NotReady as exc:
        logger.warning("%s", exc)
        return
    logger.info("dashboard live at http://localhost:%s  (supervisorctl -c deploy/supervisord.conf status)", port)
