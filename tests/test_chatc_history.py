"""chatc paging back through IRCv3 ``draft/chathistory``: ``/history [N]`` and PageUp at the top.

The first half feeds CHATHISTORY answers to the sans-I/O state (insertion at the top, in
order, without duplicates, never unread; labels, FAIL, the end of history); the second
runs chatc's UI and headless mode against a real chatd on both backends.
"""

from __future__ import annotations

import asyncio

import pytest

from chatc.buffers import MAX_BUFFER_LINES
from chatc.commands import CommandError, interpret
from chatc.state import ClientState, HistoryRefused, SendLine
from chatc.ui import render_line
from chatd.history import History
from tests.helpers import RunningServer, running_server
from tests.test_chatc_headless import ChatcProcess
from tests.test_chatc_ircv3 import USED_BY_CHATC, in_channel, negotiated, texts_of
from tests.test_chatc_ui import PAGE_UP, joined, running_ui, until

ISUPPORT = ":srv 005 me CHATHISTORY=100 MSGREFTYPES=timestamp,msgid :are supported by this server"


def paging(caps: str = USED_BY_CHATC) -> ClientState:
    """In #room, shown two live lines (m8, m9), looking at the server buffer so unread counts could rise."""
    state = in_channel(negotiated(caps))
    state.feed(ISUPPORT)
    state.feed("@time=2026-11-26T10:48:00.000Z;msgid=m8 :bob!u@h PRIVMSG #room :eight")
    state.feed("@time=2026-11-26T10:49:00.000Z;msgid=m9 :bob!u@h PRIVMSG #room :nine")
    assert state.active_key == ""
    state.buffer("#room").unread = 0  # type: ignore[union-attr]
    return state


def labeled_answer(label: str, lines: list[tuple[str, str, str]]) -> list[str]:
    """chatd's answer to a labeled CHATHISTORY: a chathistory batch inside a labeled-response batch."""
    answer = [f"@label={label} :srv BATCH +L1 labeled-response", "@batch=L1 :srv BATCH +C1 chathistory #room"]
    for msgid, minute, text in lines:
        answer.append(f"@batch=C1;time=2026-11-26T10:{minute}:00.000Z;msgid={msgid} :bob!u@h PRIVMSG #room :{text}")
    return [*answer, "@batch=L1 :srv BATCH -C1", ":srv BATCH -L1"]


OLDER = [("m5", "45", "five"), ("m6", "46", "six"), ("m7", "47", "seven")]
# The lines of the current session above the first message in ``paging()``: the join and the names.
SESSION = 2


def test_the_request_names_the_oldest_message_by_msgid_and_carries_a_label() -> None:
    state = paging()
    line = state.request_history("#room", 3)
    assert line == "@label=chatc-h1 CHATHISTORY BEFORE #room msgid=m8 3"
    assert state.history_pending("#room")


def test_an_answer_goes_above_the_oldest_message_in_order_muted_and_never_unread() -> None:
    state = paging()
    state.request_history("#room", 3)
    for line in labeled_answer("chatc-h1", OLDER):
        assert state.feed(line) == []  # nothing to announce: old words are no news
    buf = state.buffer("#room")
    assert buf is not None
    assert texts_of(state, "#room")[SESSION:] == ["five", "six", "seven", "eight", "nine"]
    assert all(line.history for line in list(buf.lines)[SESSION : SESSION + 3])
    assert {style for style, _text in render_line(buf.lines[SESSION])} == {"class:time", "class:history"}
    assert buf.unread == 0 and not buf.highlighted
    assert not state.history_pending("#room") and not buf.history_exhausted
    # The next page starts from the new top.
    assert state.request_history("#room", 3) == "@label=chatc-h2 CHATHISTORY BEFORE #room msgid=m5 3"


def test_lines_already_shown_are_skipped() -> None:
    state = paging()
    state.feed("@time=2026-11-26T10:50:00.000Z;msgid=m6 :bob!u@h PRIVMSG #room :six")  # seen live somehow
    state.request_history("#room", 3)
    for line in labeled_answer("chatc-h1", [*OLDER[:2], ("m5", "45", "five")]):
        state.feed(line)
    assert texts_of(state, "#room")[SESSION] == "five"
    assert texts_of(state, "#room").count("six") == 1 and texts_of(state, "#room").count("five") == 1


