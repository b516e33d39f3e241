"""A busy channel's messages from another node, as the receiving node fans them out in runs.

Messages that reach a node together (one publish of the sender's turn, one stream read) go
to the node's members as one run (``chatd.core.fanout.fanout_run``): one append per
connection for the whole run. That must change nothing a member sees: every message once,
in order, in the member's own form (plain IRC, tags and server-time, the classroom line
protocol), and a TAGMSG in the middle of a run only for those who take tags.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import REDIS_SERVER, LineClient, RedisServer
from tests.test_cluster import cluster_node, expect_from, joined, linked, sees_member
from tests.test_cluster_accounts import capable

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason="redis-server is not installed (apt-get install redis-server)"
)

COUNT = 300


def test_a_run_of_messages_reaches_every_kind_of_member_once_in_order(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a", flood_rate=0) as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        ann = capable(a, "ann", "message-tags")
        joined(ann, "#lobby")
        bob = b.client("bob")  # plain IRC: in the node's fan-out group
        tia = capable(b, "tia", "message-tags", "server-time")  # tagged: delivered one by one
        pat = LineClient(b.address)  # the classroom protocol, in #lobby from the start
        pat.send_raw(b"pat\n")
        pat.wait_for_line(lambda line: line.startswith("* Welcome"))
        for client in (bob, tia):
            joined(client, "#lobby")
        sees_member(ann, "#lobby", "tia")
        half = COUNT // 2
        lines = [f"PRIVMSG #lobby :run {i}" for i in range(half)]
        lines.append("@+typing=active TAGMSG #lobby")
        lines += [f"PRIVMSG #lobby :run {i}" for i in range(half, COUNT)]
        ann.send_raw("".join(line + "\r\n" for line in lines).encode())  # one read, one turn, one publish
        texts = [f"run {i}" for i in range(COUNT)]
        assert [expect_from(bob, "PRIVMSG", "ann").params[1] for _ in range(COUNT)] == texts
        seen = [tia.expect("PRIVMSG", "TAGMSG") for _ in range(COUNT + 1)]
        assert [m.command for m in seen].index("TAGMSG") == half
        assert seen[half].tags.get("+typing") == "active"
        assert [m.params[1] for m in seen if m.command == "PRIVMSG"] == texts
        assert all("time" in m.tags and "msgid" in m.tags for m in seen)
        got = [pat.wait_for_line(lambda line: line.startswith("ann:")) for _ in range(COUNT)]
        assert got == [f"ann: {text}" for text in texts]
        ann.send("PRIVMSG #lobby :last")
        for client in (bob, tia):
            assert expect_from(client, "PRIVMSG", "ann").params[1] == "last"
            assert not [m for m in client.sync() if m.command in ("PRIVMSG", "TAGMSG")]
