"""What the core asks of the storage beside it: history is injected, and depends on the core.

``Hub.history`` is None when nothing is kept, or an object of this shape
(``chatd.history.History`` is the one we ship: memory in front of SQLite). The core
never imports it: the CLI and the tests hand one to the hub, so storage can change
(PostgreSQL, a shared store) without the core noticing. The other port, the rest of a
chat network, is ``chatd.core.network.Network``.

Keys are case-mapped channel names, or ``conversation_key(a, b)`` for the private
conversation of two nicks. Calls come from the event loop (or under the threads
backend's lock) and must not wait on the disk for writes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatd.core.channel import ChannelState
    from chatd.core.event import Delivery


def conversation_key(first: str, second: str) -> str:
    """The history key of a private conversation: the two case-mapped nicks, in order.

    ``@`` cannot begin a channel key, so conversations and channels never collide.
    """
    return "@" + "|".join(sorted((first, second)))


class StoredEntry(Protocol):
    """One recorded entry: its IRC line (with source), the plain rendering, id, time and kind
    (``"message"`` for PRIVMSG and NOTICE, ``"event"`` for JOIN, PART, KICK, TOPIC, QUIT)."""

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
