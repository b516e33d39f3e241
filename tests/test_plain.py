"""Plain mode: netcat-style clients and the original classroom client, mixed with IRC users."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from chatd.core import Hub, ServerConfig
from chatd.core.plain import MAX_PLAIN_NAME_LENGTH, clean_plain_name, plain_names
from chatd.history import History
from chatd.protocol import numerics as n
from chatd.protocol.casemap import is_valid_nick
from tests.helpers import IrcClient, LineClient, RunningServer, running_server


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
    welcome = first.wait_for_line(lambda line: line.startswith("* Welcome"))
    assert welcome == "* Welcome, sam2: you are in #lobby with 1 other"
    assert irc.expect("JOIN").source.startswith("sam2!")
    second = LineClient(server.address)
    second.send_raw(b"Mary Ann 2\n")
    welcome = second.wait_for_line(lambda line: line.startswith("* Welcome"))
    assert welcome == "* Welcome, Mary Ann 2 (Mary_Ann_2 to IRC users): you are in #lobby with 2 others"
    assert irc.expect("JOIN").source.startswith("Mary_Ann_2!")


def test_original_client_bare_sends_without_newlines(server: RunningServer) -> None:
    """The classroom client: one send() of bare bytes for the name, then one per message."""
    listener = plain_client(server, "listener")
    original = LineClient(server.address)
    original.send_raw("Маша".encode())
    original.wait_for_line(lambda line: line.startswith("* Welcome, Маша (Masha to IRC users):"))
    listener.wait_for_line(lambda line: line == "* Маша has joined #lobby")
    original.send_raw("привет".encode())
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "Маша: привет"
    original.send_raw(b"second message")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "Маша: second message"
    listener.send_raw(b"reply\n")
    assert original.wait_for_line(lambda line: not line.startswith("*")) == "listener: reply"


def test_empty_lines_are_ignored_in_plain_mode(server: RunningServer) -> None:
    listener = plain_client(server, "listener")
    talker = LineClient(server.address)
    talker.send_raw(b"\r\n\ntalker\n\n  \nreal text\n")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "talker: real text"


def _names(irc: IrcClient, channel: str = "#lobby") -> list[str]:
    irc.send(f"NAMES {channel}")
    replies = irc.until(n.RPL_ENDOFNAMES)
    return [name.lstrip("@+") for m in replies if m.command == n.RPL_NAMREPLY for name in m.params[-1].split()]


def test_names_in_any_script_become_readable_nicks(server: RunningServer) -> None:
    """Маша and Петя: IRC users see the transliterated nicks, plain users the names as typed."""
    irc = server.client("teacher")
    irc.send("JOIN #lobby")
    irc.expect(n.RPL_ENDOFNAMES)
    masha = plain_client(server, "Маша")
    assert irc.expect("JOIN").source == "Masha!plain@127.0.0.1"
    petya = plain_client(server, "Петя")
    assert irc.expect("JOIN").source == "Petya!plain@127.0.0.1"
    assert masha.wait_for_line(lambda line: line.startswith("* П")) == "* Петя has joined #lobby"
    assert sorted(_names(irc)) == ["Masha", "Petya", "teacher"]
    masha.send_raw("привет\n".encode())
    assert petya.wait_for_line(lambda line: not line.startswith("*")) == "Маша: привет"
    message = irc.expect("PRIVMSG")
    assert message.source.startswith("Masha!") and message.params == ("#lobby", "привет")
    irc.send("WHOIS Masha")
    whois = {m.command: m.params for m in irc.until(n.RPL_ENDOFWHOIS)}
    assert whois[n.RPL_WHOISUSER][-1] == "Маша"  # the name as typed, for IRC users to read too
    irc.send("PRIVMSG #lobby :здравствуйте")
    assert petya.wait_for_line(lambda line: not line.startswith("*")) == "teacher: здравствуйте"
    masha.close()
    assert petya.wait_for_line(lambda line: "quit" in line).startswith("* Маша has quit")


def test_the_same_typed_name_twice_is_told_apart_in_both_forms(server: RunningServer) -> None:
    """Two Маша get Masha and Masha2; the second also shows numbered, so no one passes for another.

    A look-alike of an IRC nick (``bob`` with a Cyrillic o) transliterates to the taken
    nick and so is numbered too.
    """
    masha, lookalike_bob = "Маша", "b\N{CYRILLIC SMALL LETTER O}b"
    irc = server.client("bob")
    irc.send("JOIN #lobby")
    irc.expect(n.RPL_ENDOFNAMES)
    listener = plain_client(server, "listener")
    first = plain_client(server, "Маша")
    second = LineClient(server.address)
    second.send_raw("Маша\n".encode())
    assert second.wait_for_line(lambda line: line.startswith("* Welcome")).startswith(
        f"* Welcome, {masha}2 (Masha2 to IRC users):"
    )
    assert listener.wait_for_line(lambda line: "2 has joined" in line) == f"* {masha}2 has joined #lobby"
    lookalike = LineClient(server.address)
    lookalike.send_raw(f"{lookalike_bob}\n".encode())
    assert listener.wait_for_line(lambda line: "b2 has joined" in line) == f"* {lookalike_bob}2 has joined #lobby"
    assert sorted(_names(irc)) == ["Masha", "Masha2", "bob", "bob2", "listener"]
    first.send_raw(b"one\n")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == "Маша: one"
    second.send_raw(b"two\n")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == f"{masha}2: two"
    lookalike.send_raw(b"three\n")
    assert listener.wait_for_line(lambda line: not line.startswith("*")) == f"{lookalike_bob}2: three"


def test_replay_to_plain_users_uses_the_typed_name(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=3) as server:
        masha = plain_client(server, "Маша")
        seer = plain_client(server, "seer")
        masha.send_raw("привет\n".encode())
        seer.wait_for_line(lambda text: text == "Маша: привет")  # relayed, so stored: joins come after it
        irc = server.client("watcher")
        irc.send("JOIN #lobby")
        assert irc.expect("PRIVMSG").params[-1].endswith("] привет")  # the message is stored before a late join
        late = LineClient(server.address)
        late.send_raw(b"late\n")
        line = late.wait_for_line(lambda text: "привет" in text)
        assert line[:1] == "[" and line[6:] == "] Маша: привет", line


def test_a_first_line_that_is_an_irc_command_is_not_a_name(server: RunningServer) -> None:
    """``PRIVMSG #x :hi`` first gets 451 as on any IRC server, joins nothing, and may still register."""
    listener = plain_client(server, "listener")
    for index, first in enumerate(("PRIVMSG #x :hi", "join #x")):
        early = IrcClient(server.address)
        early.send(first)
        assert early.read_line() == ":chatd 451 * :You have not registered"
        early.send("PRIVMSG #lobby :still not")
        assert early.read_line() == ":chatd 451 * :You have not registered"
        # A nick of its own: the last one's may not be free yet (its close races this NICK).
        assert early.register(f"early{index}")[0].command == n.RPL_WELCOME
        early.close()
    plain_client(server, "marker")
    # The next join the listener sees is marker's: no PRIVMSG__x__hi, no join__x came before it.
    assert listener.wait_for_line(lambda line: "has joined" in line) == "* marker has joined #lobby"


