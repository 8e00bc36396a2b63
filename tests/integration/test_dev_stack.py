"""`make dev`'s runner: the stack comes up, and Ctrl-C leaves no java, supervisord or gunicorn behind."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from devstack.readiness import free_port, wait_until

from ..helpers import ROOT, python_env, wait_for_stats


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    stack.append(child)
    return found


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_dev_runner_starts_everything_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = python_env({"EVENTDASH_PORT": str(port), "EVENTDASH_HOST": "127.0.0.1",
                      "EVENTDASH_PRODUCER_METRICS_PORT": "0", "EVENTDASH_CONSUMER_METRICS_PORT": "0"})
    log = open(tmp_path / "dev.log", "wb")
    dev = subprocess.Popen([sys.executable, "-m", "devstack", "dev", "--kafka-port", str(free_port()),
                            "--zookeeper-port", str(free_port()), "--home", str(tmp_path / "home")],
                           cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_stats(f"http://127.0.0.1:{port}", lambda s: s["events_total"] > 0, what="events on the dashboard",
                       timeout=120, alive=lambda: dev.poll() is not None and f"exited {dev.returncode}")
        started = descendants(dev.pid)
        commands = " ".join(command_of(pid) for pid in started)
        for expected in ("QuorumPeerMain", "kafka.Kafka", "supervisord", "gunicorn", "eventdash consume",
                         "eventdash produce"):
            assert expected in commands, f"{expected} not running under the dev runner"
        dev.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert dev.wait(150) == 0
        wait_until(lambda: not [p for p in started if command_of(p)], what="every child process to exit",
                   timeout=10)
    finally:
        if dev.poll() is None:
            dev.kill()
        log.close()
        print((tmp_path / "dev.log").read_text()[-3000:])
