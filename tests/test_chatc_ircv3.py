"""chatc's use of IRCv3: server-time, echo-message, multi-prefix, away-notify and history replayed in a
``chathistory`` batch (capability negotiation itself is in ``test_chatc_caps.py``).

The first half feeds lines to the sans-I/O state; the second half runs chatc (UI and
headless) against a real chatd on both backends.
"""

from __future__ import annotations

import asyncio
import datetime
import time

from chatc.commands import interpret
from chatc.state import ClientState, MessageReceived, SendLine, parse_server_time
from chatc.ui import render_line
from chatd.history import History
from tests.helpers import IrcClient, RunningServer, running_server
from tests.test_chatc_headless import ChatcProcess
from tests.test_chatc_ui import joined, last_text, running_ui, until

CHATD_CAPS = (
    "account-notify account-tag away-notify batch cap-notify draft/account-registration draft/chathistory "
    "draft/message-redaction echo-message extended-join invite-notify labeled-response message-tags multi-prefix "
    "sasl server-time setname userhost-in-names"
)
USED_BY_CHATC = (
    "account-notify away-notify batch cap-notify draft/chathistory draft/message-redaction echo-message "
    "labeled-response message-tags multi-prefix server-time"
)
TEN_FORTY = datetime.datetime(2026, 11, 26, 10, 40, tzinfo=datetime.UTC).timestamp()


def negotiated(caps: str = USED_BY_CHATC, nick: str = "me") -> ClientState:
    """A registered state that negotiated ``caps`` the way chatc does against chatd."""
    state = ClientState(nick, clock=lambda: 1_000_000.0)
    state.registration_lines()
    state.feed(f":srv CAP * LS :{caps}")
    state.feed(f":srv CAP * ACK :{caps}")
    state.feed(f":srv 001 {nick} :Welcome")
    return state


def in_channel(state: ClientState, channel: str = "#room", names: str = "me alice @bob") -> ClientState:
    state.feed(f":me!u@h JOIN {channel}")
    state.feed(f":srv 353 me = {channel} :{names}")
    state.feed(f":srv 366 me {channel} :End of /NAMES list.")
    return state


def texts_of(state: ClientState, name: str) -> list[str]:
    """The texts shown in buffer ``name``; none while it does not exist yet."""
    buf = state.buffer(name)
    return [line.text for line in buf.lines] if buf is not None else []


# ---- server-time, echo-message, prefixes and away, sans I/O ----------------------------------


def test_server_time_is_the_time_of_the_line_and_is_shown_in_local_time() -> None:
    state = in_channel(negotiated())
    state.feed("@time=2026-11-26T10:40:00.000Z;msgid=abc :alice!u@h PRIVMSG #room :hi")
    line = state.buffer("#room").lines[-1]  # type: ignore[union-attr]
    assert line.time == TEN_FORTY
    assert render_line(line)[0] == ("class:time", time.strftime("%H:%M ", time.localtime(TEN_FORTY)))
    state.feed("@time=not-a-time :alice!u@h PRIVMSG #room :later")
    assert state.buffer("#room").lines[-1].time == 1_000_000.0  # type: ignore[union-attr]  # the local clock


def test_parse_server_time() -> None:
    assert parse_server_time("2026-11-26T10:40:00.000Z") == TEN_FORTY
    assert parse_server_time("2026-11-26T10:40:00.5Z") == TEN_FORTY + 0.5
    assert parse_server_time("2026-11-26T10:40:00") == TEN_FORTY  # no zone: UTC, as the spec says
    assert parse_server_time("") is None
    assert parse_server_time(None) is None
    assert parse_server_time("yesterday") is None


