"""MONITOR and extended-monitor — on the hub harness; then over both backends, and across
two cluster nodes."""

from __future__ import annotations

from chatd.cluster.replica import RemoteNode, Replica
from chatd.core.limits import MAX_MONITOR_TARGETS
from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness
from tests.helpers import RedisServer, RunningServer
from tests.test_cluster import cluster_node, linked


def _capable(hub: HubHarness, nick: str, *caps: str) -> HubClient:
    client = hub.client()
    client.send(f"CAP REQ :{' '.join(caps)}")
    assert client.expect("CAP").params[1] == "ACK"
    client.send("CAP END")
    client.register(nick)
    return client


def _monitor(client: HubClient, line: str) -> list[tuple[str, ...]]:
    """Send a MONITOR line; the numerics it answered, as (command, *params after the nick)."""
    client.send(line)
    return [(m.command, *m.params[1:]) for m in client.sync()]


def test_monitor_and_extended_monitor_are_advertised() -> None:
    hub = HubHarness()
    client = hub.client()
    client.send("CAP LS 302")
    assert "extended-monitor" in client.expect("CAP").params[2].split()
    client.send("CAP END")
    welcome = client.register("someone")
    tokens = {token for m in welcome if m.command == n.RPL_ISUPPORT for token in m.params[1:-1]}
    assert f"MONITOR={MAX_MONITOR_TARGETS}" in tokens


def test_watchers_hear_a_nick_register_and_quit() -> None:
    hub = HubHarness()
    watcher = hub.client("watcher")
    assert _monitor(watcher, "MONITOR + bar") == [(n.RPL_MONOFFLINE, "bar")]
    bar = hub.client("bar")
    assert watcher.expect(n.RPL_MONONLINE).params[1] == "bar!~u@127.0.0.1"
    bar.send("QUIT :bye")
    bar.wait_closed()
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bar"
    hub.client("bar").close()  # a hang-up is a departure too
    assert [m.command for m in watcher.sync()] == [n.RPL_MONONLINE, n.RPL_MONOFFLINE]


def test_adding_reports_status_and_case_maps() -> None:
    hub = HubHarness()
    watcher = hub.client("watcher")
    hub.client("nick{a}")
    assert _monitor(watcher, "MONITOR + NICK[A],baz") == [
        (n.RPL_MONONLINE, "nick{a}!~u@127.0.0.1"),
        (n.RPL_MONOFFLINE, "baz"),
    ]
    assert _monitor(watcher, "MONITOR S") == [(n.RPL_MONONLINE, "nick{a}!~u@127.0.0.1"), (n.RPL_MONOFFLINE, "baz")]
    assert _monitor(watcher, "MONITOR L") == [
        (n.RPL_MONLIST, "NICK[A],baz"),
        (n.RPL_ENDOFMONLIST, "End of MONITOR list"),
    ]


def test_remove_and_clear_are_silent_and_stop_notifications() -> None:
    hub = HubHarness()
    watcher = hub.client("watcher")
    other = hub.client("other")
    _monitor(watcher, "MONITOR + qux,quux")
    _monitor(other, "MONITOR + qux")
    assert _monitor(watcher, "MONITOR - QUX") == []
    assert _monitor(watcher, "MONITOR L") == [(n.RPL_MONLIST, "quux"), (n.RPL_ENDOFMONLIST, "End of MONITOR list")]
    hub.client("qux")
    assert other.expect(n.RPL_MONONLINE).params[1].startswith("qux!")
    assert watcher.sync() == []
    assert _monitor(watcher, "MONITOR C") == []
    assert _monitor(watcher, "MONITOR L") == [(n.RPL_ENDOFMONLIST, "End of MONITOR list")]
    hub.client("quux")
    assert watcher.sync() == []


def test_nick_changes_are_offline_then_online_and_a_case_change_is_nothing() -> None:
    hub = HubHarness()
    watcher = hub.client("watcher")
    _monitor(watcher, "MONITOR + qux,baz")
    baz = hub.client("baz")
    watcher.sync()
    baz.send("NICK qux")
    baz.expect("NICK")
    assert [(m.command, m.params[1]) for m in watcher.sync()] == [
        (n.RPL_MONOFFLINE, "baz"),
        (n.RPL_MONONLINE, "qux!~u@127.0.0.1"),
    ]
    baz.send("NICK QUX")
    baz.expect("NICK")
    assert watcher.sync() == []
    baz.send("NICK bazbat")
    baz.expect("NICK")
    assert [(m.command, m.params[1]) for m in watcher.sync()] == [(n.RPL_MONOFFLINE, "QUX")]


