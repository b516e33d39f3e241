"""The scenarios: what load each one applies, and how a run is judged.

One case is one (scenario, size) against one freshly started server, so memory and
CPU figures never carry over from an earlier case. A case passes only when every
message was delivered exactly once; its speed is reported whatever the verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from bench import procstat
from bench.cluster import ClusterServers
from bench.cluster_scenarios import run_cluster, run_interest
from bench.contenders import Contender, RunningServer
from bench.driver import Generator
from bench.fanout import CHANNEL, Row, cpu, fill, percentile, run_fanout, setup, split
from bench.linked import LinkedNgircd
from bench.login import GOAL_P99_MS, run_login, run_queue_s, seed_accounts

__all__ = ["CHANNEL", "Row", "percentile", "run_fanout"]

SCENARIOS = ("fanout", "blast", "pairs", "idle", "slow")
"""What ``--quick`` (and CI) runs."""
CLUSTER_SCENARIOS = ("cluster", "cluster-blast", "cluster-interest")
"""The fan-out over 1, 2 and 4 nodes sharing Redis, beside one chatd alone: closed loop (latency,
same vs cross node) and blast (deliveries/s and CPU per delivery at full load); and a blast on
one node of two while the other holds only another channel's idle clients (interest routing)."""
LOGIN_SCENARIOS = ("login",)
"""A storm of SASL PLAIN logins beside a two-client conversation (chatd only: the peers have
no accounts without services); its figures are the conversation's p99 with and without it."""
WS_SCENARIOS = ("ws-fanout", "ws-blast")
"""The fan-out (closed loop, and blast) run twice on a chatd listening with --ws-port: every
member over TCP, then every member over WebSocket (binary.ircv3.net, one line per message);
the WebSocket row carries its server CPU per delivery over the TCP row's (``ws_tcp_ratio``)."""
TRANSPORTS = ("tcp", "ws")
ALL_SCENARIOS = (*SCENARIOS, *CLUSTER_SCENARIOS, *LOGIN_SCENARIOS, *WS_SCENARIOS)
"""Every scenario; the cluster ones need redis-server and start several processes, the
login one hashes passwords for seconds, and the WebSocket ones repeat the fan-out, so they
stay out of the quick run."""
SENDERS = 10
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
    cluster_clients: tuple[int, ...] = (100,)
    """Sizes of the cluster closed loop (and of cluster-interest's blast on node A)."""
    cluster_blast_clients: tuple[int, ...] = (100, 500)
    cluster_nodes: tuple[int, ...] = (0, 1, 2, 4)
    """Node counts of the cluster scenarios; 0 is one chatd without --cluster, the baseline."""
    cluster_blast_deliveries: int = 1_000_000
    """A cluster blast's total: a third of the single-server blast's, so that 13 cases per backend
    (threads delivers some 0.2 M/s) fit in minutes."""
    interest_idle: int = 20
    """cluster-interest: idle clients on node B, in a channel of their own."""
    interest_quiet_s: float = 1.0
    """cluster-interest: how long node B's CPU is read with no load, before the blast."""
    login_clients: tuple[int, ...] = (50,)
    """Sizes of the login storm: clients that log in at once."""
    login_timeout_s: float = 60.0

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
            cluster_clients=(20,),
            cluster_blast_clients=(20,),
            cluster_nodes=(0, 1, 2),
            cluster_blast_deliveries=20_000,
            interest_idle=5,
            interest_quiet_s=0.2,
            login_clients=(20,),
            login_timeout_s=30.0,
        )


@dataclass(frozen=True, slots=True)
class Case:
    scenario: str
    clients: int
    sendq_bytes: int = DEFAULT_SENDQ_BYTES
    nodes: int = 0
    """Cluster scenario only: chatd nodes sharing one Redis, or ngircd servers joined by server
    links (0: one server alone, for chatd without --cluster)."""
    transport: str = "tcp"
    """WebSocket scenarios only: how every member connects, ``tcp`` or ``ws``."""


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
        elif scenario == "cluster":
            cases += [
                Case(scenario, n, DEFAULT_SENDQ_BYTES, k) for n in plan.cluster_clients for k in plan.cluster_nodes
            ]
        elif scenario == "cluster-blast":
            sizes = plan.cluster_blast_clients
            cases += [Case(scenario, n, BLAST_SENDQ_BYTES, k) for n in sizes for k in plan.cluster_nodes]
        elif scenario == "cluster-interest":
            cases += [Case(scenario, n, BLAST_SENDQ_BYTES, 2) for n in plan.cluster_clients]
        elif scenario == "login":
            cases += [Case("login", n) for n in plan.login_clients]
        elif scenario in WS_SCENARIOS:
            sendq = BLAST_SENDQ_BYTES if scenario == "ws-blast" else DEFAULT_SENDQ_BYTES
            cases += [Case(scenario, n, sendq, transport=t) for n in plan.clients for t in TRANSPORTS]
    return cases


