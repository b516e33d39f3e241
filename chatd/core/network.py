"""What the core tells the rest of a chat network, when it is one node of several.

``Hub.cluster`` is None for a server on its own, and every call below is then
skipped: a single node behaves exactly as before. With ``--cluster`` it is a
``chatd.cluster.node.ClusterNode``, which publishes what local users do and applies
what other nodes publish. The core only calls it; it never waits for it.

Every method is called for *local* clients only (``client.node is None``); users of
other nodes (``client.node`` set) are replicas the cluster code itself keeps.

Account registrations and drops are not a client's doing but the network's: the core
calls ``account_registered`` and ``account_dropped`` below (module functions, safe
without a cluster), which keep ``hub.accounts.names`` and tell the other nodes, so nick
protection reads the same names on every node; and ``channel_registration_changed`` for
ChanServ's registrations, so every node gives the same privileges in a registered channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from chatd.core.accounts import log_out
from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.client import Client
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub


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

    def status_message(self, client: Client, channel: Channel, event: Delivery, status: str) -> None:
        """A STATUSMSG (``PRIVMSG @#chan``): for the members of other nodes with ``status``."""
        ...

    def redacted(
        self, client: Client, channel: Channel | None, target: Client | None, msgid: str, event: Delivery
    ) -> None:
        """A REDACT of ``msgid`` in ``channel`` (for every node with members there), or of a private
        message to ``target``, a user of another node."""
        ...

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

    def account_registered(self, name: str) -> None:
        """A new account exists: the other nodes protect its name too."""
        ...

    def account_dropped(self, name: str) -> None:
        """An account is gone: the other nodes free its name and log out their users of it."""
        ...

    def ghost(self, client: Client, target: Client, reason: str, then: Callable[[], None]) -> None:
        """NickServ GHOST/REGAIN by ``client`` of ``target``, a user of another node: its node
        disconnects it with ``reason``; ``then()`` runs here once it is gone (its QUIT came,
        or its node left the network), never before."""
        ...

    def channel_registration_changed(self, channel: Channel) -> None:
        """ChanServ registered ``channel``, changed its registration or dropped it
        (``channel.registration`` is None): the other nodes take it as it is now."""
        ...


def account_registered(hub: Hub, name: str) -> None:
    """Account ``name`` now exists in the store (REGISTER, NickServ REGISTER): its nick is
    protected here and on every node. Call on the hub's thread, after the store said yes."""
    hub.accounts.names[irc_lower(name)] = name
    if hub.cluster is not None:
        hub.cluster.account_registered(name)


def account_dropped(hub: Hub, name: str) -> None:
    """Account ``name`` is gone from the store (NickServ DROP): every session logged in to it,
    here and on every node, is logged out (901, ``ACCOUNT *``), and its nick is free again."""
    forget_account(hub, name)
    if hub.cluster is not None:
        hub.cluster.account_dropped(name)


def channel_registration_changed(hub: Hub, channel: Channel) -> None:
    """ChanServ changed ``channel``'s registration here (REGISTER, DROP, AMODE, SET, TRANSFER):
    the other nodes apply it too. Call on the hub's thread, after ``Channel.set_registration``."""
    if hub.cluster is not None:
        hub.cluster.channel_registration_changed(channel)


def forget_account(hub: Hub, name: str) -> None:
    """The local half of ``account_dropped`` (the cluster calls it for another node's DROP).

    Only local users are logged out: each other node logs out its own, and says so.
    """
    key = irc_lower(name)
    hub.accounts.names.pop(key, None)
    for client in list(hub.clients.values()):
        if client.account is not None and irc_lower(client.account) == key:
            log_out(hub, client)
