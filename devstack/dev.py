"""``make dev``: ZooKeeper, Kafka, then supervisord with the three programs, in the foreground.

Ctrl-C or SIGTERM stops supervisord (which stops its programs as process groups), then Kafka,
then ZooKeeper. Kafka's data lives in ``.run/kafka`` and survives restarts of ``make dev``.
"""
from __future__ import annotations

import logging
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
    for name, port in (("Kafka", kafka_port), ("ZooKeeper", zookeeper_port)):
        if not _port_free(port):
            logger.error("port %d for %s is in use: is another `make dev` or Kafka running?", port, name)
            return 1
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    home = home.resolve()
    conf = home / "deploy" / "supervisord.conf"
    if home != ROOT:
        conf.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "deploy" / "supervisord.conf", conf)
    (home / ".run").mkdir(exist_ok=True)
    kafka = LocalKafka(home / ".run" / "kafka", kafka_port=kafka_port, zookeeper_port=zookeeper_port)
    supervisord = None
    try:
        kafka.start()
        env = program_env({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                           "EVENTDASH_SUPERVISOR_SOCKET": str(home / ".run" / "supervisor.sock")})
        dashboard_port = env.get("EVENTDASH_PORT", "5002")
        supervisord = processes.spawn(
            [str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)],
            env=env, cwd=str(ROOT), stdout=None, stderr=None)
        threading.Thread(target=_announce, args=(dashboard_port, stop, supervisord), daemon=True).start()
        while not stop.wait(0.5):
            if supervisord.poll() is not None:
                logger.error("supervisord exited with code %s", supervisord.returncode)
                return 1
        logger.info("stopping supervisord and its programs")
        return 0
    finally:
        if supervisord is not None:
            processes.stop_group(supervisord, name="supervisord", timeout=90)
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
