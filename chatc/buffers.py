"""Buffers: one per conversation (the server, each channel, each private query), and their lines.

A buffer keeps at most ``MAX_BUFFER_LINES`` lines, so a chatty channel left open all
day cannot grow the client without bound.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

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
