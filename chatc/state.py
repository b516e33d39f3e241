"""The sans-I/O client state: server lines in, events and buffers out.

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
- Paging back (``request_history``, IRCv3 ``draft/chathistory``) keeps the invariants written
  at the top of ``chatc/paging.py``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

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
    BufferRenamed,
    ChannelEntered,
    ChannelLeft,
    LineAdded,
    MemberAdded,
    MemberRemoved,
    MemberRenamed,
    MembersSet,
    PrefixSet,
    TopicSet,
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
from chatc.paging import (
    DEFAULT_HISTORY_PAGE,
    HISTORY_BATCH,
    LABELED_BATCH,
    PAGE_BATCH,
    HistoryPaging,
    HistoryRefused,
    parse_server_time,
)
from chatc.replies import describe_reply
from chatc.text import mentions, safe_text
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message, parse

CTCP_DELIM: Final = "\x01"
# JOIN lines are batched with commas; stay well inside the 512-byte line limit.
MAX_JOIN_LINE_BYTES: Final = 400
# A server could open batches and never close them; past this many, the oldest is forgotten.
MAX_OPEN_BATCHES: Final = 32

# Replies to commands the user typed: shown in the buffer the user is looking at.
_ACTIVE_BUFFER_NUMERICS: Final = frozenset(
    {
        n.RPL_AWAY, n.RPL_UNAWAY, n.RPL_NOWAWAY, n.RPL_WHOISUSER, n.RPL_WHOISSERVER, n.RPL_ENDOFWHO,
        n.RPL_WHOISIDLE, n.RPL_ENDOFWHOIS, n.RPL_WHOISCHANNELS, n.RPL_LISTSTART, n.RPL_LIST, n.RPL_LISTEND,
        n.RPL_CHANNELMODEIS, n.RPL_WHOREPLY, n.RPL_USERHOST, n.RPL_ISON, n.RPL_VERSION, n.RPL_TIME,
        n.RPL_WHOWASUSER, n.RPL_ENDOFWHOWAS, n.RPL_INVITING, n.RPL_BANLIST, n.RPL_ENDOFBANLIST,
        "313", "330", "338", "378", "671",
    }
)  # fmt: skip

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


def _nick_of(source: str | None) -> str:
    return (source or "").split("!", 1)[0]


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
        answers a REQ); an empty list otherwise."""
        return self.cap.end(self.registered)

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
            batch = self._batches.get(message.tags.get("batch", ""))
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
        self.add_line(self.buffers[SERVER_KEY], "info", f"{message.command} {text}".strip(), _nick_of(message.source))
        return [ServerText(self.buffers[SERVER_KEY].name, safe_text(text))]

    def _ping(self, message: Message) -> list[Event]:
        return send_line("PONG", message.param(0) or "chatc")

    def _ignore(self, message: Message) -> list[Event]:
        return []

    # ---- capabilities and batches (IRCv3) ---------------------------------------------

    def _cap(self, message: Message) -> list[Event]:
        events, note = self.cap.handle(message, self.registered)
        if note:
            self.add_line(self.buffers[SERVER_KEY], "info", note)
        return events

    def _batch(self, message: Message) -> list[Event]:
        """``BATCH +id type params`` opens, ``BATCH -id`` closes; a batch nested in a history batch is history."""
        reference = message.param(0)
        if reference.startswith("+") and len(reference) > 1:
            kind, target = message.param(1), message.param(2)
            parent = self._batches.get(message.tags.get("batch", ""))
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

    def _history_line(self, message: Message, target: str) -> list[Event]:
        """A replayed line: shown muted in its buffer, with no effect on the channel or on unread counts."""
        source = _nick_of(message.source)
        command = message.command
        channel = message.param(0)
        if command in ("PRIVMSG", "NOTICE"):
            if self.ignores.matches(message.source) and not self.is_me(source):
                return []
            text = message.param(1)
            kind = "notice" if command == "NOTICE" else "privmsg"
            if text.startswith(CTCP_DELIM):
                verb, _, argument = text.strip(CTCP_DELIM).partition(" ")
                if verb.upper() != "ACTION":
                    return []  # an old CTCP query is not ours to answer
                kind, text = "action", argument
            name = channel.lstrip(self.prefix_symbols)
            if not self.is_channel(name):
                name = target or (channel if self.is_me(source) else source)
            buf = self.open_buffer(name)
            if self._line_msgid and self._line_msgid in buf.msgids:
                return []  # replayed again after a reconnect: already on screen
            own = self.is_me(source)
            self.add_line(buf, kind, text, source, own=own, history=True)
            return [MessageReceived(buf.name, safe_text(source), safe_text(text), kind, own, history=True)]
        described = {
            "JOIN": ("join", f"{source} has joined {channel}"),
            "PART": ("part", f"{source} has left {channel}"),
            "QUIT": ("quit", f"{source} has quit"),
            "KICK": ("part", f"{message.param(1)} was kicked from {channel} by {source}"),
            "TOPIC": ("topic", f"{source} changed the topic to: {message.param(1)}"),
            "NICK": ("nick", f"{source} is now known as {channel}"),
        }.get(command)
        buf = self.buffer(target) if target else None
        if described is not None and buf is not None and self._line_msgid not in buf.msgids:
            self.add_line(buf, described[0], described[1], source, history=True)
        return []

    def _away(self, message: Message) -> list[Event]:
        """away-notify: a nick we share a channel with went away (with a message) or came back (without)."""
        nick = _nick_of(message.source)
        reason = message.param(0)
        if not nick:
            return []
        if self.is_me(nick):
            self.away = bool(reason)
            return []
        key = irc_lower(nick)
        if reason:
            self.away_nicks[key] = safe_text(reason)
        else:
            self.away_nicks.pop(key, None)
        query = self.buffers.get(key)
        if query is not None and query.kind == "query":
            self.add_line(query, "info", f"{nick} is away: {reason}" if reason else f"{nick} is back", nick)
        return []

    def _fail(self, message: Message) -> list[Event]:
        """IRCv3 standard replies: ``FAIL <command> <code> [context...] :text``, shown as an error.

        A ``FAIL CHATHISTORY`` answering our request (by its label, or without labels the
        oldest request in flight) is shown in that buffer and ends the request.
        """
        text = " ".join(message.params)
        buf = self.active
        if message.param(0).upper() == "CHATHISTORY":
            label = message.tags.get("label", "")
            parent = self._batches.get(message.tags.get("batch", ""))
            if not label and parent is not None and parent[0] == LABELED_BATCH:
                label = parent[1]
            key = self._page_labels.get(label) if label else None
            if key is None and not label and "labeled-response" not in self.caps and self._page_requests:
                key = next(iter(self._page_requests))
            if key is not None:
                self.cancel_history(key)
                buf = self.buffers.get(key, buf)
                text = f"Cannot fetch history: {message.params[-1]} ({message.param(1)})"
        self.add_line(buf, "error", text)
        return [ErrorReply("FAIL", safe_text(text))]

    def _forget_absent_away(self) -> None:
        """Away states are only kept for nicks still seen in some channel, so the map cannot grow forever."""
        present = {key for buf in self.buffers.values() for key in buf.nicks}
        for key in [key for key in self.away_nicks if key not in present]:
            del self.away_nicks[key]

    def _error(self, message: Message) -> list[Event]:
        text = message.param(0, "closing link")
        self.add_line(self.buffers[SERVER_KEY], "error", f"Server closed the link: {text}")
        return [ErrorReply("ERROR", safe_text(text))]

    def _privmsg(self, message: Message) -> list[Event]:
        sender = _nick_of(message.source)
        if self.ignores.matches(message.source) and not self.is_me(sender):
            return []  # /ignore: no message, notice, action or CTCP (not even an answer) from them
        target = message.param(0)
        text = message.param(1)
        notice = message.command == "NOTICE"
        kind = "notice" if notice else "privmsg"
        events: list[Event] = []
        if text.startswith(CTCP_DELIM):
            body = text.strip(CTCP_DELIM)
            verb, _, argument = body.partition(" ")
            verb = verb.upper()
            if verb == "ACTION":
                kind, text = "action", argument
            elif notice:
                text = f"CTCP {verb} reply: {argument}"
            elif self.is_me(sender):
                return []  # echo-message returning our own CTCP query: nothing to answer or show
            else:
                events.extend(self._ctcp_reply(sender, verb, argument))
                self.add_line(self.buffers[SERVER_KEY], "info", f"CTCP {verb} from {sender}")
                return events
        own = self.is_me(sender)
        if self.is_channel(target.lstrip(self.prefix_symbols)):
            buf = self.open_buffer(target.lstrip(self.prefix_symbols))
        elif not self.registered or "!" not in (message.source or "") or not sender:
            buf = self.buffers[SERVER_KEY]  # server notices, pre-registration AUTH notices
        elif own:  # echo-message: shown where record_own_message would have shown it
            buf = self._show_own(target, text, kind)
            return [MessageReceived(buf.name, safe_text(sender), safe_text(text), kind, own)]
        else:
            buf = self.open_buffer(sender)
        highlight = not own and (buf.kind == "query" or mentions(text, self.nick))
        self.add_line(buf, kind, text, sender, own=own, highlight=highlight)
        events.append(MessageReceived(buf.name, safe_text(sender), safe_text(text), kind, own, highlight))
        return events

    def _ctcp_reply(self, sender: str, verb: str, argument: str) -> list[Event]:
        """Answer the CTCP queries every client answers; stay silent on the rest."""
        answers = {"VERSION": "chatc", "PING": argument, "CLIENTINFO": "ACTION CLIENTINFO PING VERSION"}
        if verb not in answers or not sender:
            return []
        body = f"{verb} {answers[verb]}".strip()
        return send_line("NOTICE", sender, f"{CTCP_DELIM}{body}{CTCP_DELIM}")

    def _join(self, message: Message) -> list[Event]:
        nick = _nick_of(message.source)
        events: list[Event] = []
        for channel in message.param(0).split(","):
            if not channel:
                continue
            buf = self.open_buffer(channel)
            own = self.is_me(nick)
            if own:
                self.model.apply(ChannelEntered(irc_lower(channel)))
                self.wanted_channels[buf.key] = channel
            self.model.apply(MemberAdded(irc_lower(channel), irc_lower(nick), nick))
            self.add_line(buf, "join", f"{nick} has joined {channel}", nick, own=own)
            events.append(Joined(buf.name, safe_text(nick), own))
            if own and "away-notify" in self.caps:
                # away-notify only reports changes; who is away already, a WHO tells (read quietly).
                self._quiet_who.add(buf.key)
                events.extend(send_line("WHO", channel))
        return events

    def _left(self, channel: str, nick: str, reason: str, kicked_by: str = "") -> list[Event]:
        buf = self.buffer(channel)
        own = self.is_me(nick)
        if buf is None:
            return []
        self.model.apply(MemberRemoved(irc_lower(channel), irc_lower(nick)))
        if own:
            self.model.apply(ChannelLeft(irc_lower(channel)))
            self.wanted_channels.pop(buf.key, None)
        if kicked_by:
            text = f"{nick} was kicked from {buf.name} by {kicked_by}" + (f" ({reason})" if reason else "")
        else:
            text = f"{nick} has left {buf.name}" + (f" ({reason})" if reason else "")
        self.add_line(buf, "part", text, nick, own=own)
        self._forget_absent_away()
        return [Parted(buf.name, safe_text(nick), safe_text(reason), own, safe_text(kicked_by))]

    def _part(self, message: Message) -> list[Event]:
        events: list[Event] = []
        for channel in message.param(0).split(","):
            events.extend(self._left(channel, _nick_of(message.source), message.param(1)))
        return events

    def _kick(self, message: Message) -> list[Event]:
        return self._left(message.param(0), message.param(1), message.param(2), _nick_of(message.source))

    def _quit(self, message: Message) -> list[Event]:
        nick = _nick_of(message.source)
        key = irc_lower(nick)
        reason = message.param(0)
        channels = []
        for buf_key, buf in self.buffers.items():
            if key in buf.nicks or (buf.kind == "query" and buf.key == key):
                self.model.apply(MemberRemoved(buf_key, key))
                self.add_line(buf, "quit", f"{nick} has quit" + (f" ({reason})" if reason else ""), nick)
                if buf.kind == "channel":
                    channels.append(buf.name)
        self.away_nicks.pop(key, None)
        return [Quit(safe_text(nick), safe_text(reason), tuple(channels))]

    def _nick(self, message: Message) -> list[Event]:
        old = _nick_of(message.source)
        new = message.param(0)
        if not old or not new:
            return []
        old_key, new_key = irc_lower(old), irc_lower(new)
        own = self.is_me(old)
        if old_key in self.away_nicks:
            self.away_nicks[new_key] = self.away_nicks.pop(old_key)
        if own:
            self.nick = new
            self.wanted_nick = new
        text = f"You are now known as {new}" if own else f"{old} is now known as {new}"
        for buf_key, buf in list(self.buffers.items()):
            if old_key in buf.nicks:
                self.model.apply(MemberRenamed(buf_key, old_key, new_key, new))
                self.add_line(buf, "nick", text, new, own=own)
            elif own and buf.kind != "channel":  # the server buffer and every query: we are in each of them
                self.add_line(buf, "nick", text, new, own=True)
        query = self.buffers.get(old_key)
        if query is not None and query.kind == "query" and (new_key == old_key or new_key not in self.buffers):
            self.model.apply(BufferRenamed(old_key, new_key, safe_text(new)))
            self.add_line(query, "nick", f"{old} is now known as {new}", new)
        return [NickChanged(safe_text(old), safe_text(new), own)]

    def _invite(self, message: Message) -> list[Event]:
        """Shown where the user is looking: an invitation is only useful if it is seen."""
        by = _nick_of(message.source)
        channel = message.param(1)
        text = f"{by} invites you to {channel} (/join {channel})"
        self.add_line(self.active, "info", text, by, highlight=True)
        return [ServerText(self.active.name, safe_text(text))]

    def _topic(self, message: Message) -> list[Event]:
        buf = self.open_buffer(message.param(0))
        by = _nick_of(message.source)
        self.model.apply(TopicSet(irc_lower(message.param(0)), safe_text(message.param(1))))
        self.add_line(buf, "topic", f"{by} changed the topic to: {message.param(1)}", by)
        return [TopicChanged(buf.name, buf.topic, safe_text(by))]

    def _mode(self, message: Message) -> list[Event]:
        target = message.param(0)
        by = _nick_of(message.source) or "server"
        changes = " ".join(message.params[1:])
        if self.is_channel(target):
            buf = self.open_buffer(target)
            self._apply_prefix_modes(irc_lower(target), message.params[1:])
        else:
            buf = self.buffers[SERVER_KEY]
        self.add_line(buf, "mode", f"{by} sets mode {changes} on {target}", by)
        return [ServerText(buf.name, safe_text(f"mode {changes} {target}"))]

    def _apply_prefix_modes(self, channel_key: str, params: tuple[str, ...]) -> None:
        """Keep the @/+ shown in the nick list in step with +o/-o/+v/-v."""
        buf = self.buffers[channel_key]
        if not params:
            return
        args = list(params[1:])
        adding = True
        for char in params[0]:
            if char in "+-":
                adding = char == "+"
                continue
            if char in self.prefix_modes:
                if not args:
                    return
                key = irc_lower(args.pop(0))
                symbol = self.prefix_symbols[self.prefix_modes.index(char)]
                current = buf.prefixes.get(key, "").replace(symbol, "")
                if adding:
                    current = "".join(s for s in self.prefix_symbols if s in current + symbol)
                self.model.apply(PrefixSet(channel_key, key, current))
            elif char in "bkelIjf" and args and (adding or char != "l"):
                args.pop(0)  # list and parameter modes consume an argument we do not track

    # ---- numerics -----------------------------------------------------------------

    def _numeric(self, message: Message) -> list[Event]:
        special = _NUMERIC_HANDLERS.get(message.command)
        if special is not None:
            return special(self, message)
        return self._numeric_shown(message)

    def _numeric_shown(self, message: Message) -> list[Event]:
        """The general case: errors to the active buffer, replies to the user's commands there too, the rest
        to the server buffer."""
        code = message.command
        params = message.params[1:]  # params[0] is our nick (or "*")
        text = " ".join(params)
        if code == n.ERR_UNKNOWNCOMMAND and message.param(1).upper() == "CAP":
            self.cap.stop()  # a server without IRCv3 capabilities: it registers us anyway
            self.add_line(self.buffers[SERVER_KEY], "info", "The server does not support capabilities")
            return []
        if code == n.ERR_UNKNOWNCOMMAND and message.param(1).upper() == "CHATHISTORY":
            for key in list(self._page_requests):
                self.cancel_history(key)  # offered the capability but not the command: no answer is coming
        if code[0] in "45" and code != n.ERR_NOMOTD:  # a missing MOTD is no error to the user
            self.add_line(self.active, "error", text)
            events: list[Event] = [ErrorReply(code, safe_text(text))]
            if not self.registered and code in (n.ERR_NICKNAMEINUSE, n.ERR_ERRONEUSNICKNAME, "437"):
                events.extend(self._retry_nick())
            return events
        if code in (n.RPL_NOWAWAY, n.RPL_UNAWAY):
            self.away = code == n.RPL_NOWAWAY
        buf = self.active if code in _ACTIVE_BUFFER_NUMERICS else self.buffers[SERVER_KEY]
        text = describe_reply(code, params) or text
        self.add_line(buf, "info", text)
        return [ServerText(buf.name, safe_text(text))]

    def _retry_nick(self) -> list[Event]:
        """During registration a taken nick would stall us: try ``nick_``, then ``nick__``, then numbered."""
        self._nick_attempts += 1
        base = self.wanted_nick if self._nick_attempts < 3 else "chatc"
        suffix = "_" * self._nick_attempts if self._nick_attempts < 3 else str(self._nick_attempts)
        self.nick = (base[: 30 - len(suffix)] + suffix) if base else f"chatc{self._nick_attempts}"
        self.add_line(self.buffers[SERVER_KEY], "info", f"Trying nick {self.nick}")
        return send_line("NICK", self.nick)

    def _welcome(self, message: Message) -> list[Event]:
        self.registered = True
        self.cap.stop()  # registered: whatever was not negotiated by now never will be
        self.nick = message.param(0, self.nick)
        if message.source:
            self.model.apply(BufferRenamed(SERVER_KEY, SERVER_KEY, safe_text(message.source)))
        self.add_line(self.buffers[SERVER_KEY], "info", message.param(1))
        events: list[Event] = [Registered(safe_text(self.nick))]
        events.extend(SendLine(line) for line in self.rejoin_lines())
        return events

    def _isupport(self, message: Message) -> list[Event]:
        for token in message.params[1:-1]:
            name, _, value = token.partition("=")
            if name == "CHATHISTORY":
                self.history_limit = int(value) if value.isdigit() else 0
            elif name == "MSGREFTYPES":
                self.msgref_types = frozenset(value.split(","))
            elif name == "CHANTYPES" and value:
                self.chantypes = value
            elif name == "NETWORK" and value:
                self.network = safe_text(value)
            elif name == "PREFIX" and value.startswith("(") and ")" in value:
                modes, symbols = value[1:].split(")", 1)
                if len(modes) == len(symbols):
                    self.prefix_modes, self.prefix_symbols = modes, symbols
        self.add_line(self.buffers[SERVER_KEY], "info", " ".join(message.params[1:]))
        return []

    def _who_reply(self, message: Message) -> list[Event]:
        """A WHO line: from our own WHO on join it only updates away states (``G`` flag); else it is shown."""
        if irc_lower(message.param(1)) not in self._quiet_who:
            return self._numeric_shown(message)
        key = irc_lower(message.param(5))
        if message.param(6).startswith("G"):
            self.away_nicks.setdefault(key, "")
        elif message.param(6).startswith("H"):
            self.away_nicks.pop(key, None)
        return []

    def _end_of_who(self, message: Message) -> list[Event]:
        key = irc_lower(message.param(1))
        if key not in self._quiet_who:
            return self._numeric_shown(message)
        self._quiet_who.discard(key)
        return []

    def _topic_reply(self, message: Message) -> list[Event]:
        buf = self.open_buffer(message.param(1))
        key = irc_lower(message.param(1))
        if message.command == n.RPL_TOPIC:
            self.model.apply(TopicSet(key, safe_text(message.param(2))))
            self.add_line(buf, "topic", f"Topic for {buf.name}: {message.param(2)}")
            return [TopicChanged(buf.name, buf.topic, "")]
        self.model.apply(TopicSet(key, ""))
        self.add_line(buf, "topic", f"No topic is set for {buf.name}")
        return []

    def _topic_who_time(self, message: Message) -> list[Event]:
        buf = self.buffer(message.param(1))
        if buf is not None:
            when = message.param(3)
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(when))) if when.isdigit() else when
            self.add_line(buf, "topic", f"Topic set by {_nick_of(message.param(2))} on {stamp}")
        return []

    def _names_reply(self, message: Message) -> list[Event]:
        key = irc_lower(message.param(2))
        collected = self._names_incoming.setdefault(key, {})
        for entry in message.param(3).split():
            bare = entry.lstrip(self.prefix_symbols)
            if bare:
                collected[_nick_of(bare)] = entry[: len(entry) - len(bare)]
        return []

    def _end_of_names(self, message: Message) -> list[Event]:
        channel = message.param(1)
        collected = self._names_incoming.pop(irc_lower(channel), {})
        buf = self.buffer(channel)
        if buf is not None and buf.kind == "channel" and buf.joined:
            nicks = {irc_lower(nick): nick for nick in collected}
            prefixes = {irc_lower(nick): prefix for nick, prefix in collected.items() if prefix}
            self.model.apply(MembersSet(irc_lower(channel), nicks, prefixes))
            shown = buf.sorted_nicks()
        else:
            buf = self.active
            shown = [prefix[:1] + nick for nick, prefix in collected.items()]
        text = f"Names on {channel} ({len(shown)}): " + " ".join(shown)
        self.add_line(buf, "info", text)
        return [ServerText(buf.name, safe_text(text))]


