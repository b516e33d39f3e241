"""What the core asks of the storage beside it: history is injected, and depends on the core.

``Hub.history`` is None when nothing is kept, or an object of this shape
(``chatd.history.History`` is the one we ship: memory in front of SQLite). The core
never imports it: the CLI and the tests hand one to the hub, so storage can change
(PostgreSQL, a shared store) without the core noticing. The other ports: the rest of a
chat network is ``chatd.core.network.Network``; accounts are an ``AccountStore``.

Keys are case-mapped channel names, ``conversation_key(a, b)`` for the private
conversation of two nicks, or ``account_conversation_key(a, b)`` for that of two
accounts. Calls come from the event loop (or under the threads backend's lock) and
must not wait on the disk for writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.channel import ChannelState
    from chatd.core.event import Delivery


def conversation_key(first: str, second: str) -> str:
    """The history key of a private conversation: the two case-mapped nicks, in order.

    ``@`` cannot begin a channel key, so conversations and channels never collide.
    """
    return "@" + "|".join(sorted((first, second)))


def account_conversation_key(first: str, second: str) -> str:
    """The history key of the private conversation of two accounts (case-mapped names).

    ``@@`` begins no nick conversation (no nick begins with ``@``), and the comma is in no
    account name, so the two names are told apart whatever they hold.
    """
    return "@@" + ",".join(sorted((first, second)))


def account_nick_key(account: str, nick: str) -> str:
    """The history key of a logged-in user's private conversation with a nick not logged in:
    kept for the account alone (``;`` is in no nick or account name). When that nick later
    becomes an account, its owner reads nothing of it: the key names the nick, not them."""
    return f"@@{account};{nick}"


class StoredEntry(Protocol):
    """One recorded entry: its IRC line (with source), the plain rendering, id, time and kind
    (``"message"`` for PRIVMSG and NOTICE, ``"event"`` for JOIN, PART, KICK, TOPIC, QUIT,
    ``"tagmsg"`` for a TAGMSG history keeps)."""

    @property
    def msgid(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def line(self) -> str: ...
    @property
    def plain(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def account(self) -> str | None:
        """The sender's account when it was a logged-in user (the ``account`` tag)."""
        ...

    @property
    def tags(self) -> str | None:
        """The client-only tags it was sent with, as a JSON object; None when there were none."""
        ...


class HistoryPort(Protocol):
    def record(self, key: str, event: Delivery, kind: str = "message") -> None:
        """Keep an entry; queued for the disk, never waited on."""
        ...

    def recent(
        self, key: str, count: int, *, events: bool = False, since: float = -math.inf
    ) -> Sequence[StoredEntry]:
        """The last ``count`` entries from ``since`` on, oldest first; messages only unless ``events``."""
        ...

    def between(
        self, key: str, after: float, before: float, limit: int, *, newest: bool, events: bool = False
    ) -> Sequence[StoredEntry]:
        """Up to ``limit`` entries strictly between two times, oldest first; ``newest`` picks those
        closest to ``before``."""
        ...

    def find_time(self, key: str, msgid: str) -> float | None:
        """When the message ``msgid`` was sent, or None."""
        ...

    def latest_time(self, key: str, after: float, before: float) -> float | None: ...

    def correspond(self, first: str, second: str) -> None:
        """Two accounts (case-mapped) have a private conversation; queued, never waited on."""
        ...

    def correspondents(self, account: str) -> Iterable[str]:
        """The accounts (case-mapped) ``account`` has a private conversation with."""
        ...

    def save_channel(self, key: str, state: ChannelState) -> None:
        """Keep a permanent channel's topic and modes."""
        ...

    def saved_channel(self, key: str) -> ChannelState | None: ...

    def keep_only_channels(self, keys: Iterable[str]) -> None:
        """Drop the saved state of every channel but these (the permanent ones)."""
        ...

    def end_life(self, key: str, *, saved: bool = False) -> None:
        """A channel's life ended: forget what is held in memory, and its saved state if ``saved``."""
        ...

    def close(self) -> None:
        """Write what is queued and close; called once, at shutdown."""
        ...


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One registered account as stored: never a password, only what checks one.

    ``password_hash`` is scrypt (``chatd.core.passwords``); the ``scram_*`` fields are
    what SCRAM-SHA-256 needs on the server side (RFC 5802: salt, StoredKey, ServerKey,
    iteration count), from which no password can be recovered either. ``key`` is the
    case-mapped name, unique across the network.
    """

    name: str
    password_hash: str
    scram_salt: bytes
    scram_stored_key: bytes
    scram_server_key: bytes
    scram_iterations: int
    email: str = ""
    registered_at: float = 0.0
    certfps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelRegistration:
    """A channel registered with ChanServ, as stored: its founder, its access list, its settings.

    Accounts are named as registered (``founder``, the first of each ``access`` pair) and
    compared case-mapped. The founder always gets operator status; it is never in ``access``.
    """

    name: str
    founder: str
    registered_at: float
    access: tuple[tuple[str, str], ...] = ()
    """``(account, "o" | "v")``: operator or voice by account on join (ChanServ AMODE)."""
    topic_lock: bool = False
    """Only the founder and accounts with ``+o`` access may change the topic (SET TOPICLOCK)."""

    def mode_for(self, account: str | None) -> str:
        """The privilege ``account`` gets in the channel: ``"o"``, ``"v"``, or ``""`` (none, or not logged in)."""
        if account is None:
            return ""
        key = irc_lower(account)
        if irc_lower(self.founder) == key:
            return "o"
        return next((mode for name, mode in self.access if irc_lower(name) == key), "")


class AccountStore(Protocol):
    """Where accounts live (SQLite, memory; PostgreSQL later).

    Every call may wait on the disk: the core calls it only through ``Hub.offload``,
    off the event loop, never from a command handler directly. Implementations are
    thread-safe. Keys are case-mapped account names; certificate fingerprints are
    lower-case hex SHA-256.
    """

    def create_account(self, key: str, record: AccountRecord) -> bool:
        """Store a new account; False (storing nothing) when ``key`` is taken."""
        ...

    def account(self, key: str) -> AccountRecord | None: ...

    def update_account(self, key: str, record: AccountRecord) -> None:
        """Replace an account's record (a new password, certificates)."""
        ...

    def drop_account(self, key: str) -> None: ...

    def account_by_certfp(self, certfp: str) -> AccountRecord | None: ...

    def account_names(self) -> list[str]:
        """Every account's name (at startup: which nicks are protected)."""
        ...

    def channel_registrations(self) -> list[ChannelRegistration]:
        """Every registered channel (at startup: which channels ChanServ keeps)."""
        ...

    def save_channel_registration(self, key: str, registration: ChannelRegistration, *, create: bool = False) -> bool:
        """Store a channel's registration under its case-mapped name; with ``create``, only if
        the channel is not registered yet (False, storing nothing, when it is)."""
        ...

    def drop_channel_registration(self, key: str) -> None: ...


class Offload(Protocol):
    """Run ``work`` where it may block (a worker thread), then ``then(result)`` as the hub is
    called (the loop's thread, or under the threads backend's lock). ``work`` must not touch
    the hub; an exception in it is logged and ``then`` is not called."""

    def __call__(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None: ...


def run_here(work: Callable[[], Any], then: Callable[[Any], None]) -> None:
    """The ``Offload`` of a hub without a backend (the harness): at once, on the caller's thread."""
    then(work())
