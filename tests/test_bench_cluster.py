"""The bench's cluster scenario, small: Redis and two chatd nodes started by the bench, every
message delivered exactly once whichever node its sender and receiver are on.

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
    rows, skipped = run(("selectors",), ("cluster",), Plan.quick_plan())
    assert not skipped
    assert [row.server for row in rows] == ["selectors alone", "selectors 2 nodes"]
    failures = [f"{row.server}: {row.problem}" for row in rows if not row.ok]
    assert not failures, failures
    for row in rows:
        assert row.deliveries == row.expected > 0, row
    two = rows[1]
    assert two.extra["nodes"] == 2
    assert two.extra["same_samples"] > 0 and two.extra["cross_samples"] > 0
    assert two.extra["redis_cpu_s"] > 0
