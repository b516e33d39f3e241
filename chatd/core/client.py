"""One connected client as the core sees it, and the transport contract it writes through."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.sasl import SaslAttempt


BOT_MODE = "B"
"""IRCv3 bot-mode: the user mode a bot sets on itself, also its WHO flag (ISUPPORT ``BOT``)."""


class Transport(Protocol):
    """What a backend gives the core for one connection.

    ``write`` must not block and must not reorder data; it returns False, queuing
    nothing, when the connection's send queue would pass its bound. ``close``
    flushes what is queued plus ``farewell`` and then closes; with ``abort`` it
    drops what is queued, makes one non-blocking attempt at ``farewell`` and closes
    at once. Neither calls back into the core.
    """

    def write(self, data: bytes) -> bool: ...

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None: ...


class Dialect(Enum):
    """How a connection speaks: unknown until its first line, then IRC or plain text."""

    UNDECIDED = "undecided"
    IRC = "irc"
    PLAIN = "plain"


class Client:
    """Per-connection state: identity, registration progress, channels, liveness."""

    __slots__ = (
        "_on_overflow",
        "_write",
        "account",
        "asked_nick",
        "away",
        "backlog",
        "cap_negotiating",
        "cap_version",
        "caps",
        "certfp",
        "channels",
        "codec",
        "connected_at",
        "dialect",
        "flood_debt",
        "flood_stamp",
        "flood_tokens",
        "gone",
        "held",
        "host",
        "id",
        "last_seen",
        "monitoring",
        "nick",
        "nick_key",
        "node",
        "password",
        "ping_sent_at",
        "plain_name",
        "prefix",
        "realname",
        "registered",
        "reply_capture",
        "sasl",
        "signon",
        "transport",
        "uid",
        "user",
        "user_modes",
    )

    def __init__(
        self,
        client_id: int,
        transport: Transport,
        host: str,
        now: float,
        signon: float,
        on_overflow: Callable[[Client], None],
    ) -> None:
        self.id = client_id
        self.transport = transport
        self.reply_capture: bytearray | None = None
        self._write = transport.write
        self._on_overflow = on_overflow
        self.host = host
        self.dialect = Dialect.UNDECIDED
        self.nick: str | None = None
        self.nick_key: str | None = None
        self.user: str | None = None
        self.realname = ""
        self.password: str | None = None
        self.prefix = "*"
        self.plain_name = ""
        """How plain-form lines (``name: text``, ``* name has joined``) name this user: the
        name a plain client typed (see ``chatd.core.plain``), the nick for everyone else.
        Kept here, not worked out per message, because every channel message renders it."""
        self.registered = False
        self.cap_negotiating = False
        self.cap_version = 0
        self.caps: set[str] = set()
        self.codec = 0
        self.away: str | None = None
        self.asked_nick: str | None = None
        """A nick this unregistered client asked for and was refused as in use: ``REGISTER *``
        then names it, and is refused too (nobody registers a nick from under its holder)."""
        self.account: str | None = None
        """The account this user is logged in to (its name as registered), or None
        (changed only by ``chatd.core.accounts.log_in``/``log_out``)."""
        self.certfp: str | None = None
        """SHA-256 of the TLS client certificate, lower-case hex, when one was presented (SASL EXTERNAL)."""
        self.sasl: SaslAttempt | None = None
        """The SASL exchange under way, from ``AUTHENTICATE <mechanism>`` to its end (chatd.core.sasl)."""
        self.user_modes: set[str] = set()
        self.channels: dict[str, Channel] = {}
        self.monitoring: dict[str, str] = {}
        """The nicks this client MONITORs: case-mapped key to the spelling it gave (chatd.core.presence)."""
        self.connected_at = now
        self.signon = signon
        self.last_seen = now
        self.ping_sent_at: float | None = None
        self.flood_tokens = 0.0
        self.flood_debt = 0
        self.flood_stamp = now
        self.backlog: deque[bytes | object] = deque()
        self.held = False
        """A nick claim is out to the cluster: input waits in ``backlog`` until it is answered,
        so a JOIN sent right after NICK/USER follows the 001 rather than meeting 451."""
        self.gone = False
        self.node: str | None = None
        """None for a client connected here; the home node's id for a user of another node."""
        self.uid = ""
        """The network-wide id of this user (cluster mode only)."""

    def __repr__(self) -> str:
        return f"<Client {self.id} {self.nick or '*'}@{self.host}>"

    @property
    def plain(self) -> bool:
        return self.dialect is Dialect.PLAIN

    @property
    def accepts_unterminated(self) -> bool:
        """True while a pause after bare bytes should count as the end of a line.

        The original classroom client sends its name and messages without any
        newline; until a connection shows itself as IRC, and for plain clients
        always, the backend flushes a partial line after a short pause.
        """
        return self.dialect is not Dialect.IRC

    @property
    def display_nick(self) -> str:
        """The nick as numerics address it: ``*`` until one is chosen."""
        return self.nick or "*"

    def update_prefix(self) -> None:
        """Recompute the names others see after the nick or user changed.

        ``plain_name`` follows the nick, except for a plain client, whose typed name
        plain mode sets once, after claiming its nick.
        """
        self.prefix = f"{self.nick}!{self.user or '~u'}@{self.host}"
        if self.dialect is not Dialect.PLAIN:
            self.plain_name = self.nick or ""

    def send(self, data: bytes) -> None:
        """Queue bytes for this client; past its send queue it is marked for disconnection.

        While a labeled command of this client runs, the bytes are kept for its labeled
        response instead (chatd.core.replies)."""
        if self.reply_capture is not None:
            self.reply_capture += data
            return
        if not self.gone and not self._write(data):
            self._on_overflow(self)
