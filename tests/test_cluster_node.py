"""The hub side of a cluster node without Redis: a fake link records commands and answers them.

Events from other nodes are fed in as the link would post them; what local clients
get is read from capturing transports. No sockets, no threads, a hand-driven clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chatd.cluster.claims import CLAIM_SCRIPT
from chatd.cluster.config import ClusterSettings, RedisAddress
from chatd.cluster.link import Reply
from chatd.cluster.node import ClusterNode
from chatd.cluster.streams import PUBLISH_SCRIPT, node_keys
from chatd.core import ServerConfig
from chatd.core.accounts import log_in, log_out, make_record
from chatd.core.client import Client
from chatd.core.hub import Hub
from chatd.core.network import account_dropped, account_registered
from chatd.core.ports import AccountStore
from chatd.history.account_store import MemoryAccountStore
from tests.helpers import Capture


class FakeLink:
    """Records every command and subscription; EVAL callbacks wait until the test answers them."""

    def __init__(self) -> None:
        self.sent: list[tuple[tuple[Any, ...], Callable[[Reply], None] | None]] = []
        self.subscribed: set[str] = set()

    def command(self, *args: Any, callback: Callable[[Reply], None] | None = None) -> bool:
        self.sent.append((args, callback))
        return True

    def subscribe(self, channel: str) -> None:
        self.subscribed.add(channel)

    def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)

    def published(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Events pushed on pub/sub (``channel``: its name) or appended to a stream (its shard channel)."""
        events = []
        for args, _ in self.sent:
            if args[0] == "SPUBLISH" and channel in (None, args[1]):
                events.append(json.loads(args[2]))
            elif args[:2] == ("EVAL", PUBLISH_SCRIPT) and channel in (None, args[4]):
                events.extend(json.loads(event) for event in args[7:])
        return events

    def answer_claims(self, reply: Reply) -> None:
        """Answer every nick claim not answered yet."""
        waiting = [(args, callback) for args, callback in self.sent if args[:2] == ("EVAL", CLAIM_SCRIPT)]
        self.sent = [entry for entry in self.sent if entry not in waiting]
        for _, callback in waiting:
            if callback is not None:
                callback(reply)


class World:
    def __init__(self, accounts: AccountStore | None = None) -> None:
        self.now = 1000.0
        self.hub = Hub(ServerConfig(), lambda: self.now, lambda: 1.7e9, accounts=accounts)
        self.link = FakeLink()
        settings = ClusterSettings(RedisAddress("redis.invalid"), "here", heartbeat_s=1.0, node_timeout_s=5.0)
        self.node = ClusterNode(self.hub, settings, self.link)
        self.hub.cluster = self.node
        self.node.up = True
        self.node.streams.synced = True  # as once link_up has checked the epoch
        self.node.streams.epoch = b"first"

    def connect(self, nick: str, *, granted: Reply = 1) -> tuple[Client, Capture]:
        transport = Capture()
        client = self.hub.connect(transport, "127.0.0.1")
        self.hub.receive(client, [f"NICK {nick}".encode(), b"USER u 0 * :Real"])
        self.link.answer_claims(granted)
        self.hub.resume(client)  # as a backend does: the input held during the claim goes on
        transport.messages()
        return client, transport

    def feed(self, sender: str, kind: str, **fields: Any) -> None:
        payload = json.dumps({"n": sender, "t": kind, **fields}).encode()
        self.node.link_messages([(b"{chatd}:events", payload)])


def remote_user(uid: str, nick: str) -> dict[str, Any]:
    return {
        "u": uid,
        "nick": nick,
        "user": "~u",
        "host": "10.0.0.2",
        "real": nick,
        "away": None,
        "modes": "",
        "signon": 1,
    }


