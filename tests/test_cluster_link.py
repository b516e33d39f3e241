"""The Redis link alone, against a real redis-server and a real three-master Redis Cluster.

Every test runs against both links, as the two backends use them: "bridge" is
``RedisLink`` (its thread posts everything, and ``post`` runs each callable at once on that
thread under the recorder's lock, as the threads backend runs it under the hub lock), "loop"
is ``LoopLink`` on a real selectors loop in a thread of its own (``tests.loop_reactor``),
where the link calls the handler on the loop's thread, as on the selectors backend.
Failures are real: ``CLIENT KILL``, a killed and restarted Redis, a SIGSTOPped one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import redis as redispy
from redis.cluster import RedisCluster

from chatd.cluster import link as link_module
from chatd.cluster import loop_link as loop_link_module
from chatd.cluster.config import ClusterSettings, RedisAddress
from chatd.cluster.link import LINK_DOWN, Callback, RedisLink, Reply, ReplyError
from chatd.cluster.loop_link import LoopLink
from chatd.cluster.subscriber import SUBSCRIBED
from tests.helpers import REDIS_SERVER, RedisServer, wait_until
from tests.loop_reactor import LoopReactor
from tests.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason="redis-server is not installed (apt-get install redis-server)"
)

HEARTBEAT_S = 0.2
REDIS_TIMEOUT_S = 1.0
Servers = RedisServer | RedisClusterServers
KINDS = ["bridge", "loop"]
T = TypeVar("T")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Which link a test runs against: ``RedisLink`` ("bridge") or ``LoopLink`` ("loop")."""
    return request.param


