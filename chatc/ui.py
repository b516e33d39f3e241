"""The full-screen prompt_toolkit client: topic bar, message pane (plus nick list), status line, input line.

The input line is a ``TextArea`` that no incoming traffic ever touches: network
events only change the client state and ask for a redraw, and the message pane is
drawn from the state on each redraw. That is what keeps half-typed text and the
cursor exactly where the user left them while a busy channel scrolls by.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Final

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer as InputBuffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.data_structures import Point
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.layout import (
    ConditionalContainer,
    Float,
    FloatContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.styles import Style
from prompt_toolkit.utils import get_cwidth
from prompt_toolkit.widgets import TextArea

from chatc.buffers import SERVER_KEY, BufferLine
from chatc.commands import COMMANDS, CommandError, interpret
from chatc.connection import Connection, ServerAddress
from chatc.events import Event, Joined
from chatc.state import ClientState, HistoryRefused
from chatc.text import nick_colour
from chatc.wrap import cells, fit_parts, wrap_fragments
from chatd.protocol.casemap import irc_lower

# Only this many lines above the bottom are handed to prompt_toolkit per redraw;
# enough to fill any screen, cheap to build on every incoming message.
RENDER_LINES: Final = 300
NICKLIST_WIDTH: Final = 18

STYLE: Final = Style.from_dict(
    {
        "topic": "reverse",
        "status": "reverse",
        "status.activity": "reverse bold",
        "status.highlight": "reverse bold ansiyellow",
        "status.bad": "reverse bold ansired",
        "time": "ansibrightblack",
        "own": "bold",
        "highlight": "bold ansiyellow",
        "event": "ansibrightblack",
        "error": "ansired",
        "nicklist": "ansibrightblack",
        "nicklist.away": "ansibrightblack italic",
        "history": "ansibrightblack",
    }
)

_EVENT_ARROWS: Final = {"join": "-->", "part": "<--", "quit": "<--", "nick": "--", "topic": "--", "mode": "--"}


def render_line(line: BufferLine, now: float | None = None) -> StyleAndTextTuples:
    """Fragments for one buffer line: time, then the nick in its colour, then the text.

    Replayed history is one muted colour throughout (no nick colours, bold or
    highlight), so what was said before you joined never looks like new conversation;
    history from another day than ``now`` (default: the clock) carries its date too.
    """
    local = time.localtime(line.time)
    stamp = time.strftime("%H:%M ", local)
    if line.history and time.strftime("%Y-%m-%d", local) != time.strftime("%Y-%m-%d", time.localtime(now)):
        stamp = time.strftime("%m-%d %H:%M ", local)
    if line.history:
        return [("class:time", stamp), ("class:history", _history_text(line))]
    fragments: StyleAndTextTuples = [("class:time", stamp)]
    text_style = "class:highlight" if line.highlight else "class:own" if line.own else ""
    nick_style = f"bold {nick_colour(line.nick)}" if line.own else nick_colour(line.nick)
    if line.kind == "privmsg":
        fragments += [("", "<"), (nick_style, line.nick), ("", "> "), (text_style, line.text)]
    elif line.kind == "action":
        fragments += [("", "* "), (nick_style, line.nick), (text_style, " " + line.text)]
    elif line.kind == "notice":
        fragments += [("", "-"), (nick_style, line.nick), ("", "- "), (text_style, line.text)]
    elif line.kind == "sent":  # /msg to a nick with no query open: the nick is the recipient
        fragments += [("", "-> "), (nick_colour(line.nick), line.nick), ("", ": "), ("class:own", line.text)]
    elif line.kind == "sent-notice":
        fragments += [("", "-> -"), (nick_colour(line.nick), line.nick), ("", "- "), ("class:own", line.text)]
    elif line.kind == "error":
        fragments.append(("class:error", "!! " + line.text))
    elif line.kind in _EVENT_ARROWS:
        fragments.append(("class:event", f"{_EVENT_ARROWS[line.kind]} {line.text}"))
    else:
        fragments.append(("", "-- " + line.text))
    return fragments


def _history_text(line: BufferLine) -> str:
    if line.kind == "privmsg":
        return f"<{line.nick}> {line.text}"
    if line.kind == "action":
        return f"* {line.nick} {line.text}"
    if line.kind == "notice":
        return f"-{line.nick}- {line.text}"
    return f"{_EVENT_ARROWS.get(line.kind, '--')} {line.text}"


class ChatCompleter(Completer):
    """Tab completion: ``/commands`` at the start, channels for ``#...``, nicks otherwise.

    A nick completed as the first word gets ``": "`` after it, the IRC convention for
    addressing someone.
    """

    def __init__(self, state: ClientState) -> None:
        self.state = state

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        if before.startswith("/") and " " not in before:
            for name in COMMANDS:
                if name.startswith(before[1:].lower()):
                    yield Completion(f"/{name} ", start_position=-len(before))
            return
        if not word:
            return
        key = irc_lower(word)
        if self.state.is_channel(word):
            names = dict.fromkeys([*self.state.channel_names(), *self.state.wanted_channels.values()])
            for name in sorted(names, key=irc_lower):
                if irc_lower(name).startswith(key):
                    yield Completion(name, start_position=-len(word))
            return
        first_word = before == word
        for nick in self._nick_candidates():
            if irc_lower(nick).startswith(key) and not self.state.is_me(nick):
                yield Completion(nick + (": " if first_word else ""), start_position=-len(word), display=nick)

    def _nick_candidates(self) -> list[str]:
        buf = self.state.active
        if buf.kind == "channel":
            return sorted(buf.nicks.values(), key=irc_lower)
        if buf.kind == "query":
            return [buf.name]
        every = {nick for other in self.state.buffer_list for nick in other.nicks.values()}
        return sorted(every, key=irc_lower)


class ChatUI:
    """The application; ``run()`` it on an event loop. One instance per session."""

    def __init__(self, address: ServerAddress, state: ClientState, **connection_options: float) -> None:
        self.state = state
        self.connection = Connection(
            address, state, self._on_events, self._on_status, on_sent=self._on_sent, **connection_options
        )
        self.scroll: dict[str, int] = {}  # buffer key -> lines scrolled up from the bottom
        self.show_nicklist = False
        self.quitting = False
        self._quit_task: asyncio.Task[None] | None = None  # held so the task is not garbage-collected mid-quit
        self.input = TextArea(
            height=1,
            multiline=False,
            wrap_lines=False,
            prompt=self._prompt,
            history=InMemoryHistory(),
            completer=ChatCompleter(state),
            complete_while_typing=False,
            accept_handler=self._accept,
        )
        self._rows = 0  # display rows of the message pane as last built (lines wrap into several)
        self.messages = Window(
            FormattedTextControl(self._message_fragments, get_cursor_position=self._message_cursor),
            wrap_lines=False,  # we wrap ourselves, at words and with a hanging indent (chatc.wrap)
            always_hide_cursor=True,
        )
        nicklist = ConditionalContainer(
            VSplit(
                [
                    Window(width=1, char="│", style="class:nicklist"),
                    Window(FormattedTextControl(self._nicklist_fragments), width=NICKLIST_WIDTH),
                ]
            ),
            filter=Condition(lambda: self.show_nicklist and self.state.active.kind == "channel"),
        )
        body = HSplit(
            [
                Window(FormattedTextControl(self._topic_fragments), height=1, style="class:topic"),
                VSplit([self.messages, nicklist]),
                Window(FormattedTextControl(self._status_fragments), height=1, style="class:status"),
                self.input,
            ]
        )
        root = FloatContainer(
            body, floats=[Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=8, scroll_offset=1))]
        )
        self.app: Application[int] = Application(
            layout=Layout(root, focused_element=self.input),
            key_bindings=self._key_bindings(),
            style=STYLE,
            full_screen=True,
        )

    # ---- running ------------------------------------------------------------------

    async def run(self) -> int:
        """Run until /quit, Ctrl-D or Ctrl-C; returns the exit status."""
        runner = asyncio.create_task(self.connection.run())
        try:
            await self.app.run_async()
        finally:
            if not self.quitting:
                self.quitting = True
                await self.connection.quit("chatc")
            await runner
        return 0

    def quit(self, reason: str = "chatc") -> None:
        """Leave with a QUIT the server acknowledges, then end the application."""
        if self.quitting:
            return
        self.quitting = True
        self.app.invalidate()

        async def leave() -> None:
            await self.connection.quit(reason)
            if self.app.is_running:
                self.app.exit(result=0)

        self._quit_task = asyncio.get_running_loop().create_task(leave())

    # ---- events from the connection ---------------------------------------------------

    def _on_events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Joined) and event.own and self.state.active_key == SERVER_KEY:
                self.switch_to(irc_lower(event.channel))  # land in the first channel instead of the server
        self.app.invalidate()

    def _on_status(self, status: str) -> None:
        self.app.invalidate()

    def _on_sent(self, queued: int) -> None:
        """A paced line left: the status line's ``[N queued]`` counts down."""
        self.app.invalidate()

    def paste(self, data: str) -> None:
        """A bracketed paste: every complete line is sent (paced, so the server does not cut us for
        flooding), and the text after the last newline stays in the input line to be finished.

        The input line stays one line and visible: a pasted block never lands in it whole.
        """
        data = data.replace("\r\n", "\n").replace("\r", "\n")
        buffer = self.input.buffer
        if "\n" not in data:
            buffer.insert_text(data)
            return
        text = buffer.text[: buffer.cursor_position] + data + buffer.text[buffer.cursor_position :]
        *complete, rest = text.split("\n")
        buffer.reset()
        self.submit("\n".join(complete))
        buffer.set_document(Document(rest, len(rest)))

    # ---- input ------------------------------------------------------------------------

    def _prompt(self) -> StyleAndTextTuples:
        return [("bold", f"[{self.state.active.name}] ")]

    def _accept(self, buffer: InputBuffer) -> bool:
        """Handle Enter: returns False so the input line is cleared (prompt_toolkit keeps it in the history,
        except a line with a password, emptied here so that Up never brings it back)."""
        if self.submit(buffer.text):
            buffer.reset()
        return False

    def submit(self, text: str) -> bool:
        """Run one input line as if typed; errors are shown in the active buffer, never raised.
        True when the line carries a password (it must not stay in the input history)."""
        try:
            outcome = interpret(self.state, text)
        except CommandError as exc:
            self.state.info(str(exc), kind="error")
            self.app.invalidate()
            return False
        for line in outcome.lines:
            if not self.connection.send(line):
                self.state.info(f"Not connected; not sent: {line}", kind="error")
                if outcome.history_key is not None:
                    self.state.cancel_history(outcome.history_key)
        if outcome.switch_to is not None and outcome.switch_to in self.state.buffers:
            self.switch_to(outcome.switch_to)
        if outcome.buffer_number is not None:
            self.switch_number(outcome.buffer_number)
        self.scroll[self.state.active_key] = 0
        if outcome.reconnect:
            if self.connection.connected:
                self.state.info("Already connected", kind="error")
            else:
                self.connection.reconnect_now()
        if outcome.quit_reason is not None:
            self.quit(outcome.quit_reason)
        self.app.invalidate()
        return outcome.secret

    # ---- buffers ----------------------------------------------------------------------

    def switch_to(self, key: str) -> None:
        self.state.set_active(key)
        self.app.invalidate()

    def switch_number(self, number: int) -> None:
        """Switch to buffer ``number`` (1-based, as shown in the status line); ignores missing ones."""
        buffers = self.state.buffer_list
        if 1 <= number <= len(buffers):
            self.switch_to(buffers[number - 1].key)

    def switch_relative(self, step: int) -> None:
        keys = [buf.key for buf in self.state.buffer_list]
        index = keys.index(self.state.active_key)
        self.switch_to(keys[(index + step) % len(keys)])

    def scroll_page(self, direction: int) -> None:
        info = self.messages.render_info
        page = max(1, (info.window_height if info is not None else 10) - 2)
        key = self.state.active_key
        limit = max(0, len(self.state.active.lines) - 1)
        self.scroll[key] = min(limit, max(0, self.scroll.get(key, 0) + direction * page))
        self.app.invalidate()

    def at_top(self) -> bool:
        """Whether the first line of the active buffer is on screen (as last drawn)."""
        info = self.messages.render_info
        lines = self.state.active.lines
        end = len(lines) - self.scroll.get(self.state.active_key, 0)
        if end - RENDER_LINES > 0:
            return False  # the first line is not even handed to prompt_toolkit
        return info is None or not info.displayed_lines or info.first_visible_line() == 0

    def page_up(self) -> None:
        """Scroll up a page; at the top of a channel buffer, fetch older history instead.

        With the first line already on screen there is nothing above to scroll to, so
        otherwise it does nothing, quietly: while a request for this buffer is in
        flight, after the server said there is nothing older, or when it offers no
        history. PageUp is a scroll key; repeating it must not fill the buffer with notices.
        """
        key = self.state.active_key
        if self.state.history_pending(key):
            return  # the answer goes to the top: keep the view still for it
        if not self.at_top():
            self.scroll_page(1)
            return
        if self.state.active.kind != "channel":
            return  # nothing above the first line to scroll to
        try:
            line = self.state.request_history(key)
        except HistoryRefused:
            return
        if not self.connection.send(line):
            self.state.cancel_history(key)
        self.app.invalidate()

    # ---- drawing ----------------------------------------------------------------------

    def _visible_lines(self) -> list[BufferLine]:
        lines = self.state.active.lines
        end = len(lines) - self.scroll.get(self.state.active_key, 0)
        start = max(0, end - RENDER_LINES)
        return [lines[index] for index in range(start, max(start, end))]

    def _message_width(self) -> int:
        width = self.app.output.get_size().columns
        if self.show_nicklist and self.state.active.kind == "channel":
            width -= NICKLIST_WIDTH + 1
        return max(10, width)

    def _message_fragments(self) -> StyleAndTextTuples:
        """Each line wrapped at words to the pane's width, continuation rows indented under the message column."""
        width = self._message_width()
        fragments: StyleAndTextTuples = []
        rows = 0
        for line in self._visible_lines():
            rendered = render_line(line)
            indent = cells(rendered) - get_cwidth(line.text)  # where the message text starts
            for row in wrap_fragments(rendered, width, indent):
                if rows:
                    fragments.append(("", "\n"))
                fragments.extend(row)
                rows += 1
        self._rows = rows
        return fragments

    def _message_cursor(self) -> Point:
        """The (hidden) cursor sits on the last row, so the window scrolls to show it."""
        return Point(x=0, y=max(0, self._rows - 1))

    def _topic_fragments(self) -> StyleAndTextTuples:
        buf = self.state.active
        text = buf.topic if buf.kind == "channel" else f"chatc — {self.state.network}"
        return [("", " " + text)]

    def _nicklist_fragments(self) -> StyleAndTextTuples:
        fragments: StyleAndTextTuples = []
        for nick in self.state.active.sorted_nicks():
            bare = nick.lstrip(self.state.prefix_symbols)
            style = "class:nicklist.away" if irc_lower(bare) in self.state.away_nicks else nick_colour(bare)
            fragments += [(style, nick[:NICKLIST_WIDTH]), ("", "\n")]
        return fragments

    def _status_fragments(self) -> StyleAndTextTuples:
        """The status line, shortened to the terminal's width by dropping whole parts, least important first
        (the clock, the account, then the network when all is well, the activity list, our nick); the buffer, a
        connection problem, the paste queue and ``-- MORE --`` stay longest."""
        state = self.state
        buffers = state.buffer_list
        number = [buf.key for buf in buffers].index(state.active_key) + 1
        status = "quitting" if self.quitting and self.app.is_running else self.connection.status
        members = f" ({len(state.active.nicks)})" if state.active.kind == "channel" else ""
        connected = status == "connected"
        parts: list[tuple[int, StyleAndTextTuples]] = [
            (9, [("", f" {time.strftime('%H:%M')}")]),
            (5, [("", f" [{state.nick}{' (away)' if state.away else ''}]")]),
            *([(8, [("", f" [account: {state.account}]")])] if state.account else []),
            (0, [("", f" [{number}:{state.active.name}{members}]")]),
            (7 if connected else 1, [("" if connected else "class:status.bad", f" [{state.network}: {status}]")]),
        ]
        active = [(index, buf) for index, buf in enumerate(buffers, 1) if buf.unread or buf.highlighted]
        if active:
            activity: StyleAndTextTuples = [("", " [Act: ")]
            for position, (index, buf) in enumerate(active):
                style = "class:status.highlight" if buf.highlighted else "class:status.activity"
                count = f"({buf.unread})" if buf.unread > 1 else ""
                activity.append((style, f"{index}:{buf.name}{count}" + ("!" if buf.highlighted else "")))
                activity.append(("", "," if position < len(active) - 1 else "]"))
            parts.append((6, activity))
        if self.connection.queued:
            parts.append((2, [("class:status.activity", f" [{self.connection.queued} queued]")]))
        if self.scroll.get(state.active_key, 0):
            parts.append((3, [("class:status.activity", " -- MORE --")]))
        return fit_parts(parts, self.app.output.get_size().columns)

    # ---- keys ---------------------------------------------------------------------------

    def _key_bindings(self) -> KeyBindings:
        bindings = KeyBindings()
        input_empty = Condition(lambda: not self.input.text)

        for digit in range(1, 10):

            @bindings.add("escape", str(digit))
            def _switch(event: KeyPressEvent, number: int = digit) -> None:
                self.switch_number(number)

        @bindings.add("c-n")
        def _next(event: KeyPressEvent) -> None:
            self.switch_relative(1)

        @bindings.add("c-p")
        def _previous(event: KeyPressEvent) -> None:
            self.switch_relative(-1)

        @bindings.add("pageup")
        def _page_up(event: KeyPressEvent) -> None:
            self.page_up()

        @bindings.add("pagedown")
        def _page_down(event: KeyPressEvent) -> None:
            self.scroll_page(-1)

        @bindings.add(Keys.BracketedPaste)
        def _paste(event: KeyPressEvent) -> None:
            self.paste(event.data)

        @bindings.add("f2")
        def _nicklist(event: KeyPressEvent) -> None:
            self.show_nicklist = not self.show_nicklist

        @bindings.add("tab")
        def _complete(event: KeyPressEvent) -> None:
            buffer = self.input.buffer
            if buffer.complete_state:
                buffer.complete_next()
            else:
                buffer.start_completion(select_first=True)

        @bindings.add("s-tab")
        def _complete_back(event: KeyPressEvent) -> None:
            if self.input.buffer.complete_state:
                self.input.buffer.complete_previous()

        @bindings.add("c-d", filter=input_empty)
        @bindings.add("c-c")
        def _leave(event: KeyPressEvent) -> None:
            self.quit("chatc")

        @bindings.add("c-l")
        def _redraw(event: KeyPressEvent) -> None:
            event.app.renderer.clear()

        return bindings


def run_ui(address: ServerAddress, state: ClientState) -> int:
    """Run the full-screen client on the current terminal; returns the exit status."""
    return asyncio.run(ChatUI(address, state).run())
