"""Turning rows into what people read: a text table, results.json and PNG plots."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.cluster_report import cluster_notes, cluster_section
from bench.login import GOAL_P99_MS
from bench.scenarios import Row

COLUMNS = (
    ("scenario", "scenario"),
    ("server", "server"),
    ("N", "clients"),
    ("deliv/s", "rate"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("µs/deliv", "cpu_us_per_delivery"),
    ("RSS MiB", "rss_mib"),
    ("result", "ok"),
)
"""The terminal table: what compares the servers at a glance, in under 100 columns. The rest
(max latency, CPU seconds of server and generator) is in results.json and summary.md."""
TABLE_LEGEND = (
    "deliv/s: deliveries per second (pairs: round trips, rt); µs/deliv: server CPU µs per delivery",
    "max latency and CPU seconds of server and generator: results.json",
)
LOGIN_LEGEND = "login: logins per second; p50/p99: the control conversation's round trip during the storm"


def plain_number(value: float) -> str:
    """``20``, ``0.5``, ``68.2k``, ``600k``, ``1.5M``: three significant digits, a k/M suffix past a
    thousand. For table cells and plot ticks alike, so a reader never meets ``2x10^1``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _cell(row: Row, key: str) -> str:
    value: Any = getattr(row, key)
    if key == "ok":
        return "ok" if value else "FAILED"
    if value is None:
        return "-"
    if key == "rate":
        if row.scenario == "pairs":
            return f"{plain_number(row.extra.get('round_trips_per_s', 0.0))} rt"
        if row.scenario == "login":
            return f"{plain_number(value)} login"
        return plain_number(value)
    if key in ("p50_ms", "p99_ms"):
        return _ms(value)
    if key == "cpu_us_per_delivery":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _notes(row: Row) -> str:
    extra = row.extra
    notes = []
    if "rss_per_conn_kib" in extra:
        notes.append(f"{extra['rss_per_conn_kib']:.2f} KiB/conn, registered in {extra['register_s']:.1f}s")
    elif "registered" in extra:
        notes.append(f"registered {extra['registered']}")
    if "slow_cut" in extra:
        notes.append("slow one cut" if extra["slow_cut"] else "slow one NOT cut")
    if "redis_us_per_delivery" in extra:
        notes.append(f"redis {extra['redis_us_per_delivery']:.3f} µs/deliv")
    if "alone_p99_ms" in extra:
        notes.append(login_note(row))
    if "ws_tcp_ratio" in extra:
        tcp = extra["tcp_cpu_us_per_delivery"]
        notes.append(f"WS/TCP {extra['ws_tcp_ratio']:.2f}x CPU ({row.cpu_us_per_delivery:.3g} vs {tcp:.3g} µs/deliv)")
    if "gen_us_per_delivery" in extra:
        notes.append(f"generator {extra['gen_us_per_delivery']:.3g} µs/deliv")
    notes += cluster_notes(row)
    for where, label in (("same", "same node"), ("cross", "cross node")):
        if f"{where}_p50_ms" in extra:
            notes.append(f"{label} p50/p99 {_ms(extra[f'{where}_p50_ms'])}/{_ms(extra[f'{where}_p99_ms'])} ms")
    return "; ".join(notes)


def login_note(row: Row) -> str:
    """The login storm in one line: the control conversation without and with it, and the logins."""
    extra = row.extra
    goal = f"p99 goal {extra['goal_p99_ms']:.0f} ms {'met' if extra['goal_met'] else 'MISSED'}"
    login = ""
    if "login_p50_ms" in extra:
        login = f"; login p50/p99 {extra['login_p50_ms']:.0f}/{extra['login_p99_ms']:.0f} ms"
    if "server_wait_ms_per_login" in extra:  # the machine's share: what moves logins/s most
        login += (
            f"; server CPU {extra['server_cpu_ms_per_login']:.0f} ms and "
            f"{extra['server_wait_ms_per_login']:.0f} ms waiting for a CPU per login"
        )
    return (
        f"control p50/p99 {_ms(extra['alone_p50_ms'])}/{_ms(extra['alone_p99_ms'])} ms alone, "
        f"{_ms(row.p50_ms)}/{_ms(row.p99_ms)} ms in the storm ({goal}){login}"
    )


