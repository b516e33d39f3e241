"""Channel modes +i +k +l +b +m +s +C with INVITE, several changes per MODE line — both backends."""

from __future__ import annotations

from chatd.core.channel import Channel
from chatd.core.client import Client
from chatd.protocol import numerics as n
from tests.helpers import Capture, IrcClient, RunningServer


def op_and_channel(server: RunningServer, name: str = "#m") -> IrcClient:
    op = server.client("op")
    op.send(f"JOIN {name}")
    op.until("366")
    return op


def test_several_changes_with_parameters_in_one_line(server: RunningServer) -> None:
    op = op_and_channel(server)
    op.send("MODE #m +kl-t sesame 5")
    change = op.expect("MODE")
    assert change.params == ("#m", "+kl-t", "sesame", "5")
    op.send("MODE #m")
    assert op.expect(n.RPL_CHANNELMODEIS).params[1:] == ("#m", "+nkl", "sesame", "5")
    assert op.expect(n.RPL_CREATIONTIME).params[1] == "#m"
    outsider = server.client("outsider")
    outsider.send("MODE #m")
    assert outsider.expect(n.RPL_CHANNELMODEIS).params[1:] == ("#m", "+nkl")  # no key for outsiders
    op.send("MODE #m -k+z-l x")
    assert op.expect(n.ERR_UNKNOWNMODE).params[1] == "z"
    assert op.expect("MODE").params == ("#m", "-kl", "*")


def test_key(server: RunningServer) -> None:
    op = op_and_channel(server)
    op.send("MODE #m +k sesame")
    op.expect("MODE")
    guest = server.client("guest")
    guest.send("JOIN #m")
    assert guest.expect(n.ERR_BADCHANNELKEY).params[1] == "#m"
    guest.send("JOIN #m wrong")
    assert guest.expect(n.ERR_BADCHANNELKEY)
    guest.send("JOIN #other,#m x,sesame")
    assert guest.expect("JOIN").params == ("#other",)
    assert guest.expect("JOIN").params == ("#m",)


def test_limit(server: RunningServer) -> None:
    op = op_and_channel(server)
    op.send("MODE #m +l 2")
    op.expect("MODE")
    second = server.client("second")
    second.send("JOIN #m")
    second.until("366")
    third = server.client("third")
    third.send("JOIN #m")
    assert third.expect(n.ERR_CHANNELISFULL).params[1] == "#m"


def test_invite_only_and_invite(server: RunningServer) -> None:
    op = op_and_channel(server)
    op.send("MODE #m +i")
    op.expect("MODE")
    guest = server.client("guest")
    guest.send("JOIN #m")
    assert guest.expect(n.ERR_INVITEONLYCHAN).params[1] == "#m"
    op.send("INVITE guest #m")
    assert op.expect(n.RPL_INVITING).params[1:] == ("guest", "#m")
    invite = guest.expect("INVITE")
    assert invite.source.startswith("op!") and invite.params == ("guest", "#m")
    guest.send("JOIN #m")
    assert guest.expect("JOIN").params == ("#m",)
    guest.send("INVITE op #m")
    assert guest.expect(n.ERR_CHANOPRIVSNEEDED)  # +i: only operators invite
    op.send("INVITE guest #m")
    assert op.expect(n.ERR_USERONCHANNEL).params[1:3] == ("guest", "#m")
    op.send("INVITE ghost #m")
    assert op.expect(n.ERR_NOSUCHNICK)
    op.send("INVITE guest #nowhere")
    assert op.expect(n.ERR_NOSUCHCHANNEL)


def test_bans_with_wildcards(server: RunningServer) -> None:
    op = op_and_channel(server)
    member = server.client("member")
    member.send("JOIN #m")
    member.until("366")
    op.send("MODE #m +b memb*")
    assert op.expect("MODE").params == ("#m", "+b", "memb*!*@*")
    member.send("PRIVMSG #m :can I talk")
    assert member.expect(n.ERR_CANNOTSENDTOCHAN)  # a banned member is silenced
    member.send("PART #m")
    member.expect("PART")
    member.send("JOIN #m")
    assert member.expect(n.ERR_BANNEDFROMCHAN).params[1] == "#m"
    op.send("MODE #m +b *!*@127.0.0.?")
    op.expect("MODE")
    op.send("MODE #m b")
    bans = op.until(n.RPL_ENDOFBANLIST)
    entries = [(m.params[2], m.params[3].split("!")[0]) for m in bans if m.command == n.RPL_BANLIST]
    assert entries == [("memb*!*@*", "op"), ("*!*@127.0.0.?", "op")]
    op.send("MODE #m -bb memb*!*@* *!*@127.0.0.?")
    assert op.expect("MODE").params == ("#m", "-bb", "memb*!*@*", "*!*@127.0.0.?")
    member.send("JOIN #m")
    assert member.expect("JOIN").params == ("#m",)


