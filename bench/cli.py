"""The ``chatd-bench`` command (also ``python -m bench``): choose, run, report."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bench import report
from bench.cluster import cluster_missing
from bench.cluster_scenarios import pair_cluster
from bench.contenders import CONTENDER_NAMES, Contender, chatd_backends, find
from bench.procstat import raise_nofile_limit
from bench.progress import Progress
from bench.scenarios import (
    ALL_SCENARIOS,
    CLUSTER_SCENARIOS,
    SCENARIOS,
    WS_SCENARIOS,
    Plan,
    Row,
    cases_for,
    pair_transports,
    run_case,
)

OPT_IN_SERVERS = ("selectors+history", "asyncio")
"""Run only when named: the history variant answers a question of its own (--servers
selectors,selectors+history), and chatd's command line no longer offers the asyncio backend."""
DEFAULT_SERVERS = tuple(name for name in CONTENDER_NAMES if name not in OPT_IN_SERVERS)
QUICK_SERVERS = ("selectors", "threads")


class _OneLineParser(argparse.ArgumentParser):
    """Bad input gives one line and exit status 2, never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _names(allowed: Sequence[str], what: str):  # type: ignore[no-untyped-def]
    def convert(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or text!r}; choose from {', '.join(allowed)}"
            )
        return names

    return convert


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not counts or any(c < 2 or c > 5000 for c in counts):
        raise argparse.ArgumentTypeError(f"each count must be between 2 and 5000, got {text!r}")
    return counts


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="chatd-bench",
        description="Benchmark chatd's backends against each other and against peer IRC servers. "
        "Every server is started on a free 127.0.0.1 port and stopped after; a run is failed "
        "when any message is lost or duplicated.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, under a minute: a correctness smoke run (selectors and threads)",
    )
    parser.add_argument(
        "--servers",
        type=_names(CONTENDER_NAMES, "server"),
        help=f"comma-separated servers from {', '.join(CONTENDER_NAMES)} (default: {', '.join(DEFAULT_SERVERS)}; "
        f"with --quick: {', '.join(QUICK_SERVERS)}); peers that are not installed are skipped",
    )
    parser.add_argument(
        "--scenarios",
        type=_names(ALL_SCENARIOS, "scenario"),
        help=f"comma-separated scenarios (default: {', '.join(ALL_SCENARIOS)}; with --quick: {', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--clients",
        type=_counts,
        help="comma-separated channel sizes for fanout, blast, pairs, ws-fanout, ws-blast and cluster "
        "(default 10,100,500,1000; cluster and cluster-interest 100, cluster-blast 100,500)",
    )
    parser.add_argument(
        "--logins",
        type=_counts,
        help="comma-separated login storm sizes for the login scenario: clients logging in at once (default 50)",
    )
    parser.add_argument(
        "--idle", type=_counts_idle, help="comma-separated idle client counts (default 1000,5000,10000)"
    )
    parser.add_argument(
        "--procs",
        type=_positive_int,
        default=1,
        help="load generator processes (default 1; more when one cannot keep up)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per closed-loop run (default 3)")
    parser.add_argument("--out", type=Path, help="directory for results.json and PNG plots")
    parser.add_argument(
        "--report", type=Path, metavar="RESULTS_JSON", help="render the table (and, with --out, plots) from a saved run"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _counts_idle(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not counts or any(c < 1 or c > 15000 for c in counts):
        raise argparse.ArgumentTypeError(f"each count must be between 1 and 15000, got {text!r}")
    return counts


def login_missing(contender: Contender) -> str:
    """Why ``contender`` cannot run the login scenario, or "" when it can."""
    if not contender.is_chatd:
        return "no accounts or SASL without services"
    if contender.backend not in chatd_backends():
        return "runs outside chatd's command line, with no account store"
    return ""


def make_plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick_plan(args.procs) if args.quick else Plan(processes=args.procs)
    changes = {}
    if args.clients:
        changes["clients"] = args.clients
        changes["cluster_clients"] = args.clients
        changes["cluster_blast_clients"] = args.clients
    if args.idle:
        changes["idle_counts"] = args.idle
    if args.logins:
        changes["login_clients"] = args.logins
    if args.duration is not None:
        changes["duration_s"] = args.duration
    if changes:
        from dataclasses import replace

        plan = replace(plan, **changes)
    return plan


def run(
    servers: Sequence[str],
    scenarios: Sequence[str],
    plan: Plan,
    progress: Progress | None = None,
) -> tuple[list[Row], dict[str, str]]:
    """Run every case on every available server; return the rows and the skipped servers.

    The cluster scenario runs only on the chatd backends that have ``--cluster``, and only
    where redis-server is installed; the others are listed as skipped for it, with the reason.
    ngircd runs it too, as its own network of linked servers (no "1 node": that is chatd's
    ``--cluster`` alone); the other peers have no network of servers and get no line.
    The WebSocket scenarios run only on chatd's own backends (``--ws-port``), likewise.
    """
    raise_nofile_limit()
    contenders = find(list(servers))
    skipped = {c.name: reason for c in contenders if (reason := c.missing())}
    runnable = [c for c in contenders if c.name not in skipped]
    cases = cases_for(list(scenarios), plan)
    no_cluster = (
        {c.name: reason for c in runnable if (reason := cluster_missing(c))}
        if set(CLUSTER_SCENARIOS) & set(scenarios)
        else {}
    )
    # Peers have no cluster mode at all: that needs no line in the report.
    chatd_names = {c.name for c in runnable if c.is_chatd}
    skipped.update({f"{name} (cluster)": why for name, why in no_cluster.items() if name in chatd_names})
    # Logging in needs chatd's accounts: the peers have none without services, so they get no line.
    no_login = {c.name: login_missing(c) for c in runnable if login_missing(c)} if "login" in scenarios else {}
    skipped.update({f"{name} (login)": why for name, why in no_login.items() if name in chatd_names})
    wants_ws = bool(set(WS_SCENARIOS) & set(scenarios))
    no_ws = {c.name: c.websocket_missing for c in runnable if c.websocket_missing} if wants_ws else {}
    skipped.update({f"{name} (ws)": why for name, why in no_ws.items()})
    work = [
        (case, contender)
        for case in cases
        for contender in runnable
        if not (case.scenario in CLUSTER_SCENARIOS and contender.name in no_cluster)
        and not (case.scenario in CLUSTER_SCENARIOS and case.nodes == 1 and not contender.is_chatd)
        and not (case.scenario == "login" and contender.name in no_login)
        and not (case.scenario in WS_SCENARIOS and contender.name in no_ws)
    ]
    total = len(work)
    rows: list[Row] = []
    if progress:
        progress.start(total)
    for case, contender in work:
        if progress:
            nodes = f" nodes={case.nodes}" if case.scenario in CLUSTER_SCENARIOS else ""
            nodes += f" {case.transport}" if case.scenario in WS_SCENARIOS else ""
            progress.step(f"{case.scenario} N={case.clients}{nodes} {contender.name}")
        rows.append(run_case(contender, case, plan))
    pair_transports(rows)
    pair_cluster(rows)
    if progress:
        progress.finish()
    return rows, skipped


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["soak"]:
        from bench.soak import main as soak_main

        return soak_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    if args.duration is not None and not 0.1 <= args.duration <= 120:
        build_parser().error("argument --duration: must be between 0.1 and 120 seconds")
    plan = make_plan(args)
    servers = args.servers or (QUICK_SERVERS if args.quick else DEFAULT_SERVERS)
    scenarios = args.scenarios or (SCENARIOS if args.quick else ALL_SCENARIOS)
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"chatd-bench: cannot create {args.out}: {error.strerror}", file=sys.stderr)
            return 2
    # SIGTERM unwinds like Ctrl-C, so every started server is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    progress = None if args.no_progress else Progress(sys.stderr)
    started = time.monotonic()
    if args.report is not None:
        try:
            rows, skipped = report.read_json(args.report)
        except (OSError, ValueError) as error:
            print(f"chatd-bench: cannot read {args.report}: {error}", file=sys.stderr)
            return 2
        print(report.table(rows, skipped))
    else:
        try:
            rows, skipped = run(servers, scenarios, plan, progress)
        except KeyboardInterrupt:
            print("chatd-bench: interrupted", file=sys.stderr)
            return 130
        print(report.table(rows, skipped))
        print(
            f"\n{len(rows)} runs in {time.monotonic() - started:.0f}s on {report.machine()['cpus']} CPUs"
            f"{' (quick: correctness only)' if plan.quick else ''}"
        )
    if args.out is not None:
        if args.report is None:
            settings = {"plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__}}
            report.write_json(args.out / "results.json", rows, skipped, settings)
            print(f"wrote {args.out / 'results.json'}")
        (args.out / "summary.md").write_text(report.summary(rows, skipped) + "\n")
        print(f"wrote {args.out / 'summary.md'}")
        for path in report.write_plots(args.out, rows):
            print(f"wrote {path}")
    return 0 if all(row.ok for row in rows) else 1
