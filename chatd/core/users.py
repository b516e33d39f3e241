"""Changes of a user: registration completing, a nick change, user modes, a kill, a WALLOPS delivery.

Invariants:
- A registered user's nick changes only through ``change_nick`` (a local user: the nick
  table, the NICK line, the network told) or, for a user of another node, through the
  cluster's replica, which announces it with the same ``announce_nick``. So every
  client sees one NICK form, whoever renamed whom.
- A kill ends only a local user (``kill``); a user of another node is killed by its own
  node, which the cluster asks and whose QUIT then reaches everyone.
- Leaving (QUIT, timeouts, kills, another node's users going) has one owner too:
  ``Hub.quit`` for a user the server ends, ``depart`` for every departure.
- User modes change only through ``set_user_mode``, which keeps the LUSERS counts.
- Each of these owners tells MONITOR watchers (``chatd.core.presence``) of the presence
  it changed: ``mark_registered`` and ``announce_nick`` (online, offline) and ``depart``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.core.client import Dialect
from chatd.core.enforcement import nick_taken, refused_at_registration
from chatd.core.presence import renamed, went_offline, went_online
from chatd.core.sasl import abort as abort_sasl
from chatd.core.stats import transport_kind
from chatd.core.welcome import send_welcome
from chatd.protocol import numerics as n
from chatd.protocol.framing import WIRE
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

log = logging.getLogger("chatd")


@dataclass(frozen=True, slots=True)
class WhowasEntry:
    nick: str
    user: str
    host: str
    realname: str
    left_at: float


def change_nick(hub: Hub, client: Client, nick: str) -> None:
    """Give a local ``client`` the (free, granted) ``nick``: complete its registration, or
    announce the change to it, its peers and the network."""
    if not client.registered:
        hub.claim_nick(client, nick)
        try_complete_registration(hub, client)
        return
    old_prefix, old_nick, old_key = client.prefix, client.nick, client.nick_key
    hub.claim_nick(client, nick)
    announce_nick(hub, client, old_prefix, old_nick)
    if hub.cluster is not None:
        hub.cluster.nick_changed(client, old_key)
    nick_taken(hub, client)


def announce_nick(hub: Hub, client: Client, old_prefix: str, old_nick: str | None) -> None:
    """Tell everyone sharing a channel with ``client`` (and a local ``client`` itself) that
    ``old_prefix`` is now its nick."""
    hub.send_to_peers(
        client,
        format_message("NICK", client.nick or "", source=old_prefix),
        f"* {old_nick} is now known as {client.nick}",
        include_self=client.node is None,
    )
    renamed(hub, client, old_nick)


def kill(hub: Hub, target: Client, reason: str, source: str) -> None:
    """End a local ``target`` on an operator's word: KILL from ``source`` (a prefix), then QUIT."""
    if not target.plain:
        hub.send_line(target, format_message("KILL", target.nick or "", reason, source=source))
    hub.quit(target, reason)


def deliver_wallops(hub: Hub, line: str) -> None:
    """Deliver a WALLOPS line to every local user with +w."""
    data = line.encode(errors=WIRE) + b"\r\n"
    for other in list(hub.clients.values()):
        if "w" in other.user_modes and other.registered:
            other.send(data)


def try_complete_registration(hub: Hub, client: Client) -> None:
    """Welcome the client once NICK and USER are in and capability negotiation ended."""
    if client.registered or client.nick is None or client.user is None or client.cap_negotiating:
        return
    if client.sasl is not None:  # sasl-3.1: registering mid-exchange aborts it
        abort_sasl(hub, client)
    password = hub.config.password
    if password is not None and client.password != password:
        hub.reply(client, n.ERR_PASSWDMISMATCH, "Password incorrect")
        hub.quit(client, "Bad password", error="Closing Link: Bad password")
        return
    if refused_at_registration(hub, client):
        return
    mark_registered(hub, client)
    send_welcome(hub, client)
    nick_taken(hub, client)

def mark_registered(hub: Hub, client: Client) -> None:
    """A user just registered (IRC or plain): count it for LUSERS, keep the high-water mark."""
    client.registered = True
    hub.user_count += 1
    hub.max_seen_users = max(hub.max_seen_users, hub.user_count)
    if hub.cluster is not None:
        hub.cluster.registered(client)
    went_online(hub, client)

def set_user_mode(hub: Hub, client: Client, mode: str, on: bool) -> bool:
    """Set or clear a user mode, keeping the LUSERS counts; False when nothing changed."""
    if on == (mode in client.user_modes):
        return False
    if on:
        client.user_modes.add(mode)
        hub.user_mode_counts[mode] += 1
    else:
        client.user_modes.discard(mode)
        hub.user_mode_counts[mode] -= 1
    if hub.cluster is not None and client.registered:
        hub.cluster.user_changed(client)
    return True


def remember_nick(hub: Hub, client: Client) -> None:
    """Keep who held a nick, newest first, for WHOWAS (bounded)."""
    hub.whowas.appendleft(
        WhowasEntry(client.nick or "", client.user or "", client.host, client.realname, hub.wall_clock())
    )


def depart(hub: Hub, client: Client, reason: str) -> None:
    """Every departure (QUIT, timeouts, kills, another node's users going): forget the
    client and tell everyone who shared a channel with it."""
    if client.registered and client.nick is not None:
        remember_nick(hub, client)
    client.gone = True
    if hub.clients.pop(client.id, None) is not None:
        hub.stats.disconnected(transport_kind(client.transport), client.dialect is Dialect.PLAIN)
        if client.registered:
            hub.user_count -= 1
            for mode in client.user_modes:
                hub.user_mode_counts[mode] -= 1
        remaining = hub.clients_per_host[client.host] - 1
        if remaining:
            hub.clients_per_host[client.host] = remaining
        else:
            del hub.clients_per_host[client.host]
    if client.nick_key is not None and hub.clients_by_key.get(client.nick_key) is client:
        del hub.clients_by_key[client.nick_key]
    if hub.cluster is not None and client.node is None:
        hub.cluster.gone(client, reason)
    if client.registered or client.dialect is Dialect.PLAIN:
        quit_event = hub.send_to_peers(
            client,
            format_message("QUIT", reason, source=client.prefix),
            f"* {client.plain_name} has quit ({reason})",
            include_self=False,
        )
        for channel in client.channels.values():
            hub.record(channel, quit_event, "event")
        log.debug("%s left: %s", client.prefix, reason)
    for channel in list(client.channels.values()):
        hub.leave(client, channel)
    hub.watchlist.forget(client)
    if client.registered and client.nick is not None:
        went_offline(hub, client.nick)
    hub.liveness.forget_departed(len(hub.clients))
