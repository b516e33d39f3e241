"""WHO, in its classic form (352) and as WHOX (``WHO <mask> %<fields>[,<token>]``, 354).

Who is listed does not depend on the form: ``matches`` decides it (with the +i rules)
and the two reply functions only format one user.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from chatd.core.client import BOT_MODE, Client
from chatd.protocol import numerics as n
from chatd.protocol.mask import mask_matches
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.hub import Hub

WHOX_FIELDS = "tcuihsnfdlaor"
"""Every WHOX field, in the order a 354 carries them whatever order they were asked in."""
WHOX_MAX_TOKEN_DIGITS = 3
HIDDEN_IP = "255.255.255.255"
"""The ``i`` field of a user whose host is not an address (as ircu and ergo answer)."""


# WHO <channel>|<mask> [%<fields>[,<token>]]
#   (a mask is a nick, or a nick mask with * and ?; "*" or "0" for everyone visible)
def handle_who(hub: Hub, client: Client, message: Message) -> None:
    """List users, hiding invisible (+i) ones from whoever has no channel in common with them.

    As RFC 2812 §3.6.1 and modern.ircdocs.horse (and ergo) have it: a mask lists a +i
    user only to someone who shares a channel with them (or to themselves, or to a
    server operator); ``WHO #channel`` from a non-member lists only its visible
    members. An exact nick is a question about one known user, as WHOIS is, so it
    lists them whatever their modes (irctest ``WhoInvisibleTestCase``).

    A second parameter starting with ``%`` asks for WHOX replies (354) with the given
    fields instead of 352s; the same users are listed.
    """
    mask = message.param(0, "*") or "*"
    options = message.param(1)
    if options.startswith("%"):
        fields, _, token = options[1:].partition(",")
        if not (token.isdigit() and len(token) <= WHOX_MAX_TOKEN_DIGITS):
            token = "0"
        for target, channel in matches(hub, client, mask):
            _whox_reply(hub, client, target, channel, set(fields), token)
    else:
        for target, channel in matches(hub, client, mask):
            _who_reply(hub, client, target, channel)
    hub.reply(client, n.RPL_ENDOFWHO, mask, "End of WHO list")


def matches(hub: Hub, client: Client, mask: str) -> Iterator[tuple[Client, Channel | None]]:
    """The users ``WHO mask`` lists to ``client``, each with the channel its reply names (or None)."""
    sees_all = "o" in client.user_modes
    if mask[:1] == "#":
        channel = hub.find_channel(mask)
        if channel is not None and channel.visible_to(client):
            member_asks = client in channel.members
            for member in list(channel.members):
                if member_asks or sees_all or "i" not in member.user_modes:
                    yield member, channel
    elif not _is_mask(mask):
        target = hub.find_client(mask)
        if target is not None and target.registered:
            yield target, _shared_channel(client, target)
    else:
        pattern = "*" if mask == "0" else mask
        targets = list(hub.clients.values())
        if hub.cluster is not None:
            targets.extend(hub.cluster.remote_clients())
        for target in targets:
            if not target.registered or not mask_matches(pattern, target.nick or ""):
                continue
            shared = _shared_channel(client, target)
            if "i" in target.user_modes and shared is None and target is not client and not sees_all:
                continue
            yield target, shared


def _flags(asker: Client, target: Client, channel: Channel | None) -> str:
    """H (here) or G (gone/away), ``*`` for server operators, ``B`` for bots, then channel prefixes."""
    flags = "G" if target.away is not None else "H"
    if "o" in target.user_modes:
        flags += "*"
    if BOT_MODE in target.user_modes:
        flags += BOT_MODE
    if channel is not None:
        flags += channel.prefix_of(target, every="multi-prefix" in asker.caps)
    return flags


def _who_reply(hub: Hub, asker: Client, target: Client, channel: Channel | None) -> None:
    """One 352."""
    hub.reply(
        asker,
        n.RPL_WHOREPLY,
        channel.name if channel else "*",
        target.user or "",
        target.host,
        target.node or hub.config.name,
        target.nick or "",
        _flags(asker, target, channel),
        f"0 {target.realname}",
    )


def _whox_reply(hub: Hub, asker: Client, target: Client, channel: Channel | None, fields: set[str], token: str) -> None:
    """One 354 with the asked ``fields`` in WHOX order.

    The ``a`` field is the account the user is logged in to, or ``0`` when it is not
    (as ircu and ergo answer). ``l`` (idle seconds) is known for this node's users only (``0`` for
    other nodes'); ``o`` (ircu's op level) is ``n/a``.
    """
    values = {
        "t": token,
        "c": channel.name if channel else "*",
        "u": target.user or "",
        "i": _ip_of(target.host),
        "h": target.host,
        "s": target.node or hub.config.name,
        "n": target.nick or "",
        "f": _flags(asker, target, channel),
        "d": "0",
        "l": str(int(hub.clock() - target.last_seen)) if target.node is None else "0",
        "a": target.account or "0",
        "o": "n/a",
        "r": target.realname,
    }
    params = [values[field] for field in WHOX_FIELDS if field in fields]
    if params:
        hub.reply(asker, n.RPL_WHOSPCRPL, *params)


def _ip_of(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return HIDDEN_IP


def _shared_channel(asker: Client, target: Client) -> Channel | None:
    return next((channel for channel in target.channels.values() if asker in channel.members), None)


def _is_mask(text: str) -> bool:
    """Whether a WHO argument is a pattern rather than one nick (``0`` is everyone, as ``*``)."""
    return text == "0" or "*" in text or "?" in text
