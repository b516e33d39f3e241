"""Ban exceptions (+e) and invite exceptions (+I), as modern.ircdocs.horse describes them: a ban
exception lets a banned mask join and speak, an invite exception lets a mask join +i without an
INVITE; and either list, or the bans, may name an account (``$a:<account>``, IRCv3 account-extban).
The rules on the hub harness; the lists kept by a permanent channel over both databases;
and a two-node network (both backends) where node b holds a joiner to node a's lists."""

from __future__ import annotations

import json
from dataclasses import replace

from chatd.cluster.wire import channel_state, state_fields
from chatd.core.accounts import log_in
from chatd.core.channel import Ban, ChannelState
from chatd.history import History
from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness
from tests.helpers import RedisServer, wait_until
from tests.postgres import Database
from tests.test_account_ircv3 import record
from tests.test_bot_mode import welcomed
from tests.test_cluster import cluster_node, expect_from, joined, linked, sees_member


def channel_with_op(harness: HubHarness, *modes: str) -> HubClient:
    chanop = harness.client("chanop")
    chanop.send("JOIN #c")
    chanop.until("366")
    for mode in modes:
        chanop.send(f"MODE #c {mode}")
        assert chanop.expect("MODE").params[1:] == tuple(mode.split(" "))
    return chanop


def test_the_exception_modes_are_advertised() -> None:
    _, myinfo, tokens = welcomed(HubHarness(), "asker")
    assert {"CHANMODES=beI,k,l,Cimnrst", "EXCEPTS=e", "INVEX=I"} <= set(tokens)
    assert myinfo.params[4] == "CbeIiklmnorstv"


def test_a_ban_exception_lets_a_banned_mask_join_and_speak() -> None:
    harness = HubHarness()
    chanop = channel_with_op(harness, "+b ba*!*@*")
    bar = harness.client("bar")
    bar.send("JOIN #c")
    assert bar.expect(n.ERR_BANNEDFROMCHAN)
    chanop.send("MODE #c +e *ar!*@*")
    assert chanop.expect("MODE").params == ("#c", "+e", "*ar!*@*")
    bar.send("JOIN #c")
    bar.until("366")
    bar.send("PRIVMSG #c :thanks")
    assert chanop.expect("PRIVMSG").params == ("#c", "thanks")
    chanop.send("MODE #c -e *AR!*@*")  # masks compare case-insensitively
    assert chanop.expect("MODE").params == ("#c", "-e", "*ar!*@*")
    bar.send("PRIVMSG #c :and now?")
    assert bar.expect(n.ERR_CANNOTSENDTOCHAN)  # banned again: a banned member cannot speak


def test_an_invite_exception_lets_a_mask_join_invite_only() -> None:
    harness = HubHarness()
    chanop = channel_with_op(harness, "+i")
    bar, baz = harness.client("bar"), harness.client("baz")
    chanop.send("MODE #c +I bar!*@*")
    assert chanop.expect("MODE").params == ("#c", "+I", "bar!*@*")
    baz.send("JOIN #c")
    assert baz.expect(n.ERR_INVITEONLYCHAN)
    bar.send("JOIN #c")
    bar.until("366")
    bar.send("PART #c")
    bar.expect("PART")
    chanop.send("MODE #c -I bar!*@*")
    chanop.expect("MODE")
    bar.send("JOIN #c")
    assert bar.expect(n.ERR_INVITEONLYCHAN)


def test_operators_list_the_exceptions_and_others_only_the_bans() -> None:
    harness = HubHarness()
    chanop = channel_with_op(harness, "+b bad!*@*", "+e good!*@*", "+I friend!*@*")
    member = harness.client("member")
    member.send("JOIN #c")
    member.until("366")
    chanop.sync()
    lists = (("e", n.RPL_EXCEPTLIST, n.RPL_ENDOFEXCEPTLIST), ("+I", n.RPL_INVEXLIST, n.RPL_ENDOFINVEXLIST))
    for query, entry, end in lists:
        chanop.send(f"MODE #c {query}")
        listed = chanop.until(end)
        assert [m.command for m in listed] == [entry, end]
        assert listed[0].params[1:3] == ("#c", "good!*@*" if query == "e" else "friend!*@*")
        assert listed[0].params[3].startswith("chanop") and listed[0].params[4].isdigit()
        member.send(f"MODE #c {query}")
        assert member.expect(n.ERR_CHANOPRIVSNEEDED)
    member.send("MODE #c b")
    assert [m.params[2] for m in member.until(n.RPL_ENDOFBANLIST) if m.command == n.RPL_BANLIST] == ["bad!*@*"]


def test_a_permanent_channel_keeps_its_exceptions(database: Database) -> None:
    state = ChannelState(
        "#Keep", 1.0, "topic", "op!u@h", 2.0, "int",
        bans=(Ban("*!*@bad.example", "op", 3.0),),
        excepts=(Ban("good!*@bad.example", "op", 4.0),),
        invexes=(Ban("friend!*@*", "op", 5.0), Ban("*!*@home.example", "op", 6.0)),
    )  # fmt: skip
    history = History(database.store())
    history.save_channel("#keep", state)
    history.close()
    history = History(database.store())
    try:
        assert history.saved_channel("#keep") == state
    finally:
        history.close()


