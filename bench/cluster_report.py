"""The cluster scenarios in what people read: the summary's tables and the terminal's notes.

Everything is side by side from one run: each node count beside one chatd alone (same
contender, scenario and size), as the issue's targets are ratios and differences, never
absolute speeds of this machine. A failed row shows as failed, never as a figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.cluster_scenarios import OVERHEAD_TARGET_US, RATIO_TARGET, cluster_verdicts

if TYPE_CHECKING:
    from bench.fanout import Row

LOOPS = ("cluster", "cluster-blast")
LOOP_NAMES = {"cluster": "closed loop", "cluster-blast": "blast"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def cluster_notes(row: Row) -> list[str]:
    """The terminal table's notes for one cluster row (the rest is in results.json)."""
    extra = row.extra
    notes = []
    if "alone_ratio" in extra:
        notes.append(f"{extra['alone_ratio']:.2f}x alone's CPU/deliv")
    if "cluster_us_per_message" in extra:
        notes.append(f"--cluster {extra['cluster_us_per_message']:+.1f} µs/msg")
    if "redis_round_trip_us" in extra:
        notes.append(f"a bare Redis round trip {extra['redis_round_trip_us']:.1f} µs")
    if "hop_p50_ms" in extra:
        over = "Redis" if extra.get("judged") else "link"
        notes.append(f"{over} hop p50/p99 {extra['hop_p50_ms']:+.2f}/{extra['hop_p99_ms']:+.2f} ms")
    if "redis_events_per_s" in extra:
        notes.append(f"redis {extra['redis_events_per_s']:,.0f} events/s")
    if "b_share_of_a" in extra:
        notes.append(
            f"node B {extra['b_us_per_delivery']:.3f} µs per A delivery, {extra['b_share_of_a']:.1%} of A's CPU"
        )
    return notes


def _columns(rows: list[Row]) -> list[tuple[str, int]]:
    return sorted({(r.scenario, r.clients) for r in rows if r.scenario in LOOPS}, key=lambda c: (c[0], c[1]))


def _by_key(rows: list[Row]) -> dict[tuple[str, str, int], Row]:
    return {(r.server, r.scenario, r.clients): r for r in rows if r.scenario in LOOPS}


def _servers(rows: list[Row]) -> list[str]:
    chosen = [r for r in rows if r.scenario in LOOPS]
    order = sorted(chosen, key=lambda r: (r.extra.get("contender", r.server), r.extra.get("nodes", 0)))
    return list(dict.fromkeys(r.server for r in order))


