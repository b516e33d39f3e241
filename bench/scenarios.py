"""The scenarios: what load each one applies, and how a run is judged.

One case is one (scenario, size) against one freshly started server, so memory and
CPU figures never carry over from an earlier case. A case passes only when every
message was delivered exactly once; its speed is reported whatever the verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench import procstat
from bench.contenders import Contender, RunningServer
from bench.driver import Generator, GeneratorError

SCENARIOS = ("fanout", "blast", "pairs", "idle", "slow")
SENDERS = 10
CHANNEL = "#bench"
DEFAULT_SENDQ_BYTES = 1 << 20
BLAST_SENDQ_BYTES = 64 << 20
SLOW_PAD_BYTES = 400
SLOW_WINDOW = 8
CONVERSATION_MEMBERS = 10
CONVERSATION_SENDERS = 2


@dataclass(frozen=True, slots=True)
class Plan:
    """The knobs of one bench run; ``quick`` shrinks every size and duration."""

    quick: bool = False
    clients: tuple[int, ...] = (10, 100, 500, 1000)
    idle_counts: tuple[int, ...] = (1000, 5000, 10000)
    processes: int = 1
    duration_s: float = 3.0
    window: int = 1
    blast_deliveries: int = 3_000_000
    slow_clients: int = 100
    slow_duration_s: float = 6.0
    slow_grace_s: float = 10.0
    """With a slow consumer, the load goes on past the duration until it is cut, at most this long."""
    drain_timeout_s: float = 40.0
    setup_timeout_s: float = 120.0

    @classmethod
    def quick_plan(cls, processes: int = 1) -> Plan:
        return cls(
            quick=True,
            clients=(10, 50),
            idle_counts=(300,),
            processes=processes,
            duration_s=0.5,
            blast_deliveries=20_000,
            slow_clients=20,
            slow_duration_s=1.5,
            drain_timeout_s=15.0,
            setup_timeout_s=20.0,
        )


@dataclass(frozen=True, slots=True)
class Case:
    scenario: str
    clients: int
    sendq_bytes: int = DEFAULT_SENDQ_BYTES


@dataclass
class Row:
    """One line of the results table (and one object in results.json)."""

    scenario: str
    server: str
    clients: int
    settings: str
    ok: bool = True
    problem: str = ""
    senders: int = 0
    window: int = 0
    deliveries: int = 0
    expected: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    server_cpu_s: float = 0.0
    cpu_us_per_delivery: float | None = None
    gen_cpu_s: float = 0.0
    rss_mib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problem = f"{self.problem}; {problem}" if self.problem else problem


def cases_for(scenarios: list[str], plan: Plan) -> list[Case]:
    cases: list[Case] = []
    for scenario in scenarios:
        if scenario == "fanout":
            cases += [Case("fanout", n) for n in plan.clients]
        elif scenario == "blast":
            cases += [Case("blast", n, BLAST_SENDQ_BYTES) for n in plan.clients]
        elif scenario == "pairs":
            cases += [Case("pairs", max(2, n)) for n in plan.clients]
        elif scenario == "idle":
            cases += [Case("idle", n) for n in plan.idle_counts]
        elif scenario == "slow":
            sendq = 64 << 10 if plan.quick else DEFAULT_SENDQ_BYTES
            cases.append(Case("slow", plan.slow_clients, sendq))
    return cases


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index] / 1e6


def run_case(contender: Contender, case: Case, plan: Plan) -> Row:
    """Start the server, apply the load, judge the deliveries, stop the server."""
    row = Row(case.scenario, contender.name, case.clients, contender.settings(case.sendq_bytes))
    server: RunningServer | None = None
    try:
        server = RunningServer(contender, case.sendq_bytes)
        server.wait_ready()
        processes = max(1, min(plan.processes, case.clients // 20 or 1))
        with Generator(server.address, processes) as generator:
            generator.connect_window = contender.connect_window
            if case.scenario in ("fanout", "blast", "slow"):
                _fanout(server, generator, case, plan, row)
            elif case.scenario == "pairs":
                _pairs(server, generator, case, plan, row)
            elif case.scenario == "idle":
                _idle(server, generator, case, plan, row)
            else:
                raise ValueError(f"unknown scenario {case.scenario!r}")
    except (RuntimeError, OSError) as error:
        row.fail(str(error))
    finally:
        if server is not None:
            if not server.alive():
                row.fail(f"server died: {server.log_tail()}")
            server.stop()
    return row


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _setup(generator: Generator, worker_id: int, groups: list[list[Any]], plan: Plan) -> dict[str, Any]:
    generator.send(
        worker_id, "setup", groups=groups, timeout_s=plan.setup_timeout_s, connect_window=generator.connect_window
    )
    reply = generator.collect([worker_id], "ready", plan.setup_timeout_s + 30)[0]
    if "error" in reply:
        raise GeneratorError(f"setup: {reply['error']}")
    return reply


def _fanout(server: RunningServer, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    n = case.clients
    mode = "blast" if case.scenario == "blast" else "closed"
    window = SLOW_WINDOW if case.scenario == "slow" else plan.window
    duration = plan.slow_duration_s if case.scenario == "slow" else plan.duration_s
    stats = run_fanout(
        server,
        generator,
        plan,
        row,
        members=n,
        senders=min(SENDERS, n),
        mode=mode,
        window=window,
        duration_s=duration,
        pad=SLOW_PAD_BYTES if case.scenario == "slow" else 0,
        slow=case.scenario == "slow",
    )
    if case.scenario == "slow":
        row.extra["slow_cut"] = stats["slow_cut"]
        if server.contender.has_sendq and not stats["slow_cut"]:
            row.fail("the slow consumer was not cut at its sendq")


def run_fanout(
    server: RunningServer,
    generator: Generator,
    plan: Plan,
    row: Row,
    *,
    members: int,
    senders: int,
    mode: str,
    window: int,
    duration_s: float,
    pad: int = 0,
    slow: bool = False,
    prefix: str = "",
) -> dict[str, Any]:
    """N members in one channel, ``senders`` of them sending; fills ``row`` with the figures."""
    workers = len(generator.pipes)
    final_is_sender = members == senders
    head_senders = senders - 1 if final_is_sender else senders
    rest = members - senders - (0 if final_is_sender else 1)
    shares = _split(rest, workers) if workers > 1 else [rest]
    # Other workers' members join first; worker 0 (the senders and the acknowledging
    # last member, which the server serves last) joins after them.
    for worker_id in range(1, workers):
        if shares[worker_id]:
            _setup(generator, worker_id, [[f"{prefix}r{worker_id}x", shares[worker_id], CHANNEL, "recv"]], plan)
    groups: list[list[Any]] = []
    if slow:
        groups.append([f"{prefix}slow", 1, CHANNEL, "slow"])
    groups.append([f"{prefix}s", head_senders, CHANNEL, "recv"])
    if shares[0]:
        groups.append([f"{prefix}r0x", shares[0], CHANNEL, "recv"])
    _setup(generator, 0, groups, plan)
    _setup(generator, 0, [[f"{prefix}z", 1, CHANNEL, "recv"]], plan)
    sender_ids = [[sid, f"{prefix}s{sid}"] for sid in range(head_senders)]
    if final_is_sender:
        sender_ids.append([senders - 1, f"{prefix}z0"])
    count = max(20, plan.blast_deliveries // max(1, senders * (members - 1)))
    everyone = list(range(workers))

    cpu_before = procstat.cpu_seconds(server.pid)
    for worker_id in everyone:
        generator.send(
            worker_id,
            "start",
            mode=mode,
            senders=senders,
            sender_ids=sender_ids if worker_id == 0 else [],
            window=window,
            duration_s=duration_s,
            count=count,
            pad=pad,
            slow_grace_s=plan.slow_grace_s,
        )
    sent_replies = generator.collect(everyone, "sent", duration_s + plan.drain_timeout_s + 60)
    sent = sent_replies[0]["sent"]
    for worker_id in everyone:
        generator.send(worker_id, "expect", sent=sent, timeout_s=plan.drain_timeout_s)
    done = generator.collect(everyone, "done", plan.drain_timeout_s + 30)
    cpu_after = procstat.cpu_seconds(server.pid)

    expected = sum(total for _, total in sent) * (members - 1)
    _fill(row, done, cpu_after - cpu_before, server.pid, expected)
    row.senders, row.window = senders, window if mode == "closed" else 0
    return {"slow_cut": done[0]["slow_cut"]}


def _fill(row: Row, done: list[dict[str, Any]], server_cpu_s: float, pid: int, expected: int) -> None:
    deliveries = sum(d["deliveries"] for d in done)
    dups = sum(d["dups"] for d in done)
    gaps = sum(d["gaps"] for d in done)
    missing = sum(d["missing"] for d in done)
    lost_clients = sum(d["lost_clients"] for d in done)
    latencies = sorted(v for d in done for v in d["latencies_ns"])
    seconds = (max(d["last_ns"] for d in done) - min(d["first_ns"] for d in done)) / 1e9
    row.deliveries, row.expected = deliveries, expected
    row.seconds = seconds
    row.rate = deliveries / seconds if seconds > 0 else 0.0
    if latencies:
        row.p50_ms = percentile(latencies, 0.50)
        row.p99_ms = percentile(latencies, 0.99)
        row.max_ms = latencies[-1] / 1e6
    row.server_cpu_s = server_cpu_s
    row.cpu_us_per_delivery = server_cpu_s / deliveries * 1e6 if deliveries else None
    row.gen_cpu_s = sum(d["cpu_s"] for d in done)
    row.rss_mib = procstat.rss_bytes(pid) / (1 << 20)
    if dups or gaps or missing or deliveries != expected:
        row.fail(f"delivery: {deliveries} of {expected} expected, {dups} duplicated, {gaps} skipped, {missing} missing")
    if lost_clients:
        row.fail(f"{lost_clients} receiving clients were disconnected")
    errors = [e for d in done for e in d["errors"]]
    if errors:
        row.fail("generator saw: " + "; ".join(errors[:3]))


def _pairs(server: RunningServer, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    pairs = max(1, case.clients // 2)
    workers = len(generator.pipes)
    shares = _split(pairs, workers)
    for worker_id, share in enumerate(shares):
        if share:
            groups = [[f"a{worker_id}x", share, None, "pair-a"], [f"b{worker_id}x", share, None, "pair-b"]]
            _setup(generator, worker_id, groups, plan)
    active = [w for w, share in enumerate(shares) if share]
    cpu_before = procstat.cpu_seconds(server.pid)
    for worker_id in active:
        generator.send(worker_id, "start", mode="pairs", duration_s=plan.duration_s)
    done = generator.collect(active, "done", plan.duration_s + plan.drain_timeout_s + 30)
    cpu_after = procstat.cpu_seconds(server.pid)
    round_trips = sum(d["round_trips"] for d in done)
    _fill(row, done, cpu_after - cpu_before, server.pid, expected=2 * round_trips)
    row.extra["round_trips_per_s"] = round_trips / row.seconds if row.seconds else 0.0
    row.senders = pairs


def _idle(server: RunningServer, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    rss_before = procstat.rss_bytes(server.pid)
    workers = len(generator.pipes)
    shares = _split(case.clients, workers)
    started = time.monotonic()
    for worker_id, share in enumerate(shares):
        if share:
            generator.send(
                worker_id,
                "setup",
                groups=[[f"i{worker_id}x", share, None, "idle"]],
                timeout_s=plan.setup_timeout_s,
                connect_window=generator.connect_window,
            )
    active = [w for w, share in enumerate(shares) if share]
    replies = generator.collect(active, "ready", plan.setup_timeout_s + 30)
    register_s = time.monotonic() - started
    ready = sum(r["clients"] for r in replies)
    row.extra["register_s"] = register_s
    row.extra["registered"] = ready
    problems = [r["error"] for r in replies if "error" in r]
    if problems or not server.alive():
        row.fail(f"registered {ready} of {case.clients}: " + "; ".join(problems))
        return
    rss_after = procstat.rss_bytes(server.pid)
    row.extra["rss_per_conn_kib"] = (rss_after - rss_before) / case.clients / 1024
    row.extra["threads"] = procstat.thread_count(server.pid)
    run_fanout(
        server,
        generator,
        plan,
        row,
        members=CONVERSATION_MEMBERS,
        senders=CONVERSATION_SENDERS,
        mode="closed",
        window=1,
        duration_s=min(plan.duration_s, 2.0),
        prefix="t",
    )
