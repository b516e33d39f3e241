"""Commands with several targets, as TARGMAX advertises them, and the lists that go with them:
PRIVMSG/NOTICE/TAGMSG to at most four targets, KICK by pairs, LIST's names and conditions
(ELIST=CMNTU), and INVITE alone listing one's invitations — on the hub harness."""

from __future__ import annotations

from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness
from tests.test_bot_mode import welcomed


def in_channels(client: HubClient, *names: str) -> None:
    for name in names:
        client.send(f"JOIN {name}")
        client.until("366")


def listed(client: HubClient, query: str) -> set[str]:
    client.send(f"LIST {query}")
    return {m.params[1] for m in client.until(n.RPL_LISTEND) if m.command == n.RPL_LIST}


def test_targmax_says_what_each_command_takes() -> None:
    _, _, tokens = welcomed(HubHarness(), "asker")
    assert "TARGMAX=KICK:,NAMES:1,NOTICE:4,PRIVMSG:4,TAGMSG:4,USERHOST:5,WHOIS:1" in tokens
    assert "ELIST=CMNTU" in tokens


def test_a_message_reaches_four_targets_and_no_more() -> None:
    harness = HubHarness()
    sender = harness.client("sender")
    readers = [harness.client(f"r{i}") for i in range(5)]
    sender.send("PRIVMSG r0,r1,r2,r3,r4 :hello all")
    assert sender.expect(n.ERR_TOOMANYTARGETS).params[1] == "r4"
    assert [reader.expect("PRIVMSG").params for reader in readers[:4]] == [(f"r{i}", "hello all") for i in range(4)]
    sender.send("NOTICE r0,r1,r2,r3,r4 :quietly")
    assert sender.sync() == []  # a NOTICE is never answered with an error
    assert [m.params[1] for m in readers[4].sync() if m.command in ("PRIVMSG", "NOTICE")] == []


def test_kick_takes_one_channel_and_many_members_or_pairs() -> None:
    harness = HubHarness()
    chanop = harness.client("chanop")
    in_channels(chanop, "#a", "#b")
    bar, baz = harness.client("bar"), harness.client("baz")
    in_channels(bar, "#a", "#b")
    in_channels(baz, "#a", "#b")
    chanop.sync()
    chanop.send("KICK #a,#b bar,baz :bye")
    kicks = [m.params for m in chanop.sync() if m.command == "KICK"]
    assert kicks == [("#a", "bar", "bye"), ("#b", "baz", "bye")]
    chanop.send("KICK #b bar,baz")
    assert [m.params[:2] for m in chanop.sync() if m.command == "KICK"] == [("#b", "bar")]  # baz was gone
    chanop.send("KICK #a,#b baz")
    assert chanop.expect(n.ERR_NEEDMOREPARAMS)
    carl = harness.client("carl")
    in_channels(carl, "#a")
    carl.sync()
    carl.send("KICK #a chanop,baz,bar")  # not an operator there: told once, not once per nick
    assert [m.command for m in carl.sync()] == [n.ERR_CHANOPRIVSNEEDED]


def test_list_takes_names_and_conditions_together() -> None:
    harness = HubHarness()
    founder = harness.client("founder")
    in_channels(founder, "#old", "#busy")
    founder.send("TOPIC #old :from long ago")
    founder.expect("TOPIC")
    harness.clock.advance_to(harness.clock.now + 180)
    in_channels(founder, "#new")
    helper = harness.client("helper")
    in_channels(helper, "#busy")
    assert listed(helper, "#old,#new") == {"#old", "#new"}
    assert listed(helper, "#old,#new,>1") == set()
    assert listed(helper, "#*,>1") == {"#busy"}
    assert listed(helper, "C>2") == {"#old", "#busy"}
    assert listed(helper, "C<2") == {"#new"}
    assert listed(helper, "T>2") == {"#old"}
    assert listed(helper, "T<2") == set()
    assert listed(helper, "!#b*") == {"#old", "#new"}


def test_invite_alone_lists_the_invitations_not_used_yet() -> None:
    harness = HubHarness()
    chanop, guest = harness.client("chanop"), harness.client("guest")
    in_channels(chanop, "#one", "#two")
    for name in ("#one", "#two"):
        chanop.send(f"INVITE guest {name}")
        chanop.expect(n.RPL_INVITING)
    guest.sync()  # the INVITEs themselves
    guest.send("INVITE")
    assert [m.params[1] for m in guest.until(n.RPL_ENDOFINVITELIST)[:-1]] == ["#one", "#two"]
    in_channels(guest, "#one")
    guest.send("INVITE")
    assert [m.params[1:] for m in guest.until(n.RPL_ENDOFINVITELIST)] == [("#two",), ("End of /INVITE list",)]
    guest.send("INVITE chanop")
    assert guest.expect(n.ERR_NEEDMOREPARAMS)
