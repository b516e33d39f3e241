"""Turning rows into what people read: a text table, results.json and PNG plots."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.scenarios import Row

COLUMNS = (
    ("scenario", "scenario"),
    ("server", "server"),
    ("N", "clients"),
    ("deliv/s", "rate"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("max ms", "max_ms"),
    ("srv µs/deliv", "cpu_us_per_delivery"),
    ("srv CPU s", "server_cpu_s"),
    ("gen CPU s", "gen_cpu_s"),
    ("RSS MiB", "rss_mib"),
    ("result", "ok"),
)


def _cell(row: Row, key: str) -> str:
    value: Any = getattr(row, key)
    if key == "ok":
        text = "ok" if value else "FAILED"
        notes = _notes(row)
        return f"{text} {notes}".strip()
    if value is None:
        return "-"
    if key == "rate":
        if row.scenario == "pairs":
            return f"{row.extra.get('round_trips_per_s', 0.0):,.0f} rt/s"
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3f}" if key == "cpu_us_per_delivery" else f"{value:.2f}"
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
    return "(" + "; ".join(notes) + ")" if notes else ""


def table(rows: list[Row], skipped: dict[str, str]) -> str:
    """A Markdown table (readable as plain text too), then the failures and skips."""
    header = [title for title, _ in COLUMNS]
    body = [[_cell(row, key) for _, key in COLUMNS] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
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


def write_plots(out: Path, rows: list[Row]) -> list[Path]:
    """deliveries/s and p99 against clients per channel, RSS per connection against connections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

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
        figure, axes = plt.subplots(figsize=(7, 4.2))
        for server, points in sorted(series.items()):
            points.sort()
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=server)
        axes.set_xscale("log")
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        path = out / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)

    plot("blast_rate.png", "Fan-out blast: deliveries per second", "deliveries/s", "clients in the channel",
         by_server("blast", lambda r: r.rate))  # fmt: skip
    plot("blast_cpu.png", "Fan-out blast: server CPU per delivery", "µs of server CPU per delivery",
         "clients in the channel", by_server("blast", lambda r: r.cpu_us_per_delivery))  # fmt: skip
    plot("fanout_p99.png", "Fan-out, closed loop (1 in flight per sender): p99 latency", "p99 latency (ms)",
         "clients in the channel", by_server("fanout", lambda r: r.p99_ms))  # fmt: skip
    plot("idle_rss.png", "Idle clients: server RSS per connection", "KiB per connection", "connections",
         by_server("idle", lambda r: r.extra.get("rss_per_conn_kib")))  # fmt: skip
    return written
