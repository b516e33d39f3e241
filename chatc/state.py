"""The sans-I/O client state: server lines in, events and buffers out.

This module keeps the session (registration, the connection's lifecycle, batches) and dispatches
each line to its family's handlers: ``chatc/membership.py`` (who is where), ``chatc/messages.py``
(what is said), ``chatc/replies.py`` (numerics), ``chatc/caps.py`` (CAP), ``chatc/accounts.py``
(SASL, 900-908, ACCOUNT, REGISTER) and ``chatc/paging.py`` (CHATHISTORY). Those are parts of this
one object: they read and set its fields, and change buffers only as the rule below says.

Invariants:
- No I/O here. Lines the protocol obliges us to send (PONG, a retry nick during
  registration, rejoining channels after a reconnect) come back as ``SendLine``
  events for the connection to write, so the whole client logic is testable
  by feeding strings.
- The state never writes a buffer: every change to the buffers (a line, a member, a topic,
  which buffer is shown) is a ``BufferChange`` applied by ``self.model`` (``BufferModel``),
  whose invariants are written at the top of ``chatc/buffers.py``.
- Every string stored in a ``BufferLine`` went through ``safe_text``: the UI and the
  headless printer never see raw control characters from the network.
- ``wanted_channels`` is what the user asked to be in (command line, /join,
  minus /part and kicks); it survives a lost connection and is rejoined on 001.
- Capability negotiation (``self.cap``) keeps the invariants written at the top of
  ``chatc/caps.py``; ``caps`` is its set of acknowledged capabilities.
- Lines inside a ``chathistory`` batch are things said before we joined: they are
  shown (muted), but never change the channel state (nick list, topic, joined) and
  never count as unread or highlight, and CTCP queries in them are not answered.
  A replayed message whose msgid the buffer already shows is skipped (a reconnect
  replays what the user saw live).
- The SASL login and ``account`` keep the invariants written at the top of ``chatc/accounts.py``.
- Paging back (``request_history``, IRCv3 ``draft/chathistory``) keeps the invariants written
  at the top of ``chatc/paging.py``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

from chatc.accounts import (
    SASL_NUMERICS,
    after_cap,
    handle_account,
    handle_authenticate,
    handle_logged_in,
    handle_register_reply,
    handle_sasl_numeric,
    login_timeout,
)
from chatc.buffers import (
    MAX_BUFFER_LINES,
    SERVER_KEY,
    Buffer,
    BufferActivated,
    BufferCleared,
    BufferClosed,
    BufferLine,
    BufferModel,
    BufferOpened,
    ChannelLeft,
    LineAdded,
)
from chatc.caps import CapNegotiation
from chatc.events import (
    ErrorReply,
    Event,
    Joined,
    MessageReceived,
    NickChanged,
    Parted,
    Quit,
    Registered,
    SendLine,
    ServerText,
    TopicChanged,
    send_line,
)
from chatc.ignore import IgnoreList
from chatc.membership import (
    handle_end_of_names,
    handle_end_of_who,
    handle_join,
    handle_kick,
    handle_mode,
    handle_names_reply,
    handle_nick,
    handle_part,
    handle_quit,
    handle_topic,
    handle_topic_reply,
    handle_topic_who_time,
    handle_who_reply,
)
from chatc.messages import (
    handle_away,
    handle_error,
    handle_fail,
    handle_history_line,
    handle_invite,
    handle_privmsg,
    handle_redact,
    handle_standard_reply,
)
from chatc.paging import (
    DEFAULT_HISTORY_PAGE,
    HISTORY_BATCH,
    LABELED_BATCH,
    PAGE_BATCH,
    HistoryPaging,
    HistoryRefused,
    parse_server_time,
)
from chatc.replies import handle_isupport, handle_welcome, show_numeric
from chatc.sasl import Credentials, SaslLogin
from chatc.text import nick_of, safe_text
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message, parse

# JOIN lines are batched with commas; stay well inside the 512-byte line limit.
MAX_JOIN_LINE_BYTES: Final = 400
# A server could open batches and never close them; past this many, the oldest is forgotten.
MAX_OPEN_BATCHES: Final = 32

__all__ = [
    "DEFAULT_HISTORY_PAGE",
    "MAX_BUFFER_LINES",
    "SERVER_KEY",
    "Buffer",
    "BufferLine",
    "ClientState",
    "ErrorReply",
    "Event",
    "HistoryRefused",
    "Joined",
    "MessageReceived",
    "NickChanged",
    "Parted",
    "Quit",
    "Registered",
    "SendLine",
    "ServerText",
    "TopicChanged",
]


class ClientState(HistoryPaging):
    """Everything the client knows about its session with one server.

    Feed it each received line (``feed``) and each lost connection
    (``connection_lost``); it returns events and keeps the buffers. Not thread-safe;
    one owner (the asyncio loop) calls it.
    """

    def __init__(
        self,
        nick: str,
        channels: Iterable[str] = (),
        *,
        username: str = "chatc",
        realname: str = "chatc user",
        password: str | None = None,
        server_name: str = "server",
        clock: Callable[[], float] = time.time,
        sasl: Credentials | None = None,
        sasl_fail: str = "disconnect",
    ) -> None:
        self.wanted_nick = nick
        self.nick = nick
        self.username = username
        self.realname = realname
        self.password = password
        self.clock = clock
        self.registered = False
        self.away = False
        self.network = server_name
        self.chantypes = "#&"
        self.prefix_symbols = "~&@%+"
        self.prefix_modes = "qaohv"
        self.wanted_channels: dict[str, str] = {}
        for channel in channels:
            self.wanted_channels[irc_lower(channel)] = channel
        self.model = BufferModel(server_name)  # the only writer of buffers: every change is applied there
        self._names_incoming: dict[str, dict[str, str]] = {}
        self._nick_attempts = 0
        self.cap = CapNegotiation()
        self.caps = self.cap.enabled  # acknowledged by the server on this connection (the same set)
        # Accounts (chatc/accounts.py): the SASL login of each connection and what the server says we are.
        self.credentials = sasl
        self.sasl_fail = sasl_fail
        if sasl is not None:
            self.cap.extra_wanted.add("sasl")
        self.account: str | None = None
        self.login: SaslLogin | None = None  # the exchange in flight, if any
        self.login_abort = ""  # why we sent AUTHENTICATE * (the 906 then ends the login with it)
        self.server_mechanisms = ""  # a 908's list, for the retry after its 904
        self.tried_mechanisms: set[str] = set()
        self.ignores = IgnoreList()  # /ignore: the state outlives connections, and so do they
        self._batches: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (type, first parameter)
        self.away_nicks: dict[str, str] = {}  # case-mapped nick -> away message ("" if unknown)
        self._quiet_who: set[str] = set()  # channels whose WHO we asked for ourselves, not the user
        self._line_time: float | None = None  # the server-time of the line being handled
        self._line_msgid = ""  # and its msgid (message-tags), if any
        # CHATHISTORY paging (see the module invariants). ISUPPORT CHATHISTORY=N caps a request (0: not said).
        self.history_limit = 0
        self.msgref_types: frozenset[str] = frozenset({"timestamp", "msgid"})
        self._page_requests: dict[str, int] = {}  # buffer key -> how many we asked for
        self._page_labels: dict[str, str] = {}  # label -> buffer key, until its answer opens
        self._page_lines: dict[str, list[BufferLine]] = {}  # buffer key -> lines of the answer so far
        self._page_received: dict[str, int] = {}  # buffer key -> lines the server sent (duplicates too)
        self._collecting: list[BufferLine] | None = None  # where add_line puts lines of an answer
        self._label_counter = 0

    # ---- queries ------------------------------------------------------------------

    def is_channel(self, name: str) -> bool:
        return bool(name) and name[0] in self.chantypes

    def is_me(self, nick: str) -> bool:
        return irc_lower(nick) == irc_lower(self.nick)

    @property
    def buffers(self) -> dict[str, Buffer]:
        return self.model.buffers

    @property
    def active_key(self) -> str:
        return self.model.active_key

    @property
    def buffer_list(self) -> list[Buffer]:
        return list(self.buffers.values())

    @property
    def active(self) -> Buffer:
        return self.buffers[self.active_key]

    def buffer(self, name: str) -> Buffer | None:
        return self.buffers.get(irc_lower(name))

    def channel_names(self) -> list[str]:
        return [buf.name for buf in self.buffers.values() if buf.kind == "channel"]

    @property
    def caps_offered(self) -> set[str]:
        return self.cap.offered

    @property
    def cap_negotiating(self) -> bool:
        return self.cap.negotiating

    # ---- changes the UI makes -----------------------------------------------------

    def set_active(self, key: str) -> Buffer:
        """Show buffer ``key`` (KeyError if there is none); its unread count and highlight are cleared."""
        buf = self.buffers[key]
        self.model.apply(BufferActivated(key))
        return buf

    def open_buffer(self, name: str) -> Buffer:
        """The buffer for a channel or nick, created (at the end of the list) if needed."""
        key = irc_lower(name)
        self.model.apply(BufferOpened(key, safe_text(name), "channel" if self.is_channel(name) else "query"))
        return self.buffers[key]

    def close_buffer(self, key: str) -> None:
        """Forget a buffer (never the server buffer); the active one falls back to the server."""
        self.model.apply(BufferClosed(key))

    def clear_buffer(self, key: str) -> None:
        """Empty the buffer; paging back starts again from the newest history."""
        self.model.apply(BufferCleared(key))

    def add_line(self, buf: Buffer, kind: str, text: str, nick: str = "", *, own: bool = False,
                 highlight: bool = False, history: bool = False) -> BufferLine:  # fmt: skip
        """Append a line (sanitising it); unread counts only rise for new conversation in other buffers.

        The line's time is the server's ``time`` tag of the line being handled when it
        has one (server-time), else the local clock.
        """
        stamped = self._line_time is not None
        when = self._line_time if self._line_time is not None else self.clock()
        line = BufferLine(when, kind, safe_text(text), safe_text(nick), own, highlight, history,
                          self._line_msgid, stamped)  # fmt: skip
        if self._collecting is not None:  # a line of a CHATHISTORY answer: inserted when the batch ends
            self._collecting.append(line)
            return line
        key = self.model.key_of(buf)
        if key is not None:
            self.model.apply(LineAdded(key, line))
        return line

    def info(self, text: str, key: str | None = None, kind: str = "info") -> None:
        """A local notice (from the client itself) in buffer ``key``, by default the active one."""
        self.add_line(self.buffers.get(self.active_key if key is None else key, self.buffers[SERVER_KEY]), kind, text)

    def record_own_message(self, target: str, text: str, kind: str = "privmsg") -> MessageReceived | None:
        """Show a message we are sending, unless the server will echo it (echo-message).

        Without echo-message servers never send our own PRIVMSGs back, so a local copy
        is all there is. With it, the echo is shown instead: one copy, with the
        server's time, and only if the server accepted the message.
        """
        if "echo-message" in self.caps:
            return None
        buf = self._show_own(target, text, kind)
        return MessageReceived(buf.name, self.nick, safe_text(text), kind, own=True)

    def _show_own(self, target: str, text: str, kind: str) -> Buffer:
        """Our message goes to its conversation's buffer; to a nick with no query open, it reads ``-> nick: text``
        in the buffer the user is looking at (irssi, weechat): ``/msg`` answers in passing, ``/query`` opens one."""
        buf = self.buffer(target)
        if buf is None and not self.is_channel(target) and kind != "action":
            self.add_line(self.active, "sent-notice" if kind == "notice" else "sent", text, target, own=True)
            return self.active
        buf = buf or self.open_buffer(target)
        self.add_line(buf, kind, text, self.nick, own=True)
        return buf

    # ---- connection lifecycle -----------------------------------------------------

    def registration_lines(self) -> list[str]:
        """The lines that open a session; also resets what a new connection must relearn."""
        self.registered = False
        self.away = False
        self.nick = self.wanted_nick
        self._nick_attempts = 0
        self._reset_session()
        lines = [self.cap.start()]
        if self.password:
            lines.append(format_message("PASS", self.password))
        lines.append(format_message("NICK", self.nick))
        lines.append(format_message("USER", self.username, "0", "*", self.realname))
        return lines

    def connection_lost(self, reason: str) -> list[Event]:
        """The socket is gone: no channel is joined any more, but the wish to be in them stays."""
        self.registered = False
        self._names_incoming.clear()
        self._reset_session()
        for key, buf in self.buffers.items():
            if buf.kind == "channel" and buf.joined:
                self.model.apply(ChannelLeft(key))
            self.add_line(buf, "error", f"Disconnected: {reason}")
        return [ErrorReply("DISCONNECTED", safe_text(reason))]

    def _reset_session(self) -> None:
        """Forget what the last connection negotiated: a new session (maybe another server) starts bare."""
        self.cap.reset()
        self.account = None
        self.login = None
        self.login_abort = self.server_mechanisms = ""
        self.tried_mechanisms.clear()
        self._batches.clear()
        self.away_nicks.clear()
        self._quiet_who.clear()
        self.history_limit = 0
        self.msgref_types = frozenset({"timestamp", "msgid"})
        self._page_requests.clear()
        self._page_labels.clear()
        self._page_lines.clear()
        self._page_received.clear()

    def end_cap_negotiation(self) -> list[str]:
        """``CAP END`` if negotiation is still open (the connection's timeout for a server that never
        answers a REQ); an empty list otherwise, and while a SASL login is still in flight."""
        if self.login is not None and not self.registered:
            return []
        return self.cap.end(self.registered)

    def cap_timeout(self, force: bool = False) -> list[Event]:
        """The connection's deadline for negotiation: ``CAP END``, except for a login still in flight,
        which gets until the ``force`` call and then fails (``chatc/accounts.py``)."""
        return login_timeout(self, force)

    def rejoin_lines(self) -> list[str]:
        """JOIN lines for every wanted channel, batched with commas under the line limit."""
        lines: list[str] = []
        batch: list[str] = []
        for channel in self.wanted_channels.values():
            if not channel or any(char in channel for char in " ,\r\n\0") or channel.startswith(":"):
                continue  # a name no JOIN can carry (only a broken server could have sent it)
            if batch and len(",".join([*batch, channel]).encode()) > MAX_JOIN_LINE_BYTES:
                lines.append(format_message("JOIN", ",".join(batch)))
                batch = []
            batch.append(channel)
        if batch:
            lines.append(format_message("JOIN", ",".join(batch)))
        return lines

    # ---- server lines -------------------------------------------------------------

    def feed(self, line: str) -> list[Event]:
        """Handle one received line (without terminator); returns what happened, in order."""
        message = parse(line)
        if not message.command:
            return []
        self._line_time = parse_server_time(message.tags.get("time"))
        self._line_msgid = message.tags.get("msgid", "")
        try:
            batch = self.batch_of(message)
            if batch is not None and batch[0] == HISTORY_BATCH and message.command != "BATCH":
                return self._history_line(message, batch[1])
            if batch is not None and batch[0] == PAGE_BATCH and message.command != "BATCH":
                return self._page_line(message, batch[1])
            return self._dispatch(message)
        finally:
            self._line_time = None
            self._line_msgid = ""

    def _dispatch(self, message: Message) -> list[Event]:
        handler = _HANDLERS.get(message.command)
        if handler is not None:
            return handler(self, message)
        if message.command.isdigit() and len(message.command) == 3:
            return self._numeric(message)
        text = " ".join(message.params)
        self.add_line(self.buffers[SERVER_KEY], "info", f"{message.command} {text}".strip(), nick_of(message.source))
        return [ServerText(self.buffers[SERVER_KEY].name, safe_text(text))]

    def batch_of(self, message: Message) -> tuple[str, str] | None:
        """The open batch ``message`` belongs to (its kind and target, see ``_batch``), if any."""
        return self._batches.get(message.tags.get("batch", ""))

    def _history_line(self, message: Message, target: str) -> list[Event]:
        return handle_history_line(self, message, target)

    def _ping(self, message: Message) -> list[Event]:
        return send_line("PONG", message.param(0) or "chatc")

    def _ignore(self, message: Message) -> list[Event]:
        return []

    # ---- capabilities and batches (IRCv3) ---------------------------------------------

    def _cap(self, message: Message) -> list[Event]:
        events, note = self.cap.handle(message, self.registered)
        if note:
            self.add_line(self.buffers[SERVER_KEY], "info", note)
        return after_cap(self, message, events)

    def _batch(self, message: Message) -> list[Event]:
        """``BATCH +id type params`` opens, ``BATCH -id`` closes; a batch nested in a history batch is history."""
        reference = message.param(0)
        if reference.startswith("+") and len(reference) > 1:
            kind, target = message.param(1), message.param(2)
            parent = self.batch_of(message)
            if parent is not None and parent[0] in (HISTORY_BATCH, PAGE_BATCH):
                kind, target = parent
            elif kind == LABELED_BATCH:
                target = message.tags.get("label", "")
            elif kind == HISTORY_BATCH:
                kind, target = self._answer_batch(parent, target)
            self._batches[reference[1:]] = (kind, target)
            while len(self._batches) > MAX_OPEN_BATCHES:
                self._batches.popitem(last=False)
        elif reference.startswith("-"):
            closed = self._batches.pop(reference[1:], None)
            if closed is not None and closed[0] == PAGE_BATCH:
                self._finish_page(closed[1])
            elif closed is not None and closed[0] == LABELED_BATCH and closed[1] in self._page_labels:
                self.cancel_history(self._page_labels[closed[1]])  # labeled answer without a history batch
        return []

    # ---- numerics -----------------------------------------------------------------

    def _numeric(self, message: Message) -> list[Event]:
        special = _NUMERIC_HANDLERS.get(message.command)
        if special is not None:
            return special(self, message)
        return show_numeric(self, message)


_HANDLERS: Final[dict[str, Callable[[ClientState, Message], list[Event]]]] = {
    "PING": ClientState._ping,
    "PONG": ClientState._ignore,
    "ERROR": handle_error,
    "PRIVMSG": handle_privmsg,
    "NOTICE": handle_privmsg,
    "JOIN": handle_join,
    "PART": handle_part,
    "KICK": handle_kick,
    "QUIT": handle_quit,
    "NICK": handle_nick,
    "TOPIC": handle_topic,
    "INVITE": handle_invite,
    "MODE": handle_mode,
    "CAP": ClientState._cap,
    "BATCH": ClientState._batch,
    "AWAY": handle_away,
    "FAIL": handle_fail,
    "WARN": handle_standard_reply,
    "NOTE": handle_standard_reply,
    "AUTHENTICATE": handle_authenticate,
    "ACCOUNT": handle_account,
    "REGISTER": handle_register_reply,
    "VERIFY": handle_register_reply,
    "REDACT": handle_redact,
    "TAGMSG": ClientState._ignore,  # client-only tags (typing notifications): nothing chatc shows
}

_NUMERIC_HANDLERS: Final[dict[str, Callable[[ClientState, Message], list[Event]]]] = {
    n.RPL_WELCOME: handle_welcome,
    n.RPL_ISUPPORT: handle_isupport,
    n.RPL_TOPIC: handle_topic_reply,
    n.RPL_NOTOPIC: handle_topic_reply,
    n.RPL_TOPICWHOTIME: handle_topic_who_time,
    n.RPL_NAMREPLY: handle_names_reply,
    n.RPL_WHOREPLY: handle_who_reply,
    n.RPL_ENDOFWHO: handle_end_of_who,
    n.RPL_ENDOFNAMES: handle_end_of_names,
    n.RPL_LOGGEDIN: handle_logged_in,
    n.RPL_LOGGEDOUT: handle_logged_in,
    **dict.fromkeys(SASL_NUMERICS, handle_sasl_numeric),
}
