"""A second aggregator started beside the first, as README says, never disrupts it."""
from __future__ import annotations

import re
import socket
import subprocess
import sys

from devstack.readiness import wait_until

from ..helpers import ROOT, produce, totals_equal, wait_for_stats


def claimed_id(program) -> str:
    match = re.search(r" as (\S+) \(group", program.log_path.read_text())
    return match.group(1) if match else ""


def test_two_aggregators_on_one_host_get_distinct_ids_and_a_restart_gets_its_own_back(
        stack_env, start_program, start_dashboard):
    env = stack_env()
    del env["EVENTDASH_TRANSACTIONAL_ID"]  # the defaults, as a user runs them
    host = socket.gethostname()
    first = start_program("consumer-1", ["consume"], env)
    wait_until(lambda: claimed_id(first), what="the first aggregator to start", timeout=60, alive=first.died)
    second = start_program("consumer-2", ["consume"], env)
    wait_until(lambda: claimed_id(second), what="the second aggregator to start", timeout=60, alive=second.died)
    # The lowest free instance numbers on this host (another aggregator may hold some already).
    prefix = f"eventdash-aggregator-{host}-"
    numbers = [int(claimed_id(p).removeprefix(prefix)) for p in (first, second)]
    assert numbers[0] < numbers[1] < 64

    _, base = start_dashboard(env)
    summary = produce(env, 3000)
    wait_for_stats(base, totals_equal(summary["by_type"]), what="exact totals with two aggregators",
                   alive=lambda: first.died() or second.died())
    wait_until(lambda: "restored" in first.log_path.read_text() and "restored" in second.log_path.read_text(),
               what="both aggregators to own partitions", timeout=30)

    # Asking for an id a live process holds is refused at once, with one line naming the variable.
    taken = claimed_id(first).rsplit("-", 1)[1]
    refused = subprocess.run([sys.executable, "-m", "eventdash", "consume"], env={**env, "EVENTDASH_INSTANCE": taken},
                             cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"configuration error: EVENTDASH_INSTANCE='{taken}' is invalid: transactional id {claimed_id(first)} is held "
        f"by another aggregator on this host (pid {first.proc.pid}); give each process its own EVENTDASH_INSTANCE"]

    # A crashed aggregator comes back with its own id (and so aborts its own open transaction).
    own = claimed_id(first)
    first.kill()
    first.start()
    wait_until(lambda: first.log_path.read_text().count(" as eventdash-aggregator-") == 2,
               what="the restarted aggregator to start", timeout=60, alive=first.died)
    assert re.findall(r" as (\S+) \(group", first.log_path.read_text())[-1] == own
    more = produce(env, 1000)
    expected = {t: summary["by_type"].get(t, 0) + more["by_type"].get(t, 0) for t in summary["by_type"]}
    wait_for_stats(base, totals_equal(expected), what="exact totals after the restart",
                   alive=lambda: first.died() or second.died())
    for program in (first, second):
        assert "fenced" not in program.log_path.read_text().lower()
    assert len(second.history) == 1 and second.alive()