def test_echo_message_shows_exactly_the_echo() -> None:
    state = in_channel(negotiated())
    state.set_active(state.buffer("#room").key)  # type: ignore[union-attr]
    outcome = interpret(state, "hello all")
    assert outcome.lines == ["PRIVMSG #room :hello all"]
    assert [line.text for line in state.active.lines].count("hello all") == 0  # not until the server echoes
    events = state.feed("@time=2026-11-26T10:40:00.000Z :me!u@h PRIVMSG #room :hello all")
    assert events == [MessageReceived("#room", "me", "hello all", "privmsg", own=True)]
    assert [(line.text, line.own) for line in state.active.lines if line.kind == "privmsg"] == [("hello all", True)]
    assert state.active.lines[-1].time == TEN_FORTY


def test_echo_message_of_a_private_message_lands_where_the_local_copy_would() -> None:
    """/msg opens no query (irssi, weechat): its echo reads ``-> alice: psst`` here; an open query takes its own."""
    state = negotiated()
    interpret(state, "/msg alice psst")
    assert state.buffer("alice") is None and not any(line.kind == "sent" for line in state.active.lines)
    state.feed(":me!u@h PRIVMSG alice :psst")
    assert state.buffer("alice") is None
    line = state.active.lines[-1]
    assert (line.kind, line.nick, line.text, line.own) == ("sent", "alice", "psst", True)
    interpret(state, "/query alice")
    query = state.buffer("alice")
    assert query is not None
    state.feed(":me!u@h PRIVMSG alice :in the query")
    assert [(line.nick, line.text, line.own) for line in query.lines] == [("me", "in the query", True)]
    assert query.unread == 0


def test_our_own_echoed_ctcp_query_is_not_answered() -> None:
    state = negotiated()
    assert state.feed(":me!u@h PRIVMSG alice :\x01VERSION\x01") == []


def test_without_echo_message_the_local_copy_is_kept() -> None:
    state = in_channel(negotiated("server-time"))
    state.set_active(state.buffer("#room").key)  # type: ignore[union-attr]
    interpret(state, "/me waves")
    assert [(line.kind, line.text, line.own) for line in state.active.lines][-1] == ("action", "waves", True)


def test_multi_prefix_names_keep_every_prefix_and_modes_peel_them_off() -> None:
    state = in_channel(negotiated(), names="@+me +alice @+bob carol")
    buf = state.buffer("#room")
    assert buf is not None
    assert buf.prefixes == {"me": "@+", "alice": "+", "bob": "@+"}
    assert buf.sorted_nicks() == ["@bob", "@me", "+alice", "carol"]
    state.feed(":srv MODE #room -o bob")
    assert buf.prefixes["bob"] == "+"
    assert buf.sorted_nicks() == ["@me", "+alice", "+bob", "carol"]
    state.feed(":srv MODE #room +o alice")
    assert buf.prefixes["alice"] == "@+"  # kept in PREFIX order whatever order the modes came in


def test_userhost_in_names_entries_are_reduced_to_nicks() -> None:
    state = in_channel(negotiated(), names="me @+bob!b@host alice!a@h")
    assert state.buffer("#room").sorted_nicks() == ["@bob", "alice", "me"]  # type: ignore[union-attr]


def test_away_notify_tracks_away_nicks_through_nick_changes_and_quits() -> None:
    state = in_channel(negotiated())
    state.feed(":alice!u@h AWAY :lunch")
    assert state.away_nicks == {"alice": "lunch"}
    state.feed(":alice!u@h NICK Alicia")
    assert state.away_nicks == {"alicia": "lunch"}
    state.feed(":Alicia!u@h AWAY")
    assert state.away_nicks == {}
    state.feed(":bob!u@h AWAY :meeting")
    state.feed(":bob!u@h QUIT :bye")
    assert state.away_nicks == {}
    state.feed(":alice!u@h AWAY :gone")
    state.feed(":me!u@h PART #room")
    assert state.away_nicks == {}  # nobody left to show it for