class Recorder:
    """A ``LinkHandler`` (and the bridge's ``post``) that writes down everything, in order.

    ``lock`` guards what it records against the test's thread: the handler is called on the
    link's thread (the bridge thread, or the loop's), and each call takes the lock; the
    bridge's ``post`` holds it around a whole delivery, as the threads backend holds the hub
    lock (hence an ``RLock``). The test's thread takes it to clear or copy what is recorded.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.events: list[str] = []
        self.messages: list[tuple[bytes, bytes]] = []
        self.ticks = 0
        self.on_up: Callable[[], None] | None = None

    def post(self, call: Callable[[], None]) -> None:
        with self.lock:
            call()

    def link_up(self) -> None:
        with self.lock:
            self.events.append("up")
            if self.on_up is not None:
                self.on_up()

    def link_down(self) -> None:
        with self.lock:
            self.events.append("down")

    def link_tick(self) -> None:
        with self.lock:
            self.ticks += 1

    def link_messages(self, messages: list[tuple[bytes, bytes]]) -> None:
        with self.lock:
            self.messages.extend(messages)

    def ups(self) -> int:
        with self.lock:
            return self.events.count("up")

    def payloads(self, channel: str) -> list[bytes]:
        with self.lock:
            return [payload for name, payload in self.messages if name == channel.encode()]

    def clear_messages(self) -> None:
        with self.lock:
            self.messages.clear()


class DrivenLink:
    """Either link, driven from the test's thread as its backend drives it: the bridge's methods
    are called directly (they are thread-safe), the loop link's on its loop (through ``call``)."""

    def __init__(self, link: RedisLink | LoopLink, reactor: LoopReactor | None) -> None:
        self.link = link
        """The link itself: what a callback of the link (on the link's thread) calls."""
        self.reactor = reactor

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` where the link wants to be called from, and return its result."""
        return fn() if self.reactor is None else self.reactor.call(fn)

    def command(self, *args: bytes | str | int | float, callback: Callback | None = None) -> bool:
        return self.call(lambda: self.link.command(*args, callback=callback))

    def subscribe(self, channel: str) -> None:
        self.call(lambda: self.link.subscribe(channel))

    def unsubscribe(self, channel: str) -> None:
        self.call(lambda: self.link.unsubscribe(channel))

    def start(self) -> None:
        if self.reactor is not None:
            self.reactor.start()
        self.call(self.link.start)

    def stop(self) -> None:
        """Stop the link, then its loop (which raises what a callback on the loop let escape)."""
        try:
            self.call(self.link.stop)
        finally:
            if self.reactor is not None:
                self.reactor.stop()


def make_link(kind: str, settings: ClusterSettings, channels: list[str], recorder: Recorder) -> DrivenLink:
    """A link of ``kind``, not started."""
    if kind == "bridge":
        return DrivenLink(RedisLink(settings, channels, recorder, recorder.post), None)
    reactor = LoopReactor()
    return DrivenLink(LoopLink(settings, channels, recorder, reactor), reactor)


@contextmanager
def running_link(
    servers: Servers, kind: str, channels: list[str] | None = None, address: RedisAddress | None = None
) -> Iterator[tuple[DrivenLink, Recorder]]:
    settings = ClusterSettings(
        address or RedisAddress("127.0.0.1", servers.port), "linktest", heartbeat_s=HEARTBEAT_S,
        redis_timeout_s=REDIS_TIMEOUT_S, backoff_max_s=0.3,
    )  # fmt: skip
    recorder = Recorder()
    link = make_link(kind, settings, channels or [], recorder)
    link.start()
    try:
        wait_until(lambda: recorder.ups() == 1, "the link to come up")
        yield link, recorder
    finally:
        link.stop()


class Replies:
    """Callbacks that keep every reply they get, and how often each was called."""

    def __init__(self) -> None:
        self.got: dict[int, list[Reply]] = {}

    def callback(self, index: int) -> Callable[[Reply], None]:
        return lambda reply: self.got.setdefault(index, []).append(reply)

    def all(self, count: int) -> bool:
        return len(self.got) == count


def ports(servers: Servers) -> list[int]:
    return list(getattr(servers, "ports", [servers.port]))


def pids(servers: Servers) -> list[int]:
    if isinstance(servers, RedisClusterServers):
        return [process.pid for process in servers.processes]
    assert servers.process is not None
    return [servers.process.pid]


def kill_clients(servers: Servers) -> None:
    for port in ports(servers):
        with redispy.Redis(port=port, protocol=2) as client:
            client.client_kill_filter(_type="normal", skipme=True)
            client.client_kill_filter(_type="pubsub", skipme=True)


def spread_channels(servers: Servers, count: int = 12) -> list[str]:
    """Shard channels that land on every master (on one Redis: just channels)."""
    channels = [f"chan:{index}" for index in range(count)]
    if isinstance(servers, RedisClusterServers):
        client = RedisCluster(host="127.0.0.1", port=servers.port, protocol=2)
        try:
            owners = {client.get_node_from_key(channel).port for channel in channels}
        finally:
            client.close()
        assert owners == set(servers.ports), owners
    return channels


def test_commands_and_replies_in_order(redis: Servers, kind: str) -> None:
    with running_link(redis, kind) as (link, _):
        replies = Replies()
        for index in range(300):
            assert link.command("INCR", "{t}:counter", callback=replies.callback(index))
        for index, key in enumerate(("a", "b", "c", "d", "e", "f"), start=300):
            assert link.command("SET", f"k:{key}", key, "GET", callback=replies.callback(index))
        assert link.command("HGET", "{t}:counter", "x", callback=replies.callback(306))  # WRONGTYPE
        wait_until(lambda: replies.all(307), "every reply")
        assert [replies.got[index] for index in range(300)] == [[index + 1] for index in range(300)]
        assert [replies.got[index] for index in range(300, 306)] == [[None]] * 6
        (error,) = replies.got[306]
        assert isinstance(error, ReplyError) and "WRONGTYPE" in str(error)
        got = Replies()
        link.command("EVAL", "return redis.call('GET', KEYS[1])", 1, "k:c", callback=got.callback(0))
        wait_until(lambda: got.all(1), "the script's reply")
        assert got.got[0] == [b"c"]


def test_ticks_come_while_up(redis: Servers, kind: str) -> None:
    with running_link(redis, kind) as (_, recorder):
        wait_until(lambda: recorder.ticks >= 3, "three ticks")


def test_client_kill_link_down_then_up_again(redis: Servers, kind: str) -> None:
    with running_link(redis, kind, spread_channels(redis)) as (link, recorder):
        kill_clients(redis)
        wait_until(lambda: recorder.events == ["up", "down", "up"], "the link to go down and come back")
        got = Replies()
        assert link.command("PING", callback=got.callback(0))
        wait_until(lambda: got.all(1), "a reply after the reconnect")
        assert got.got[0] == [b"PONG"]


def test_redis_restart_link_down_commands_refused_then_up(redis: Servers, kind: str) -> None:
    with running_link(redis, kind) as (link, recorder):
        redis.kill()
        wait_until(lambda: recorder.events == ["up", "down"], "the link to go down")
        assert link.command("PING") is False  # nothing is queued while down
        redis.start()
        wait_until(lambda: recorder.events == ["up", "down", "up"], "the link to come back", timeout=30)
        got = Replies()
        assert link.command("SET", "k", "v", callback=got.callback(0))
        wait_until(lambda: got.all(1), "a reply after the restart")
        assert got.got[0] == [b"OK"]


def publish_until_heard(link: DrivenLink, recorder: Recorder, channels: list[str]) -> None:
    """SPUBLISH on each channel until its message comes back (a subscription applies asynchronously)."""

    def heard() -> bool:
        missing = [channel for channel in channels if not set(recorder.payloads(channel)) - {SUBSCRIBED}]
        for channel in missing:
            link.command("SPUBLISH", channel, f"hello {channel}")
        return not missing

    wait_until(heard, "a message on every channel")


def test_shard_channels_on_every_master_subscribe_and_unsubscribe(redis: Servers, kind: str) -> None:
    channels = spread_channels(redis)
    with running_link(redis, kind) as (link, recorder):
        for channel in channels:
            link.subscribe(channel)
            link.subscribe(channel)  # idempotent
        publish_until_heard(link, recorder, channels)
        for channel in channels:
            # First Redis's confirmation (SUBSCRIBED), once per channel however often it was asked for.
            payloads = recorder.payloads(channel)
            assert payloads[0] == SUBSCRIBED and payloads.count(SUBSCRIBED) == 1, payloads
            assert set(payloads[1:]) == {f"hello {channel}".encode()}
        for channel in channels:
            link.unsubscribe(channel)
        heard = len(recorder.messages)
        counts = Replies()

        def nobody_listens() -> bool:  # SPUBLISH answers how many subscribers got it
            counts.got.clear()
            for index, channel in enumerate(channels):
                link.command("SPUBLISH", channel, "after", callback=counts.callback(index))
            wait_until(lambda: counts.all(len(channels)), "SPUBLISH replies")
            return all(reply == [0] for reply in counts.got.values())

        wait_until(nobody_listens, "Redis to confirm every unsubscribe")
        assert len(recorder.messages) == heard  # nothing after unsubscribe
        assert recorder.events == ["up"]


def test_subscriptions_are_restored_before_link_up(redis: Servers, kind: str) -> None:
    channels = spread_channels(redis)
    with running_link(redis, kind, channels[:3]) as (link, recorder):
        for channel in channels[3:]:
            link.subscribe(channel)
        publish_until_heard(link, recorder, channels)
        counts: dict[str, object] = {}

        def count_subscribers() -> None:  # runs in link_up: every channel must be subscribed already
            if recorder.ups() == 2:
                for channel in channels:
                    counts[channel] = redis.command("SPUBLISH", channel, "at link_up")

        recorder.on_up = count_subscribers
        kill_clients(redis)
        wait_until(lambda: len(counts) == len(channels), "the link to come back")
        assert counts == {channel: 1 for channel in channels}


def master_of(servers: Servers, key: str) -> int:
    """The pid of the redis-server holding ``key`` (the one Redis, or the master of its slot)."""
    if not isinstance(servers, RedisClusterServers):
        return pids(servers)[0]
    client = RedisCluster(host="127.0.0.1", port=servers.port, protocol=2)
    try:
        return servers.pid_of(client.get_node_from_key(key).port)
    finally:
        client.close()


def test_a_stalled_redis_counts_as_down(redis: Servers, kind: str) -> None:
    """One Redis, or one master of the cluster, stops answering a command in flight."""
    stopped: list[int] = []
    channels = spread_channels(redis)
    try:
        with running_link(redis, kind, channels) as (link, recorder):
            got = Replies()
            pid = master_of(redis, channels[0])
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
            started = time.monotonic()
            assert link.command("EXISTS", channels[0], callback=got.callback(0))
            wait_until(lambda: "down" in recorder.events, "the stall to be noticed")
            noticed_s = time.monotonic() - started
            assert got.got == {0: [LINK_DOWN]}  # the command in flight, answered exactly once
            assert noticed_s < REDIS_TIMEOUT_S + 1.0, noticed_s
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            stopped.clear()
            wait_until(lambda: recorder.ups() == 2, "the link to come back", timeout=30)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def test_a_silent_subscriber_connection_counts_as_down(redis: Servers, kind: str) -> None:
    """No command in flight: only the pings of the subscriber connections can tell."""
    stopped: list[int] = []
    try:
        with running_link(redis, kind, spread_channels(redis)) as (_, recorder):
            for pid in pids(redis):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            started = time.monotonic()
            wait_until(lambda: "down" in recorder.events, "the silence to be noticed")
            assert time.monotonic() - started < HEARTBEAT_S + REDIS_TIMEOUT_S + 1.0
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def cpu_per_message(servers: Servers, kind: str, count: int) -> tuple[float, dict[str, Any]]:
    with running_link(servers, kind, ["blast"]) as (link, recorder):
        publish_until_heard(link, recorder, ["blast"])
        recorder.clear_messages()
        before = time.process_time()
        payload = b"x" * 100
        # The whole blast in one go where the link is called from (the loop: one turn), as a
        # busy hub sends it: a hand-off to the loop per command would be the test's cost, not the link's.
        inner = link.link
        assert link.call(lambda: all([inner.command("SPUBLISH", "blast", payload) for _ in range(count)]))
        wait_until(lambda: len(recorder.messages) >= count, "the blast to come back", timeout=60)
        used = time.process_time() - before
    return used / count, {"messages": len(recorder.messages)}


@pytest.mark.parametrize("count", [20_000])
def test_cpu_per_published_message(redis: Servers, kind: str, count: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a pass/fail figure on a shared machine: printed for the report (``-s`` shows it)."""
    per_message_s, _ = cpu_per_message(redis, kind, count)
    with capsys.disabled():
        print(f"\nlink CPU per SPUBLISH + its message back ({kind}, {type(redis).__name__}): "
              f"{per_message_s * 1e6:.1f} µs")  # fmt: skip
    assert per_message_s < 1e-3


def test_a_moved_slot_is_an_outage_then_the_channel_is_heard_on_its_new_master(redis: Servers, kind: str) -> None:
    if not isinstance(redis, RedisClusterServers):
        pytest.skip("slots move only on a Redis Cluster")
    channels = spread_channels(redis)
    with running_link(redis, kind, channels) as (link, recorder):
        publish_until_heard(link, recorder, channels)
        cluster = RedisCluster(host="127.0.0.1", port=redis.port, protocol=2)
        try:
            slot = cluster.keyslot(channels[0])
            owner = cluster.get_node_from_key(channels[0]).port
        finally:
            cluster.close()
        target = next(port for port in redis.ports if port != owner)
        clients = {port: redispy.Redis(port=port, protocol=2, decode_responses=True) for port in redis.ports}
        try:
            target_id = clients[target].execute_command("CLUSTER", "MYID")
            # A slot without keys can be handed over at once: to its new owner first, with a newer epoch.
            clients[target].execute_command("CLUSTER", "BUMPEPOCH")
            for port in (target, owner, *(port for port in redis.ports if port not in (target, owner))):
                clients[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        finally:
            for client in clients.values():
                client.close()
        wait_until(lambda: recorder.events == ["up", "down", "up"], "the link to reconnect with the new topology")
        recorder.clear_messages()
        publish_until_heard(link, recorder, channels)


def test_username_and_password_from_the_url(redis: Servers, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    channels = spread_channels(redis)
    for port in ports(redis):
        with redispy.Redis(port=port, protocol=2) as client:
            client.execute_command("ACL", "SETUSER", "chatd", "on", ">s3cret", "~*", "&*", "+@all")
            client.execute_command("ACL", "SETUSER", "default", "off")
    address = RedisAddress("127.0.0.1", redis.port, username="chatd", password="s3cret")
    with running_link(redis, kind, channels, address) as (link, recorder):
        publish_until_heard(link, recorder, channels)
    wrong = RedisAddress("127.0.0.1", redis.port, username="chatd", password="wrong")
    recorder = Recorder()
    settings = ClusterSettings(wrong, "linktest", heartbeat_s=HEARTBEAT_S, redis_timeout_s=REDIS_TIMEOUT_S,
                               backoff_max_s=0.05)  # fmt: skip
    link = make_link(kind, settings, [], recorder)
    with redispy.Redis(port=redis.port, protocol=2, username="chatd", password="s3cret") as client:
        connections = client.info("stats")["total_connections_received"]
        link.start()
        try:
            wait_until(lambda: client.info("stats")["total_connections_received"] >= connections + 4, "a few retries")
        finally:
            link.stop()
    refusals = [record for record in caplog.records if "unreachable" in record.getMessage()]
    assert len(refusals) == 1 and "invalid username-password" in refusals[0].getMessage(), refusals
    assert recorder.events == []


def test_the_database_of_the_url_is_selected(redis: Servers, kind: str) -> None:
    if isinstance(redis, RedisClusterServers):
        pytest.skip("a Redis Cluster has database 0 only")
    with running_link(redis, kind, address=RedisAddress("127.0.0.1", redis.port, db=3)) as (link, _):
        got = Replies()
        assert link.command("SET", "where", "db3", callback=got.callback(0))
        wait_until(lambda: got.all(1), "the reply")
    with redispy.Redis(port=redis.port, db=3, protocol=2) as client:
        assert client.get("where") == b"db3"
    assert redis.command("EXISTS", "where") == 0


def small_queue_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "MAX_QUEUED_BYTES", 1000)
    monkeypatch.setattr(loop_link_module, "MAX_QUEUED_BYTES", 1000)  # imported by name: patched there too


def test_a_queue_past_its_bound_resets_the_link(redis: Servers, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    small_queue_bound(monkeypatch)
    with running_link(redis, kind) as (link, recorder):
        assert link.command("SET", "big", "x" * 2000) is False
        wait_until(lambda: recorder.events == ["up", "down", "up"], "the link to be reset")


def test_past_its_bound_the_callback_keeps_to_what_command_said(
    redis: Servers, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever ``command`` answers past the bound, the node must be able to rely on it: a command
    taken (True) is answered exactly once, LINK_DOWN as the link resets; one refused never is."""
    small_queue_bound(monkeypatch)
    with running_link(redis, kind) as (link, recorder):
        got = Replies()
        taken = link.command("SET", "big", "x" * 2000, callback=got.callback(0))
        wait_until(lambda: recorder.events == ["up", "down", "up"], "the link to be reset")
        assert got.got == ({0: [LINK_DOWN]} if taken else {})


def test_stop_sends_what_is_queued(redis: Servers, kind: str) -> None:
    with running_link(redis, kind) as (link, _):
        assert link.command("SET", "goodbye", "sent")
    assert redis.command("GET", "goodbye") == b"sent"


def script_calls(servers: Servers) -> dict[str, int]:
    """How often every server ran EVAL, EVALSHA and SCRIPT LOAD (Redis's own command statistics)."""
    calls = dict.fromkeys(("eval", "evalsha", "script|load"), 0)
    for port in ports(servers):
        with redispy.Redis(port=port, protocol=2) as client:
            stats = client.info("commandstats")
        for name in calls:
            calls[name] += stats.get(f"cmdstat_{name}", {}).get("calls", 0)
    return calls


def test_eval_goes_as_evalsha_and_a_flushed_script_is_an_outage(redis: Servers) -> None:
    """The loop link's own: the script crosses once per connection. A Redis that lost it (SCRIPT
    FLUSH, a restart) answers NOSCRIPT: an outage, after which the new connections load it again."""
    script = "return redis.call('INCR', KEYS[1])"
    keys = spread_channels(redis)  # on every master, so every command connection loads it
    with running_link(redis, "loop") as (link, recorder):
        got = Replies()
        for index in range(3 * len(keys)):
            assert link.command("EVAL", script, 1, keys[index % len(keys)], callback=got.callback(index))
        wait_until(lambda: got.all(3 * len(keys)), "every script's reply")
        assert [got.got[index] for index in range(3 * len(keys))] == [
            [index // len(keys) + 1] for index in range(3 * len(keys))
        ]
        assert script_calls(redis) == {"eval": 0, "evalsha": 3 * len(keys), "script|load": len(ports(redis))}
        redis.command_on_each("SCRIPT", "FLUSH")
        flushed = Replies()
        assert link.command("EVAL", script, 1, keys[0], callback=flushed.callback(0))
        wait_until(lambda: recorder.events == ["up", "down", "up"], "NOSCRIPT to be an outage, then the link back")
        assert flushed.got == {0: [LINK_DOWN]}  # not the NOSCRIPT error: the node sends again once up
        again = Replies()
        assert link.command("EVAL", script, 1, keys[0], callback=again.callback(0))
        wait_until(lambda: again.all(1), "the script's reply after the reconnect")
        assert again.got == {0: [4]}  # three rounds, then this one: the refused EVALSHA never ran
        assert script_calls(redis)["script|load"] == len(ports(redis)) + 1  # once on the new connection


def test_a_command_from_inside_a_reply_callback(redis: Servers, kind: str) -> None:
    """The node answers a reply with the next command (a resynchronisation's reads, a claim's
    retry), on the link's thread: it must be carried like any other, in order, on any master."""
    keys = spread_channels(redis)
    with running_link(redis, kind) as (link, _):
        inner = link.link
        replies: list[Reply] = []
        taken: list[bool] = []

        def next_command(reply: Reply) -> None:
            replies.append(reply)
            if len(replies) < 5 * len(keys):
                taken.append(inner.command("INCR", keys[len(replies) % len(keys)], callback=next_command))

        assert link.command("INCR", keys[0], callback=next_command)
        wait_until(lambda: len(replies) == 5 * len(keys), "every command of the chain answered")
        assert all(taken) and len(taken) == 5 * len(keys) - 1
        assert replies == [index // len(keys) + 1 for index in range(5 * len(keys))]


def test_a_script_redis_refuses_is_its_error_not_an_outage(redis: Servers, kind: str) -> None:
    """A node's script with a bug must come back as an error reply: an outage would resync the node,
    which sends the script again, and the link would flap for ever."""
    with running_link(redis, kind) as (link, recorder):
        got = Replies()
        assert link.command("EVAL", "this is not lua", 0, callback=got.callback(0))
        wait_until(lambda: got.all(1), "the script's reply")
        (error,) = got.got[0]
        assert isinstance(error, ReplyError) and "compiling" in str(error), error
        assert recorder.events == ["up"]


def test_a_script_given_as_bytes(redis: Servers, kind: str) -> None:
    """``command`` takes bytes for any argument (link.Commands), the script too."""
    with running_link(redis, kind) as (link, _):
        got = Replies()
        assert link.command("EVAL", b"return 7", 0, callback=got.callback(0))
        wait_until(lambda: got.all(1), "the script's reply")
        assert got.got[0] == [7]
