"""PRIVMSG, NOTICE, QUIT, WHO, WHOIS, AWAY — on the hub harness.

A channel message, and the exact wire form of channel messages to IRC and plain
members, also run over both backends: the backends have fan-out loops of their own.
"""

from __future__ import annotations

from tests.harness import HubHarness
from tests.helpers import RunningServer


def test_channel_message_reaches_members_but_not_sender(server: RunningServer) -> None:
    a, b, c = server.client("a"), server.client("b"), server.client("c")
    for client in (a, b, c):
        client.send("JOIN #talk")
        client.expect("366")
    a.send("PRIVMSG #talk :hello, world")
    for other in (b, c):
        message = other.expect("PRIVMSG")
        assert message.source == "a!~u@127.0.0.1" and message.params == ("#talk", "hello, world")
    assert [m for m in a.sync() if m.command == "PRIVMSG"] == []


def test_private_message_and_notice() -> None:
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    a.send("PRIVMSG B :psst")
    assert b.expect("PRIVMSG").params == ("b", "psst")
    a.send("NOTICE b :fyi")
    assert b.expect("NOTICE").params == ("b", "fyi")


def test_privmsg_errors() -> None:
    hub = HubHarness()
    a = hub.client("a")
    a.send("PRIVMSG")
    assert a.expect("411")
    a.send("PRIVMSG a")
    assert a.expect("412")
    a.send("PRIVMSG nobody :hi")
    assert a.expect("401").params[1] == "nobody"
    a.send("PRIVMSG #nowhere :hi")
    assert a.expect("403").params[1] == "#nowhere"
    owner = hub.client("owner")
    owner.send("JOIN #closed")
    owner.expect("366")
    a.send("PRIVMSG #closed :let me in")
    assert a.expect("404").params[1] == "#closed"


def test_notice_never_triggers_errors() -> None:
    hub = HubHarness()
    a = hub.client("a")
    a.send("NOTICE nobody :hi")
    a.send("NOTICE #nowhere :hi")
    a.send("NOTICE")
    a.send("NOTICE a")
    errors = [m for m in a.sync() if m.command.isdigit()]
    assert errors == []


def test_quit_reason_seen_by_channel_peers() -> None:
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    for client in (a, b):
        client.send("JOIN #q")
        client.expect("366")
    a.send("QUIT :gone fishing")
    closing = a.wait_closed()
    assert any(line.startswith("ERROR") for line in closing)
    quit_message = b.expect("QUIT")
    assert quit_message.source.startswith("a!") and quit_message.params == ("Quit: gone fishing",)


def test_who_and_whois() -> None:
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    a.send("JOIN #w")
    a.expect("366")
    b.send("JOIN #w")
    b.expect("366")
    b.send("WHO #w")
    replies = b.until("315")
    rows = [m.params for m in replies if m.command == "352"]
    assert ("b", "#w", "~u", "127.0.0.1", "chatd", "a", "H@", "0 Real a") in rows
    assert any(row[5] == "b" and row[6] == "H" for row in rows)
    assert replies[-1].params[1] == "#w"
    b.send("WHOIS a")
    whois = b.until("318")
    by_command = {m.command: m.params for m in whois}
    assert by_command["311"] == ("b", "a", "~u", "127.0.0.1", "*", "Real a")
    assert by_command["319"] == ("b", "a", "@#w")
    assert by_command["312"][1:3] == ("a", "chatd")
    b.send("WHOIS ghost")
    assert b.expect("401").params[1] == "ghost"
    assert b.expect("318")


def test_away() -> None:
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    a.send("AWAY :at lunch")
    assert a.expect("306")
    b.send("PRIVMSG a :there?")
    assert b.expect("301").params[1:] == ("a", "at lunch")
    b.send("WHOIS a")
    assert "301" in [m.command for m in b.until("318")]
    a.send("AWAY")
    assert a.expect("305")
    b.send("PRIVMSG a :back?")
    assert [m for m in b.sync() if m.command == "301"] == []


def test_channel_messages_keep_their_exact_form(server: RunningServer) -> None:
    """Plain one-channel messages skip the parser; what members receive must not change.

    Each line here is relayed either by the fast path or, when it is less plain, by
    the general one; both must give the same wire form, for IRC and plain members.
    """
    from tests.test_plain import plain_client

    sender, listener = server.client("a"), server.client("b")
    for client in (sender, listener):
        client.send("JOIN #lobby")
        client.expect("366")
    plain = plain_client(server, "p")
    listener.expect("JOIN")
    sent_and_seen = [
        ("PRIVMSG #LOBBY :hello there", ":a!~u@127.0.0.1 PRIVMSG #lobby :hello there", "a: hello there"),
        ("PRIVMSG #lobby :single", ":a!~u@127.0.0.1 PRIVMSG #lobby :single", "a: single"),
        ("PRIVMSG #lobby ::-) smile", ":a!~u@127.0.0.1 PRIVMSG #lobby ::-) smile", "a: :-) smile"),
        ("PRIVMSG #lobby word", ":a!~u@127.0.0.1 PRIVMSG #lobby :word", "a: word"),
        ("PRIVMSG #lobby  :two spaces", ":a!~u@127.0.0.1 PRIVMSG #lobby :two spaces", "a: two spaces"),
        ("NOTICE #lobby :heads up", ":a!~u@127.0.0.1 NOTICE #lobby :heads up", "-a- heads up"),
        ("PRIVMSG #lobby :\x01ACTION waves\x01", ":a!~u@127.0.0.1 PRIVMSG #lobby :\x01ACTION waves\x01", "* a waves"),
        ("privmsg #lobby :lower case verb", ":a!~u@127.0.0.1 PRIVMSG #lobby :lower case verb", "a: lower case verb"),
    ]
    for line, _, _ in sent_and_seen:
        sender.send(line)
    for _, irc_form, plain_form in sent_and_seen:
        assert listener.wait_for_line(lambda text: "PRIVMSG" in text or "NOTICE" in text) == irc_form
        assert plain.wait_for_line(lambda text: not text.startswith("*") or "waves" in text) == plain_form
    sender.send("PRIVMSG #lobby,b :to both")
    assert listener.wait_for_line(lambda text: "to both" in text) == ":a!~u@127.0.0.1 PRIVMSG #lobby :to both"
    assert listener.wait_for_line(lambda text: "to both" in text) == ":a!~u@127.0.0.1 PRIVMSG b :to both"
    assert [m for m in sender.sync() if m.command in ("PRIVMSG", "NOTICE")] == []


def test_a_relayed_line_is_cut_to_510_bytes_at_a_character(server: RunningServer) -> None:
    """A client may send a 510-byte line; with the source prefix added, the copy others get
    would pass 512 with CRLF: the text is cut, never inside a character, on both paths."""
    sender, listener = server.client("longwinded"), server.client("reader")
    for client in (sender, listener):
        client.send("JOIN #long")
        client.until("366")
    for head in ("PRIVMSG #long :", "PRIVMSG #long,reader :", "PRIVMSG reader :"):  # fast, general, private
        text = ("é" * 300).encode()[: 510 - len(head)].decode(errors="ignore")
        sender.send(head + text)
        for _ in range(head.count(",") + 1):
            seen = listener.expect("PRIVMSG")
            line = f":{seen.source} PRIVMSG {seen.params[0]} :{seen.params[1]}"  # as it was on the wire
            assert len(line.encode()) <= 510, head
            assert text.startswith(seen.params[1]) and len(seen.params[1]) < len(text), head
