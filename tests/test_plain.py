"""Plain mode: netcat-style clients and the original classroom client, mixed with IRC users."""

from __future__ import annotations

from tests.helpers import LineClient, RunningServer


def plain_client(server: RunningServer, name: str) -> LineClient:
    client = LineClient(server.address)
    client.send_raw(name.encode() + b"\n")
    client.wait_for_line(lambda line: line.startswith("* Welcome"))
    client.wait_for_line(lambda line: line == f"* {name} has joined #lobby")
    return client


def test_netcat_style_clients_talk_in_lobby(server: RunningServer) -> None:
    ann = plain_client(server, "ann")
    ben = plain_client(server, "ben")
    assert ann.wait_for_line(lambda line: "ben" in line) == "* ben has joined #lobby"
    ann.send_raw(b"hi ben\r\n")
    assert ben.wait_for_line(lambda line: not line.startswith("*")) == "ann: hi ben"
    ben.send_raw(b"hello ann\n")
    assert ann.wait_for_line(lambda line: not line.startswith("*")) == "ben: hello ann"


def test_plain_and_irc_users_see_each_other(server: RunningServer) -> None:
    irc = server.client("ircer")
    irc.send("JOIN #lobby")
    irc.expect("366")
    plain = plain_client(server, "plainer")
    join = irc.expect("JOIN")
    assert join.source == "plainer!plain@127.0.0.1"
    plain.send_raw(b"from plain\n")
    message = irc.expect("PRIVMSG")
    assert message.source.startswith("plainer!") and message.params == ("#lobby", "from plain")
    irc.send("PRIVMSG #lobby :from irc")
    assert plain.wait_for_line(lambda line: not line.startswith("*")) == "ircer: from irc"
    irc.send("PRIVMSG #lobby :\x01ACTION waves\x01")
    assert plain.wait_for_line(lambda line: "waves" in line) == "* ircer waves"
    irc.send("PRIVMSG plainer :just you")
    assert plain.wait_for_line(lambda line: "just you" in line) == "[private] ircer: just you"
    plain.close()
    assert irc.expect("QUIT").source.startswith("plainer!")


def test_taken_or_odd_names_become_unique_valid_nicks(server: RunningServer) -> None:
    irc = server.client("sam")
    irc.send("JOIN #lobby")
    irc.expect("366")
    first = LineClient(server.address)
    first.send_raw(b"sam\n")
    assert first.wait_for_line(lambda line: line.startswith("* Welcome")).startswith("* Welcome, sam2:")
    assert irc.expect("JOIN").source.startswith("sam2!")
    second = LineClient(server.address)
    second.send_raw(b"Mary Ann 2\n")
    assert second.wait_for_line(lambda line: line.startswith("* Welcome")).startswith("* Welcome, Mary_Ann_2:")
    assert irc.expect("JOIN").source.startswith("Mary_Ann_2!")


def test_original_client_bare_sends_without_newlines(server: RunningServer) -> None:
    """The classroom client: one send() of bare bytes for the name, then one per message."""
    listener = plain_client(server, "listener")
    original = LineClient(server.address)
    original.send_raw("zoë".encode())
    original.wait_for_line(lambda line: line.startswith("* Welcome, zo_"))
    listener.wait_for_line(lambda line: line == "* zo_ has joined #lobby")
    original.send_raw(b"first message")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "zo_: first message"
    original.send_raw(b"second message")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "zo_: second message"
    listener.send_raw(b"reply\n")
    assert original.wait_for_line(lambda line: not line.startswith("*")) == "listener: reply"


def test_empty_lines_are_ignored_in_plain_mode(server: RunningServer) -> None:
    listener = plain_client(server, "listener")
    talker = LineClient(server.address)
    talker.send_raw(b"\r\n\ntalker\n\n  \nreal text\n")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "talker: real text"