def test_a_bare_verb_or_a_full_name_is_a_name(server: RunningServer) -> None:
    """One word is a name even when it is an IRC verb; so is a name of several words."""
    talkers = [plain_client(server, name) for name in ("quit", "list", "Anna Karenina")]
    irc = server.client("looker")
    irc.send("JOIN #lobby")
    irc.expect(n.RPL_ENDOFNAMES)
    assert sorted(_names(irc)) == ["Anna_Karenina", "list", "looker", "quit"]
    talkers[0].send_raw(b"hello\n")
    assert talkers[2].wait_for_line(lambda line: not line.startswith("*")) == "quit: hello"


def test_a_typed_name_shows_without_invisible_characters() -> None:
    """Control and bidi-override characters never reach other users' screens; spacing is tidied."""
    first, last = "Анна", "Каренина"
    assert clean_plain_name(f"  {first}\t\u202e{last}\x07  ") == f"{first} {last}"
    assert clean_plain_name("\x01\x02") == ""


@given(st.text(min_size=1, max_size=200))
def test_any_typed_name_gives_a_valid_nick_and_a_printable_plain_name(typed: str) -> None:
    hub = Hub(ServerConfig(), time.monotonic, time.time)
    nick, shown = plain_names(hub, typed)
    assert is_valid_nick(nick)
    assert shown and len(shown) <= MAX_PLAIN_NAME_LENGTH
    assert shown == shown.strip() and "\n" not in shown and "\r" not in shown and "\0" not in shown
