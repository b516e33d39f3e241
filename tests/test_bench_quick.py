"""The bench's quick run as a smoke test: every message delivered exactly once, on both backends.

Speed is never asserted here; a loaded CI machine must not fail the build.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import run
from bench.scenarios import SCENARIOS, Plan


@pytest.mark.timeout(110)
def test_quick_bench_delivers_every_message_exactly_once() -> None:
    rows, skipped = run(("selectors", "threads"), SCENARIOS, Plan.quick_plan())
    assert not skipped
    assert {row.server for row in rows} == {"selectors", "threads"}
    assert {row.scenario for row in rows} == set(SCENARIOS)
    failures = [f"{row.scenario} N={row.clients} {row.server}: {row.problem}" for row in rows if not row.ok]
    assert not failures, failures
    for row in rows:
        assert row.deliveries == row.expected > 0, row
    slow = [row for row in rows if row.scenario == "slow"]
    assert all(row.extra["slow_cut"] for row in slow)


@pytest.mark.parametrize(
    "argv",
    [["--servers", "nosuch"], ["--scenarios", "fanout,bogus"], ["--clients", "ten"], ["--procs", "0"]],
)
def test_bad_input_gives_one_line_and_nonzero_exit(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
