"""A channel: its members in join order, their privileges, topic and modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.protocol.mask import mask_matches

if TYPE_CHECKING:
    from chatd.core.client import Client


@dataclass(frozen=True, slots=True)
class Ban:
    mask: str
    set_by: str
    set_at: float


class Channel:
    """State of one channel. Holds no I/O; the hub does the fan-out."""

    __slots__ = (
        "bans",
        "created",
        "fanout_cache",
        "invited",
        "key",
        "limit",
        "members",
        "mode_key",
        "modes",
        "name",
        "operators",
        "topic",
        "topic_at",
        "topic_by",
        "voiced",
    )

    def __init__(self, name: str, key: str, created: float) -> None:
        self.name = name
        self.key = key
        self.created = created
        self.members: dict[Client, None] = {}
        self.operators: set[Client] = set()
        self.voiced: set[Client] = set()
        self.modes: set[str] = {"n", "t"}
        self.topic = ""
        self.topic_by = ""
        self.topic_at = 0.0
        self.mode_key: str | None = None
        self.limit: int | None = None
        self.bans: list[Ban] = []
        self.invited: set[str] = set()
        self.fanout_cache: object | None = None
        """A backend's precomputed delivery targets; dropped whenever membership or a member's
        wire form (codec, transport) changes."""

    def add(self, client: Client) -> None:
        """Add a member; the first member of a new channel becomes its operator."""
        if not self.members:
            self.operators.add(client)
        self.members[client] = None
        self.fanout_cache = None

    def remove(self, client: Client) -> None:
        self.members.pop(client, None)
        self.fanout_cache = None
        self.operators.discard(client)
        self.voiced.discard(client)

    def prefix_of(self, client: Client, *, every: bool = False) -> str:
        """A member's NAMES prefix: the highest of ``@`` and ``+``, or all of them (multi-prefix)."""
        if client in self.operators:
            return "@+" if every and client in self.voiced else "@"
        if client in self.voiced:
            return "+"
        return ""

    def mode_string(self, *, with_params: bool) -> str:
        """The 324 form: ``+klnt key 10``; parameters only for those allowed to see them."""
        flags = sorted(self.modes)
        params = []
        if self.mode_key is not None:
            flags.append("k")
            params.append(self.mode_key)
        if self.limit is not None:
            flags.append("l")
            params.append(str(self.limit))
        text = "+" + "".join(flags)
        return " ".join([text, *params]) if with_params and params else text

    def visible_to(self, client: Client) -> bool:
        """Secret (+s) channels exist only for their members."""
        return "s" not in self.modes or client in self.members

    def is_banned(self, client: Client) -> bool:
        if not self.bans:  # the common case, asked on every message: no generator to build
            return False
        return any(mask_matches(ban.mask, client.prefix) for ban in self.bans)

    def can_speak(self, client: Client) -> bool:
        """+n keeps outsiders out, +m keeps all but voiced and operators quiet, bans silence."""
        if client not in self.members:
            return "n" not in self.modes and not self.is_banned(client)
        if client in self.operators or client in self.voiced:
            return True
        return "m" not in self.modes and not self.is_banned(client)
