"""The bench's cluster scenarios, small: Redis and two chatd nodes started by the bench, every
message delivered exactly once whichever node its sender and receiver are on, in the closed
loop and in the blast.

Like the quick bench, this never asserts a speed. It is skipped, with the bench's own reason,
where redis-server is missing or this chatd has no --cluster.
"""

from __future__ import annotations

import pytest

from bench.cli import run
from bench.cluster import cluster_missing
from bench.contenders import find
from bench.scenarios import Plan


@pytest.mark.timeout(110)
def test_cluster_scenario_delivers_every_message_exactly_once_across_nodes() -> None:
    [selectors] = find(["selectors"])
    reason = cluster_missing(selectors)
    if reason:
        pytest.skip(reason)
    rows, skipped = run(("selectors",), ("cluster", "cluster-blast"), Plan.quick_plan())
    assert not skipped
    assert [(row.scenario, row.server) for row in rows] == [
        ("cluster", "selectors alone"),
        ("cluster", "selectors 2 nodes"),
        ("cluster-blast", "selectors alone"),
        ("cluster-blast", "selectors 2 nodes"),
    ]
    failures = [f"{row.scenario} {row.server}: {row.problem}" for row in rows if not row.ok]
    assert not failures, failures
    for row in rows:
        assert row.deliveries == row.expected > 0, row
    for two in (rows[1], rows[3]):
        assert two.extra["nodes"] == 2
        assert two.extra["same_samples"] > 0 and two.extra["cross_samples"] > 0
        assert two.extra["redis_cpu_s"] > 0
