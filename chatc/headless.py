"""chatc without a UI, for scripts and pipes (in the spirit of suckless ``ii``).

Each stdin line is a message to the ``--channel`` (or a ``/command``); each message
received is printed to stdout as one line: ``#room <alice> hello``, ``#room * alice
waves`` for actions, ``#room -alice- text`` for notices, with the buffer name first
(a nick for private messages). Errors go to stderr.

With ``--sasl`` the login's outcome goes to stderr too: ``chatc: logged in as alice``, or
``chatc: SASL login failed: <the server's reason>`` (then, by default, exit status 1: see
``chatc/accounts.py`` for ``--sasl-fail``).

History the server replays on join (a ``chathistory`` batch) is not printed: it was
said before the script connected, and a bot that reacts to lines would otherwise act
again on old commands every time it restarts. (A server without batch support sends
history as ordinary lines, which are printed like any other.) For the same reason
``/history`` (paging back) is refused here, as a rejected line.

At end of input it makes sure nothing is lost: a PING/PONG round trip proves the
server processed every line we sent (servers answer in order), then it sends QUIT
and waits for the server to close the connection before exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import BinaryIO, Final, TextIO

from chatc.buffers import SERVER_KEY
from chatc.commands import CommandError, interpret
from chatc.connection import Connection, ConnectionClosed, ServerAddress
from chatc.events import AccountStatus, ErrorReply, Event, LoginFailed, MessageReceived, Registered
from chatc.state import ClientState
from chatd.protocol.casemap import irc_lower
from chatd.protocol.framing import decode_line

# Stop reading input while this many lines wait for their turn, so a huge pipe stays in the pipe.
MAX_QUEUED_LINES: Final = 64
SYNC_TIMEOUT_S: Final = 30.0
# A script must not hang on a port that accepts but never speaks IRC.
REGISTRATION_TIMEOUT_S: Final = 30.0
READ_CHUNK_BYTES: Final = 65536


def format_event(event: MessageReceived) -> str:
    """One output line for a received message; the text is already sanitised by the state."""
    if event.kind == "action":
        return f"{event.buffer} * {event.sender} {event.text}"
    if event.kind == "notice":
        return f"{event.buffer} -{event.sender}- {event.text}"
    return f"{event.buffer} <{event.sender}> {event.text}"


def _start_stdin_reader(stdin: BinaryIO, queue: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Read stdin in a thread: a blocking read works for pipes, files and ttys alike, unlike add_reader.

    It reads the file descriptor with ``os.read`` rather than through the buffered
    file object: the thread may still be blocked in a read when chatc exits (after
    /quit, or a lost connection), and a daemon thread holding the buffered reader's
    lock at interpreter shutdown aborts the process.
    """
    fd = stdin.fileno()

    def deliver(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            return False  # the loop is closed: chatc is exiting
        return True

    def pump() -> None:
        pending = b""
        try:
            while chunk := os.read(fd, READ_CHUNK_BYTES):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    if not deliver(decode_line(raw.rstrip(b"\r"))):
                        return
        except OSError:
            pass  # an unreadable stdin counts as the end of input
        if pending and not deliver(decode_line(pending.rstrip(b"\r"))):
            return
        deliver(None)

    threading.Thread(target=pump, name="chatc-stdin", daemon=True).start()


class HeadlessClient:
    """Drives one connection from an input stream; see the module docstring for the contract."""

    def __init__(
        self,
        address: ServerAddress,
        state: ClientState,
        channel: str | None,
        stdout: TextIO,
        stderr: TextIO,
        registration_timeout_s: float = REGISTRATION_TIMEOUT_S,
    ) -> None:
        self.registration_timeout_s = registration_timeout_s
        self.state = state
        self.channel = channel
        self.stdout = stdout
        self.stderr = stderr
        self.failed = False
        self.quitting = False
        self.stdout_gone = False
        self.connection = Connection(address, state, self._on_events, reconnect=False)
        self.asked_nick = state.wanted_nick
        self.login_failure_shown = False

    def _announce_nick(self, nick: str) -> None:
        """A script reads its own nick from stderr when the one it asked for was taken: lines to it go there."""
        if irc_lower(nick) != irc_lower(self.asked_nick):
            self.error(f"nick {self.asked_nick} is taken; using {nick} instead")

    def _on_events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Registered):
                self._announce_nick(event.nick)
            elif isinstance(event, MessageReceived) and not (event.own or event.history or self._from_server(event)):
                self.print(format_event(event))
            elif isinstance(event, ErrorReply) and not (self.quitting and event.code in ("ERROR", "DISCONNECTED")):
                self.error(f"{event.code} {event.text}")
            elif isinstance(event, LoginFailed):
                self.login_failure_shown = event.fatal  # the failed registration need not say it again
                self.quitting = self.quitting or event.fatal  # nor need the ERROR and disconnection that follow
                then = "" if event.fatal else "; continuing without an account"
                self.error(f"SASL login failed: {event.reason}{then}")
            elif isinstance(event, AccountStatus):
                self.error(event.text)

    def print(self, line: str) -> None:
        """Write one output line; a reader that went away (``| head -1``) stops output, not chatc."""
        if self.stdout_gone:
            return
        try:
            self.stdout.write(line + "\n")
            self.stdout.flush()
        except (BrokenPipeError, ValueError):
            self.stdout_gone = True
            # Point the descriptor at /dev/null so the interpreter's final flush cannot fail again.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stdout.fileno())
                os.close(devnull)

    def _from_server(self, event: MessageReceived) -> bool:
        """Server notices (lookups, connection statistics) are not conversation; scripts do not want them."""
        return event.buffer == self.state.buffers[SERVER_KEY].name

    def error(self, text: str) -> None:
        self.stderr.write(f"chatc: {text}\n")
        self.stderr.flush()

    async def run(self, stdin: BinaryIO) -> int:
        """Returns the exit status: 0 when every line was sent and the server confirmed it."""
        runner = asyncio.create_task(self.connection.run())
        try:
            await asyncio.wait_for(self.connection.wait_registered(), self.registration_timeout_s)
        except (ConnectionClosed, TimeoutError) as exc:
            if not self.login_failure_shown:
                self.error(str(exc) or f"the server did not accept us within {self.registration_timeout_s:g}s")
            self.quitting = True
            await self.connection.quit("registration timed out", timeout_s=1.0)
            await runner
            return 1
        if self.channel:
            self.state.set_active(self.state.open_buffer(self.channel).key)  # so /me and /topic know where
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        _start_stdin_reader(stdin, queue, asyncio.get_running_loop())
        quit_reason = "chatc"
        while (line := await queue.get()) is not None:
            if line.split(" ", 1)[0].lower() == "/history":
                self.error("/history is not supported without a terminal")
                self.failed = True
                continue
            try:
                outcome = interpret(self.state, line, target=self.channel)
            except CommandError as exc:
                self.error(str(exc))
                self.failed = True
                continue
            for out_line in outcome.lines:
                if not self.connection.send(out_line):
                    self.error(f"connection lost, not sent: {out_line}")
                    await runner
                    return 1
            await self.connection.wait_queue_below(MAX_QUEUED_LINES)
            if outcome.quit_reason is not None:
                quit_reason = outcome.quit_reason
                break
        try:
            await asyncio.wait_for(self.connection.sync(), SYNC_TIMEOUT_S + self.connection.seconds_to_drain())
        except (ConnectionClosed, TimeoutError) as exc:
            self.error(f"the server did not confirm our lines: {exc or 'timed out'}")
            self.failed = True
        self.quitting = True
        await self.connection.quit(quit_reason)
        await runner
        return 1 if self.failed else 0


def run_headless(
    address: ServerAddress, state: ClientState, channel: str | None, stdin: BinaryIO, stdout: TextIO, stderr: TextIO
) -> int:
    """Run until end of input; returns the process exit status."""
    client = HeadlessClient(address, state, channel, stdout, stderr)
    return asyncio.run(client.run(stdin))
