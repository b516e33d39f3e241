"""The cluster scenarios' load and the figures the network is judged by.

- ``cluster`` / ``cluster-blast``: the fan-out (closed loop, blast) with its members dealt in
  turn over 0 (one chatd without ``--cluster``: "alone"), 1, 2 or 4 nodes sharing one Redis.
- ``cluster-interest``: two nodes; a blast among members all on node A while node B holds
  only idle clients of another channel. What B spends meanwhile is what a node pays for
  traffic it has no member for: near zero with interest routing, the full decode-and-drop
  of every event without it.

The side-by-side figures (``pair_cluster``) come from rows of one run: each node count's CPU
per delivery over its "alone" twin (same contender, scenario and size), ``--cluster``'s cost
per message on one node, and the Redis hop (cross-node minus same-node latency, same row).

Invariant: every figure is a measurement reported as it came out; nothing here fails a row
for being slow. A row fails only on a lost, duplicated or reordered message.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench import procstat
from bench.fanout import Row, run_fanout, setup
from bench.linked import LinkedNgircd

if TYPE_CHECKING:
    from bench.cluster import ClusterServers
    from bench.contenders import RunningServer
    from bench.driver import Generator
    from bench.scenarios import Case, Plan

RATIO_TARGET = 1.5
"""Issue 16: 2 and 4 nodes cost at most 1.5x one chatd alone's CPU per delivery."""
OVERHEAD_TARGET_US = 20.0
"""Issue 16: ``--cluster`` on one node adds at most 20 µs of CPU per message."""
OTHER_CHANNEL = "#elsewhere"
"""Node B's idle clients' channel in ``cluster-interest``: one the blast never touches."""
SENDERS = 10


def run_cluster(
    server: RunningServer | ClusterServers | LinkedNgircd, generator: Generator, case: Case, plan: Plan, row: Row
) -> None:
    """The fan-out (closed loop, or blast) with its members spread evenly over the nodes."""
    blast = case.scenario == "cluster-blast"
    redis = getattr(server, "redis", None)
    if case.nodes == 1 and redis is not None:  # beside --cluster's cost: a bare round trip, before the load
        row.extra["redis_round_trip_us"] = redis.round_trip_cpu_us()
    _fanout_over_nodes(server, generator, case, plan, row, blast=blast, nodes=max(1, case.nodes))
    extra = row.extra
    extra["nodes"] = case.nodes
    if not blast and extra.get("same_samples") and extra.get("cross_samples"):  # a blast's latency is queueing
        extra["hop_p50_ms"] = extra["cross_p50_ms"] - extra["same_p50_ms"]
        extra["hop_p99_ms"] = extra["cross_p99_ms"] - extra["same_p99_ms"]


def run_interest(server: ClusterServers | LinkedNgircd, generator: Generator, case: Case, plan: Plan, row: Row) -> None:
    """Node B's idle clients in their own channel, B's CPU over a quiet window, then the blast
    among members all on node A; fills B's share of the work it had no member for."""
    setup(generator, 0, [["b", plan.interest_idle, OTHER_CHANNEL, "idle", 1, 2, 0]], plan)
    node_b = server.pids[1]
    quiet_started, quiet_cpu = time.monotonic(), procstat.cpu_seconds(node_b)
    time.sleep(plan.interest_quiet_s)  # a measuring window, not a wait for a condition
    quiet_cpu_per_s = (procstat.cpu_seconds(node_b) - quiet_cpu) / (time.monotonic() - quiet_started)
    _fanout_over_nodes(server, generator, case, plan, row, blast=True, nodes=None)
    extra = row.extra
    extra["nodes"] = 2
    extra["b_idle_clients"] = plan.interest_idle
    extra["b_quiet_cpu_s_per_s"] = quiet_cpu_per_s
    a_cpu, b_cpu = extra["node_cpu_s"]
    extra["a_cpu_s"], extra["b_cpu_s"] = a_cpu, b_cpu
    if row.deliveries:
        extra["a_us_per_delivery"] = a_cpu / row.deliveries * 1e6
        extra["b_us_per_delivery"] = b_cpu / row.deliveries * 1e6
    if a_cpu > 0:
        extra["b_share_of_a"] = b_cpu / a_cpu
    if row.seconds > 0:
        extra["b_cpu_s_per_s"] = b_cpu / row.seconds


