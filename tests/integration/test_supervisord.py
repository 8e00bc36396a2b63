"""The real supervisord with deploy/supervisord.conf runs, restarts and stops the three programs."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import processes
from devstack.readiness import free_port, wait_until

from ..helpers import ROOT, Program, count_topic_by_type, get_stats, totals_equal, wait_for_stats


def ctl(conf: Path, *args: str) -> str:
    result = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), *args],
                            capture_output=True, text=True, timeout=60)
    return result.stdout


def status(conf: Path) -> dict[str, tuple[str, int | None]]:
    """``{"consumer": ("RUNNING", pid), ...}`` from ``supervisorctl status``."""
    states = {}
    for line in ctl(conf, "status").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else None
            states[parts[0]] = (parts[1], pid)
    return states


@pytest.fixture
def supervised(tmp_path, stack_env):
    """supervisord with an unmodified copy of deploy/supervisord.conf in a private folder."""
    home = tmp_path / "app"
    (home / "deploy").mkdir(parents=True)
    (home / ".run").mkdir()
    conf = home / "deploy" / "supervisord.conf"
    shutil.copyfile(ROOT / "deploy" / "supervisord.conf", conf)
    port = free_port()
    env = stack_env(EVENTDASH_PORT=str(port), EVENTDASH_HOST="127.0.0.1", EVENTDASH_RATE="300",
                    EVENTDASH_SUPERVISOR_SOCKET=str(home / ".run" / "supervisor.sock"))
    program = Program("supervisord", [str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)], env,
                      tmp_path / "supervisord.log").start()
    try:
        yield program, conf, f"http://127.0.0.1:{port}", env
    finally:
        processes.stop_group(program.proc, name="supervisord", timeout=90)
        print(program.log_tail(60))


def test_supervisord_runs_restarts_and_stops_the_programs(supervised, kafka):
    supervisord, conf, base, env = supervised
    wait_until(lambda: all(state == "RUNNING" for state, _ in status(conf).values()) and len(status(conf)) == 3,
               what="producer, consumer and dashboard RUNNING", timeout=90, alive=supervisord.died)
    before = status(conf)
    assert set(before) == {"producer", "consumer", "dashboard"}

    flowing = wait_for_stats(base, lambda s: s["events_total"] > 0, what="events flowing", alive=supervisord.died)
    all_running = {"producer": "RUNNING", "consumer": "RUNNING", "dashboard": "RUNNING"}
    wait_for_stats(base, lambda s: {p["name"]: p["state"] for p in s["health"]["programs"]} == all_running,
                   what="the page to show all three programs RUNNING")

    assert "consumer: started" in ctl(conf, "restart", "consumer")
    after = status(conf)
    assert after["consumer"][0] == "RUNNING" and after["consumer"][1] != before["consumer"][1]
    assert after["producer"] == before["producer"] and after["dashboard"] == before["dashboard"]

    # Counting continues after the restart ...
    wait_for_stats(base, lambda s: s["events_total"] > flowing["events_total"] + 300,
                   what="counting to continue after the consumer restart", alive=supervisord.died)
    # ... and is exact: stop the producer, count the topic independently, compare.
    assert "producer: stopped" in ctl(conf, "stop", "producer")
    in_topic = count_topic_by_type(kafka.bootstrap_servers, env["EVENTDASH_EVENTS_TOPIC"])
    assert sum(in_topic.values()) > 300
    wait_for_stats(base, totals_equal(dict(in_topic)), what="dashboard totals = events in the topic",
                   alive=supervisord.died)

    pids = [pid for _, pid in status(conf).values() if pid]
    processes.stop_group(supervisord.proc, name="supervisord", timeout=90)
    assert supervisord.proc.returncode == 0
    leftovers = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert leftovers == [], f"processes left behind: {leftovers}"