def test_joining_with_away_notify_asks_who_quietly_for_who_is_already_away() -> None:
    state = negotiated()
    assert SendLine("WHO #room") in state.feed(":me!u@h JOIN #room")
    shown = sum(len(buf.lines) for buf in state.buffer_list)
    assert state.feed(":srv 352 me #room ~a host srv alice G@ :0 Alice") == []
    assert state.feed(":srv 352 me #room ~b host srv bob H :0 Bob") == []
    assert state.feed(":srv 315 me #room :End of WHO list") == []
    assert state.away_nicks == {"alice": ""}
    assert sum(len(buf.lines) for buf in state.buffer_list) == shown  # nothing shown for our own WHO
    assert state.feed(":srv 352 me #room ~b host srv bob H :0 Bob")  # a WHO the user asked for is shown
    assert sum(len(buf.lines) for buf in state.buffer_list) == shown + 1


def test_joining_without_away_notify_sends_no_who() -> None:
    state = negotiated("server-time")
    assert not any(isinstance(event, SendLine) for event in state.feed(":me!u@h JOIN #room"))


def test_away_notify_in_a_query_buffer_says_so() -> None:
    state = negotiated()
    state.feed(":alice!u@h PRIVMSG me :hi")
    state.feed(":alice!u@h AWAY :lunch")
    assert state.buffer("alice").lines[-1].text == "alice is away: lunch"  # type: ignore[union-attr]


def test_tagmsg_is_silent() -> None:
    state = in_channel(negotiated())
    before = len(state.buffers[""].lines)
    assert state.feed("@+typing=active :alice!u@h TAGMSG #room") == []
    assert len(state.buffers[""].lines) == before


HISTORY_BATCH = [
    ":srv BATCH +H1 chathistory #room",
    "@batch=H1;time=2026-11-26T10:40:00.000Z;msgid=m1 :bob!u@h PRIVMSG #room :me: are you there?",
    "@batch=H1;time=2026-11-26T10:41:00.000Z;msgid=m2 :alice!u@h PRIVMSG #room :\x01ACTION waves\x01",
    "@batch=H1;time=2026-11-26T10:42:00.000Z;msgid=m3 :alice!u@h PRIVMSG #room :\x01VERSION\x01",
    "@batch=H1;time=2026-11-26T10:43:00.000Z :me!u@h PART #room :old part",
    "@batch=H1;time=2026-11-26T10:44:00.000Z :ghost!u@h JOIN #room",
    "@batch=H1;time=2026-11-26T10:45:00.000Z :bob!u@h TOPIC #room :an old topic",
    ":srv BATCH -H1",
]


def test_history_batch_is_shown_muted_with_its_times_and_changes_nothing_else() -> None:
    state = in_channel(negotiated())
    state.feed(":srv 332 me #room :the current topic")
    buf = state.buffer("#room")
    assert buf is not None and state.active_key == ""  # #room is not the buffer being looked at
    events = [event for line in HISTORY_BATCH for event in state.feed(line)]
    assert events == [
        MessageReceived("#room", "bob", "me: are you there?", "privmsg", history=True),
        MessageReceived("#room", "alice", "waves", "action", history=True),
    ]  # no CTCP VERSION reply to a query from the past
    history = [line for line in buf.lines if line.history]
    assert [(line.kind, line.text) for line in history] == [
        ("privmsg", "me: are you there?"),
        ("action", "waves"),
        ("part", "me has left #room"),
        ("join", "ghost has joined #room"),
        ("topic", "bob changed the topic to: an old topic"),
    ]
    assert [line.time for line in history] == [TEN_FORTY + 60 * minute for minute in (0, 1, 3, 4, 5)]
    assert not any(line.highlight for line in history)
    assert buf.unread == 0 and not buf.highlighted
    # The channel is as it was: still joined, the same nicks and topic, still wanted.
    assert buf.joined and set(buf.nicks) == {"me", "alice", "bob"} and buf.topic == "the current topic"
    assert "#room" in state.wanted_channels
    # Muted throughout: only the time and history styles, no nick colours or bold.
    assert {style for style, _text in render_line(history[0])} == {"class:time", "class:history"}
    assert render_line(history[0])[1][1] == "<bob> me: are you there?"
    # Its time is local; history from another day carries the date, today's only the time.
    same_day = render_line(history[0], now=history[0].time)[0][1]
    next_day = render_line(history[0], now=history[0].time + 86_400)[0][1]
    assert same_day == time.strftime("%H:%M ", time.localtime(TEN_FORTY))
    assert next_day == time.strftime("%m-%d %H:%M ", time.localtime(TEN_FORTY))
    # After the batch closed, the same words are news again.
    state.feed(":bob!u@h PRIVMSG #room :me: still there?")
    assert buf.unread == 1 and buf.highlighted and not buf.lines[-1].history


