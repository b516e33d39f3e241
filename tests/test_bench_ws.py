"""The bench's WebSocket scenarios, run small: the same fan-out over TCP and over WebSocket on
both backends, every message delivered exactly once, and the ratio in the report.

Speed is never asserted; a loaded CI machine must not fail the build.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import report
from bench.cli import run
from bench.scenarios import WS_SCENARIOS, Plan, Row


@pytest.fixture(scope="module")
def ws_run() -> tuple[list[Row], dict[str, str]]:
    plan = replace(Plan.quick_plan(), clients=(6,), duration_s=0.3, blast_deliveries=3000)
    return run(("selectors", "threads"), WS_SCENARIOS, plan)


@pytest.mark.timeout(120)
def test_tcp_and_websocket_rows_deliver_exactly_once(ws_run: tuple[list[Row], dict[str, str]]) -> None:
    rows, skipped = ws_run
    assert not skipped
    got = {(row.scenario, row.server) for row in rows}
    want = {(s, f"{b} {t}") for s in WS_SCENARIOS for b in ("selectors", "threads") for t in ("tcp", "ws")}
    assert got == want
    failures = [f"{row.scenario} {row.server}: {row.problem}" for row in rows if not row.ok]
    assert not failures, failures
    for row in rows:
        assert row.deliveries == row.expected > 0, row
        assert row.cpu_us_per_delivery is not None and row.cpu_us_per_delivery > 0
        assert "--ws-port" in row.settings


def test_websocket_rows_carry_the_ratio_to_their_tcp_twin(ws_run: tuple[list[Row], dict[str, str]]) -> None:
    rows, _ = ws_run
    by_key = {(row.scenario, row.server): row for row in rows}
    for scenario in WS_SCENARIOS:
        for backend in ("selectors", "threads"):
            ws, tcp = by_key[(scenario, f"{backend} ws")], by_key[(scenario, f"{backend} tcp")]
            assert ws.extra["transport"] == "ws" and tcp.extra["transport"] == "tcp"
            assert ws.extra["tcp_cpu_us_per_delivery"] == tcp.cpu_us_per_delivery
            assert ws.extra["ws_tcp_ratio"] == pytest.approx(ws.cpu_us_per_delivery / tcp.cpu_us_per_delivery)
            assert "ws_tcp_ratio" not in tcp.extra


def test_report_shows_tcp_and_websocket_side_by_side(ws_run: tuple[list[Row], dict[str, str]]) -> None:
    rows, skipped = ws_run
    text = report.table(rows, skipped)
    assert "ws-blast N=6 threads ws: WS/TCP " in text
    assert not [line for line in text.splitlines() if len(line) > 100]
    summary = report.summary(rows, skipped)
    assert "**IRC over WebSocket**" in summary
    table = [line for line in summary.splitlines() if line.startswith("| selectors | closed loop")]
    assert len(table) == 1 and table[0].count("|") == 10 and "x |" in table[0]


def test_servers_without_websocket_are_skipped_with_a_reason() -> None:
    rows, skipped = run(("bare", "asyncio"), ("ws-fanout",), Plan.quick_plan())
    assert rows == []
    assert skipped == {
        "bare (ws)": "no IRC over WebSocket listener",
        "asyncio (ws)": "runs outside chatd's command line, without --ws-port",
    }