def test_a_short_answer_means_the_start_is_reached_and_it_is_said_once() -> None:
    state = paging()
    state.request_history("#room", 50)
    for line in labeled_answer("chatc-h1", OLDER):
        state.feed(line)
    buf = state.buffer("#room")
    assert buf is not None and buf.history_exhausted
    assert texts_of(state, "#room")[SESSION : SESSION + 4] == ["no older messages", "five", "six", "seven"]
    with pytest.raises(HistoryRefused, match="start of the history"):
        state.request_history("#room")
    assert texts_of(state, "#room").count("no older messages") == 1
    state.set_active("#room")
    interpret(state, "/clear")
    assert not buf.history_exhausted  # after /clear paging starts over, from the newest


def test_an_empty_answer_says_no_older_messages() -> None:
    state = paging()
    state.request_history("#room", 5)
    for line in labeled_answer("chatc-h1", []):
        state.feed(line)
    assert texts_of(state, "#room")[SESSION] == "no older messages"


def test_a_buffer_without_messages_asks_for_the_latest_and_a_timestamp_without_msgids() -> None:
    state = in_channel(negotiated())
    assert state.request_history("#room", 5) == "@label=chatc-h1 CHATHISTORY LATEST #room * 5"
    state = in_channel(negotiated("batch draft/chathistory server-time"))  # no message-tags, no labels
    state.feed("@time=2026-11-26T10:48:00.123Z :bob!u@h PRIVMSG #room :eight")
    assert state.request_history("#room", 5) == "CHATHISTORY BEFORE #room timestamp=2026-11-26T10:48:00.123Z 5"


def test_a_server_that_takes_only_timestamps_gets_one() -> None:
    state = paging()
    state.feed(":srv 005 me MSGREFTYPES=timestamp :are supported by this server")
    assert state.request_history("#room", 5).endswith(" BEFORE #room timestamp=2026-11-26T10:48:00.000Z 5")


def test_the_count_is_capped_by_the_servers_limit_and_a_bad_count_is_refused() -> None:
    state = paging()
    state.set_active("#room")
    assert interpret(state, "/history 500").lines == ["@label=chatc-h1 CHATHISTORY BEFORE #room msgid=m8 100"]
    state = paging()
    state.set_active("#room")
    assert interpret(state, "/history").lines[0].endswith(" 50")
    for bad in ("/history 0", "/history many", "/history -3"):
        with pytest.raises(CommandError, match="usage"):
            interpret(state, bad)


def test_a_smaller_advertised_limit_and_no_advertised_limit_cap_the_count() -> None:
    state = paging()
    state.feed(":srv 005 me CHATHISTORY=20 :are supported by this server")
    assert state.request_history("#room", 50).endswith(" 20")
    state = in_channel(negotiated())  # no CHATHISTORY token: a server's usual cap, not "everything"
    assert state.request_history("#room", 5000).endswith(" 100")


def test_a_server_that_does_not_know_the_command_ends_the_request() -> None:
    state = paging()
    state.request_history("#room")
    state.feed(":srv 421 me CHATHISTORY :Unknown command")
    assert not state.history_pending("#room")


def test_one_request_per_buffer_at_a_time_and_a_lost_connection_ends_it() -> None:
    state = paging()
    state.request_history("#room")
    with pytest.raises(HistoryRefused, match="Already fetching"):
        state.request_history("#room")
    state.connection_lost("gone")
    assert not state.history_pending("#room")


def test_without_the_capability_history_is_refused_clearly() -> None:
    state = in_channel(negotiated("batch message-tags server-time"))
    state.set_active("#room")
    with pytest.raises(CommandError, match="does not offer message history"):
        interpret(state, "/history")
    # A server that starts offering it later (cap-notify) gets asked for it.
    assert state.feed(":srv CAP me NEW :draft/chathistory") == [SendLine("CAP REQ draft/chathistory")]