def _grid(rows: list[Row], cell, only=lambda row: True) -> list[str]:  # type: ignore[no-untyped-def]
    columns = _columns(rows)
    by_key = _by_key(rows)
    lines = [
        "| server | " + " | ".join(f"{LOOP_NAMES[s]} N={n}" for s, n in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for server in _servers(rows):
        cells = []
        for scenario, n in columns:
            row = by_key.get((server, scenario, n))
            cells.append("-" if row is None or not only(row) else cell(row) if row.ok else "**failed**")
        if any(c != "-" for c in cells):
            lines.append(f"| {server} | " + " | ".join(cells) + " |")
    return lines


def _cpu_cell(row: Row) -> str:
    ratio = row.extra.get("alone_ratio")
    figure = (
        f"{row.cpu_us_per_delivery or 0:.3f}"
        if (row.cpu_us_per_delivery or 0) < 10
        else f"{row.cpu_us_per_delivery:.1f}"
    )
    return figure if row.extra.get("nodes") == 0 else f"{figure} ({'-' if ratio is None else f'{ratio:.2f}x'})"


def _overhead_cell(row: Row) -> str:
    extra = row.extra
    floor = extra.get("redis_round_trip_us")
    cost = "-" if "cluster_us_per_message" not in extra else f"{extra['cluster_us_per_message']:+.1f} µs"
    return cost + ("" if floor is None else f" ({floor:.1f} µs)")


def _redis_cell(row: Row) -> str:
    extra = row.extra
    if "redis_events_per_s" not in extra:
        return "-"
    cpu = extra.get("redis_cpu_s", 0.0) / row.seconds if row.seconds else 0.0
    per_event = extra.get("redis_us_per_event")
    return (
        f"{extra['redis_events_per_s']:,.0f}/s, {cpu:.2f} CPU s/s"
        f"{'' if per_event is None else f', {per_event:.1f} µs/event'}"
    )


def _hop_lines(rows: list[Row]) -> list[str]:
    chosen = sorted(
        (r for r in rows if r.scenario == "cluster"),
        key=lambda r: (r.clients, r.extra.get("contender", r.server), r.extra.get("nodes", 0)),
    )
    if not chosen:
        return []
    lines = [
        "| server | N | same node p50 / p99 | cross node p50 / p99 | Redis hop p50 / p99 |",
        "|---|---|---|---|---|",
    ]
    for row in chosen:
        if not row.ok:
            lines.append(f"| {row.server} | {row.clients} | **failed** | | |")
            continue
        extra = row.extra
        same = f"{_ms(row.p50_ms)} / {_ms(row.p99_ms)}"
        if "same_p50_ms" in extra:
            same = f"{_ms(extra['same_p50_ms'])} / {_ms(extra['same_p99_ms'])}"
        cross = hop = "-"
        if "cross_p50_ms" in extra:
            cross = f"{_ms(extra['cross_p50_ms'])} / {_ms(extra['cross_p99_ms'])}"
        if "hop_p50_ms" in extra:
            hop = f"{extra['hop_p50_ms']:+.2f} / {extra['hop_p99_ms']:+.2f}"
        lines.append(f"| {row.server} | {row.clients} | {same} | {cross} | {hop} |")
    return lines


def _interest_lines(rows: list[Row]) -> list[str]:
    chosen = [r for r in rows if r.scenario == "cluster-interest"]
    if not chosen:
        return []
    lines = [
        "| server | N on A | deliveries/s | A µs/delivery | B CPU s | B µs per A delivery | B / A CPU "
        "| B CPU s/s: blast / quiet |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in chosen:
        extra = row.extra
        if not row.ok or "b_share_of_a" not in extra:
            lines.append(f"| {row.server} | {row.clients} | **failed** | | | | | |")
            continue
        lines.append(
            f"| {row.server} | {row.clients} | {row.rate:,.0f} | {extra['a_us_per_delivery']:.3f} | "
            f"{extra['b_cpu_s']:.3f} | {extra['b_us_per_delivery']:.3f} | {extra['b_share_of_a']:.1%} | "
            f"{extra.get('b_cpu_s_per_s', 0):.3f} / {extra['b_quiet_cpu_s_per_s']:.3f} |"
        )
    return lines


def cluster_section(rows: list[Row]) -> list[str]:
    """The summary's cluster part: CPU against alone, --cluster per message, Redis, the hop,
    interest routing, and the issue's targets against this run."""
    if not any(r.scenario in (*LOOPS, "cluster-interest") for r in rows):
        return []
    parts: list[str] = []

    def section(title: str, lines: list[str]) -> None:
        if len(lines) > 2:
            parts.extend([title, "", *lines, ""])

    section(
        "**Cluster: CPU per delivery against one server alone** — µs of CPU per delivery summed over "
        "the node processes (Redis apart), and in brackets the ratio to the same contender alone "
        f"(chatd without --cluster) in the same run; target for chatd: 2 and 4 nodes at most {RATIO_TARGET}x. "
        "ngircd's nodes are its own network, joined by server links (a star), for reference. Members are "
        "dealt in turn over the nodes; 10 senders",
        _grid(rows, _cpu_cell),
    )
    section(
        f"**--cluster on one node** — CPU µs per message with --cluster minus without (target: at most "
        f"{OVERHEAD_TARGET_US:.0f} µs), and in brackets the CPU µs one Redis round trip costs a bare Python "
        "client (an XADD, one in flight, waited on with selectors), measured before the load: the least "
        "a publish's round trip costs a Python process here (a node publishes a turn's messages at once)",
        _grid(rows, _overhead_cell, lambda r: r.extra.get("nodes") == 1),
    )
    section(
        "**Through Redis** — events per second (stream entries, XADD, Redis counted in the window: "
        "INFO commandstats; one per channel message or event for one node), Redis's own CPU "
        "seconds per second and per event",
        _grid(rows, _redis_cell, lambda r: bool(r.extra.get("nodes")) and bool(r.extra.get("judged"))),
    )
    section(
        "**The Redis hop** — closed loop, latency ms by whether the sender was on the receiver's node, "
        "and cross minus same (what the hop adds: Redis for chatd, server links for ngircd), in the same run",
        _hop_lines(rows),
    )
    section(
        "**Interest routing** — two nodes; a blast among members all on node A while node B holds only "
        "idle clients in another channel: B's CPU during the blast, per delivery on A and as a share of "
        "A's CPU (near zero with interest routing), and B's CPU per second during the blast and quiet",
        _interest_lines(rows),
    )
    verdicts = cluster_verdicts(rows)
    if verdicts:
        said = []
        if "worst_ratio" in verdicts:
            met = "met" if verdicts["ratio_met"] else "missed"
            said.append(f"worst 2+ nodes / alone {verdicts['worst_ratio']:.2f}x (target {RATIO_TARGET}x: {met})")
        if "worst_overhead_us" in verdicts:
            met = "met" if verdicts["overhead_met"] else "missed"
            said.append(
                f"worst --cluster cost {verdicts['worst_overhead_us']:+.1f} µs/message "
                f"(target {OVERHEAD_TARGET_US:.0f} µs: {met})"
            )
        parts.extend(["Targets in this run: " + "; ".join(said) + ".", ""])
    return parts
