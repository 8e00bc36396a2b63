"""The benchmark code paths, once, at tiny size (numbers are meaningless here; `make bench` measures)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from ..helpers import ROOT, python_env


def run_bench(tmp_path, *extra: str, timeout: float = 300) -> tuple[str, list[float]]:
    out, figures = tmp_path / "BENCHMARKS.md", tmp_path / "figures.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out), "--figures", str(figures),
                             *extra], cwd=ROOT, env=python_env({}), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text(), json.loads(figures.read_text())


def test_bench_runs_end_to_end_at_tiny_size(tmp_path):
    report, figures = run_bench(tmp_path)
    # Every measured figure is a finite positive number.
    assert figures and all(math.isfinite(x) and x > 0 for x in figures), figures
    for heading in ("## 1. Producer", "## 2. Consumer / aggregator", "## 3. Freshness", "## 4. Fan-out",
                    "## 5. Consumer memory", "## Against the goals"):
        assert heading in report
    assert "| 5 | 5 |" in report  # all five fan-out clients connected
    assert "(1 run)" in report  # single runs say so


@pytest.mark.skipif(not os.environ.get("EVENTDASH_BENCH_QUIX"),
                    reason="opt-in (EVENTDASH_BENCH_QUIX=1): installs Quix Streams into .cache/ and runs it")
def test_bench_runs_quix_streams_once(tmp_path):
    report, figures = run_bench(tmp_path, "--with-quix", timeout=900)
    assert all(math.isfinite(x) and x > 0 for x in figures)
    for variant in ("group-by", "per-partition"):
        for guarantee in ("exactly-once", "at-least-once"):
            assert f"Quix Streams 3.28.1, {variant}, {guarantee}" in report
