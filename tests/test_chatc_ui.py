"""The full-screen client driven by keystrokes through prompt_toolkit's pipe input, against a real chatd.

Each test runs the UI on its own event loop; the peer is a blocking test client, so
its waits run in a thread (``asyncio.to_thread``) and never stall the UI's loop.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput, Output
from prompt_toolkit.output.vt100 import Vt100_Output

from chatc.connection import ServerAddress
from chatc.state import ClientState
from chatc.text import nick_colour
from chatc.ui import ChatUI, render_line
from tests.helpers import DEADLINE_S, IrcClient, RunningServer

ALT_1 = "\x1b1"
ALT_2 = "\x1b2"
CTRL_N = "\x0e"
CTRL_P = "\x10"
UP = "\x1b[A"
TAB = "\t"
PAGE_UP = "\x1b[5~"
PAGE_DOWN = "\x1b[6~"
F2 = "\x1bOQ"
CTRL_D = "\x04"


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` on the UI's loop until it holds; fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running_ui(
    address: tuple[str, int],
    nick: str = "me",
    channels: tuple[str, ...] = ("#t",),
    output: Output | None = None,
    **options: float,
) -> AsyncIterator[tuple[ChatUI, PipeInput]]:
    with create_pipe_input() as keys, create_app_session(input=keys, output=output or DummyOutput()):
        ui = ChatUI(ServerAddress(*address), ClientState(nick, channels), **options)
        task = asyncio.create_task(ui.run())
        try:
            yield ui, keys
        finally:
            if not task.done():
                ui.quit("test over")
            await asyncio.wait_for(task, DEADLINE_S)


def joined(ui: ChatUI, channel: str) -> bool:
    """In the channel and its NAMES reply has arrived, so no join chatter can follow later lines."""
    buf = ui.state.buffer(channel)
    return buf is not None and buf.joined and any(line.text.startswith("Names on") for line in buf.lines)


def last_text(ui: ChatUI, name: str) -> str:
    buf = ui.state.buffer(name)
    return buf.lines[-1].text if buf is not None and buf.lines else ""


def shows(ui: ChatUI, name: str, text: str) -> bool:
    buf = ui.state.buffer(name)
    return buf is not None and any(text in line.text for line in buf.lines)


@pytest.fixture
def peer(server: RunningServer) -> IrcClient:
    client = server.client("zed")
    client.send("JOIN #t")
    client.expect("366")
    return client


def test_typing_a_message_sends_it_and_shows_it_as_own(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            assert ui.state.active.name == "#t"
            keys.send_text("hello from the ui\r")
            message = await asyncio.to_thread(peer.expect, "PRIVMSG")
            assert message.params == ("#t", "hello from the ui")
            # chatd echoes (echo-message): the line appears when the echo arrives, once.
            await until(lambda: last_text(ui, "#t") == "hello from the ui", "the echo")
            line = ui.state.active.lines[-1]
            assert line.own and line.nick == "me"
            assert [line.text for line in ui.state.active.lines].count("hello from the ui") == 1
            assert ui.input.text == ""

    asyncio.run(scenario())


def test_incoming_messages_leave_half_typed_text_and_cursor_intact(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text("half ty\x1b[D")  # type, then move the cursor one left
            await until(lambda: ui.input.text == "half ty", "typed text")
            cursor = ui.input.buffer.cursor_position
            assert cursor == len("half t")
            for index in range(20):
                peer.send(f"PRIVMSG #t :interruption {index}")
            await until(lambda: last_text(ui, "#t") == "interruption 19", "incoming messages")
            renders = ui.app.render_counter
            ui.app.invalidate()
            await until(lambda: ui.app.render_counter > renders, "a redraw after them")
            assert ui.input.text == "half ty"
            assert ui.input.buffer.cursor_position == cursor
            assert ui.app.layout.has_focus(ui.input)
            keys.send_text("\x1b[Cped\r")
            message = await asyncio.to_thread(peer.expect, "PRIVMSG")
            assert message.params == ("#t", "half typed")

    asyncio.run(scenario())


def test_buffers_switch_with_alt_digits_ctrl_n_p_and_slash_buffer(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text("/join #other\r")
            await until(lambda: joined(ui, "#other"), "second join")
            assert ui.state.active.name == "#other"
            peer.send("PRIVMSG me :psst")
            await until(lambda: ui.state.buffer("zed") is not None, "query buffer")
            query = ui.state.buffer("zed")
            assert query is not None and query.unread == 1 and query.highlighted
            assert [buf.name for buf in ui.state.buffer_list][1:] == ["#t", "#other", "zed"]
            status = "".join(text for _, text, *_ in ui._status_fragments())
            assert "[2:#t" not in status and "[3:#other (1)]" in status and "[Act: 4:zed!]" in status
            keys.send_text(ALT_1)
            await until(lambda: ui.state.active.kind == "server", "alt-1")
            keys.send_text(CTRL_N)
            await until(lambda: ui.state.active.name == "#t", "ctrl-n")
            keys.send_text(CTRL_P + CTRL_P)
            await until(lambda: ui.state.active.name == "zed", "ctrl-p wrapping around")
            assert query.unread == 0 and not query.highlighted
            keys.send_text("/buffer 3\r")
            await until(lambda: ui.state.active.name == "#other", "/buffer 3")
            keys.send_text(ALT_2 + "back in t\r")
            message = await asyncio.to_thread(peer.expect, "PRIVMSG")
            assert message.params == ("#t", "back in t")

    asyncio.run(scenario())


def test_tab_completes_commands_nicks_and_channels(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t") and "zed" in ui.state.active.nicks, "join with names")
            keys.send_text("z" + TAB)
            await until(lambda: ui.input.text == "zed: ", "nick completion")
            keys.send_text("see /jo")
            await until(lambda: ui.input.text == "zed: see /jo", "typing")
            keys.send_text(TAB)  # "/jo" is not at the start: no command completion in mid-line
            keys.send_text("\x15/jo" + TAB)  # Ctrl-U clears the line
            await until(lambda: ui.input.text == "/join ", "command completion")
            keys.send_text("#" + TAB)
            await until(lambda: ui.input.text == "/join #t", "channel completion")
            keys.send_text("\x15")
            await until(lambda: ui.input.text == "", "cleared")

    asyncio.run(scenario())


def test_up_walks_history_and_slash_quit_leaves_with_quit(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text("first\rsecond\r")
            await until(lambda: shows(ui, "#t", "second"), "two messages sent")
            # prompt_toolkit reloads the input history on the next redraw; a person is never faster than that.
            renders = ui.app.render_counter
            ui.app.invalidate()
            await until(lambda: ui.app.render_counter > renders, "a redraw")
            keys.send_text(UP + UP)
            await until(lambda: ui.input.text == "first", "history")
            keys.send_text("\x15/quit see you\r")
            quit_message = await asyncio.to_thread(peer.expect, "QUIT")
            assert quit_message.params[-1].endswith("see you")
            await until(lambda: not ui.app.is_running, "the app to exit")

    asyncio.run(scenario())


def test_unknown_command_shows_an_error_and_sends_nothing(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text("/frobnicate\r")
            await until(lambda: shows(ui, "#t", "Unknown command /frobnicate"), "error line")
            assert any(line.kind == "error" for line in ui.state.active.lines)
            keys.send_text("after\r")
            message = await asyncio.to_thread(peer.expect, "PRIVMSG")
            assert message.params == ("#t", "after")

    asyncio.run(scenario())


class FlakyServer:
    """A minimal IRC server on a real socket that drops its first client after registration.

    Just enough protocol to see chatc notice the drop, reconnect and rejoin.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(DEADLINE_S)
        self.address = self.sock.getsockname()[:2]
        self.second_session: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _session(self, conn: socket.socket, drop: bool) -> list[str]:
        conn.settimeout(DEADLINE_S)
        data = b""
        lines: list[str] = []
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return lines
            data += chunk
            while b"\n" in data:
                raw, data = data.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode()
                lines.append(line)
                if line.startswith("USER"):
                    conn.sendall(b":flaky 001 me :Welcome\r\n")
                elif line.startswith("JOIN"):
                    conn.sendall(f":me!u@h JOIN {line.split()[1]}\r\n".encode())
                    if drop:
                        return lines
                elif line.startswith("QUIT"):
                    conn.sendall(b"ERROR :bye\r\n")
                    return lines

    def _serve(self) -> None:
        with self.sock:
            first, _ = self.sock.accept()
            with first:
                self._session(first, drop=True)
            second, _ = self.sock.accept()
            with second:
                self.second_session = self._session(second, drop=False)
        self.done.set()


