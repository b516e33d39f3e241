"""The fan-out every channel scenario is made of, and the row it fills.

N members in one channel, some of them sending (closed loop or blast); each delivery is
checked exactly-once by the generator, and the server's CPU is read from /proc around the
measured window. The cluster scenarios use the same load with their members placed on
chosen nodes; for them the window also brackets Redis's command counters.

Invariant: a row is failed whenever any message was lost, duplicated or reordered, whatever
its speed figures say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench import procstat
from bench.cluster import PUSH_COMMANDS, ClusterServers
from bench.driver import Generator, GeneratorError

if TYPE_CHECKING:
    from bench.contenders import RunningServer
    from bench.linked import LinkedNgircd
    from bench.scenarios import Plan

CHANNEL = "#bench"


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


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index] / 1e6


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def setup(
    generator: Generator,
    worker_id: int,
    groups: list[list[Any]],
    plan: Plan,
    ws_address: tuple[str, int] | None = None,
    deliveries: int | None = None,
) -> dict[str, Any]:
    generator.send(
        worker_id,
        "setup",
        groups=groups,
        timeout_s=plan.setup_timeout_s,
        connect_window=generator.connect_window,
        ws_address=ws_address,
    )
    reply = generator.collect([worker_id], "ready", plan.setup_timeout_s + 30)[0]
    if "error" in reply:
        raise GeneratorError(f"setup: {reply['error']}")
    return reply


def cpu(pids: list[int]) -> float:
    return sum(procstat.cpu_seconds(pid) for pid in pids)


def run_fanout(
    server: RunningServer | ClusterServers | LinkedNgircd,
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
    nodes: int | None = None,
    ws_address: tuple[str, int] | None = None,
    deliveries: int | None = None,
) -> dict[str, Any]:
    """N members in one channel, ``senders`` of them sending; fills ``row`` with the figures.

    With ``nodes``, members are dealt to the server's addresses in turn (member ``j`` in
    joining order on node ``j % nodes``) and latency is also split by same/other node.
    With ``ws_address`` every member speaks IRC over WebSocket there. ``deliveries`` is the
    blast's total (the plan's ``blast_deliveries`` by default).

    On a cluster the window also gives each node's CPU apart (``node_cpu_s``) and what Redis
    counted (``redis_events``, ``redis_commands``, per command in ``redis_calls``).
    """
    workers = len(generator.pipes)
    final_is_sender = members == senders
    head_senders = senders - 1 if final_is_sender else senders
    rest = members - senders - (0 if final_is_sender else 1)
    shares = split(rest, workers) if workers > 1 else [rest]
    spread = nodes or 1
    placed = 0

    def group(name: str, count: int, kind: str = "recv") -> list[Any]:
        """A setup group whose members continue the round-robin over the nodes."""
        nonlocal placed
        first = placed
        placed += count
        return [name, count, CHANNEL, kind, first % spread, spread]

    # Other workers' members join first; worker 0 (the senders and the acknowledging
    # last member, which the server serves last) joins after them.
    for worker_id in range(1, workers):
        if shares[worker_id]:
            setup(generator, worker_id, [group(f"{prefix}r{worker_id}x", shares[worker_id])], plan, ws_address)
    groups: list[list[Any]] = []
    if slow:
        groups.append(group(f"{prefix}slow", 1, "slow"))
    senders_first = placed
    groups.append(group(f"{prefix}s", head_senders))
    if shares[0]:
        groups.append(group(f"{prefix}r0x", shares[0]))
    setup(generator, 0, groups, plan, ws_address)
    last_node = placed % spread
    setup(generator, 0, [group(f"{prefix}z", 1)], plan, ws_address)
    sender_ids = [[sid, f"{prefix}s{sid}"] for sid in range(head_senders)]
    sender_nodes = [(senders_first + sid) % spread for sid in range(head_senders)]
    if final_is_sender:
        sender_ids.append([senders - 1, f"{prefix}z0"])
        sender_nodes.append(last_node)
    count = max(20, (deliveries or plan.blast_deliveries) // max(1, senders * (members - 1)))
    everyone = list(range(workers))

    redis_before = server.redis_counts() if isinstance(server, ClusterServers) else None
    node_before = [procstat.cpu_seconds(pid) for pid in server.pids]
    cpu_before = sum(node_before)
    side_before = cpu(server.side_pids)
    # Workers without senders are started first and answer "sent" at once: only then has each
    # of their receivers its expected sequence numbers, before worker 0's first message lands.
    for worker_id in [*everyone[1:], 0]:
        if worker_id == 0 and workers > 1:
            generator.collect(everyone[1:], "sent", plan.setup_timeout_s)
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
            sender_nodes=sender_nodes if nodes else None,
        )
    sent_replies = generator.collect([0], "sent", duration_s + plan.drain_timeout_s + 60)
    sent = sent_replies[0]["sent"]
    for worker_id in everyone:
        generator.send(worker_id, "expect", sent=sent, timeout_s=plan.drain_timeout_s)
    done = generator.collect(everyone, "done", plan.drain_timeout_s + 30)
    node_after = [procstat.cpu_seconds(pid) for pid in server.pids]
    side_after = cpu(server.side_pids)
    redis_after = server.redis_counts() if isinstance(server, ClusterServers) else None

    messages = sum(total for _, total in sent)
    fill(row, done, sum(node_after) - cpu_before, server.pids, messages * (members - 1))
    row.extra["messages"] = messages
    if len(server.pids) > 1:
        row.extra["node_cpu_s"] = [after - before for before, after in zip(node_before, node_after, strict=True)]
    if server.side_pids:
        row.extra["redis_cpu_s"] = side_after - side_before
        if row.deliveries:
            row.extra["redis_us_per_delivery"] = (side_after - side_before) / row.deliveries * 1e6
    if redis_before is not None and redis_after is not None:
        redis_window(row, redis_before, redis_after)
    if nodes:
        for where in ("same", "cross"):
            values = sorted(v for d in done for v in d.get(f"latencies_{where}_ns", []))
            row.extra[f"{where}_samples"] = len(values)
            if values:
                row.extra[f"{where}_p50_ms"] = percentile(values, 0.50)
                row.extra[f"{where}_p99_ms"] = percentile(values, 0.99)
    row.senders, row.window = senders, window if mode == "closed" else 0
    return {"slow_cut": done[0]["slow_cut"]}


def fill(row: Row, done: list[dict[str, Any]], server_cpu_s: float, pids: list[int], expected: int) -> None:
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
    row.rss_mib = sum(procstat.rss_bytes(pid) for pid in pids) / (1 << 20)
    if dups or gaps or missing or deliveries != expected:
        row.fail(f"delivery: {deliveries} of {expected} expected, {dups} duplicated, {gaps} skipped, {missing} missing")
    if lost_clients:
        row.fail(f"{lost_clients} receiving clients were disconnected")
    errors = [e for d in done for e in d["errors"]]
    if errors:
        row.fail("generator saw: " + "; ".join(errors[:3]))


def redis_window(row: Row, before: dict[str, int], after: dict[str, int]) -> None:
    """What Redis did in the measured window: events (stream entries, or pushes without streams:
    see ``bench.cluster``), pushes, every command, and the calls of each command."""
    calls = {name: after.get(name, 0) - before.get(name, 0) for name in after if name != "total"}
    calls = {name: count for name, count in sorted(calls.items()) if count}
    pushes = sum(calls.get(name, 0) for name in PUSH_COMMANDS)
    events = calls.get("xadd", 0) or pushes
    row.extra["redis_calls"] = calls
    row.extra["redis_events"] = events
    row.extra["redis_pushes"] = pushes
    row.extra["redis_commands"] = after.get("total", 0) - before.get("total", 0)
    if row.seconds > 0:
        row.extra["redis_events_per_s"] = events / row.seconds
    if events and "redis_cpu_s" in row.extra:
        row.extra["redis_us_per_event"] = row.extra["redis_cpu_s"] / events * 1e6
