"""The bench's quick run as a smoke test: every message delivered exactly once, on both backends.

Speed is never asserted here; a loaded CI machine must not fail the build.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench import report
from bench.cli import DEFAULT_SERVERS, run
from bench.contenders import CONTENDER_NAMES
from bench.scenarios import SCENARIOS, Plan, Row


@pytest.fixture(scope="module")
def quick_run() -> tuple[list[Row], dict[str, str]]:
    """One --quick run shared by the tests below: it takes most of a minute."""
    return run(("selectors", "threads"), SCENARIOS, Plan.quick_plan())


@pytest.mark.timeout(110)
def test_quick_bench_delivers_every_message_exactly_once(quick_run: tuple[list[Row], dict[str, str]]) -> None:
    rows, skipped = quick_run
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


def test_quick_report_fits_100_columns(quick_run: tuple[list[Row], dict[str, str]]) -> None:
    rows, skipped = quick_run
    text = report.table(rows, skipped)
    assert text.startswith("| scenario ")
    too_wide = [line for line in text.splitlines() if len(line) > 100]
    assert not too_wide, too_wide
    # what left the table is still there, below it
    assert "idle N=300 selectors: " in text and "KiB/conn" in text and "slow one cut" in text


@pytest.mark.parametrize(
    ("value", "text"), [(20, "20"), (30, "30"), (0.5, "0.5"), (68_174, "68.2k"), (600_000, "600k"), (1.5e6, "1.5M")]
)
def test_plain_numbers(value: float, text: str) -> None:
    assert report.plain_number(value) == text


PLAIN_TICK = re.compile(r"(\d+(\.\d+)?[kMG]?)?")
"""A tick label as a person writes it, or empty (a minor tick left unlabelled); never 2x10^1."""


def test_plots_have_plain_ticks_and_a_legend_outside_the_data(quick_run: tuple[list[Row], dict[str, str]]) -> None:
    rows, _ = quick_run
    figures = report.figures(rows)
    assert set(figures) == {"blast_rate.png", "blast_cpu.png", "fanout_p99.png", "idle_rss.png"}
    for name, figure in figures.items():
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        (axes,) = figure.axes
        for axis in (axes.xaxis, axes.yaxis):
            labels = [tick.get_text() for tick in axis.get_ticklabels(which="both")]
            assert all(PLAIN_TICK.fullmatch(label) for label in labels), (name, labels)
            assert any(labels), (name, "no labelled tick")
            assert axis.get_major_formatter().format_ticks([20, 30, 600_000]) == ["20", "30", "600k"]
        data_area = axes.get_window_extent(renderer)
        legend = axes.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(data_area), (name, legend, data_area)
        assert figure.bbox.contains(legend.x0, legend.y0) and figure.bbox.contains(legend.x1, legend.y1), name


def test_bench_help_names_the_default_contenders() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, timeout=30)
    help_text = " ".join(result.stdout.split())
    assert f"(default: {', '.join(DEFAULT_SERVERS)};" in help_text
    assert "asyncio" not in DEFAULT_SERVERS and "selectors+history" not in DEFAULT_SERVERS
    assert set(CONTENDER_NAMES) - set(DEFAULT_SERVERS) == {"asyncio", "selectors+history"}


def test_asyncio_contender_runs_from_the_bench_not_from_chatd() -> None:
    # It left ``chatd --backend`` (issue 12) and chatd/backends (issue 13): bench starts it itself.
    rows, skipped = run(("asyncio",), ("fanout",), Plan.quick_plan())
    assert skipped == {} and rows and all(row.server == "asyncio" and row.ok for row in rows)
    assert all(row.settings.startswith("python -m bench.asyncio_server --sendq") for row in rows)