def test_history_already_on_screen_is_not_repeated() -> None:
    """After a reconnect chatd replays what the user saw live; the msgids tell."""
    state = in_channel(negotiated())
    state.feed("@msgid=m1 :bob!u@h PRIVMSG #room :seen live")
    state.feed(":srv BATCH +H2 chathistory #room")
    state.feed("@batch=H2;msgid=m0 :bob!u@h PRIVMSG #room :from before")
    state.feed("@batch=H2;msgid=m1 :bob!u@h PRIVMSG #room :seen live")
    state.feed("@batch=H2 :bob!u@h PRIVMSG #room :no msgid: cannot tell, shown")
    state.feed(":srv BATCH -H2")
    assert texts_of(state, "#room")[-3:] == ["seen live", "from before", "no msgid: cannot tell, shown"]


def test_a_line_naming_an_unknown_or_closed_batch_is_an_ordinary_line() -> None:
    state = in_channel(negotiated())
    state.feed("@batch=nope :bob!u@h PRIVMSG #room :hi")
    assert not state.buffer("#room").lines[-1].history  # type: ignore[union-attr]
    assert state.buffer("#room").unread == 1  # type: ignore[union-attr]


def test_a_batch_nested_in_history_is_history_and_open_batches_are_bounded() -> None:
    state = in_channel(negotiated())
    state.feed(":srv BATCH +outer chathistory #room")
    state.feed("@batch=outer :srv BATCH +inner other-type")
    state.feed("@batch=inner :bob!u@h PRIVMSG #room :nested")
    assert state.buffer("#room").lines[-1].history  # type: ignore[union-attr]
    for number in range(1000):
        state.feed(f":srv BATCH +b{number} netsplit")
    assert len(state._batches) <= 32


# ---- against a real chatd --------------------------------------------------------------


def cap_peer(server: RunningServer, nick: str, caps: str) -> IrcClient:
    """A test client that negotiated ``caps`` before registering."""
    client = IrcClient(server.address)
    client.send(f"CAP REQ :{caps}")
    client.send("CAP END")
    client.register(nick)
    return client


def test_chatc_negotiates_what_chatd_offers_and_registers(server: RunningServer) -> None:
    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",)) as (ui, _keys):
            await until(lambda: joined(ui, "#t"), "join")
            assert ui.state.caps == set(USED_BY_CHATC.split())
            assert ui.state.caps_offered >= set(CHATD_CAPS.split())

    asyncio.run(scenario())


