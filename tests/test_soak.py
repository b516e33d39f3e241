"""The soak script runs end to end (briefly) and reports memory per cycle."""

from __future__ import annotations

import subprocess
import sys


def test_soak_smoke_run_reports_every_cycle() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--seconds", "4", "--connections", "40", "--cycles", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("baseline RSS:") for line in lines)
    assert [line.split(",")[0] for line in lines if line.startswith("after cycle")] == [
        "after cycle 1",
        "after cycle 2",
    ]


def test_soak_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--seconds", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
