"""Who watches whom (IRCv3 MONITOR), and what watchers are told when a watched nick
comes, goes or changes.

Invariants:
- ``Watchlist.by_key[key]`` holds every local client that monitors the case-mapped nick
  ``key``, and ``Client.monitoring`` maps each key a client monitors to the spelling it
  gave; the two always agree, because only ``watch``, ``unwatch`` and ``forget`` change
  either. Watchers are local clients only: users of other nodes never MONITOR here.
- A nick is *online* while a registered user (of this node or another) is findable by it
  (``Hub.find_client``); watchers hear of a change only through ``went_online`` and
  ``went_offline``, which the owners of presence call once it happened: registration
  (``users.mark_registered``), a nick change, local or another node's
  (``users.announce_nick``), any departure (``users.depart``) and another node's user
  appearing (``chatd.cluster.replica``).
- ``tell_watchers`` is extended-monitor: a watcher that negotiated it, and the cap a
  change needs (away-notify, setname, account-notify), hears of the change even with no channel shared
  with the user; one that shares a channel already heard it from ``send_to_peers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub

MONITOR_LINE_BUDGET = 400
"""Bytes of comma-joined targets per 730/731/732 line, leaving room for the prefix and nick
within the 512-byte line."""


class Watchlist:
    """The watchers of every monitored nick, by case-mapped nick."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[str, set[Client]] = {}

    def watch(self, client: Client, key: str, nick: str) -> None:
        client.monitoring[key] = nick
        self.by_key.setdefault(key, set()).add(client)

    def unwatch(self, client: Client, key: str) -> None:
        if client.monitoring.pop(key, None) is None:
            return
        watchers = self.by_key.get(key)
        if watchers is not None:
            watchers.discard(client)
            if not watchers:
                del self.by_key[key]

    def forget(self, client: Client) -> None:
        """Drop everything ``client`` monitors (MONITOR C, or it left)."""
        for key in list(client.monitoring):
            self.unwatch(client, key)


def online(hub: Hub, nick: str) -> Client | None:
    """The registered user findable by ``nick`` here or on another node, if any."""
    target = hub.find_client(nick)
    return target if target is not None and target.registered else None


def went_online(hub: Hub, client: Client) -> None:
    """``client`` now holds its nick (it registered, was renamed or appeared on another node):
    its watchers get 730 with its ``nick!user@host``."""
    key = client.nick_key
    watchers = hub.watchlist.by_key.get(key or "")
    if not watchers or hub.clients_by_key.get(key or "") is not client:
        return  # nobody watches, or a local user holds the nick while a clash is settled
    for watcher in list(watchers):
        hub.reply(watcher, n.RPL_MONONLINE, client.prefix)


def went_offline(hub: Hub, nick: str) -> None:
    """Nobody holds ``nick`` any more (its user left or was renamed): its watchers get 731
    with ``nick`` as the user last spelled it."""
    key = irc_lower(nick)
    watchers = hub.watchlist.by_key.get(key)
    if not watchers or online(hub, nick) is not None:
        return
    for watcher in list(watchers):
        hub.reply(watcher, n.RPL_MONOFFLINE, nick)


def renamed(hub: Hub, client: Client, old_nick: str | None) -> None:
    """``client`` was ``old_nick``: the old nick went offline, the new one came online. A
    change of case only is no change of presence, and says nothing (irctest, ergo)."""
    if old_nick is None or irc_lower(old_nick) == client.nick_key:
        return
    went_offline(hub, old_nick)
    went_online(hub, client)


def tell_watchers(hub: Hub, client: Client, event: Delivery, cap: str) -> None:
    """extended-monitor: send ``event`` (an AWAY, SETNAME or ACCOUNT of ``client``) to its watchers that
    negotiated ``extended-monitor`` and ``cap`` and share no channel with it."""
    watchers = hub.watchlist.by_key.get(client.nick_key or "")
    if not watchers:
        return
    for watcher in list(watchers):
        if watcher is client or "extended-monitor" not in watcher.caps or cap not in watcher.caps:
            continue
        if any(watcher in channel.members for channel in client.channels.values()):
            continue
        hub.send_event(watcher, event)


def send_status(hub: Hub, client: Client, nicks: list[str]) -> None:
    """Which of ``nicks`` are online (730, as ``nick!user@host``) and which are not (731)."""
    on: list[str] = []
    off: list[str] = []
    for nick in nicks:
        target = online(hub, nick)
        if target is not None:
            on.append(target.prefix)
        else:
            off.append(nick)
    send_joined(hub, client, n.RPL_MONONLINE, on)
    send_joined(hub, client, n.RPL_MONOFFLINE, off)


def send_joined(hub: Hub, client: Client, numeric: str, items: list[str]) -> None:
    """``items`` comma-joined in as few ``numeric`` lines as fit ``MONITOR_LINE_BUDGET``."""
    batch: list[str] = []
    size = 0
    for item in items:
        if batch and size + 1 + len(item) > MONITOR_LINE_BUDGET:
            hub.reply(client, numeric, ",".join(batch))
            batch, size = [], 0
        batch.append(item)
        size += len(item) + (1 if size else 0)
    if batch:
        hub.reply(client, numeric, ",".join(batch))