def test_masks_are_refused_and_the_list_is_bounded() -> None:
    hub = HubHarness()
    watcher = hub.client("watcher")
    assert _monitor(watcher, "MONITOR + *!u@127.0.0.1") == [
        (n.ERR_ERRONEUSNICKNAME, "*!u@127.0.0.1", "Erroneous nickname")
    ]
    hub.client("u")
    assert watcher.sync() == []
    first = ",".join(f"n{i}" for i in range(MAX_MONITOR_TARGETS - 1))
    replies = _monitor(watcher, f"MONITOR + {first}")
    assert [r[0] for r in replies] == [n.RPL_MONOFFLINE] * len(replies)
    assert sum(len(r[1].split(",")) for r in replies) == MAX_MONITOR_TARGETS - 1
    assert all(len(r[1]) < 450 for r in replies)  # long lists are split to fit the line
    replies = _monitor(watcher, "MONITOR + n0,last,over,more")
    assert replies == [
        (n.ERR_MONLISTFULL, str(MAX_MONITOR_TARGETS), "over,more", "Monitor list is full"),
        (n.RPL_MONOFFLINE, "n0,last"),
    ]
    assert _monitor(watcher, "MONITOR +") == [(n.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")]


def test_a_leaving_watcher_is_forgotten() -> None:
    hub = HubHarness()
    watcher = hub.client("watcher")
    _monitor(watcher, "MONITOR + someone")
    watcher.close()
    assert hub.hub.watchlist.by_key == {}
    hub.client("someone")  # no watcher left to tell: nothing to fail


def test_extended_monitor_sends_away_and_setname_without_a_shared_channel() -> None:
    hub = HubHarness()
    extended = _capable(hub, "ext", "extended-monitor", "away-notify", "setname")
    plain = _capable(hub, "plain", "away-notify", "setname")
    sharing = _capable(hub, "sharing", "extended-monitor", "away-notify")
    bar = hub.client("bar")
    for client in (sharing, bar):
        client.send("JOIN #room")
        client.until(n.RPL_ENDOFNAMES)
    sharing.expect("JOIN")  # bar's
    for watcher in (extended, plain, sharing):
        assert _monitor(watcher, "MONITOR + bar") == [(n.RPL_MONONLINE, "bar!~u@127.0.0.1")]
    bar.send("AWAY :afk")
    bar.expect(n.RPL_NOWAWAY)
    bar.send("AWAY")
    bar.expect(n.RPL_UNAWAY)
    bar.send("SETNAME :new name")
    assert [(m.source, m.command, m.params) for m in extended.sync()] == [
        ("bar!~u@127.0.0.1", "AWAY", ("afk",)),
        ("bar!~u@127.0.0.1", "AWAY", ()),
        ("bar!~u@127.0.0.1", "SETNAME", ("new name",)),
    ]
    assert plain.sync() == []
    assert [m.command for m in sharing.sync()] == ["AWAY", "AWAY"]  # once, from the channel; no setname cap


def test_another_nodes_users_come_get_renamed_and_go() -> None:
    hub = HubHarness()
    watcher = _capable(hub, "watcher", "extended-monitor", "away-notify")
    _monitor(watcher, "MONITOR + remote,renamed")
    replica = Replica(hub.hub, "here")
    node = replica.nodes["b"] = RemoteNode("b", hub.clock.now)
    info = {"u": "there.1", "host": "10.0.0.2", "signon": 0.0, "user": "~r", "real": "R", "away": None, "modes": ""}
    user = replica.introduce(node, {**info, "nick": "remote"})
    assert [(m.command, m.params[1]) for m in watcher.sync()] == [(n.RPL_MONONLINE, "remote!~r@10.0.0.2")]
    replica.update_user(user, {**info, "nick": "remote", "away": "gone fishing"})
    assert [(m.command, m.params) for m in watcher.sync()] == [("AWAY", ("gone fishing",))]
    replica.rename(user, "renamed")
    assert [(m.command, m.params[1]) for m in watcher.sync()] == [
        (n.RPL_MONOFFLINE, "remote"),
        (n.RPL_MONONLINE, "renamed!~r@10.0.0.2"),
    ]
    replica.drop("b")
    assert [(m.command, m.params[1]) for m in watcher.sync()] == [(n.RPL_MONOFFLINE, "renamed")]


def test_monitor_over_a_backend(server: RunningServer) -> None:
    watcher = server.client("watcher")
    watcher.send("MONITOR + bar")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bar"
    bar = server.client("bar")
    assert watcher.expect(n.RPL_MONONLINE).params[1] == "bar!~u@127.0.0.1"
    bar.send("NICK baz")
    bar.expect("NICK")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bar"
    bar.send("NICK bar")
    assert watcher.expect(n.RPL_MONONLINE).params[1] == "bar!~u@127.0.0.1"
    bar.send("QUIT")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bar"


def test_monitor_sees_users_of_another_node(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        watcher = a.client("watcher")
        watcher.send("MONITOR + bob")
        assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bob"
        bob = b.client("bob")
        assert watcher.expect(n.RPL_MONONLINE).params[1] == "bob!~u@127.0.0.1"
        bob.send("NICK robert")
        assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bob"
        bob.send("NICK bob")
        assert watcher.expect(n.RPL_MONONLINE).params[1] == "bob!~u@127.0.0.1"
        bob.send("QUIT")
        assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "bob"
