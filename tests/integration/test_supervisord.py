"""The real supervisord with deploy/supervisord.conf runs, restarts and stops the three programs."""
from __future__ import annotations

from pathlib import Path

from devstack import processes

from ..helpers import count_topic_by_type, ctl, status, totals_equal, wait_for_stats


def test_supervisord_runs_restarts_and_stops_the_programs(start_supervised, kafka):
    supervisord, conf, base, env = start_supervised()
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
