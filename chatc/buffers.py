"""Buffers: one per conversation (the server, each channel, each private query), their lines, and
``BufferModel``, the one writer of them.

Invariants:
- Only ``BufferModel.apply`` changes a buffer or the list of buffers: the client state (and the UI,
  through the state) describes each change as one of the frozen ``BufferChange`` events below, so
  what the screen shows follows from a sequence of events that a test can read.
- Buffers are keyed by the case-mapped name (``irc_lower``); the server buffer has the key ``""`` and
  is always first. Buffers keep creation order, which is the order of ``/buffer N`` and Alt-N; a
  rename keeps the buffer's place.
- A buffer keeps at most ``MAX_BUFFER_LINES`` lines, so a chatty channel left open all day cannot
  grow the client without bound; its msgids are bounded the same way.
- Unread counts and highlights only rise for new conversation (messages, actions, notices not our
  own, not history) in a buffer other than the active one; activating a buffer clears them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Final, assert_never

from chatd.protocol.casemap import irc_lower

MAX_BUFFER_LINES: Final = 5000
SERVER_KEY: Final = ""


@dataclass(frozen=True, slots=True)
class BufferLine:
    """One displayed line. ``kind`` picks the rendering: privmsg, action, notice, join, part,
    quit, nick, topic, mode, info or error. ``history`` marks a line the server replayed from
    before we joined (or that ``/history`` fetched): shown muted, never counted as unread.
    ``msgid`` (IRCv3 message-tags) and ``stamped`` (its time came from the server's ``time``
    tag) are what a ``CHATHISTORY BEFORE`` request can name to page back from this line."""

    time: float
    kind: str
    text: str
    nick: str = ""
    own: bool = False
    highlight: bool = False
    history: bool = False
    msgid: str = ""
    stamped: bool = False


@dataclass(slots=True)
class Buffer:
    """A conversation: the server, one channel, or one private query."""

    name: str
    kind: str  # "server", "channel" or "query"
    lines: deque[BufferLine] = field(default_factory=lambda: deque(maxlen=MAX_BUFFER_LINES))
    unread: int = 0
    highlighted: bool = False
    joined: bool = False
    topic: str = ""
    nicks: dict[str, str] = field(default_factory=dict)  # case-mapped key -> nick as shown
    prefixes: dict[str, str] = field(default_factory=dict)  # case-mapped key -> "@", "+", ...
    # The IRCv3 msgids of the lines shown (at most MAX_BUFFER_LINES), so history replayed again
    # after a reconnect does not repeat what is already on screen.
    msgids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # Set once the server said there is nothing older than the top of this buffer (CHATHISTORY),
    # so PageUp at the top does not ask again and again; /clear forgets it.
    history_exhausted: bool = False

    def remember_msgid(self, msgid: str) -> None:
        self.msgids[msgid] = None
        while len(self.msgids) > MAX_BUFFER_LINES:
            self.msgids.popitem(last=False)

    def remember_older_msgid(self, msgid: str) -> None:
        """Remember the msgid of a line inserted at the top: first in line to be forgotten, as the line is
        first to fall off the buffer; nothing is evicted to make room for it."""
        if msgid in self.msgids or len(self.msgids) >= MAX_BUFFER_LINES:
            return
        self.msgids[msgid] = None
        self.msgids.move_to_end(msgid, last=False)

    @property
    def key(self) -> str:
        return SERVER_KEY if self.kind == "server" else irc_lower(self.name)

    def sorted_nicks(self) -> list[str]:
        """Nicks with their status prefix, operators first, then alphabetical (case-mapped)."""

        def rank(key: str) -> tuple[int, str]:
            prefix = self.prefixes.get(key, "")
            return (0 if "@" in prefix or "~" in prefix or "&" in prefix else 1 if prefix else 2, key)

        return [self.prefixes.get(key, "")[:1] + self.nicks[key] for key in sorted(self.nicks, key=rank)]


# ---- the changes (what the state emits; ``BufferModel.apply`` is their only reader) ----------------


@dataclass(frozen=True, slots=True)
class BufferOpened:
    """The buffer ``key`` exists from now on (at the end of the list); nothing if it already does."""

    key: str
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class BufferRenamed:
    """A query follows its nick (or the server buffer takes the server's name), in its place."""

    old_key: str
    new_key: str
    name: str


@dataclass(frozen=True, slots=True)
class BufferActivated:
    key: str


@dataclass(frozen=True, slots=True)
class BufferClosed:
    key: str


@dataclass(frozen=True, slots=True)
class BufferCleared:
    """The lines are gone, and paging back starts again from the newest history."""

    key: str


@dataclass(frozen=True, slots=True)
class LineAdded:
    key: str
    line: BufferLine


@dataclass(frozen=True, slots=True)
class LineRedacted:
    """The line of ``msgid`` was taken back (IRCv3 message-redaction): its text becomes ``note``, in
    its place, so the deletion stays visible; nothing if the buffer does not show it."""

    key: str
    msgid: str
    note: str


@dataclass(frozen=True, slots=True)
class HistoryInserted:
    """An answer to our CHATHISTORY request (oldest first) goes in above the oldest message shown;
    ``exhausted``: the server has nothing older, which the buffer says once (at ``time``)."""

    key: str
    lines: tuple[BufferLine, ...]
    exhausted: bool
    time: float


@dataclass(frozen=True, slots=True)
class ChannelEntered:
    """We joined: the channel is joined, and its member list starts empty (NAMES fills it)."""

    key: str


@dataclass(frozen=True, slots=True)
class ChannelLeft:
    """We left (or lost the connection): not joined, no members."""

    key: str


@dataclass(frozen=True, slots=True)
class MemberAdded:
    key: str
    nick_key: str
    nick: str


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    key: str
    nick_key: str


@dataclass(frozen=True, slots=True)
class MemberRenamed:
    key: str
    old_key: str
    new_key: str
    nick: str


@dataclass(frozen=True, slots=True)
class PrefixSet:
    key: str
    nick_key: str
    prefix: str


@dataclass(frozen=True, slots=True)
class MembersSet:
    """The member list from a finished NAMES reply: nick key -> nick, nick key -> prefix."""

    key: str
    nicks: dict[str, str]
    prefixes: dict[str, str]


@dataclass(frozen=True, slots=True)
class TopicSet:
    key: str
    topic: str


BufferChange = (
    BufferOpened | BufferRenamed | BufferActivated | BufferClosed | BufferCleared | LineAdded | LineRedacted
    | HistoryInserted | ChannelEntered | ChannelLeft | MemberAdded | MemberRemoved | MemberRenamed | PrefixSet
    | MembersSet | TopicSet
)  # fmt: skip
MESSAGE_KINDS: Final = frozenset({"privmsg", "notice", "action"})


def oldest_message_index(buf: Buffer) -> int | None:
    """Where the oldest message someone said stands in ``buf`` (None: none shown); paging is relative to it."""
    return next((index for index, line in enumerate(buf.lines) if line.kind in MESSAGE_KINDS and line.nick), None)


class BufferModel:
    """The buffers and which one is shown; changed only by ``apply`` (see the module invariants).

    Not thread-safe; its one owner is the ``ClientState`` (and so the asyncio loop).
    """

    def __init__(self, server_name: str) -> None:
        self.buffers: dict[str, Buffer] = {SERVER_KEY: Buffer(server_name, "server")}
        self.active_key = SERVER_KEY

    @property
    def active(self) -> Buffer:
        return self.buffers[self.active_key]

    def key_of(self, buf: Buffer) -> str | None:
        """The key ``buf`` is filed under (None: it was closed). Usually ``buf.key``; not when its name had
        characters ``safe_text`` replaced, as the key is made from the name as the server sent it."""
        if self.buffers.get(buf.key) is buf:
            return buf.key
        return next((key for key, candidate in self.buffers.items() if candidate is buf), None)

    def apply(self, change: BufferChange) -> None:
        """Make ``change``; a change naming a buffer that does not exist (any more) is ignored."""
        if isinstance(change, BufferOpened):
            if change.key not in self.buffers:
                self.buffers[change.key] = Buffer(change.name, change.kind)
            return
        if isinstance(change, BufferRenamed):
            self._rename(change)
            return
        buf = self.buffers.get(change.key)
        if buf is None:
            return
        match change:
            case LineAdded(line=line):
                buf.lines.append(line)
                if line.msgid:
                    buf.remember_msgid(line.msgid)
                if buf.key != self.active_key and line.kind in MESSAGE_KINDS and not line.own and not line.history:
                    buf.unread += 1
                    buf.highlighted = buf.highlighted or line.highlight
            case LineRedacted():
                for index, line in enumerate(buf.lines):
                    if line.msgid == change.msgid:
                        buf.lines[index] = replace(line, kind="info", text=change.note, highlight=False)
                        break
            case HistoryInserted():
                self._insert_history(buf, change)
            case BufferActivated():
                self.active_key = change.key
                buf.unread = 0
                buf.highlighted = False
            case BufferClosed():
                if change.key != SERVER_KEY:
                    del self.buffers[change.key]
                    if self.active_key == change.key:
                        self.apply(BufferActivated(SERVER_KEY))
            case BufferCleared():
                buf.lines.clear()
                buf.history_exhausted = False
            case ChannelEntered() | ChannelLeft():
                buf.joined = isinstance(change, ChannelEntered)
                buf.nicks.clear()
                buf.prefixes.clear()
            case MemberAdded():
                buf.nicks[change.nick_key] = change.nick
            case MemberRemoved():
                buf.nicks.pop(change.nick_key, None)
                buf.prefixes.pop(change.nick_key, None)
            case MemberRenamed():
                del buf.nicks[change.old_key]
                buf.nicks[change.new_key] = change.nick
                if change.old_key in buf.prefixes:
                    buf.prefixes[change.new_key] = buf.prefixes.pop(change.old_key)
            case PrefixSet():
                buf.prefixes[change.nick_key] = change.prefix
            case MembersSet():
                buf.nicks = dict(change.nicks)
                buf.prefixes = dict(change.prefixes)
            case TopicSet():
                buf.topic = change.topic
            case _:
                assert_never(change)

    def _rename(self, change: BufferRenamed) -> None:
        """Rename in place, keeping the buffer's position in the list (buffer numbers must not jump)."""
        renamed: dict[str, Buffer] = {}
        for key, buf in self.buffers.items():
            if key == change.old_key:
                buf.name = change.name
                renamed[change.new_key] = buf
            else:
                renamed[key] = buf
        self.buffers = renamed
        if self.active_key == change.old_key:
            self.active_key = change.new_key

    @staticmethod
    def _insert_history(buf: Buffer, change: HistoryInserted) -> None:
        """Put the answer just above the oldest message shown (the one it was asked to precede), oldest
        first; say so above it if nothing older is left.

        Not at the very top: the join, topic and names lines of this session stand above the first
        replayed message, and older messages above them would break the buffer's time order.
        """
        lines = change.lines
        room = MAX_BUFFER_LINES - len(buf.lines)
        lines = lines[len(lines) - room :] if room > 0 else ()  # the newest of them, when the buffer is nearly full
        at = oldest_message_index(buf)
        if at is None:
            at = len(buf.lines)  # no message shown yet: the history comes after the join lines, as a replay would
        for line in reversed(lines):
            buf.lines.insert(at, line)
        for line in lines:
            if line.msgid:
                buf.remember_older_msgid(line.msgid)
        if change.exhausted and not buf.history_exhausted:
            buf.history_exhausted = True
            if len(buf.lines) < MAX_BUFFER_LINES:
                buf.lines.insert(at, BufferLine(change.time, "info", "no older messages"))
