"""What many tests share: the repository root and the ``sweep`` command line, run in a
subprocess exactly as a user runs it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_sweep(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """``python -m sweep ARGS`` with captured text output."""
    return subprocess.run(
        [sys.executable, "-m", "sweep", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