def test_server_time_and_echo_message_against_chatd(server: RunningServer) -> None:
    peer = cap_peer(server, "zed", "server-time echo-message")
    peer.send("JOIN #t")
    peer.expect("366")

    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",)) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            peer.send("PRIVMSG #t :stamped by the server")
            echo = await asyncio.to_thread(peer.expect, "PRIVMSG")
            await until(lambda: last_text(ui, "#t") == "stamped by the server", "the message")
            assert ui.state.active.lines[-1].time == parse_server_time(echo.tags["time"])
            keys.send_text("mine, once\r")
            keys.send_text("/me nods\r")
            await until(lambda: last_text(ui, "#t") == "nods", "our echoed action")
            shown = [(line.kind, line.text, line.own) for line in ui.state.active.lines if line.nick == "me"]
            assert shown[-2:] == [("privmsg", "mine, once", True), ("action", "nods", True)]
            assert [text for _kind, text, _own in shown].count("mine, once") == 1
            received = [await asyncio.to_thread(peer.expect, "PRIVMSG") for _ in range(2)]
            assert [message.params[-1] for message in received] == ["mine, once", "\x01ACTION nods\x01"]
            keys.send_text("/msg zed direct\r")
            # /msg opens no query: the echo reads "-> zed: direct" in #t, where we typed it.
            await until(lambda: last_text(ui, "#t") == "direct", "the echoed private message")
            assert (ui.state.active.lines[-1].kind, ui.state.active.lines[-1].nick) == ("sent", "zed")
            assert ui.state.buffer("zed") is None
            assert "".join(text for _style, text, *_ in render_line(ui.state.active.lines[-1])).endswith(
                "-> zed: direct"
            )
            keys.send_text("/query zed\rin the query\r")
            await until(lambda: last_text(ui, "zed") == "in the query", "the echo in the query")
            query = ui.state.buffer("zed")
            assert query is not None and [line.text for line in query.lines] == ["in the query"]

    asyncio.run(scenario())
    peer.close()


def test_a_message_taken_back_shows_as_deleted_against_chatd(backend: str) -> None:
    with running_server(backend, history=History(None)) as server:
        peer = cap_peer(server, "zed", "message-tags echo-message draft/message-redaction")
        peer.send("JOIN #t")
        peer.expect("366")

        async def scenario() -> None:
            async with running_ui(server.address, channels=("#t",)) as (ui, _keys):
                await until(lambda: joined(ui, "#t"), "join")
                peer.send("PRIVMSG #t :I regret this")
                echo = await asyncio.to_thread(peer.expect, "PRIVMSG")
                await until(lambda: last_text(ui, "#t") == "I regret this", "the message")
                peer.send(f"REDACT #t {echo.tags['msgid']} :sorry")
                await until(lambda: last_text(ui, "#t") == "(message deleted by zed: sorry)", "the redaction")

        asyncio.run(scenario())
        peer.close()


def test_multi_prefix_and_away_notify_against_chatd(server: RunningServer) -> None:
    peer = server.client("zed")

    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",)) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            peer.send("JOIN #t")
            await until(lambda: "zed" in ui.state.active.nicks, "zed joins")
            keys.send_text("/quote MODE #t +v me\r")
            keys.send_text("/names\r")
            await until(lambda: ui.state.active.prefixes.get("me") == "@+", "@+me from NAMES")
            assert ui.state.active.sorted_nicks() == ["@me", "zed"]
            peer.send("AWAY :lunch")
            await until(lambda: ui.state.away_nicks.get("zed") == "lunch", "zed away")
            ui.show_nicklist = True
            styles = dict((text, style) for style, text in ui._nicklist_fragments() if text != "\n")
            assert styles["zed"] == "class:nicklist.away" and styles["@me"] != "class:nicklist.away"
            peer.send("AWAY")
            await until(lambda: "zed" not in ui.state.away_nicks, "zed back")

    asyncio.run(scenario())
    peer.close()


def test_a_nick_already_away_when_we_join_is_shown_away(server: RunningServer) -> None:
    peer = server.client("zed")
    peer.send("JOIN #t")
    peer.send("AWAY :since before")
    peer.expect("306")

    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",)) as (ui, _keys):
            await until(lambda: "zed" in ui.state.away_nicks, "zed known as away")
            await until(lambda: "#t" not in ui.state._quiet_who, "the end of our WHO")
            # The WHO was chatc's own, not the user's: none of its lines (nor its end) were shown.
            every_line = [line.text for buf in ui.state.buffer_list for line in buf.lines]
            assert not any(text.startswith("#t ") or "End of WHO" in text for text in every_line)
            peer.send("AWAY")
            await until(lambda: "zed" not in ui.state.away_nicks, "zed back")

    asyncio.run(scenario())
    peer.close()


