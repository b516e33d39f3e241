"""The bench's login scenario, small: every storm client logs in with SASL PLAIN, the control
conversation loses nothing, and the report carries the figures the issue asks for (control
p50/p99 alone and during the storm, logins per second, login p50/p99).

Like the quick bench, no speed is asserted: the 50 ms goal is reported, never tested, so a
loaded CI machine cannot fail the build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench import report
from bench.cli import run
from bench.scenarios import Plan, Row
from chatd.core.commands import COMMANDS

LOGIN_FIELDS = {
    "logins",
    "login_failures",
    "logins_per_s",
    "alone_p50_ms",
    "alone_p99_ms",
    "login_p50_ms",
    "login_p99_ms",
    "goal_p99_ms",
    "goal_met",
    "alone_samples",
    "storm_samples",
    "server_cpu_ms_per_login",
    "server_wait_ms_per_login",
}


@pytest.mark.timeout(110)
def test_login_storm_logs_everyone_in_and_reports_the_control_beside_it(tmp_path: Path) -> None:
    if "AUTHENTICATE" not in COMMANDS:
        pytest.skip("this chatd has no AUTHENTICATE (SASL) yet")
    plan = replace(Plan.quick_plan(), login_clients=(10,))
    rows, skipped = run(("selectors", "threads", "ngircd"), ("login",), plan)
    assert not any(name.startswith("selectors") or name.startswith("threads") for name in skipped)
    assert [(row.scenario, row.server, row.clients) for row in rows] == [
        ("login", "selectors", 10),
        ("login", "threads", 10),
    ]  # peers have no accounts: never run, and never a failure
    failures = [f"{row.server}: {row.problem}" for row in rows if not row.ok]
    assert not failures, failures
    for row in rows:
        assert set(row.extra) >= LOGIN_FIELDS, row.extra
        assert row.extra["logins"] == 10 and row.extra["login_failures"] == 0
        assert row.deliveries == row.expected > 0
        assert row.extra["alone_samples"] > 0 and row.extra["storm_samples"] > 0
        assert row.p50_ms is not None and row.p99_ms is not None and row.rate > 0
        assert "accounts in its store" in row.settings and "SQLite history on" in row.settings
        assert row.extra["server_cpu_ms_per_login"] > 0 and row.extra["server_wait_ms_per_login"] >= 0

    text = report.table(rows, skipped)
    assert f"login N=10 selectors: control p50/p99 {report._ms(rows[0].extra['alone_p50_ms'])}/" in text
    assert "in the storm (p99 goal 50 ms " in text and "login p50/p99 " in text
    assert "ms waiting for a CPU per login" in text  # what tells a loaded machine from a slow backend
    summary = report.summary(rows, skipped)
    assert "**Login storm**" in summary and "| selectors | 10 |" in summary and "| threads | 10 |" in summary

    report.write_json(tmp_path / "results.json", rows, skipped, {})
    again, _ = report.read_json(tmp_path / "results.json")
    assert again == rows
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["extra"]["logins"] == 10


def test_run_queue_reads_this_process_and_counts_nothing_for_a_gone_one() -> None:
    from bench.login import run_queue_s

    assert run_queue_s([os.getpid()]) >= 0.0
    assert run_queue_s([2**22 + 1]) == 0.0  # past Linux's pid_max: no such process


def test_the_login_summary_says_failed_instead_of_figures() -> None:
    row = Row("login", "selectors", 50, "", ok=False, problem="3 of 50 logins failed")
    assert "| selectors | 50 | **failed** |" in report.summary([row], {})


def test_logins_option_sets_the_storm_sizes_and_rejects_nonsense() -> None:
    from bench.cli import build_parser, make_plan

    assert make_plan(build_parser().parse_args(["--logins", "50,200"])).login_clients == (50, 200)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--logins", "many"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
