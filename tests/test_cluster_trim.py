"""A node away longer than a channel's stream keeps (``MAXLEN``) has lost what was trimmed away:
it must say so (a warning and ``chatd_cluster_stream_gaps_trimmed``), and still deliver what is left.

The trim is done by hand (``XTRIM``) while the node is cut off, as MAXLEN would do to a node away
for ten thousand messages; each entry names the one before it, so the node sees the hole.
"""

from __future__ import annotations

import os

import pytest

from chatd.cluster.streams import channel_keys
from tests.helpers import REDIS_SERVER, RedisServer, wait_until
from tests.redis_cluster import RedisClusterServers
from tests.test_cluster import across, cluster_node, expect_from, node_of
from tests.test_cluster_cutoff import SwitchableUser

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason="redis-server is not installed (apt-get install redis-server)"
)


def test_a_node_away_longer_than_the_stream_keeps_says_what_it_lost(
    backend: str, redis: RedisServer | RedisClusterServers
) -> None:
    user = SwitchableUser(redis, "node-b")
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, user, "b") as b:  # type: ignore[arg-type]
        alice, bob = across(a, b)
        alice.send("PRIVMSG #x :before")
        assert expect_from(bob, "PRIVMSG", "alice").params[1] == "before"
        user.cut()
        wait_until(lambda: not node_of(b).up, "node b's link to be down")
        for index in range(5):
            alice.send(f"PRIVMSG #x :away {index}")
        stream = channel_keys("chatd", "#x").stream
        wait_until(lambda: redis.command("XLEN", stream) >= 6, "a's messages in the stream")
        redis.command("XTRIM", stream, "MAXLEN", "1")  # all but the newest, "away 4"
        alice.send("PRIVMSG #x :after")
        wait_until(lambda: redis.command("XLEN", stream) == 2, "the last message in the stream")
        assert node_of(b).streams.trimmed == 0
        user.restore()
        got = [expect_from(bob, "PRIVMSG", "alice", timeout=15).params[1] for _ in range(2)]
        assert got == ["away 4", "after"]  # what was left, in order; "away 0" to "away 3" are gone
        assert node_of(b).streams.trimmed == 1
        assert node_of(a).streams.trimmed == 0
        bob.send("PRIVMSG #x :back")
        assert expect_from(alice, "PRIVMSG", "bob").params[1] == "back"