_HANDLERS: Final[dict[str, Callable[[ClientState, Message], list[Event]]]] = {
    "PING": ClientState._ping,
    "PONG": ClientState._ignore,
    "ERROR": ClientState._error,
    "PRIVMSG": ClientState._privmsg,
    "NOTICE": ClientState._privmsg,
    "JOIN": ClientState._join,
    "PART": ClientState._part,
    "KICK": ClientState._kick,
    "QUIT": ClientState._quit,
    "NICK": ClientState._nick,
    "TOPIC": ClientState._topic,
    "INVITE": ClientState._invite,
    "MODE": ClientState._mode,
    "CAP": ClientState._cap,
    "BATCH": ClientState._batch,
    "AWAY": ClientState._away,
    "FAIL": ClientState._fail,
    "TAGMSG": ClientState._ignore,  # client-only tags (typing notifications): nothing chatc shows
}

_NUMERIC_HANDLERS: Final[dict[str, Callable[[ClientState, Message], list[Event]]]] = {
    n.RPL_WELCOME: ClientState._welcome,
    n.RPL_ISUPPORT: ClientState._isupport,
    n.RPL_TOPIC: ClientState._topic_reply,
    n.RPL_NOTOPIC: ClientState._topic_reply,
    n.RPL_TOPICWHOTIME: ClientState._topic_who_time,
    n.RPL_NAMREPLY: ClientState._names_reply,
    n.RPL_WHOREPLY: ClientState._who_reply,
    n.RPL_ENDOFWHO: ClientState._end_of_who,
    n.RPL_ENDOFNAMES: ClientState._end_of_names,
}
