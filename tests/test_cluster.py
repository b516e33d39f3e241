"""Several chatd nodes as one network over a real redis-server on a loopback port.

Nodes run in-process (over both backends) or as subprocesses (to SIGKILL one). The
heartbeat and node timeout are cut to fractions of a second so deaths and
recoveries are seen in about two seconds; every wait polls with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chatd.backends import BackendSettings
from chatd.cluster.config import ClusterSettings, RedisAddress
from chatd.cluster.node import ClusterNode
from chatd.core import ServerConfig
from chatd.core.passwords import hash_password
from chatd.core.ports import AccountStore
from chatd.history import History
from chatd.protocol.message import Message
from tests.helpers import (
    DEADLINE_S,
    POLL_S,
    REDIS_SERVER,
    IrcClient,
    LineClient,
    RedisServer,
    RunningServer,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason="redis-server is not installed (apt-get install redis-server)"
)

HEARTBEAT_S = 0.2
NODE_TIMEOUT_S = 3.0
"""For the tests about dead nodes: short, so a death is seen in seconds."""
PATIENT_TIMEOUT_S = 15.0
"""For every other test: a loaded machine can stall a node for seconds, which must not pass for a death."""


def cluster_settings(redis: RedisServer, node_id: str, node_timeout_s: float) -> ClusterSettings:
    return ClusterSettings(
        redis=RedisAddress(  # a SwitchableUser (test_cluster_cutoff) brings a user of its own
            "127.0.0.1",
            redis.port,
            password=getattr(redis, "password", None),
            username=getattr(redis, "username", None),
        ),
        node_id=node_id,
        heartbeat_s=HEARTBEAT_S,
        node_timeout_s=node_timeout_s,
        redis_timeout_s=1.0,
        backoff_max_s=0.3,
    )


def node_of(server: RunningServer) -> ClusterNode:
    node = server.server.hub.cluster  # type: ignore[attr-defined]
    assert isinstance(node, ClusterNode)
    return node


@contextmanager
def cluster_node(
    backend: str,
    redis: RedisServer,
    node_id: str,
    node_timeout_s: float = PATIENT_TIMEOUT_S,
    accounts: AccountStore | None = None,
    history: History | None = None,
    **config: Any,
) -> Iterator[RunningServer]:
    """An in-process node, returned once it is linked to Redis and has said HELLO (with no
    accounts unless ``accounts`` is given: nodes sharing one store, as ``--workers`` do; and
    no history unless ``history`` is given)."""
    settings = BackendSettings(
        host="127.0.0.1",
        port=0,
        config=ServerConfig(**config),
        cluster=cluster_settings(redis, node_id, node_timeout_s),
        accounts=accounts,
        history=history,
    )
    server = RunningServer(backend, settings)
    server.thread.start()
    try:
        node = node_of(server)
        wait_until(lambda: node.up and node.hello_at > float("-inf"), f"node {node_id} to join")
        yield server
    finally:
        server.stop()


def linked(*servers: RunningServer) -> None:
    """Wait until every node holds a replica of every other (bursts exchanged)."""
    ids = {node_of(server).node_id for server in servers}
    for server in servers:
        node = node_of(server)
        wait_until(lambda node=node: ids - {node.node_id} <= set(node.nodes), f"{node.node_id} to see {ids}")


def across(a: RunningServer, b: RunningServer, channel: str = "#x") -> tuple[IrcClient, IrcClient]:
    """alice on node a and bob on node b, both in ``channel``, each node knowing the other's member:
    bob joins only once his node has seen alice's JOIN (else he could found a channel of his own),
    and alice's node has seen bob's before anything else is said."""
    linked(a, b)
    alice, bob = a.client("alice"), b.client("bob")
    joined(alice, channel)
    sees_member(bob, channel, "alice")
    joined(bob, channel)
    expect_from(alice, "JOIN", "bob")
    return alice, bob


def sees(client: IrcClient, nick: str, present: bool = True, timeout: float = DEADLINE_S) -> None:
    """Poll ISON until ``nick`` is (or is no longer) on the network as ``client``'s node knows it."""
    deadline = time.monotonic() + timeout
    while True:
        client.send(f"ISON {nick}")
        online = client.expect("303").params[-1].split()
        if (nick in online) == present:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{nick} still {'absent' if present else 'present'} for {client.nick}")
        time.sleep(POLL_S)