def test_history_only_in_a_joined_channel_buffer() -> None:
    state = paging()
    with pytest.raises(CommandError, match="channel buffer"):
        interpret(state, "/history")  # the server buffer is active
    state.feed(":me!u@h PART #room")
    with pytest.raises(HistoryRefused, match="Not in #room"):
        state.request_history("#room")


def test_a_replay_on_join_while_a_request_is_out_stays_a_replay() -> None:
    """Only the batch inside our labeled answer is the page; an unlabeled chathistory batch is a replay."""
    state = paging()
    state.request_history("#room", 3)
    state.feed(":srv BATCH +H9 chathistory #room")
    state.feed("@batch=H9;time=2026-11-26T10:51:00.000Z;msgid=m10 :bob!u@h PRIVMSG #room :replayed")
    state.feed(":srv BATCH -H9")
    assert texts_of(state, "#room")[-1] == "replayed" and state.history_pending("#room")
    for line in labeled_answer("chatc-h1", OLDER):
        state.feed(line)
    assert texts_of(state, "#room")[SESSION : SESSION + 3] == ["five", "six", "seven"]


def test_without_labels_the_next_chathistory_batch_for_the_channel_is_the_answer() -> None:
    state = paging("batch draft/chathistory message-tags server-time")
    assert state.request_history("#room", 3) == "CHATHISTORY BEFORE #room msgid=m8 3"
    state.feed(":srv BATCH +C1 chathistory #room")
    for msgid, minute, text in OLDER:
        state.feed(f"@batch=C1;time=2026-11-26T10:{minute}:00.000Z;msgid={msgid} :bob!u@h PRIVMSG #room :{text}")
    state.feed(":srv BATCH -C1")
    assert texts_of(state, "#room")[SESSION : SESSION + 3] == ["five", "six", "seven"]
    assert not state.history_pending("#room")


def test_a_fail_ends_the_request_and_is_shown_in_the_buffer() -> None:
    state = paging()
    state.request_history("#room")
    state.feed("@label=chatc-h1 :srv FAIL CHATHISTORY INVALID_PARAMS BEFORE :Invalid message reference")
    assert not state.history_pending("#room")
    assert texts_of(state, "#room")[-1] == "Cannot fetch history: Invalid message reference (INVALID_PARAMS)"
    state.request_history("#room")  # and the user can try again


def test_a_nearly_full_buffer_takes_only_the_newest_of_the_page() -> None:
    state = paging()
    buf = state.buffer("#room")
    assert buf is not None
    for index in range(MAX_BUFFER_LINES - len(buf.lines) - 2):
        state.add_line(buf, "info", f"filler {index}")
    state.request_history("#room", 3)
    for line in labeled_answer("chatc-h1", OLDER):
        state.feed(line)
    assert len(buf.lines) == MAX_BUFFER_LINES
    assert [line.text for line in list(buf.lines)[SESSION : SESSION + 3]] == ["six", "seven", "eight"]


# ---- against a real chatd --------------------------------------------------------------


