"""A channel: its members in join order, their privileges, topic and modes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.core.client import Client


class Channel:
    """State of one channel. Holds no I/O; the hub does the fan-out."""

    __slots__ = ("created", "key", "members", "modes", "name", "operators", "topic", "topic_at", "topic_by", "voiced")

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

    def add(self, client: Client) -> None:
        """Add a member; the first member of a new channel becomes its operator."""
        if not self.members:
            self.operators.add(client)
        self.members[client] = None

    def remove(self, client: Client) -> None:
        self.members.pop(client, None)
        self.operators.discard(client)
        self.voiced.discard(client)

    def prefix_of(self, client: Client) -> str:
        """The highest NAMES prefix of a member: ``@``, ``+`` or nothing."""
        if client in self.operators:
            return "@"
        if client in self.voiced:
            return "+"
        return ""

    def mode_string(self) -> str:
        return "+" + "".join(sorted(self.modes))
