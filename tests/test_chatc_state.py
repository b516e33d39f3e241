"""The chatc client state and input commands alone: strings in, events and buffers out, no sockets."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatc.commands import CommandError, interpret, split_text
from chatc.state import (
    ClientState,
    ErrorReply,
    Joined,
    MessageReceived,
    NickChanged,
    Parted,
    Quit,
    Registered,
    SendLine,
    TopicChanged,
)
from chatc.text import mentions, nick_colour, safe_text


def make_state(nick: str = "me", channels: tuple[str, ...] = ()) -> ClientState:
    return ClientState(nick, channels, clock=lambda: 1_000_000.0)


def registered(nick: str = "me", channels: tuple[str, ...] = ()) -> ClientState:
    state = make_state(nick, channels)
    state.registration_lines()
    state.feed(f":srv 001 {nick} :Welcome {nick}")
    return state


def joined(channel: str = "#room", others: str = "alice @bob") -> ClientState:
    state = registered()
    state.feed(f":me!u@h JOIN {channel}")
    state.feed(f":srv 353 me = {channel} :me {others}")
    state.feed(f":srv 366 me {channel} :End of /NAMES list.")
    return state


def texts(state: ClientState, name: str) -> list[str]:
    buf = state.buffer(name)
    assert buf is not None
    return [line.text for line in buf.lines]


def test_registration_lines_open_cap_negotiation_then_pass_nick_and_user() -> None:
    state = ClientState("me", password="secret pw")
    assert state.registration_lines() == ["CAP LS 302", "PASS :secret pw", "NICK me", "USER chatc 0 * :chatc user"]


def test_welcome_registers_takes_the_servers_nick_and_joins_wanted_channels() -> None:
    state = make_state("me", ("#a", "#b"))
    state.registration_lines()
    events = state.feed(":irc.example 001 me_ :Welcome to the network")
    assert events == [Registered("me_"), SendLine("JOIN #a,#b")]
    assert state.registered and state.nick == "me_"
    assert state.buffer_list[0].name == "irc.example"


def test_nick_in_use_during_registration_retries_with_another_nick() -> None:
    state = make_state("me")
    state.registration_lines()
    events = state.feed(":srv 433 * me :Nickname is already in use")
    assert isinstance(events[0], ErrorReply) and events[0].code == "433"
    assert events[1:] == [SendLine("NICK me_")]
    assert state.feed(":srv 433 * me_ :Nickname is already in use")[1:] == [SendLine("NICK me__")]


def test_nick_in_use_after_registration_is_only_an_error() -> None:
    state = registered()
    events = state.feed(":srv 433 me taken :Nickname is already in use")
    assert [type(event) for event in events] == [ErrorReply]
    assert state.nick == "me"


def test_ping_is_answered_with_pong() -> None:
    assert make_state().feed("PING :token123") == [SendLine("PONG token123")]


def test_own_join_opens_a_channel_buffer_and_names_fill_the_nick_list() -> None:
    state = registered()
    assert state.feed(":me!u@h JOIN #Room") == [Joined("#Room", "me", True)]
    state.feed(":srv 332 me #Room :the topic")
    state.feed(":srv 353 me = #Room :me alice @bob +carol")
    state.feed(":srv 366 me #Room :End of /NAMES list.")
    buf = state.buffer("#room")
    assert buf is not None and buf.joined and buf.topic == "the topic"
    assert buf.sorted_nicks() == ["@bob", "+carol", "alice", "me"]
    assert "#Room" in state.wanted_channels.values()


def test_others_joining_parting_and_quitting_update_the_nick_list() -> None:
    state = joined()
    assert state.feed(":dave!u@h JOIN #room") == [Joined("#room", "dave", False)]
    assert "dave" in state.buffer("#room").nicks  # type: ignore[union-attr]
    assert state.feed(":alice!u@h PART #room :bye") == [Parted("#room", "alice", "bye", False)]
    assert state.feed(":bob!u@h QUIT :gone") == [Quit("bob", "gone", ("#room",))]
    assert state.buffer("#room").sorted_nicks() == ["dave", "me"]  # type: ignore[union-attr]
    assert texts(state, "#room")[-3:] == ["dave has joined #room", "alice has left #room (bye)", "bob has quit (gone)"]


def test_own_part_and_kick_forget_the_channel_for_rejoining() -> None:
    state = joined()
    state.feed(":me!u@h PART #room")
    assert not state.buffer("#room").joined  # type: ignore[union-attr]
    assert state.wanted_channels == {}
    state.feed(":me!u@h JOIN #other")
    events = state.feed(":op!u@h KICK #other me :behave")
    assert events == [Parted("#other", "me", "behave", True, "op")]
    assert state.wanted_channels == {}


def test_nick_changes_rename_everywhere_including_our_own() -> None:
    state = joined()
    state.feed(":alice!u@h PRIVMSG me :psst")
    assert state.feed(":alice!u@h NICK alicia") == [NickChanged("alice", "alicia", False)]
    buf = state.buffer("#room")
    assert buf is not None and "alicia" in buf.nicks and "alice" not in buf.nicks
    assert state.buffer("alicia") is not None and state.buffer("alice") is None
    assert state.feed(":me!u@h NICK me2") == [NickChanged("me", "me2", True)]
    assert state.nick == "me2" and "me2" in buf.nicks


def test_bob_op_prefix_follows_modes() -> None:
    state = joined()
    state.feed(":bob!u@h MODE #room +v-o alice bob")
    assert state.buffer("#room").sorted_nicks() == ["+alice", "bob", "me"]  # type: ignore[union-attr]


def test_channel_message_query_and_highlight() -> None:
    state = joined()
    assert state.feed(":alice!u@h PRIVMSG #room :hello all") == [
        MessageReceived("#room", "alice", "hello all", "privmsg")
    ]
    [event] = state.feed(":alice!u@h PRIVMSG #room :hey ME, look")
    assert isinstance(event, MessageReceived) and event.highlight
    [event] = state.feed(":alice!u@h PRIVMSG #room :meme time")
    assert isinstance(event, MessageReceived) and not event.highlight
    [event] = state.feed(":carol!u@h PRIVMSG me :private")
    assert event == MessageReceived("carol", "carol", "private", "privmsg", False, True)
    assert state.buffer("carol").kind == "query"  # type: ignore[union-attr]


def test_unread_and_highlight_count_only_for_inactive_buffers() -> None:
    state = joined()
    state.set_active(state.buffer("#room").key)  # type: ignore[union-attr]
    state.feed(":alice!u@h PRIVMSG #room :seen")
    state.feed(":alice!u@h PRIVMSG me :hi me")
    assert state.buffer("#room").unread == 0  # type: ignore[union-attr]
    query = state.buffer("alice")
    assert query is not None and query.unread == 1 and query.highlighted
    state.set_active(query.key)
    assert query.unread == 0 and not query.highlighted


def test_ctcp_action_and_version_reply() -> None:
    state = joined()
    [event] = state.feed(":alice!u@h PRIVMSG #room :\x01ACTION waves\x01")
    assert event == MessageReceived("#room", "alice", "waves", "action")
    assert state.feed(":alice!u@h PRIVMSG me :\x01VERSION\x01") == [SendLine("NOTICE alice :\x01VERSION chatc\x01")]


def test_topic_change_and_error_line() -> None:
    state = joined()
    assert state.feed(":alice!u@h TOPIC #room :new topic") == [TopicChanged("#room", "new topic", "alice")]
    assert state.feed("ERROR :Closing Link: bye") == [ErrorReply("ERROR", "Closing Link: bye")]


def test_error_numerics_show_in_the_active_buffer() -> None:
    state = joined()
    state.set_active("#room")
    events = state.feed(":srv 401 me nobody :No such nick/channel")
    assert events == [ErrorReply("401", "nobody No such nick/channel")]
    assert texts(state, "#room")[-1] == "nobody No such nick/channel"


def test_connection_lost_keeps_channels_for_rejoin() -> None:
    state = joined("#room")
    state.feed(":me!u@h JOIN #two")
    state.connection_lost("reset by peer")
    buf = state.buffer("#room")
    assert buf is not None and not buf.joined and not buf.nicks
    assert texts(state, "#room")[-1] == "Disconnected: reset by peer"
    state.registration_lines()
    assert state.feed(":srv 001 me :hi")[1:] == [SendLine("JOIN #room,#two")]


def test_control_characters_from_the_network_are_neutralised() -> None:
    state = joined()
    [event] = state.feed(":ev\x1bil!u@h PRIVMSG #room :\x1b[2Jcleared \x02bold\x02 \x0304red\x03 \u202eevil\x07")
    assert isinstance(event, MessageReceived)
    assert "\x1b" not in event.text and "\x07" not in event.text and "\u202e" not in event.text
    assert event.text == "^[[2Jcleared bold red <U+202E>evil^G"
    assert event.sender == "ev^[il"
    assert all(ord(c) >= 0x20 for c in texts(state, "#room")[-1])


def test_safe_text_leaves_ordinary_unicode_alone() -> None:
    assert safe_text("héllo wörld 日本 🎉") == "héllo wörld 日本 🎉"
    assert safe_text("a\tb\x7fc\x9bd") == "a b^?c<U+009B>d"


def test_nick_colour_is_stable_and_case_insensitive() -> None:
    assert nick_colour("Alice") == nick_colour("alice") == nick_colour("ALICE")
    assert len({nick_colour(f"user{i}") for i in range(50)}) > 3


def test_mentions_whole_words_only() -> None:
    assert mentions("hi bob!", "Bob")
    assert mentions("bob: there", "bob")
    assert not mentions("bobby", "bob")
    assert not mentions("anything", "")


# ---- input commands ----------------------------------------------------------------------


def test_text_goes_to_the_active_buffer_and_is_recorded_as_own() -> None:
    state = joined()
    state.set_active("#room")
    assert interpret(state, "hello there").lines == ["PRIVMSG #room :hello there"]
    last = state.buffer("#room").lines[-1]  # type: ignore[union-attr]
    assert last.own and last.nick == "me" and last.text == "hello there"
    assert interpret(state, "//not a command").lines == ["PRIVMSG #room :/not a command"]


def test_text_in_the_server_buffer_is_refused() -> None:
    with pytest.raises(CommandError):
        interpret(registered(), "hello")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("/join #new", ["JOIN #new"]),
        ("/join new secret", ["JOIN #new secret"]),
        ("/part", ["PART #room"]),
        ("/part #x see you", ["PART #x :see you"]),
        ("/msg bob hi there", ["PRIVMSG bob :hi there"]),
        ("/me waves", ["PRIVMSG #room :\x01ACTION waves\x01"]),
        ("/nick newme", ["NICK newme"]),
        ("/topic", ["TOPIC #room"]),
        ("/topic a new topic", ["TOPIC #room :a new topic"]),
        ("/names", ["NAMES #room"]),
        ("/who", ["WHO #room"]),
        ("/whois bob", ["WHOIS bob"]),
        ("/list", ["LIST"]),
        ("/away lunch", ["AWAY lunch"]),
        ("/away", ["AWAY"]),
        ("/quote MODE #room +t", ["MODE #room +t"]),
    ],
)
def test_commands_produce_protocol_lines(typed: str, expected: list[str]) -> None:
    state = joined()
    state.set_active("#room")
    assert interpret(state, typed).lines == expected


def test_query_quit_buffer_clear_help() -> None:
    state = joined()
    out = interpret(state, "/query Carol hi")
    assert out.switch_to == "carol" and out.lines == ["PRIVMSG Carol hi"]
    assert interpret(state, "/quit bye now").quit_reason == "bye now"
    assert interpret(state, "/buffer 2").buffer_number == 2
    with pytest.raises(CommandError):
        interpret(state, "/buffer 9")
    state.set_active("#room")
    interpret(state, "/clear")
    assert not state.buffer("#room").lines  # type: ignore[union-attr]
    interpret(state, "/help")
    assert any("/join" in text for text in texts(state, "#room"))


@pytest.mark.parametrize("typed", ["/bogus", "/msg", "/msg bob", "/whois", "/join", "/nick", "/quote"])
def test_bad_commands_raise_a_user_error(typed: str) -> None:
    state = joined()
    state.set_active("#room")
    with pytest.raises(CommandError):
        interpret(state, typed)


def test_long_messages_are_split_within_the_line_limit() -> None:
    state = joined()
    state.set_active("#room")
    text = " ".join(["wörd"] * 300)
    lines = interpret(state, text).lines
    assert len(lines) > 1
    # Room for the ":nick!user@host " prefix the server adds when relaying (user 12, host 64 bytes).
    relay_prefix = len(":me!" + "u" * 12 + "@" + "h" * 64 + " ")
    assert all(len(line.encode()) + relay_prefix + 2 <= 512 for line in lines)
    assert " ".join(line.split(" :", 1)[1] for line in lines) == text


def test_split_text_never_breaks_a_character() -> None:
    pieces = split_text("日" * 100, 31)
    assert "".join(pieces) == "日" * 100
    assert all(len(piece.encode()) <= 31 for piece in pieces)


_WORDS = st.sampled_from(
    [":alice!u@h", ":me!u@h", ":srv", "PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "QUIT", "NICK", "TOPIC", "MODE",
     "001", "005", "353", "366", "332", "333", "433", "PING", "ERROR", "#room", "me", "alice", "+o", "-v+b", ":",
     "\x01ACTION", "\x01VERSION\x01", "PREFIX=(ov)@+", "CHANTYPES=", "*", "=", ""]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_WORDS | st.text(max_size=12), max_size=8).map(" ".join), max_size=12))
def test_no_sequence_of_server_lines_makes_the_state_raise(lines: list[str]) -> None:
    state = joined()
    for line in lines:
        state.feed(line)
    for buf in state.buffer_list:
        assert all(safe_text(line.text) == line.text for line in buf.lines)
    assert state.buffer_list[0].kind == "server"


_INPUT_WORDS = st.sampled_from(
    ["/join", "/part", "/msg", "/query", "/me", "/nick", "/topic", "/names", "/who", "/whois", "/list", "/away",
     "/quote", "/buffer", "/close", "/clear", "/help", "/quit", "/notice", "/reconnect", "//", "/", "#room", "#",
     "bob", ":x", "0", "99", ""]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_INPUT_WORDS | st.text(max_size=10), max_size=6).map(" ".join), st.booleans())
def test_any_input_line_either_works_or_raises_a_user_error(typed: str, in_channel: bool) -> None:
    state = joined()
    if in_channel:
        state.set_active("#room")
    try:
        outcome = interpret(state, typed)
    except CommandError:
        return
    for line in outcome.lines:
        assert "\r" not in line and "\n" not in line and "\0" not in line


def test_whois_who_and_list_replies_read_as_sentences() -> None:
    state = registered()
    state.feed(":srv 311 me bob ~u 10.0.0.1 * :Bob Real")
    state.feed(":srv 319 me bob :@#lobby #dev")
    state.feed(":srv 317 me bob 3725 1700000000 :seconds idle, signon time")
    state.feed(":srv 352 me #lobby ~u 10.0.0.1 chatd bob H@ :0 Bob Real")
    state.feed(":srv 322 me #lobby 3 :the topic")
    state.feed(":srv 311 me bob :too few")
    shown = [line.text for line in state.buffer_list[0].lines]
    assert shown[-6:-1] == [
        "bob is ~u@10.0.0.1 (Bob Real)",
        "bob is on @#lobby #dev",
        "bob has been idle 1h02m05s, signed on " + time.strftime("%Y-%m-%d %H:%M", time.localtime(1700000000)),
        "#lobby bob H@ ~u@10.0.0.1 (Bob Real)",
        "#lobby (3 users) the topic",
    ]
    assert shown[-1] == "bob too few"


def test_away_replies_set_and_clear_the_away_flag() -> None:
    state = registered()
    state.feed(":srv 306 me :You have been marked as being away")
    assert state.away
    state.feed(":srv 305 me :You are no longer marked as being away")
    assert not state.away


def test_an_invitation_shows_in_the_active_buffer() -> None:
    state = joined()
    state.set_active("#room")
    state.feed(":alice!u@h INVITE me #secret")
    assert texts(state, "#room")[-1] == "alice invites you to #secret (/join #secret)"


def test_a_redacted_line_says_who_deleted_it_in_its_place() -> None:
    state = joined()
    state.feed("@msgid=m1 :alice!u@h PRIVMSG #room :oops")
    state.feed("@msgid=m2 :alice!u@h PRIVMSG #room :fine")
    state.feed("@msgid=r1 :bob!u@h REDACT #room m1 :spam")
    assert texts(state, "#room")[-2:] == ["(message deleted by bob: spam)", "fine"]
    state.feed("@msgid=p1 :alice!u@h PRIVMSG me :psst")  # a private message, taken back by its sender
    state.feed(":alice!u@h REDACT me p1")
    state.feed("@msgid=p2 :me!u@h PRIVMSG alice :mine")  # our own, echoed
    state.feed(":me!u@h REDACT alice p2")
    assert texts(state, "alice")[-2:] == ["(message deleted by alice)", "(message deleted by me)"]
    before = texts(state, "#room")
    state.feed(":bob!u@h REDACT #room not-shown")
    assert texts(state, "#room") == before