def server_label(contender: Contender, case: Case) -> str:
    """The row's server column: the contender, and for the cluster scenario how many nodes
    (for the WebSocket ones, how its clients connect)."""
    if case.scenario in WS_SCENARIOS:
        return f"{contender.name} {case.transport}"
    if case.scenario not in CLUSTER_SCENARIOS:
        return contender.name
    if case.scenario == "cluster-interest":
        return f"{contender.name} 2 nodes, all on A"
    if case.nodes == 0:
        return f"{contender.name} alone"
    return f"{contender.name} {case.nodes} node{'s' if case.nodes > 1 else ''}"


def run_case(contender: Contender, case: Case, plan: Plan) -> Row:
    """Start the server, apply the load, judge the deliveries, stop the server."""
    settings = contender.settings(case.sendq_bytes)
    if case.scenario in CLUSTER_SCENARIOS and case.nodes:
        nodes = f"{case.nodes} node{'s' if case.nodes > 1 else ''}"
        if contender.is_chatd:
            settings = f"{settings}, {nodes} with --cluster (redis-server --save '' --appendonly no)"
        else:
            settings = f"{settings}, {nodes} joined by server links (a star: node 0 and one link to each other)"
    if case.scenario == "login":
        # The accounts live in the server's own database: a chatd keeping its store on disk.
        contender = replace(contender, history=True)
        settings = f"{contender.settings(case.sendq_bytes)}, {case.clients} accounts in its store"
    if case.scenario in WS_SCENARIOS:
        over = "TCP" if case.transport == "tcp" else "WebSocket (binary.ircv3.net, one line per message)"
        settings = f"{settings}, --ws-port; every member over {over}"
    row = Row(case.scenario, server_label(contender, case), case.clients, settings)
    server: RunningServer | ClusterServers | LinkedNgircd | None = None
    try:
        if case.scenario == "login":
            server = RunningServer(contender, case.sendq_bytes, seed=lambda path: seed_accounts(path, case.clients))
            server.wait_ready()
            _login(server, case, plan, row)
            return row
        if case.scenario in CLUSTER_SCENARIOS and case.nodes and not contender.is_chatd:
            server = LinkedNgircd(contender, case.sendq_bytes, case.nodes)
        elif case.scenario in CLUSTER_SCENARIOS and case.nodes:
            server = ClusterServers(contender, case.sendq_bytes, case.nodes)
        else:
            server = RunningServer(contender, case.sendq_bytes, websocket=case.scenario in WS_SCENARIOS)
        server.wait_ready()
        processes = max(1, min(plan.processes, case.clients // 20 or 1))
        with Generator(server.addresses, processes) as generator:
            generator.connect_window = contender.connect_window
            if case.scenario in ("fanout", "blast", "slow"):
                _fanout(server, generator, case, plan, row)
            elif case.scenario == "pairs":
                _pairs(server, generator, case, plan, row)
            elif case.scenario == "idle":
                _idle(server, generator, case, plan, row)
            elif case.scenario == "cluster-interest":
                assert isinstance(server, ClusterServers | LinkedNgircd)
                run_interest(server, generator, case, plan, row)
            elif case.scenario in CLUSTER_SCENARIOS:
                run_cluster(server, generator, case, plan, row)
            elif case.scenario in WS_SCENARIOS:
                assert isinstance(server, RunningServer)
                _websocket(server, generator, case, plan, row)
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


def _websocket(server: RunningServer, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    """The fan-out (closed loop, or blast) with every member on ``case.transport``."""
    run_fanout(
        server,
        generator,
        plan,
        row,
        members=case.clients,
        senders=min(SENDERS, case.clients),
        mode="blast" if case.scenario == "ws-blast" else "closed",
        window=plan.window,
        duration_s=plan.duration_s,
        ws_address=server.ws_address if case.transport == "ws" else None,
    )
    row.extra["transport"] = case.transport
    if row.deliveries:
        row.extra["gen_us_per_delivery"] = row.gen_cpu_s / row.deliveries * 1e6


def pair_transports(rows: list[Row]) -> None:
    """Give each WebSocket row its TCP twin's CPU per delivery and the ratio WebSocket / TCP
    (same scenario, server and size; both runs must have passed)."""
    tcp = {
        (row.scenario, row.server.removesuffix(" tcp"), row.clients): row
        for row in rows
        if row.scenario in WS_SCENARIOS and row.extra.get("transport") == "tcp"
    }
    for row in rows:
        if row.scenario not in WS_SCENARIOS or row.extra.get("transport") != "ws":
            continue
        twin = tcp.get((row.scenario, row.server.removesuffix(" ws"), row.clients))
        if twin is None or not (row.ok and twin.ok) or not (row.cpu_us_per_delivery and twin.cpu_us_per_delivery):
            continue
        row.extra["tcp_cpu_us_per_delivery"] = twin.cpu_us_per_delivery
        row.extra["ws_tcp_ratio"] = row.cpu_us_per_delivery / twin.cpu_us_per_delivery


def _pairs(server: RunningServer, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    pairs = max(1, case.clients // 2)
    workers = len(generator.pipes)
    shares = split(pairs, workers)
    for worker_id, share in enumerate(shares):
        if share:
            groups = [[f"a{worker_id}x", share, None, "pair-a"], [f"b{worker_id}x", share, None, "pair-b"]]
            setup(generator, worker_id, groups, plan)
    active = [w for w, share in enumerate(shares) if share]
    cpu_before = cpu(server.pids)
    for worker_id in active:
        generator.send(worker_id, "start", mode="pairs", duration_s=plan.duration_s)
    done = generator.collect(active, "done", plan.duration_s + plan.drain_timeout_s + 30)
    cpu_after = cpu(server.pids)
    round_trips = sum(d["round_trips"] for d in done)
    fill(row, done, cpu_after - cpu_before, server.pids, expected=2 * round_trips)
    row.extra["round_trips_per_s"] = round_trips / row.seconds if row.seconds else 0.0
    row.senders = pairs


def _idle(server: RunningServer, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    rss_before = procstat.rss_bytes(server.pid)
    workers = len(generator.pipes)
    shares = split(case.clients, workers)
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


def _login(server: RunningServer, case: Case, plan: Plan, row: Row) -> None:
    """The control conversation alone, then during the storm; the row's latencies are the storm's.

    ``rate`` is logins per second over the storm (first connect to last 001); ``deliveries``
    counts the control's messages, each checked exactly-once. Missing the 50 ms goal is
    reported, not failed: like every speed here, it depends on the machine.
    """
    run = run_login(
        server.address,
        case.clients,
        plan.duration_s,
        plan.login_timeout_s,
        lambda: cpu(server.pids),
        lambda: run_queue_s(server.pids),
    )
    row.server_cpu_s = run.storm_cpu_s
    row.rss_mib = procstat.rss_bytes(server.pid) / (1 << 20)
    alone = sorted(rtt for sent, rtt in run.control if sent < run.storm_from_ns)
    during = sorted(rtt for sent, rtt in run.control if run.storm_from_ns <= sent <= run.storm_until_ns)
    login_ns = sorted(done - started for started, done in run.logins)
    row.senders, row.window = 1, 1
    row.deliveries = row.expected = 2 * len(run.control)
    row.seconds = (run.storm_until_ns - run.storm_from_ns) / 1e9
    row.rate = len(run.logins) / row.seconds if row.seconds > 0 else 0.0
    if during:
        row.p50_ms, row.p99_ms, row.max_ms = percentile(during, 0.5), percentile(during, 0.99), during[-1] / 1e6
    extra = row.extra
    extra.update(logins=len(run.logins), login_failures=len(run.failures), logins_per_s=row.rate)
    extra.update(alone_samples=len(alone), storm_samples=len(during), goal_p99_ms=GOAL_P99_MS)
    if alone:
        extra.update(alone_p50_ms=percentile(alone, 0.5), alone_p99_ms=percentile(alone, 0.99))
    if login_ns:
        extra.update(login_p50_ms=percentile(login_ns, 0.5), login_p99_ms=percentile(login_ns, 0.99))
    if run.logins:
        extra["server_cpu_ms_per_login"] = row.server_cpu_s / len(run.logins) * 1e3
        extra["server_wait_ms_per_login"] = run.storm_wait_s / len(run.logins) * 1e3
    extra["goal_met"] = row.p99_ms is not None and row.p99_ms <= GOAL_P99_MS
    if run.failures:
        row.fail(f"{len(run.failures)} of {case.clients} logins failed: " + "; ".join(run.failures[:3]))
    if run.control_errors:
        row.fail("control conversation: " + "; ".join(run.control_errors[:3]))
    if not during:
        row.fail("no control round trip completed during the storm")