def test_history_on_join_is_muted_original_time_and_not_unread(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=5) as server:
        peer = server.client("zed")
        peer.send("JOIN #t")
        peer.expect("366")
        before = time.time()
        peer.send("PRIVMSG #t :me: said before you came")
        peer.send("PRIVMSG #t :\x01ACTION waves\x01")
        peer.sync()
        after = time.time()

        async def scenario() -> None:
            async with running_ui(server.address, channels=("#a", "#t")) as (ui, _keys):
                await until(lambda: joined(ui, "#a") and joined(ui, "#t"), "joins")
                buf = ui.state.buffer("#t")
                assert buf is not None
                await until(lambda: sum(line.history for line in buf.lines) == 2, "the replay")
                assert ui.state.active.name == "#a"  # #t is not being looked at: it could have counted
                history = [line for line in buf.lines if line.history]
                assert [(line.kind, line.nick, line.text) for line in history] == [
                    ("privmsg", "zed", "me: said before you came"),
                    ("action", "zed", "waves"),
                ]
                assert all(before - 0.001 <= line.time <= after for line in history)
                assert buf.unread == 0 and not buf.highlighted
                peer.send("PRIVMSG #t :live now")
                await until(lambda: last_text(ui, "#t") == "live now", "the live line")
                assert buf.unread == 1 and not buf.lines[-1].history

        asyncio.run(scenario())
        peer.close()


def test_a_reconnect_replays_only_what_is_not_on_screen_yet(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=5) as server:
        peer = server.client("zed")
        peer.send("JOIN #t")
        peer.expect("366")
        peer.send("PRIVMSG #t :before chatc")
        peer.sync()

        async def scenario() -> None:
            async with running_ui(server.address, channels=("#t",), backoff_initial_s=0.05) as (ui, _keys):
                await until(lambda: "before chatc" in texts_of(ui.state, "#t"), "the replay")
                peer.send("PRIVMSG #t :seen live")
                await until(lambda: last_text(ui, "#t") == "seen live", "the live line")
                writer = ui.connection._writer
                assert writer is not None
                writer.transport.abort()  # the connection drops; chatc reconnects and rejoins
                await until(lambda: any(line.text.startswith("Disconnected") for line in ui.state.active.lines),
                            "the drop")  # fmt: skip
                await until(lambda: ui.connection.status == "connected" and joined(ui, "#t"), "the rejoin")
                peer.send("PRIVMSG #t :after the reconnect")
                await until(lambda: last_text(ui, "#t") == "after the reconnect", "a line after the replay")
                shown = texts_of(ui.state, "#t")
                assert shown.count("before chatc") == 1 and shown.count("seen live") == 1

        asyncio.run(scenario())
        peer.close()


def test_headless_skips_replayed_history_and_prints_live_lines(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=5) as server:
        peer = server.client("zed")
        peer.send("JOIN #t")
        peer.expect("366")
        peer.send("PRIVMSG #t :old news")
        peer.sync()
        host, port = server.address
        chatc = ChatcProcess("--host", host, "--port", str(port), "--nick", "bot", "--channel", "#t")
        peer.wait_for_line(lambda line: line.startswith(":bot!") and " JOIN " in line)
        peer.send("PRIVMSG #t :fresh news")
        chatc.wait_line("#t <zed> fresh news")
        chatc.write("thanks\n")
        chatc.close_input()
        assert peer.expect("PRIVMSG").params == ("#t", "thanks")
        status, stderr = chatc.finish()
        assert status == 0, stderr
        assert chatc.printed() == ["#t <zed> fresh news"]  # neither the replay nor our own echo
        peer.close()