def test_registration_waits_for_redis_to_grant_the_nick() -> None:
    world = World()
    transport = Capture()
    client = world.hub.connect(transport, "127.0.0.1")
    assert world.hub.receive(client, [b"NICK alice", b"USER u 0 * :Real"]) is not None  # USER waits
    assert not client.registered and not transport.data  # no 001 before Redis says yes
    world.link.answer_claims(1)
    assert world.hub.resume(client) is None  # the held USER, now that the nick is granted
    assert transport.messages()[0].command == "001"
    assert world.link.published()[-1]["t"] == "user"


def test_a_nick_redis_gives_to_another_node_is_refused() -> None:
    world = World()
    transport = Capture()
    client = world.hub.connect(transport, "127.0.0.1")
    world.hub.receive(client, [b"NICK alice", b"USER u 0 * :Real"])
    world.link.answer_claims(b"elsewhere")
    assert [m.command for m in transport.messages()] == ["433"]
    assert not client.registered


def test_bursts_show_local_users_only_the_differences() -> None:
    world = World()
    alice, seen = world.connect("alice")
    world.hub.receive(alice, [b"JOIN #x"])
    seen.messages()
    world.feed("there", "hello", users=[remote_user("t.1", "bob")], chans=[{
        "c": "#x", "m": [["t.1", "@"]], "created": 1, "topic": "", "by": "", "at": 0,
        "modes": "nt", "key": None, "limit": None, "bans": [],
    }])  # fmt: skip
    assert [(m.command, m.source) for m in seen.messages()] == [("JOIN", "bob!~u@10.0.0.2")]
    assert world.link.published(node_keys("chatd", "there").live)[-1]["t"] == "burst"  # a HELLO is answered
    assert world.hub.find_channel("#x").prefix_of(world.hub.find_client("bob")) == "@"  # type: ignore[union-attr]
    world.feed("there", "burst", users=[remote_user("t.1", "bob")], chans=[])
    assert [(m.command, m.params) for m in seen.messages()] == [("PART", ("#x",))]
    world.feed("there", "burst", users=[remote_user("t.1", "bobby")], chans=[])
    assert world.hub.find_client("bobby") is not None and world.hub.find_client("bob") is None
    world.feed("there", "burst", users=[], chans=[])
    assert world.hub.find_client("bobby") is None


def test_a_silent_node_is_dropped_and_its_users_quit() -> None:
    world = World()
    alice, seen = world.connect("alice")
    world.hub.receive(alice, [b"JOIN #x"])
    world.feed("there", "burst", users=[remote_user("t.1", "bob")], chans=[])
    world.feed("there", "join", u="t.1", c="#x", p="")
    seen.messages()
    world.now += 4.0
    world.node.link_tick()
    assert not seen.messages()
    world.now += 2.0
    world.node.link_tick()
    (quit_message,) = seen.messages()
    assert quit_message.command == "QUIT" and quit_message.params == ("there left the network",)
    assert world.hub.find_client("bob") is None and "there" not in world.node.nodes


def test_events_from_an_unknown_node_ask_it_for_a_burst() -> None:
    world = World()
    alice, seen = world.connect("alice")
    world.hub.receive(alice, [b"JOIN #x"])
    seen.messages()
    world.feed("ghost", "join", u="g.1", c="#x", p="")
    assert not seen.messages()  # a node whose users we do not know changes nothing
    assert world.link.published(node_keys("chatd", "ghost").live)[-1]["t"] == "sync"
    world.feed("ghost", "msg", c="#x", line=":ghost!~u@h PRIVMSG #x :boo", plain="ghost: boo", id="1", at=1.0)
    assert [m.params for m in seen.messages()] == [("#x", "boo")]  # but its messages get through
    assert "ghost" not in world.node.nodes


