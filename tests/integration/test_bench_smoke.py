"""The benchmark code paths, once, at tiny size (numbers are meaningless here; `make bench` measures)."""
from __future__ import annotations

import subprocess
import sys

from ..helpers import ROOT, python_env


def test_bench_runs_end_to_end_at_tiny_size(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out)], cwd=ROOT,
                            env=python_env({}), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    for heading in ("## 1. Producer", "## 2. Consumer / aggregator", "## 3. Freshness", "## 4. Fan-out",
                    "## 5. Consumer memory", "## Against the goals"):
        assert heading in report
    assert "| 5 | 5 |" in report  # all five fan-out clients connected
