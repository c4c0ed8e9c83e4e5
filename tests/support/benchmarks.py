"""Run a benchmark of benchmarks/ as CI does (`--short`) and read the JSON lines it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_short(script: str, *, timeout: float = 300) -> list[dict[str, Any]]:
    """Every JSON line ``benchmarks/<script> --short`` printed; fails the test on a crash."""
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--short"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"benchmarks/{script} printed no JSON line: {done.stdout[-2000:]}"
    return [json.loads(line) for line in lines]
