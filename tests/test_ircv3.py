"""IRCv3: CAP negotiation and the capabilities chatd offers — on the hub harness.

Labeled responses also run over both backends: a labeled command's output is
gathered apart from the client's connection, and the backends' fan-outs see that.
"""

from __future__ import annotations

import re

from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcClient, RunningServer

TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def capable(server: RunningServer | HubHarness, nick: str, *caps: str) -> IrcClient | HubClient:
    client = server.client()
    client.send("CAP LS 302")
    client.send(f"CAP REQ :{' '.join(caps)}")
    client.send(f"NICK {nick}")
    client.send("USER u 0 * :Real")
    assert client.expect("CAP").params[1] == "LS"
    ack = client.expect("CAP")
    assert ack.params[1:] == ("ACK", " ".join(caps))
    client.send("CAP END")
    client.until("376", "422")
    client.nick = nick
    return client


def both_in(channel: str, *clients: IrcClient | HubClient) -> None:
    for client in clients:
        client.send(f"JOIN {channel}")
        client.until("366")
    for client in clients:
        client.sync()


def test_cap_ls_list_req() -> None:
    hub = HubHarness()
    client = hub.client()
    client.send("CAP LS 302")
    offered = set(client.expect("CAP").params[2].split())
    assert {
        "server-time",
        "message-tags",
        "echo-message",
        "multi-prefix",
        "away-notify",
        "batch",
        "labeled-response",
        "setname",
        "userhost-in-names",
        "invite-notify",
        "cap-notify",
    } <= offered
    client.send("CAP REQ :server-time nonsense")
    assert client.expect("CAP").params[1:] == ("NAK", "server-time nonsense")
    client.send("CAP REQ :server-time echo-message")
    assert client.expect("CAP").params[1:] == ("ACK", "server-time echo-message")
    client.send("CAP REQ :-echo-message")
    assert client.expect("CAP").params[1:] == ("ACK", "-echo-message")
    client.send("CAP LIST")
    assert set(client.expect("CAP").params[2].split()) == {"server-time", "cap-notify"}
    client.send("CAP FROB")
    assert client.expect(n.ERR_INVALIDCAPCMD)


def test_server_time_msgid_and_client_tags() -> None:
    hub = HubHarness()
    tagged = capable(hub, "tagged", "server-time", "message-tags")
    timed = capable(hub, "timed", "server-time")
    bare = hub.client("bare")
    both_in("#t", tagged, timed, bare)
    bare.send("@+example/reaction=lol;secret=no PRIVMSG #t :hello")
    message = tagged.expect("PRIVMSG")
    assert TIME_RE.match(message.tags["time"]) and message.tags["msgid"]
    assert message.tags["+example/reaction"] == "lol" and "secret" not in message.tags
    only_time = timed.expect("PRIVMSG")
    assert set(only_time.tags) == {"time"} and only_time.params == ("#t", "hello")
    assert bare.sync() == []  # no echo without echo-message
    other = hub.client("other")
    other.send("JOIN #t")
    other.until("366")
    bare.expect("JOIN")
    bare.send("PRIVMSG #t :plain")
    assert other.expect("PRIVMSG").tags == {}


def test_tagmsg_reaches_only_tag_aware_clients() -> None:
    hub = HubHarness()
    sender = capable(hub, "sender", "message-tags")
    aware = capable(hub, "aware", "message-tags")
    unaware = hub.client("unaware")
    both_in("#tm", sender, aware, unaware)
    sender.send("@+typing=active TAGMSG #tm")
    tagmsg = aware.expect("TAGMSG")
    assert tagmsg.params == ("#tm",) and tagmsg.tags["+typing"] == "active"
    assert [m for m in unaware.sync() if m.command == "TAGMSG"] == []
    sender.send("@+typing=paused TAGMSG aware")
    assert aware.expect("TAGMSG").tags["+typing"] == "paused"


def test_echo_message_returns_the_same_message() -> None:
    hub = HubHarness()
    echoer = capable(hub, "echoer", "echo-message", "message-tags")
    listener = capable(hub, "listener", "message-tags")
    both_in("#e", echoer, listener)
    echoer.send("PRIVMSG #e :said once")
    echoed = echoer.expect("PRIVMSG")
    heard = listener.expect("PRIVMSG")
    assert echoed.params == heard.params == ("#e", "said once")
    assert echoed.source == heard.source and echoed.tags["msgid"] == heard.tags["msgid"]
    echoer.send("PRIVMSG listener :just you")
    assert echoer.expect("PRIVMSG").params == ("listener", "just you")