def table(rows: list[Row], skipped: dict[str, str]) -> str:
    """A Markdown table (readable as plain text too), its legend, then each run's notes, the
    failures and the skips. The table stays within 100 columns for the --quick run: the notes
    that made it wide (idle memory per connection, the slow consumer cut) are lines below it."""
    header = [title for title, _ in COLUMNS]
    body = [[_cell(row, key) for _, key in COLUMNS] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    lines += ["", *TABLE_LEGEND]
    if any(row.scenario == "login" for row in rows):
        lines.append(LOGIN_LEGEND)
    notes = [(row, note) for row in rows if (note := _notes(row))]
    if notes:
        lines.append("")
        lines += [f"{row.scenario} N={row.clients} {row.server}: {note}" for row, note in notes]
    failures = [row for row in rows if not row.ok]
    if failures:
        lines.append("")
        lines += [f"FAILED {row.scenario} N={row.clients} on {row.server}: {row.problem}" for row in failures]
    if skipped:
        lines.append("")
        lines += [f"skipped {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_json(path: Path, rows: list[Row], skipped: dict[str, str], settings: dict[str, Any]) -> None:
    document = {
        "machine": machine(),
        "settings": settings,
        "skipped": skipped,
        "results": [asdict(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def read_json(path: Path) -> tuple[list[Row], dict[str, str]]:
    """Rows and skips from a results.json written by ``write_json``; raises ValueError if it is not one."""
    try:
        document = json.loads(path.read_text())
        rows = [Row(**fields) for fields in document["results"]]
        return rows, dict(document.get("skipped", {}))
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a bench results.json: {error}") from error


def write_plots(out: Path, rows: list[Row]) -> list[Path]:
    """deliveries/s and p99 against clients per channel, RSS per connection against connections."""
    written: list[Path] = []
    for name, figure in figures(rows).items():
        path = out / name
        figure.savefig(path, dpi=100)
        written.append(path)
    import matplotlib.pyplot as plt

    plt.close("all")
    return written


def figures(rows: list[Row]) -> dict[str, Any]:
    """The plots as matplotlib Figures by file name (only those with data), not yet saved.

    Every axis is logarithmic with plain tick labels (``20``, ``30``, ``600k``; matplotlib's
    default would write ``2x10^1``), and the legend sits to the right of the axes, so it never
    covers a line however the data fall.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: dict[str, Any] = {}

    def by_server(scenario: str, value: Any) -> dict[str, list[tuple[int, float]]]:
        series: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            if row.scenario != scenario:
                continue
            y = value(row)
            if y is not None and row.ok:
                series.setdefault(row.server, []).append((row.clients, y))
        return series

    def plot(name: str, title: str, ylabel: str, xlabel: str, series: dict[str, list[tuple[int, float]]]) -> None:
        if not series:
            return
        figure, axes = plt.subplots(figsize=(8.5, 4.2), layout="constrained")
        for server, points in sorted(series.items()):
            points.sort()
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=server)
        axes.set_xscale("log")
        axes.set_yscale("log")
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_formatter(plain_log_formatter())
            axis.set_minor_formatter(plain_log_formatter())
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        made[name] = figure

    plot("blast_rate.png", "Fan-out blast: deliveries per second", "deliveries/s", "clients in the channel",
         by_server("blast", lambda r: r.rate))  # fmt: skip
    plot("blast_cpu.png", "Fan-out blast: server CPU per delivery", "µs of server CPU per delivery",
         "clients in the channel", by_server("blast", lambda r: r.cpu_us_per_delivery))  # fmt: skip
    plot("fanout_p99.png", "Fan-out, closed loop (1 in flight per sender): p99 latency", "p99 latency (ms)",
         "clients in the channel", by_server("fanout", lambda r: r.p99_ms))  # fmt: skip
    plot("idle_rss.png", "Idle clients: server RSS per connection", "KiB per connection", "connections",
         by_server("idle", lambda r: r.extra.get("rss_per_conn_kib")))  # fmt: skip
    return made


def plain_log_formatter() -> Any:
    """matplotlib's LogFormatter, which picks the ticks worth a label (all of them within a
    decade, fewer over many), writing each as ``plain_number`` does. Built on use so that the
    table and JSON need no matplotlib."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):  # type: ignore[misc]
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return plain_number(x)

    return PlainLogFormatter(minor_thresholds=(2, 1.0))


def _pivot(rows: list[Row], scenario: str, cell: Any) -> list[str]:
    """A servers-by-sizes Markdown table of one scenario; failed runs say so instead of a figure."""
    chosen = [row for row in rows if row.scenario == scenario]
    if not chosen:
        return []
    sizes = sorted({row.clients for row in chosen})
    servers = list(dict.fromkeys(row.server for row in chosen))
    lines = ["| server | " + " | ".join(f"N={n}" for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for server in servers:
        cells = []
        for n in sizes:
            row = next((r for r in chosen if r.server == server and r.clients == n), None)
            cells.append("-" if row is None else cell(row) if row.ok else "**failed**")
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def summary(rows: list[Row], skipped: dict[str, str]) -> str:
    """The results as a few readable Markdown tables (the README shows these)."""
    parts: list[str] = []

    def section(title: str, note: str, lines: list[str]) -> None:
        if lines:
            parts.extend([f"**{title}** — {note}", "", *lines, ""])

    section(
        "Fan-out, blast",
        "server CPU µs per delivery (deliveries/s); 10 senders, every member receives every message",
        _pivot(rows, "blast", lambda r: f"{r.cpu_us_per_delivery:.3f} ({r.rate / 1e6:.2f} M/s)"),
    )
    section(
        "Fan-out, closed loop",
        "latency p50 / p99 ms with one message in flight per sender (10 senders); server µs per delivery",
        _pivot(rows, "fanout", lambda r: f"{_ms(r.p50_ms)} / {_ms(r.p99_ms)}; {r.cpu_us_per_delivery:.2f} µs"),
    )
    section(
        "Private pairs",
        "N/2 pairs ping-ponging PRIVMSG: round trips/s, round-trip p99 ms",
        _pivot(rows, "pairs", lambda r: f"{r.extra.get('round_trips_per_s', 0):,.0f}/s, p99 {_ms(r.p99_ms)}"),
    )
    section(
        "Idle scale",
        "server RSS per registered idle connection, time to register them all, "
        "p99 ms of a 10-member conversation held among them",
        _pivot(
            rows,
            "idle",
            lambda r: (
                f"{r.extra.get('rss_per_conn_kib', 0):.1f} KiB, {r.extra.get('register_s', 0):.1f} s, "
                f"p99 {_ms(r.p99_ms)}"
            ),
        ),
    )
    section(
        "Slow consumer",
        "one member stops reading during a closed-loop fan-out (8 in flight per sender, 400-byte messages): "
        "the others' p99 ms, whether the slow one was cut, server RSS",
        _pivot(
            rows,
            "slow",
            lambda r: f"p99 {_ms(r.p99_ms)}, {'cut' if r.extra.get('slow_cut') else 'not cut'}, {r.rss_mib:.0f} MiB",
        ),
    )
    parts += cluster_section(rows)
    parts += _login_section(rows)
    parts += _websocket_section(rows)
    failures = [row for row in rows if not row.ok]
    if failures:
        parts.append("Failed runs:")
        parts.append("")
        parts += [f"- {row.scenario} N={row.clients} on {row.server}: {row.problem}" for row in failures]
        parts.append("")
    if skipped:
        parts += [f"- skipped {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(parts)


def _login_section(rows: list[Row]) -> list[str]:
    """The login storm: what N clients logging in at once do to a conversation beside them."""
    chosen = [row for row in rows if row.scenario == "login"]
    if not chosen:
        return []
    lines = [
        "**Login storm** — N clients log in at once with SASL PLAIN (one scrypt check each, off the event "
        "loop) while two other clients ping-pong a PRIVMSG: the round trip p50 / p99 ms without and during "
        f"the storm (goal: p99 under {GOAL_P99_MS:.0f} ms during it); each login from connect to 903",
        "",
        "| server | N | logins/s | login p50 / p99 ms | control alone | control in the storm |",
        "|---|---|---|---|---|---|",
    ]
    for row in chosen:
        extra = row.extra
        if not row.ok or "alone_p50_ms" not in extra:
            lines.append(f"| {row.server} | {row.clients} | **failed** | | | |")
            continue
        login = f"{extra.get('login_p50_ms', 0):.0f} / {extra.get('login_p99_ms', 0):.0f}"
        alone = f"{_ms(extra['alone_p50_ms'])} / {_ms(extra['alone_p99_ms'])}"
        lines.append(
            f"| {row.server} | {row.clients} | {row.rate:,.1f} | {login} | {alone} | "
            f"{_ms(row.p50_ms)} / {_ms(row.p99_ms)} |"
        )
    return [*lines, ""]


WS_TITLES = {
    "ws-fanout": "closed loop, 1 in flight per sender",
    "ws-blast": "blast, senders pushing as fast as TCP lets them",
}


def _websocket_section(rows: list[Row]) -> list[str]:
    """TCP and WebSocket side by side: the same fan-out on the same chatd, every member over one
    transport, and what WebSocket framing costs the server per delivery."""
    chosen = [row for row in rows if row.scenario in WS_TITLES and row.extra.get("transport") == "ws"]
    if not chosen:
        return []
    lines = [
        "**IRC over WebSocket** — the fan-out (10 senders) on one chatd with --ws-port, every member over "
        "TCP, then every member over WebSocket (binary.ircv3.net, one IRC line per message): server CPU "
        "µs per delivery and the ratio WebSocket / TCP; deliveries/s; the generator's µs per delivery",
        "",
        "| server | scenario | N | TCP µs/deliv | WS µs/deliv | WS/TCP | TCP deliv/s | WS deliv/s | gen µs TCP / WS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tcp = {(r.scenario, r.server.removesuffix(" tcp"), r.clients): r for r in rows if r.extra.get("transport") == "tcp"}
    for row in chosen:
        server = row.server.removesuffix(" ws")
        twin = tcp.get((row.scenario, server, row.clients))
        head = f"| {server} | {WS_TITLES[row.scenario]} | {row.clients} |"
        if twin is None or "ws_tcp_ratio" not in row.extra:
            lines.append(f"{head} **failed** | | | | | |")
            continue
        gen = f"{twin.extra.get('gen_us_per_delivery', 0):.2f} / {row.extra.get('gen_us_per_delivery', 0):.2f}"
        lines.append(
            f"{head} {twin.cpu_us_per_delivery or 0:.3f} | {row.cpu_us_per_delivery or 0:.3f} | "
            f"{row.extra['ws_tcp_ratio']:.2f}x | {twin.rate:,.0f} | {row.rate:,.0f} | {gen} |"
        )
    return [*lines, ""]