def expect_from(client: IrcClient, command: str, nick: str, timeout: float = DEADLINE_S) -> Message:
    """The next ``command`` sent by ``nick`` (others' are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = client.expect(command, timeout=max(0.0, deadline - time.monotonic()))
        if message.source.split("!")[0] == nick:
            return message


def sees_member(client: IrcClient, channel: str, nick: str) -> None:
    """Poll NAMES until ``nick`` is in ``channel`` as ``client``'s node knows it."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        client.send(f"NAMES {channel}")
        names = " ".join(m.params[-1] for m in client.until("366") if m.command == "353").split()
        if nick in (name.lstrip("@+") for name in names):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{nick} not in {channel} for {client.nick}")
        time.sleep(POLL_S)


def joined(client: IrcClient, channel: str) -> None:
    client.send(f"JOIN {channel}")
    client.until("366")


def test_channel_and_private_messages_cross_nodes_exactly_once_in_order(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a", flood_rate=0) as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        alice, carol, bob = a.client("alice"), a.client("carol"), b.client("bob")
        joined(alice, "#x")
        joined(carol, "#x")
        sees_member(bob, "#x", "carol")
        joined(bob, "#x")
        expect_from(alice, "JOIN", "bob")
        for i in range(30):
            alice.send(f"PRIVMSG #x :line {i}")
        for receiver in (bob, carol):
            got = [receiver.expect("PRIVMSG").params[1] for _ in range(30)]
            assert got == [f"line {i}" for i in range(30)]
        bob.send("PRIVMSG #x :from b")
        assert alice.expect("PRIVMSG").params == ("#x", "from b")
        assert carol.expect("PRIVMSG").params == ("#x", "from b")
        bob.send("PRIVMSG alice :psst")
        bob.send("NOTICE carol :note")
        alice.send("PRIVMSG bob :back")
        assert alice.expect("PRIVMSG").params == ("alice", "psst")
        assert carol.expect("NOTICE").params == ("carol", "note")
        assert bob.expect("PRIVMSG").params == ("bob", "back")
        # Nothing arrives twice: everything before a fresh PONG is accounted for.
        for client in (alice, bob, carol):
            assert not [m for m in client.sync() if m.command in ("PRIVMSG", "NOTICE")]


def test_names_whois_who_list_see_remote_users(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        alice, bob = a.client("alice"), b.client("bob")
        joined(alice, "#x")
        alice.send("AWAY :lunch")
        alice.expect("306")
        sees(alice, "bob")
        alice.send("PRIVMSG bob :after all that")  # a node's events arrive in order: this one comes last
        assert bob.expect("PRIVMSG").params == ("bob", "after all that")
        bob.send("NAMES #x")
        assert bob.expect("353").params[-1] == "@alice"
        bob.send("LUSERS")
        assert bob.expect("251").params[-1] == "There are 2 users and 0 invisible on 2 servers"
        bob.send("LIST")
        assert [m.params[1:3] for m in bob.until("323") if m.command == "322"] == [("#x", "1")]
        bob.send("WHOIS alice")
        whois = {m.command: m.params for m in bob.until("318")}
        assert whois["311"][1:4] == ("alice", "~u", "127.0.0.1")
        assert whois["319"][-1] == "@#x"
        assert whois["312"][2] == "a"  # the node id is alice's server
        assert whois["301"][-1] == "lunch"
        bob.send("WHO alice")
        (who,) = [m.params for m in bob.until("315") if m.command == "352"]
        assert who[4:7] == ("a", "alice", "G")
        bob.send("WHO #x")
        assert [m.params[5] for m in bob.until("315") if m.command == "352"] == ["alice"]
        alice.send("NICK alicia")
        sees(bob, "alicia")
        sees(bob, "alice", present=False)


def test_topic_and_modes_seen_across_nodes(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        alice, bob = across(a, b)  # alice's node must know bob before she gives him +v
        alice.send("TOPIC #x :hello world")
        assert bob.expect("TOPIC").params == ("#x", "hello world")
        bob.send("TOPIC #x")
        assert bob.expect("332").params[-1] == "hello world"
        alice.send("MODE #x +m")
        assert bob.expect("MODE").params == ("#x", "+m")
        bob.send("PRIVMSG #x :muted?")
        assert bob.expect("404", "PRIVMSG").command == "404"
        alice.send("MODE #x +v bob")
        assert bob.expect("MODE").params == ("#x", "+v", "bob")
        bob.send("PRIVMSG #x :now I speak")
        assert alice.expect("PRIVMSG").params == ("#x", "now I speak")
        alice.send("MODE #x +k sesame")
        bob.expect("MODE")
        dave = b.client("dave")
        dave.send("JOIN #x")
        assert dave.expect("475", "JOIN").command == "475"
        alice.send("MODE #x +o bob")
        assert bob.expect("MODE").params == ("#x", "+o", "bob")
        bob.send("KICK #x alice :out")
        assert alice.expect("KICK").params == ("#x", "alice", "out")
        bob.send("NAMES #x")
        assert bob.expect("353").params[-1] == "@bob"


def test_nick_taken_on_another_node_is_refused(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        alice = a.client("alice")  # noqa: F841 (kept open: a closed socket quits)
        late = IrcClient(b.address)
        late.send("NICK alice")
        late.send("USER u 0 * :x")
        assert late.expect("433", "001").command == "433"
        late.send("NICK Alice2")
        assert late.expect("001").params[0] == "Alice2"
        # Two nodes racing for one nick: exactly one wins.
        racers = [IrcClient(a.address), IrcClient(b.address)]
        for racer in racers:
            racer.send("NICK racer")
            racer.send("USER u 0 * :x")
        outcomes = sorted(racer.expect("433", "001").command for racer in racers)
        assert outcomes == ["001", "433"]


def test_commands_sent_before_the_nick_is_granted_wait_for_it(backend: str, redis: RedisServer) -> None:
    """A client that pipelines registration and JOIN (bots, scripts) must not meet 451 while
    the node waits for Redis to grant its nick; nor may a message after NICK leave under the old one."""
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        watcher = b.client("watcher")
        joined(watcher, "#pipe")
        eager = IrcClient(a.address)
        eager.send_raw(b"NICK eager\r\nUSER u 0 * :x\r\nJOIN #pipe\r\nPRIVMSG #pipe :first\r\n")
        assert eager.expect("001", "451").command == "001"
        assert eager.expect("366", "451").command == "366"
        assert expect_from(watcher, "PRIVMSG", "eager").params == ("#pipe", "first")
        eager.send_raw(b"NICK keen\r\nPRIVMSG #pipe :second\r\n")
        assert expect_from(watcher, "PRIVMSG", "keen").params == ("#pipe", "second")


def test_plain_clients_invites_and_kills_cross_nodes(backend: str, redis: RedisServer) -> None:
    operators = {"root": hash_password("secret")}
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b", operators=operators) as b:
        linked(a, b)
        pat = LineClient(a.address)
        pat.send_raw(b"pat\n")  # the classroom protocol: a name, then lines
        pat.wait_for_line(lambda line: line.startswith("* Welcome"))
        bob = b.client("bob")
        sees_member(bob, "#lobby", "pat")
        joined(bob, "#lobby")
        pat.wait_for_line(lambda line: "bob has joined" in line)
        pat.send_raw(b"hello from plain\n")
        message = expect_from(bob, "PRIVMSG", "pat")
        assert message.params == ("#lobby", "hello from plain")
        bob.send("PRIVMSG #lobby :hi pat")
        assert pat.wait_for_line(lambda line: line.startswith("bob:")) == "bob: hi pat"
        alice = a.client("alice")
        joined(alice, "#club")
        alice.send("MODE #club +i")
        alice.expect("MODE")
        alice.send("INVITE bob #club")
        alice.expect("341")
        assert bob.expect("INVITE").params == ("bob", "#club")
        bob.send("JOIN #club")  # bob's own node knows he was invited
        assert bob.expect("JOIN", "473").command == "JOIN"
        bob.send("OPER root secret")
        bob.expect("381")
        alice.send("MODE alice +w")
        alice.expect("MODE")
        bob.send("WALLOPS :hear ye")
        assert expect_from(alice, "WALLOPS", "bob").params == ("hear ye",)
        bob.send("KILL alice :enough")
        assert [m.command for m in alice.until("ERROR") if m.command in ("KILL", "ERROR")] == ["KILL", "ERROR"]
        assert "Killed (bob (enough))" in expect_from(bob, "QUIT", "alice").params[0]


def start_node_process(
    redis: RedisServer, node_id: str, log_lines: list[str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """chatd as a subprocess node; with ``log_lines``, its stderr keeps being collected there."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatd",
            "--port",
            "0",
            "--data-dir",
            tempfile.mkdtemp(prefix="chatd-test-"),
            "--cluster",
            f"redis://127.0.0.1:{redis.port}/0",
            "--node-id",
            node_id,
            "--cluster-heartbeat",
            str(HEARTBEAT_S),
            "--cluster-timeout",
            str(NODE_TIMEOUT_S),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = process.stderr
    assert stderr is not None
    for line in stderr:
        if log_lines is not None:
            log_lines.append(line)
        if "listening on" in line:
            if log_lines is not None:
                threading.Thread(target=lambda: log_lines.extend(stderr), daemon=True).start()
            return process, int(line.rsplit(":", 1)[1].split()[0])
    process.wait(DEADLINE_S)
    raise AssertionError(f"chatd did not start (exit {process.returncode})")


def test_without_redis_a_node_serves_locally_logs_once_and_joins_later(redis: RedisServer) -> None:
    redis.kill()
    log_lines: list[str] = []
    process, port = start_node_process(redis, "lonely", log_lines)
    try:
        alice, bob = IrcClient(("127.0.0.1", port), "alice"), IrcClient(("127.0.0.1", port), "bob")
        joined(alice, "#x")
        joined(bob, "#x")
        alice.send("PRIVMSG #x :no redis, no problem")
        assert bob.expect("PRIVMSG").params == ("#x", "no redis, no problem")
        wait_until(lambda: any("unreachable" in line for line in log_lines), "the outage to be logged")
        redis.start()
        wait_until(lambda: any("reachable again" in line for line in log_lines), "the link to come back")
        outage = [line for line in log_lines if "Redis" in line and "reachable" in line]
        assert len(outage) == 2, outage  # one line when it starts, one when it ends: no line per retry
        assert not any("Traceback" in line for line in log_lines)
        wait_until(lambda: redis.command("GET", "{chatd}:nick:alice") == b"lonely", "alice's nick claimed")
    finally:
        process.kill()
        process.wait(DEADLINE_S)


def test_killed_node_users_quit_and_their_nicks_come_free(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a", NODE_TIMEOUT_S) as a:
        process, port = start_node_process(redis, "doomed")
        try:
            alice = a.client("alice")
            joined(alice, "#x")
            victim = IrcClient(("127.0.0.1", port), "victim")
            sees(alice, "victim")
            joined(victim, "#x")
            expect_from(alice, "JOIN", "victim")
            process.send_signal(signal.SIGKILL)
            process.wait(DEADLINE_S)
            killed_at = time.monotonic()
            quit_message = alice.expect("QUIT", timeout=3 * NODE_TIMEOUT_S + 2)
            assert quit_message.source.startswith("victim!")
            assert "doomed" in quit_message.params[0]
            assert time.monotonic() - killed_at < 3 * NODE_TIMEOUT_S + 2
            # The dead node's keys are swept: its nick can be taken again, anywhere.
            wait_until(lambda: redis.command("EXISTS", "{chatd}:nick:victim") == 0, "the nick key to go")
            again = IrcClient(a.address)
            assert again.register("victim")[0].command == "001"
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(DEADLINE_S)


def test_a_crashed_node_restarted_at_once_replaces_its_old_self(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a:
        alice = a.client("alice")
        process, port = start_node_process(redis, "phoenix")
        try:
            victim = IrcClient(("127.0.0.1", port), "victim")
            sees(alice, "victim")
            process.send_signal(signal.SIGKILL)
            process.wait(DEADLINE_S)
            victim.wait_closed()
            process, port = start_node_process(redis, "phoenix")  # same id, before anyone timed it out
            # Its HELLO says who it has now (nobody): the old users QUIT, their nicks are free again.
            again = IrcClient(("127.0.0.1", port))
            wait_until(
                lambda: not node_of(a).nodes.get("phoenix", None) or not node_of(a).nodes["phoenix"].users,
                "old users gone",
            )
            assert again.register("victim")[0].command == "001"
            sees(alice, "victim")
        finally:
            process.kill()
            process.wait(DEADLINE_S)


def test_restarted_node_rejoins(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a:
        alice = a.client("alice")
        with cluster_node(backend, redis, "b") as b:
            linked(a, b)
            bob = b.client("bob")
            sees(alice, "bob")
        sees(alice, "bob", present=False)  # a clean stop says goodbye: no wait for the timeout
        with cluster_node(backend, redis, "b") as b:
            linked(a, b)
            bob = b.client("bob")
            sees(alice, "bob")
            alice.send("PRIVMSG bob :welcome back")
            assert bob.expect("PRIVMSG").params == ("bob", "welcome back")


def test_redis_restart_local_chat_goes_on_then_network_recovers(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        alice, carol, bob = a.client("alice"), a.client("carol"), b.client("bob")
        for client in (alice, carol, bob):
            joined(client, "#x")
        sees(alice, "bob")
        hellos = {server: node_of(server).hello_at for server in (a, b)}
        redis.kill()
        wait_until(lambda: not node_of(a).up and not node_of(b).up, "both nodes to notice the outage")
        carol.send("PRIVMSG #x :still here")
        assert alice.expect("PRIVMSG").params == ("#x", "still here")
        dave = a.client("dave")  # registration does not wait for an unreachable Redis
        joined(dave, "#y")
        redis.start()
        for server in (a, b):
            node = node_of(server)
            wait_until(lambda node=node, server=server: node.hello_at > hellos[server], "a HELLO after the restart")
        linked(a, b)
        sees(bob, "dave")
        bob.send("WHOIS dave")
        assert "#y" in {m.command: m.params for m in bob.until("318")}["319"][-1]
        alice.send("PRIVMSG #x :across again")
        assert bob.expect("PRIVMSG").params == ("#x", "across again")
        # The nick keys were rebuilt: alice is still unique network-wide.
        late = IrcClient(b.address)
        late.send("NICK alice")
        late.send("USER u 0 * :x")
        assert late.expect("433", "001").command == "433"


def test_nick_clash_after_an_outage_renames_one_user(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        redis.kill()
        wait_until(lambda: not node_of(a).up and not node_of(b).up, "both nodes to notice the outage")
        twins = [a.client("twin"), b.client("twin")]  # each node alone: both get the nick
        redis.start()
        renamed: list[IrcClient] = []
        deadline = time.monotonic() + DEADLINE_S
        while not renamed:
            assert time.monotonic() < deadline, "nobody was renamed"
            for client in twins:
                if any(m.command == "NICK" and m.params[0].startswith("Guest") for m in client.sync()):
                    renamed.append(client)
            time.sleep(POLL_S)
        assert renamed == [twins[1]]  # the later claimant only, whichever node resynchronised first
        sees(twins[1], "twin")  # and the keeper is who both nodes now call twin
        twins[1].send("WHOIS twin")
        assert twins[1].expect("312").params[2] == "a"


def test_cli_refuses_a_bad_cluster_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatd", "--cluster", "http://x"], capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert result.returncode == 2
    assert "--cluster" in result.stderr and "Traceback" not in result.stderr