def test_multi_prefix_and_userhost_in_names() -> None:
    hub = HubHarness()
    op = capable(hub, "op", "multi-prefix", "userhost-in-names")
    op.send("JOIN #p")
    assert op.until("366")[-2].params[3] == "@op!~u@127.0.0.1"
    op.send("MODE #p +v op")
    op.expect("MODE")
    op.send("NAMES #p")
    assert op.until("366")[0].params[3] == "@+op!~u@127.0.0.1"
    op.send("WHO #p")
    assert op.expect(n.RPL_WHOREPLY).params[6] == "H@+"
    plain = hub.client("plainnames")
    plain.send("NAMES #p")
    assert plain.until("366")[0].params[3] == "@op"


def test_away_notify() -> None:
    hub = HubHarness()
    watcher = capable(hub, "watcher", "away-notify")
    walker = hub.client("walker")
    both_in("#a", watcher, walker)
    walker.send("AWAY :lunch")
    walker.expect(n.RPL_NOWAWAY)
    away = watcher.expect("AWAY")
    assert away.source.startswith("walker!") and away.params == ("lunch",)
    walker.send("AWAY")
    assert watcher.expect("AWAY").params == ()
    walker.send("AWAY :again")
    watcher.expect("AWAY")
    walker.send("JOIN #b")
    walker.until("366")
    watcher.send("JOIN #b")
    watcher.until("366")
    late = capable(hub, "late", "away-notify")
    late.send("JOIN #b")
    seen = late.until("366")
    assert [m.params for m in seen if m.command == "AWAY"] == []  # walker joined first: WHO tells
    walker.send("PART #b")
    walker.expect("PART")
    walker.send("JOIN #b")
    assert late.expect("AWAY").params == ("again",)  # an away user joining is announced


def test_invite_notify() -> None:
    hub = HubHarness()
    op = hub.client("op")
    op.send("JOIN #i")
    op.until("366")
    co = capable(hub, "co", "invite-notify")
    co.send("JOIN #i")
    co.until("366")
    op.send("MODE #i +o co")
    co.expect("MODE")
    guest = hub.client("guest")
    op.send("INVITE guest #i")
    guest.expect("INVITE")
    notified = co.expect("INVITE")
    assert notified.source.startswith("op!") and notified.params == ("guest", "#i")


def test_setname() -> None:
    hub = HubHarness()
    changer = capable(hub, "changer", "setname")
    peer = capable(hub, "peer", "setname")
    both_in("#s", changer, peer)
    changer.send("SETNAME :A New Name")
    assert changer.expect("SETNAME").params == ("A New Name",)
    assert peer.expect("SETNAME").source.startswith("changer!")
    peer.send("WHOIS changer")
    assert peer.expect(n.RPL_WHOISUSER).params[5] == "A New Name"
    changer.send("SETNAME :" + "x" * 200)
    assert changer.expect("FAIL").params[:2] == ("SETNAME", "INVALID_REALNAME")


def test_labeled_response(server: RunningServer) -> None:
    client = capable(server, "labeler", "labeled-response", "batch", "echo-message")
    client.send("@label=one PONG :nothing")
    ack = client.expect("ACK")
    assert ack.tags == {"label": "one"}
    client.send("@label=two PING :token")
    pong = client.expect("PONG")
    assert pong.tags == {"label": "two"} and pong.params[-1] == "token"
    client.send("@label=three;+other=x JOIN #labeled")
    start = client.expect("BATCH")
    assert start.tags == {"label": "three"} and start.params[0].startswith("+")
    assert start.params[1] == "labeled-response"
    batch_id = start.params[0][1:]
    inside = client.until("BATCH")
    assert [m.command for m in inside[:-1]] == ["JOIN", "353", "366"]
    assert all(m.tags.get("batch") == batch_id for m in inside[:-1])
    assert inside[-1].params == (f"-{batch_id}",)
    unlabeled = server.client("unlabeled")
    unlabeled.send("CAP REQ :labeled-response")
    unlabeled.expect("CAP")
    unlabeled.send("@label=x PING :t")
    assert unlabeled.expect("PONG").tags == {}  # without batch, no labels (as InspIRCd)