def _fanout_over_nodes(
    server: RunningServer | ClusterServers | LinkedNgircd, generator: Generator, case: Case, plan: Plan, row: Row, *,
    blast: bool, nodes: int | None,
) -> None:  # fmt: skip
    """``run_fanout`` as both cluster scenarios run it (``nodes``: members dealt over that many
    nodes; None: all on the first), and what every cluster row says of its server."""
    run_fanout(
        server,
        generator,
        plan,
        row,
        members=case.clients,
        senders=min(SENDERS, case.clients),
        mode="blast" if blast else "closed",
        window=plan.window,
        duration_s=plan.duration_s,
        nodes=nodes,
        deliveries=plan.cluster_blast_deliveries,
    )
    row.extra["contender"] = server.contender.name
    if server.contender.is_chatd:
        row.extra["judged"] = True  # the targets are chatd's; ngircd's rows are the reference
    _explain_losses(server, row)


def _explain_losses(server: RunningServer | ClusterServers | LinkedNgircd, row: Row) -> None:
    """A row that lost messages says what Redis logged about the clients it closed meanwhile,
    and what each node logged (warnings and worse: the bench runs them at --log-level warning);
    for linked ngircd, what the servers logged about the links they lost."""
    if row.ok:
        return
    if isinstance(server, LinkedNgircd):
        if said := server.warnings():
            row.fail("ngircd logged: " + "; ".join(said))
        return
    redis = getattr(server, "redis", None)
    if redis is None:
        return
    if said := redis.warnings():
        row.fail("redis-server logged: " + "; ".join(said))
    for index, node in enumerate(getattr(server, "nodes", [])):
        if tail := node.log_tail():
            row.fail(f"node {index} logged: {tail}")


def pair_cluster(rows: list[Row]) -> None:
    """Give each ``cluster``/``cluster-blast`` row with ``--cluster`` its "alone" twin's CPU per
    delivery and the ratio to it, and the 1-node rows ``--cluster``'s µs per message (CPU per
    message with it minus without). Both rows must have passed."""
    alone = {
        (row.scenario, row.extra.get("contender"), row.clients): row
        for row in rows
        if row.scenario in ("cluster", "cluster-blast") and row.extra.get("nodes") == 0 and row.ok
    }
    for row in rows:
        if row.scenario not in ("cluster", "cluster-blast") or not row.extra.get("nodes") or not row.ok:
            continue
        twin = alone.get((row.scenario, row.extra.get("contender"), row.clients))
        if twin is None or not (twin.cpu_us_per_delivery and row.cpu_us_per_delivery):
            continue
        row.extra["alone_cpu_us_per_delivery"] = twin.cpu_us_per_delivery
        row.extra["alone_ratio"] = row.cpu_us_per_delivery / twin.cpu_us_per_delivery
        if row.extra["nodes"] == 1 and row.extra.get("messages") and twin.extra.get("messages"):
            per_message = row.server_cpu_s / row.extra["messages"] - twin.server_cpu_s / twin.extra["messages"]
            row.extra["cluster_us_per_message"] = per_message * 1e6


def cluster_verdicts(rows: list[Row]) -> dict[str, Any]:
    """The issue's targets against this run's rows: the worst ratio of 2+ nodes to alone, the
    worst ``--cluster`` cost per message, each with whether it is within the target."""
    judged = [r for r in rows if r.extra.get("judged")]
    ratios = [r.extra["alone_ratio"] for r in judged if r.extra.get("nodes", 0) >= 2 and "alone_ratio" in r.extra]
    overheads = [r.extra["cluster_us_per_message"] for r in judged if "cluster_us_per_message" in r.extra]
    verdicts: dict[str, Any] = {}
    if ratios:
        verdicts["worst_ratio"] = max(ratios)
        verdicts["ratio_met"] = max(ratios) <= RATIO_TARGET
    if overheads:
        verdicts["worst_overhead_us"] = max(overheads)
        verdicts["overhead_met"] = max(overheads) <= OVERHEAD_TARGET_US
    return verdicts