def test_a_remote_channel_message_reaches_local_members_once_with_its_msgid() -> None:
    world = World()
    alice, seen = world.connect("alice")
    world.hub.receive(alice, [b"CAP REQ :message-tags", b"JOIN #x"])
    world.feed("there", "burst", users=[remote_user("t.1", "bob")], chans=[])
    world.feed("there", "join", u="t.1", c="#x", p="")
    seen.messages()
    world.feed("there", "msg", c="#x", line=":bob!~u@10.0.0.2 PRIVMSG #x :hi", plain="bob: hi", id="m-7", at=1.0)
    (message,) = seen.messages()
    assert message.params == ("#x", "hi") and message.tags["msgid"] == "m-7"


def test_a_nick_yielded_to_an_older_claim_renames_the_local_user() -> None:
    world = World()
    twin, seen = world.connect("twin")
    world.feed("there", "burst", users=[remote_user("t.1", "twin")], chans=[])
    assert world.hub.find_client("twin") is twin  # a clash being settled: the local user stays findable
    world.feed("there", "yield", k="twin")
    nick = [m for m in seen.messages() if m.command == "NICK"]
    assert nick and nick[0].params[0].startswith("Guest")
    assert world.hub.find_client("twin").node == "there"  # type: ignore[union-attr]


def test_a_join_brings_the_channel_state_where_the_channel_is_new() -> None:
    world = World()
    world.feed("there", "burst", users=[remote_user("t.1", "bob")], chans=[])
    state = {
        "created": 5, "topic": "from there", "by": "bob!~u@10.0.0.2", "at": 7, "modes": "imnt",
        "key": "k3y", "limit": 9, "bans": [["*!*@bad", "bob", 6]],
    }  # fmt: skip
    world.feed("there", "join", u="t.1", c="#new", p="@", s=state)
    channel = world.hub.find_channel("#new")
    assert channel is not None
    assert (channel.topic, channel.modes, channel.mode_key, channel.limit) == ("from there", set("imnt"), "k3y", 9)
    assert [ban.mask for ban in channel.bans] == ["*!*@bad"]


def test_an_account_travels_with_its_user_and_its_changes_reach_account_notify_peers() -> None:
    world = World(MemoryAccountStore())
    alice, seen = world.connect("alice")
    world.hub.receive(alice, [b"CAP REQ :account-notify", b"JOIN #x"])
    world.feed("there", "burst", users=[{**remote_user("t.1", "bob"), "acct": "Bob"}], chans=[])
    world.feed("there", "join", u="t.1", c="#x", p="")
    seen.messages()
    bob = world.hub.find_client("bob")
    assert bob is not None and bob.account == "Bob"  # logged in before it was introduced: no ACCOUNT
    assert world.hub.accounts.names["bob"] == "Bob"
    world.feed("there", "umeta", u="t.1", away=None, real="bob", modes="")  # an older node: no acct
    assert bob.account == "Bob" and not seen.messages()
    world.feed("there", "umeta", u="t.1", away=None, real="bob", modes="", acct=None)
    assert [(m.source, m.command, m.params) for m in seen.messages()] == [("bob!~u@10.0.0.2", "ACCOUNT", ("*",))]
    world.feed("there", "umeta", u="t.1", away=None, real="bob", modes="", acct="Robert")
    assert [(m.command, m.params) for m in seen.messages()] == [("ACCOUNT", ("Robert",))]
    assert bob.account == "Robert"


def test_a_local_login_goes_out_with_the_user() -> None:
    world = World(MemoryAccountStore())
    alice, _ = world.connect("alice")
    assert world.link.published()[-1]["acct"] is None
    log_in(world.hub, alice, make_record("Alice", "pw"))
    assert world.link.published()[-1] == {
        "t": "umeta", "u": alice.uid, "away": None, "real": "Real", "modes": "", "acct": "Alice", "n": "here",
    }  # fmt: skip
    log_out(world.hub, alice)
    assert world.link.published()[-1]["acct"] is None
    log_in(world.hub, alice, make_record("Alice", "pw"))
    world.feed("there", "sync")
    (burst,) = world.link.published(node_keys("chatd", "there").live)
    assert [user["acct"] for user in burst["users"]] == ["Alice"]