def test_moderated_and_voice(server: RunningServer) -> None:
    op = op_and_channel(server)
    talker = server.client("talker")
    talker.send("JOIN #m")
    talker.until("366")
    op.send("MODE #m +m")
    op.expect("MODE")
    talker.send("PRIVMSG #m :hello?")
    assert talker.expect(n.ERR_CANNOTSENDTOCHAN)
    op.send("MODE #m +v talker")
    assert talker.expect("MODE").params == ("#m", "+v", "talker")
    talker.send("PRIVMSG #m :now I can")
    assert op.expect("PRIVMSG").params == ("#m", "now I can")
    op.send("NAMES #m")
    assert [m.params[3] for m in op.until("366") if m.command == "353"] == ["@op +talker"]


def test_no_ctcp_lets_only_actions_through(server: RunningServer) -> None:
    op = op_and_channel(server)
    user = server.client("user")
    user.send("JOIN #m")
    user.until("366")
    op.send("MODE #m +C")
    op.expect("MODE")
    for text in ("\x01VERSION\x01", "\x01PING 1\x01", "\x01ACTION waves\x01", "plain words"):
        user.send(f"PRIVMSG #m :{text}")  # the fast path's shape
        user.send(f"@+x=1 NOTICE #m :{text}")  # the general path's
    refused = [m for m in user.sync() if m.command == n.ERR_CANNOTSENDTOCHAN]
    assert len(refused) == 2  # the two PRIVMSGs: a NOTICE is never answered
    got = [(m.command, m.params[1]) for m in op.sync() if m.command in ("PRIVMSG", "NOTICE")]
    assert got == [(c, t) for t in ("\x01ACTION waves\x01", "plain words") for c in ("PRIVMSG", "NOTICE")]
    op.send("PRIVMSG #m :\x01VERSION\x01")  # operators are held to it too
    assert op.expect(n.ERR_CANNOTSENDTOCHAN)


def test_secret_channels_are_hidden_from_outsiders(server: RunningServer) -> None:
    op = op_and_channel(server, "#hidden")
    op.send("JOIN #open")
    op.until("366")
    op.send("MODE #hidden +s")
    op.expect("MODE")
    outsider = server.client("outsider")
    outsider.send("LIST")
    names = [m.params[1] for m in outsider.until("323") if m.command == "322"]
    assert names == ["#open"]
    outsider.send("NAMES #hidden")
    assert [m.command for m in outsider.until("366")] == ["366"]
    outsider.send("WHOIS op")
    channels = [m.params[2] for m in outsider.until("318") if m.command == "319"]
    assert channels == ["@#open"]
    op.send("NAMES #hidden")
    assert op.until("366")[0].params[1:3] == ("@", "#hidden")


def test_list_patterns_and_user_counts(server: RunningServer) -> None:
    a, b = server.client("a"), server.client("b")
    a.send("JOIN #chat-one,#chat-two,#other")
    for _ in range(3):
        a.until("366")
    b.send("JOIN #chat-two")
    b.until("366")
    b.send("LIST *chat*")
    assert sorted(m.params[1] for m in b.until("323") if m.command == "322") == ["#chat-one", "#chat-two"]
    b.send("LIST >1")
    assert [m.params[1] for m in b.until("323") if m.command == "322"] == ["#chat-two"]
    b.send("LIST !*chat*")
    assert [m.params[1] for m in b.until("323") if m.command == "322"] == ["#other"]


def test_apply_modes_is_the_one_rule_set_for_local_and_relayed_changes() -> None:
    """What MODE applies is what another node's replica applies from the announced changes."""
    member = Client(1, Capture(), "127.0.0.1", 0.0, 0.0, lambda client: None)
    member.nick = "bob"
    here, there = Channel("#m", "#m", 1.0), Channel("#m", "#m", 1.0)
    for channel in (here, there):
        channel.add(member)
        channel.operators.discard(member)
    refused: list[tuple[str, str]] = []
    asked = [("+", "k", "sesame"), ("+", "o", "bob"), ("+", "o", "ghost"), ("+", "z", None), ("-", "t", None)]
    applied = here.apply_modes(
        iter(asked), by="op!~u@h", at=5.0, find={"bob": member}.get, refused=lambda c, why: refused.append((c[1], why))
    )
    assert applied == [("+", "k", "sesame"), ("+", "o", "bob"), ("-", "t", None)]
    assert refused == [("o", n.ERR_NOSUCHNICK), ("z", n.ERR_UNKNOWNMODE)]
    assert here.apply_modes(applied, by="op!~u@h", at=6.0, find={"bob": member}.get) == []  # nothing new
    there.apply_modes([*applied, ("+", "b", "bad")], by="op!~u@h", at=5.0, find={"bob": member}.get)
    assert (there.mode_key, there.modes, member in there.operators) == ("sesame", {"n"}, True)
    assert [(ban.mask, ban.set_by, ban.set_at) for ban in there.bans] == [("bad!*@*", "op!~u@h", 5.0)]
    restored = Channel("#m", "#m", 9.0)
    restored.restore(there.snapshot())
    assert restored.snapshot() == there.snapshot()