def test_dropped_connection_shows_a_notice_then_reconnects_and_rejoins() -> None:
    flaky = FlakyServer()

    async def scenario() -> None:
        async with running_ui(flaky.address, backoff_initial_s=0.05) as (ui, keys):
            in_channel = lambda: ui.state.buffer("#t") is not None and ui.state.buffer("#t").joined  # noqa: E731
            await until(in_channel, "first join")
            await until(lambda: any("Disconnected" in line.text for line in ui.state.active.lines), "notice")
            await until(lambda: ui.connection.status == "connected" and in_channel(), "rejoin")
            keys.send_text("/quit\r")
            await until(lambda: not ui.app.is_running, "the app to exit")

    asyncio.run(scenario())
    assert flaky.done.wait(DEADLINE_S)
    # The flaky server knows no CAP and never answers it: registration goes ahead regardless.
    assert [line.split()[0] for line in flaky.second_session] == ["CAP", "NICK", "USER", "JOIN", "QUIT"]
    assert flaky.second_session[3] == "JOIN #t"


def test_page_up_and_down_scroll_the_message_pane(server: RunningServer, peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            buf = ui.state.active
            for index in range(200):  # history as if a busy channel had run for a while
                ui.state.add_line(buf, "privmsg", f"old line {index}", "zed")
            renders = ui.app.render_counter
            ui.app.invalidate()
            await until(lambda: ui.app.render_counter > renders, "a redraw")
            assert ui._visible_lines()[-1].text == "old line 199"
            keys.send_text(PAGE_UP + PAGE_UP)
            await until(lambda: ui.scroll.get(buf.key, 0) > 0, "scrolling up")
            await until(lambda: ui._visible_lines()[-1].text != "old line 199", "older lines at the bottom")
            assert any("MORE" in text for _, text, *_ in ui._status_fragments())
            keys.send_text(PAGE_DOWN * 5)
            await until(lambda: ui.scroll.get(buf.key, 0) == 0, "back at the bottom")
            assert ui._visible_lines()[-1].text == "old line 199"

    asyncio.run(scenario())


def test_f2_shows_the_nick_list_and_ctrl_d_quits_only_on_an_empty_line(
    server: RunningServer, peer: IrcClient
) -> None:
    async def scenario() -> None:
        async with running_ui(server.address) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text(F2)
            await until(lambda: ui.show_nicklist, "nick list shown")
            assert [text for _, text, *_ in ui._nicklist_fragments() if text.strip()] == ["@zed", "me"]
            keys.send_text("ab\x1b[D" + CTRL_D)  # Ctrl-D with text deletes the character under the cursor
            await until(lambda: ui.input.text == "a", "delete")
            assert ui.app.is_running
            keys.send_text("\x08" + CTRL_D)  # Backspace, then Ctrl-D on the empty line
            quit_message = await asyncio.to_thread(peer.expect, "QUIT")
            assert quit_message.source is not None and quit_message.source.startswith("me!")
            await until(lambda: not ui.app.is_running, "the app to exit")

    asyncio.run(scenario())


def test_rendered_lines_mark_time_own_messages_highlights_and_nick_colours() -> None:
    state = ClientState("me", clock=lambda: 0.0)
    buf = state.open_buffer("#t")
    own = render_line(state.add_line(buf, "privmsg", "mine", "me", own=True))
    theirs = render_line(state.add_line(buf, "privmsg", "hey me!", "zed", highlight=True))
    action = render_line(state.add_line(buf, "action", "waves", "zed"))
    assert "".join(text for _, text, *_ in own).endswith("<me> mine")
    assert own[0][0] == "class:time" and len(own[0][1]) == len("HH:MM ")
    assert "bold" in own[2][0] and own[-1][0] == "class:own"
    assert theirs[2][0] == nick_colour("zed") and theirs[-1][0] == "class:highlight"
    assert "".join(text for _, text, *_ in action).endswith("* zed waves")


def test_escape_sequences_from_the_network_never_reach_the_terminal(server: RunningServer, peer: IrcClient) -> None:
    """Render to a real VT100 output and look at the bytes a terminal would get."""
    screen = io.StringIO()
    output = Vt100_Output(screen, lambda: Size(rows=24, columns=100), term="xterm")

    async def scenario() -> None:
        async with running_ui(server.address, output=output) as (ui, _keys):
            await until(lambda: joined(ui, "#t"), "join")
            peer.send("PRIVMSG #t :\x1b]0;pwned-title\x07 and \x1b[2Jwiped \x9b31mcsi")
            await until(lambda: shows(ui, "#t", "pwned-title"), "the hostile message")
            renders = ui.app.render_counter
            ui.app.invalidate()
            await until(lambda: ui.app.render_counter > renders, "a redraw")

    asyncio.run(scenario())
    drawn = screen.getvalue()
    assert "^[]0;pwned-title^G" in drawn
    assert "\x1b]0;pwned" not in drawn and "\x07" not in drawn and "\x9b" not in drawn
    assert "^[[2Jwiped" in drawn