def test_registrations_and_drops_cross_nodes_and_a_drop_logs_out_local_users() -> None:
    world = World(MemoryAccountStore())
    alice, seen = world.connect("alice")
    account_registered(world.hub, "Carol")
    assert world.hub.accounts.names["carol"] == "Carol"
    assert world.link.published()[-1] == {"t": "areg", "a": "Carol", "n": "here"}
    world.feed("ghost", "areg", a="Dave")  # from a node we hold nothing of: still applied
    assert world.hub.accounts.names["dave"] == "Dave"
    log_in(world.hub, alice, make_record("Dave", "pw"))
    seen.messages()
    world.feed("ghost", "adrop", a="DAVE")
    assert "dave" not in world.hub.accounts.names
    assert alice.account is None and [m.command for m in seen.messages()] == ["901"]
    assert world.link.published()[-1]["acct"] is None  # the logout goes out like any other
    account_dropped(world.hub, "carol")
    assert "carol" not in world.hub.accounts.names
    assert world.link.published()[-1] == {"t": "adrop", "a": "carol", "n": "here"}


def test_without_a_cluster_registrations_and_drops_stay_local() -> None:
    hub = Hub(ServerConfig(), lambda: 0.0, lambda: 1.7e9, accounts=MemoryAccountStore())
    account_registered(hub, "Erin")
    assert hub.accounts.names == {"erin": "Erin"}
    account_dropped(hub, "erin")
    assert hub.accounts.names == {}


def test_another_nodes_channel_state_never_makes_a_channel_registered() -> None:
    world = World()
    world.feed("there", "burst", users=[remote_user("t.1", "bob")], chans=[])
    state = {"created": 5, "topic": "", "by": "", "at": 0, "modes": "nrt", "key": None, "limit": None, "bans": []}
    world.feed("there", "join", u="t.1", c="#reg", p="@", s=state)
    channel = world.hub.find_channel("#reg")
    assert channel is not None and channel.modes == set("nt") and channel.registration is None
    world.feed("there", "creg", c="#reg", r={"founder": "bob", "at": 1.0, "access": [["carol", "v"]], "tlock": True})
    assert channel.modes == set("nrt") and channel.registration is not None
    assert (channel.registration.founder, channel.registration.access) == ("bob", (("carol", "v"),))
    assert channel.registration.topic_lock and "#reg" in world.hub.permanent
    world.feed("there", "creg", c="#reg", r=None)
    assert channel.modes == set("nt") and channel.registration is None and "#reg" not in world.hub.permanent


def test_a_ghost_of_a_remote_user_waits_for_it_to_be_gone() -> None:
    world = World()
    alice, _ = world.connect("alice")
    world.feed("there", "burst", users=[remote_user("t.1", "bob"), remote_user("t.2", "carol")], chans=[])
    bob, carol = world.hub.find_client("bob"), world.hub.find_client("carol")
    assert bob is not None and carol is not None
    done: list[str] = []
    world.node.ghost(alice, bob, "GHOSTed by alice", lambda: done.append("bob"))
    world.node.ghost(alice, carol, "GHOSTed by alice", lambda: done.append("carol"))
    assert world.link.published(node_keys("chatd", "there").live)[-2] == {
        "t": "ghost", "u": alice.uid, "k": "t.1", "r": "GHOSTed by alice", "n": "here",
    }  # fmt: skip
    assert not done  # the nick is not free before its node says the user is gone
    world.feed("there", "quit", u="t.1", r="GHOSTed by alice")
    assert done == ["bob"]
    world.feed("there", "bye")  # a node that leaves takes its users, and what waited on them, along
    assert done == ["bob", "carol"]
    world.node.ghost(alice, bob, "GHOSTed by alice", lambda: done.append("again"))
    assert done[-1] == "again"  # gone already: at once
