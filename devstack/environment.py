"""The environment eventdash programs run with outside the container."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def program_env(extra: dict[str, str] | None = None, *, inherit_config: bool = True) -> dict[str, str]:
    """This environment plus the venv on PATH and the project on PYTHONPATH.

    ``inherit_config=False`` drops the caller's own ``EVENTDASH_*`` / ``KAFKA_*`` settings, so that
    tests and benchmarks see only the values they set.
    """
    env = {k: v for k, v in os.environ.items()
           if inherit_config or not k.startswith(("EVENTDASH_", "KAFKA_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env
