"""What the core tells the rest of a chat network, when it is one node of several.

``Hub.cluster`` is None for a server on its own, and every call below is then
skipped: a single node behaves exactly as before. With ``--cluster`` it is a
``chatd.cluster.node.ClusterNode``, which publishes what local users do and applies
what other nodes publish. The core only calls it; it never waits for it.

Every method is called for *local* clients only (``client.node is None``); users of
other nodes (``client.node`` set) are replicas the cluster code itself keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.client import Client
    from chatd.core.event import Delivery


class Network(Protocol):
    def remote_clients(self) -> Iterable[Client]:
        """Registered users of the other nodes (for WHO masks)."""
        ...

    def census(self) -> tuple[int, int, int]:
        """Users of the other nodes, how many of them are invisible (+i), and how many nodes; O(1)."""
        ...

    def request_nick(self, client: Client, nick: str) -> bool:
        """Ask the network for ``nick``: True means it answers later (the caller must do nothing
        more now: the cluster applies the nick or replies 433); False means go ahead locally."""
        ...

    def registered(self, client: Client) -> None: ...

    def nick_changed(self, client: Client, old_key: str | None) -> None: ...

    def gone(self, client: Client, reason: str) -> None: ...

    def joined(self, client: Client, channel: Channel) -> None: ...

    def parted(self, client: Client, channel: Channel, reason: str) -> None: ...

    def kicked(self, source: Client, channel: Channel, target: Client, reason: str) -> None: ...

    def topic_changed(self, client: Client, channel: Channel) -> None: ...

    def modes_changed(
        self, client: Client, channel: Channel, applied: list[tuple[str, str, str | None]], event: Delivery
    ) -> None: ...

    def user_changed(self, client: Client) -> None:
        """Away status, realname or user modes of a local user changed."""
        ...

    def channel_message(self, client: Client, channel: Channel, event: Delivery) -> None: ...

    def private_message(self, client: Client, target: Client, event: Delivery) -> None:
        """``target`` is a user of another node."""
        ...

    def invited(self, client: Client, target: Client, channel: Channel) -> None:
        """``target`` is a user of another node."""
        ...

    def wallops(self, client: Client, line: str) -> None:
        """An operator sent WALLOPS: the other nodes' +w users get ``line`` too."""
        ...

    def killed(self, client: Client, target: Client, reason: str) -> None:
        """An operator killed ``target``, a user of another node."""
        ...