def test_exceptions_hold_on_another_node(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        chanop = a.client("chanop")
        joined(chanop, "#x")
        for mode in ("+bi ba*!*@*", "+e *ar!*@*", "+I bar!*@*"):
            chanop.send(f"MODE #x {mode}")
            chanop.expect("MODE")
        bar, baz = b.client("bar"), b.client("baz")
        sees_member(bar, "#x", "chanop")

        def listed_on_b() -> bool:  # node b has applied the last change
            bar.send("MODE #x")
            return bar.expect(n.RPL_CHANNELMODEIS).params[2] == "+int"

        wait_until(listed_on_b, "node b to see #x +i")
        joined(bar, "#x")  # banned and +i, but excepted from both
        expect_from(chanop, "JOIN", "bar")
        baz.send("JOIN #x")
        assert baz.expect(n.ERR_BANNEDFROMCHAN)


def test_the_lists_travel_in_a_burst_and_a_node_of_an_earlier_version_is_read() -> None:
    state = ChannelState(
        "#x", 1.0, bans=(Ban("b!*@*", "op", 2.0),), excepts=(Ban("e!*@*", "op", 3.0),),
        invexes=(Ban("i!*@*", "op", 4.0),),
    )  # fmt: skip
    fields = json.loads(json.dumps(state_fields(state)))  # as it crosses Redis
    assert channel_state("#x", fields) == state
    del fields["excepts"], fields["invexes"]
    assert channel_state("#x", fields) == replace(state, excepts=(), invexes=())


def logged_in_as(harness: HubHarness, nick: str, account: str) -> HubClient:
    client = harness.client(nick)
    log_in(harness.hub, client.connection, record(account))
    client.until("900")
    return client


def test_an_account_extban_follows_the_account_not_the_nick() -> None:
    harness = HubHarness()
    _, _, tokens = welcomed(harness, "asker")
    assert {"EXTBAN=$,am", "ACCOUNTEXTBAN=a"} <= set(tokens)
    chanop = channel_with_op(harness, "+b $a:bob", "+b $a:spam*")
    renamed_bob = logged_in_as(harness, "notbob", "bob")
    renamed_bob.send("JOIN #c")
    assert renamed_bob.expect(n.ERR_BANNEDFROMCHAN)
    spammer = logged_in_as(harness, "innocent", "spammer7")
    spammer.send("JOIN #c")
    assert spammer.expect(n.ERR_BANNEDFROMCHAN)
    anonymous_bob = harness.client("bob")  # the nick, without the account: not banned
    anonymous_bob.send("JOIN #c")
    anonymous_bob.until("366")
    chanop.send("MODE #c -b $a:BOB")
    assert chanop.expect("MODE").params == ("#c", "-b", "$a:bob")
    renamed_bob.send("JOIN #c")
    renamed_bob.until("366")
    chanop.send("MODE #c +b $x:what")
    assert chanop.expect(n.ERR_INVALIDMODEPARAM).params[1:4] == ("#c", "b", "$x:what")


def test_account_exceptions_let_an_account_past_bans_and_invite_only() -> None:
    harness = HubHarness()
    channel_with_op(harness, "+bi *!*@*", "+e $a:friend", "+I $a:friend")
    stranger = logged_in_as(harness, "stranger", "stranger")
    stranger.send("JOIN #c")
    assert stranger.expect(n.ERR_BANNEDFROMCHAN)
    friend = logged_in_as(harness, "friend_away", "friend")
    friend.send("JOIN #c")
    friend.until("366")


def test_a_mute_lets_a_user_in_but_not_speak_unless_voiced_or_excepted() -> None:
    harness = HubHarness()
    chanop = channel_with_op(harness, "+b $m:bar!*@*", "+b $m:$a:spammer")
    bar = harness.client("bar")
    bar.send("JOIN #c")
    bar.until("366")  # a mute is no ban
    bar.send("PRIVMSG #c :hello?")
    assert bar.expect(n.ERR_CANNOTSENDTOCHAN)
    chanop.send("MODE #c +v bar")
    chanop.expect("MODE")
    bar.send("PRIVMSG #c :voiced now")
    assert chanop.expect("PRIVMSG").params == ("#c", "voiced now")
    spammer = logged_in_as(harness, "fresh_nick", "spammer")
    spammer.send("JOIN #c")
    spammer.until("366")
    spammer.send("PRIVMSG #c :buy")
    assert spammer.expect(n.ERR_CANNOTSENDTOCHAN)
    chanop.send("MODE #c +e $a:spammer")  # an exception lifts a mute as it lifts a ban
    chanop.expect("MODE")
    spammer.send("PRIVMSG #c :reformed")
    assert chanop.expect("PRIVMSG").params == ("#c", "reformed")
    chanop.send("MODE #c +b $m:$m:x")
    assert chanop.expect(n.ERR_INVALIDMODEPARAM).params[3] == "$m:$m:x"
    chanop.send("MODE #c b")
    masks = [m.params[2] for m in chanop.until(n.RPL_ENDOFBANLIST) if m.command == n.RPL_BANLIST]
    assert masks == ["$m:bar!*@*", "$m:$a:spammer"]