def test_slash_history_and_page_up_page_back_against_chatd(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=2) as server:
        peer = server.client("zed")
        peer.send("JOIN #t")
        peer.expect("366")
        for index in range(10):
            peer.send(f"PRIVMSG #t :said {index}")
        peer.sync()

        def said(ui_state: ClientState) -> list[str]:
            return [text for text in texts_of(ui_state, "#t") if text.startswith("said ")]

        async def scenario() -> None:
            async with running_ui(server.address, channels=("#t",)) as (ui, keys):
                await until(lambda: joined(ui, "#t") and said(ui.state) == ["said 8", "said 9"], "the replay")
                assert ui.state.active.name == "#t"
                buf = ui.state.active
                session = [line.text for line in buf.lines][: texts_of(ui.state, "#t").index("said 8")]
                assert session[0] == "me has joined #t" and any(text.startswith("Names on") for text in session)
                keys.send_text("/history 5\r")
                await until(lambda: len(said(ui.state)) == 7, "five older messages")
                assert said(ui.state) == [f"said {index}" for index in range(3, 10)]
                # In time order: the older messages go above the replay, below this session's join lines.
                top = len(session)
                assert texts_of(ui.state, "#t")[:top] == session
                page = list(buf.lines)[top : top + 5]
                assert [line.text for line in page] == [f"said {index}" for index in range(3, 8)]
                assert all(line.history and line.nick == "zed" for line in page)
                assert all(render_line(line)[1][0] == "class:history" for line in page)
                assert buf.unread == 0
                await until(lambda: not ui.state.history_pending(buf.key), "the request to end")
                # Everything fits on the screen, so the top is shown: PageUp fetches the rest.
                renders = ui.app.render_counter
                ui.app.invalidate()
                await until(lambda: ui.app.render_counter > renders, "a redraw")
                keys.send_text(PAGE_UP)
                await until(lambda: len(said(ui.state)) == 10, "the rest")
                assert said(ui.state) == [f"said {index}" for index in range(10)]
                assert texts_of(ui.state, "#t")[: top + 2] == [*session, "no older messages", "said 0"]
                assert ui.scroll.get(buf.key, 0) == 0  # fetching did not scroll
                # Again at the top: nothing more to ask, nothing above to scroll to; the notice is not repeated.
                shown = len(buf.lines)
                keys.send_text(PAGE_UP + PAGE_UP + "/history\r")
                await until(lambda: "start of the history" in texts_of(ui.state, "#t")[-1], "the refusal")
                assert len(buf.lines) == shown + 1 and ui.scroll.get(buf.key, 0) == 0
                assert texts_of(ui.state, "#t").count("no older messages") == 1

        asyncio.run(scenario())
        peer.close()


def test_headless_says_history_is_unsupported(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=2) as server:
        peer = server.client("zed")
        peer.send("JOIN #t")
        peer.expect("366")
        host, port = server.address
        chatc = ChatcProcess("--host", host, "--port", str(port), "--nick", "bot", "--channel", "#t")
        peer.wait_for_line(lambda line: line.startswith(":bot!") and " JOIN " in line)
        chatc.write("/history 5\nstill sent\n")
        chatc.close_input()
        assert peer.expect("PRIVMSG").params == ("#t", "still sent")
        status, stderr = chatc.finish()
        assert status == 1
        assert "/history is not supported without a terminal" in stderr
        peer.close()


def test_page_up_waits_for_a_request_in_flight_and_a_fail_is_shown(server: RunningServer) -> None:
    """chatd without a history store offers the capability but answers FAIL; PageUp meanwhile does nothing."""

    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",)) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            buf = ui.state.active
            ui.state.request_history(buf.key)  # in flight, never sent: no answer will come
            shown = len(buf.lines)
            keys.send_text(PAGE_UP + "typed")
            await until(lambda: ui.input.text == "typed", "the keys after PageUp")
            assert ui.scroll.get(buf.key, 0) == 0 and len(buf.lines) == shown
            ui.state.cancel_history(buf.key)
            keys.send_text("\x15/history 5\r")  # Ctrl-U clears the typed text first
            await until(lambda: "Cannot fetch history" in texts_of(ui.state, "#t")[-1], "the FAIL")
            assert "History is not kept" in texts_of(ui.state, "#t")[-1]
            assert not ui.state.history_pending(buf.key)

    asyncio.run(scenario())


def test_older_messages_never_go_above_the_join_topic_and_names_of_this_session() -> None:
    """``/history`` keeps the buffer in time order: the page lands just above the message it precedes."""
    state = in_channel(negotiated())
    state.feed(ISUPPORT)
    state.feed(":srv 332 me #room :the topic")
    state.feed("@time=2026-11-26T10:48:00.000Z;msgid=m8 :bob!u@h PRIVMSG #room :eight")
    session = texts_of(state, "#room")[:-1]
    state.request_history("#room", 3)
    for line in labeled_answer("chatc-h1", OLDER):
        state.feed(line)
    assert texts_of(state, "#room") == [*session, "five", "six", "seven", "eight"]
    assert "Topic for #room: the topic" in session
