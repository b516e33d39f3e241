"""Channel membership and state: JOIN, PART, TOPIC, NAMES, LIST, KICK."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.core.channel import announce_auto_mode, kick, part, set_topic
from chatd.core.client import Client, Dialect
from chatd.core.limits import MAX_KICK_LENGTH
from chatd.protocol import numerics as n
from chatd.protocol.casemap import MAX_TOPIC_LENGTH, irc_lower, is_channel_name
from chatd.protocol.framing import WIRE
from chatd.protocol.mask import mask_matches
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.hub import Hub


# JOIN <channel>{,<channel>} [<key>{,<key>}] | JOIN 0
def handle_join(hub: Hub, client: Client, message: Message) -> None:
    if message.params[0] == "0":
        for channel in list(client.channels.values()):
            part(hub, client, channel, client.nick or "")
        return
    keys = message.param(1).split(",")
    for index, name in enumerate(message.params[0].split(",")):
        if not name:
            continue
        if not is_channel_name(name):
            hub.reply(client, n.ERR_NOSUCHCHANNEL, name, "No such channel")
            continue
        if irc_lower(name) in client.channels:
            continue
        existing = hub.find_channel(name)
        if existing is not None:
            refusal = _join_refusal(client, existing, keys[index] if index < len(keys) else "")
            if refusal is not None:
                hub.reply(client, refusal[0], existing.name, refusal[1])
                continue
            existing.invited.discard(client.nick_key or "")
        announce_auto_mode(hub, client, hub.join(client, name))


def _join_refusal(client: Client, channel: Channel, key: str) -> tuple[str, str] | None:
    """Why an existing channel will not take this client, as (numeric, text), or None.

    A registered channel's founder and ``+o`` access pass every restriction (as in ergo).
    """
    if channel.registration is not None and channel.registration.mode_for(client.account) == "o":
        return None
    invited = client.nick_key in channel.invited
    if channel.is_banned(client) and not invited:
        return n.ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"
    if "i" in channel.modes and not invited and not channel.is_invite_excepted(client):
        return n.ERR_INVITEONLYCHAN, "Cannot join channel (+i)"
    if channel.mode_key is not None and key != channel.mode_key:
        return n.ERR_BADCHANNELKEY, "Cannot join channel (+k)"
    if channel.limit is not None and len(channel.members) >= channel.limit and not invited:
        return n.ERR_CHANNELISFULL, "Cannot join channel (+l)"
    return None


# INVITE <nickname> <channel>
def handle_invite(hub: Hub, client: Client, message: Message) -> None:
    if not message.params:  # INVITE alone: the channels one is invited to (336, 337)
        for channel in list(hub.channels.values()):
            if client.nick_key in channel.invited:
                hub.reply(client, n.RPL_INVITELIST, channel.name)
        hub.reply(client, n.RPL_ENDOFINVITELIST, "End of /INVITE list")
        return
    if len(message.params) < 2:
        hub.reply(client, n.ERR_NEEDMOREPARAMS, "INVITE", "Not enough parameters")
        return
    nick, name = message.params[0], message.params[1]
    target = hub.find_client(nick)
    if target is None or not target.registered:
        hub.reply(client, n.ERR_NOSUCHNICK, nick, "No such nick/channel")
        return
    channel = hub.find_channel(name)
    if channel is None:
        hub.reply(client, n.ERR_NOSUCHCHANNEL, name, "No such channel")
        return
    if client not in channel.members:
        hub.reply(client, n.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if "i" in channel.modes and client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    if target in channel.members:
        hub.reply(client, n.ERR_USERONCHANNEL, target.nick or "", channel.name, "is already on channel")
        return
    channel.invited.add(target.nick_key or "")
    hub.reply(client, n.RPL_INVITING, target.nick or "", channel.name)
    invite = hub.event(
        format_message("INVITE", target.nick or "", channel.name, source=client.prefix), None, account=client.account
    )
    if target.node is not None and hub.cluster is not None:
        hub.cluster.invited(client, target, channel)  # its own node lets it in and tells it
    elif target.dialect is Dialect.PLAIN:
        target.send(f"* {client.nick} invites you to {channel.name}\n".encode(errors=WIRE))
    else:
        hub.send_event(target, invite)
    if target.away is not None:
        hub.reply(client, n.RPL_AWAY, target.nick or "", target.away)
    for member in channel.members:
        if member is not client and "invite-notify" in member.caps and member in channel.operators:
            hub.send_event(member, invite)


# PART <channel>{,<channel>} [:<reason>]
def handle_part(hub: Hub, client: Client, message: Message) -> None:
    reason = message.param(1)
    for name in message.params[0].split(","):
        channel = hub.find_channel(name)
        if channel is None:
            hub.reply(client, n.ERR_NOSUCHCHANNEL, name, "No such channel")
        elif client not in channel.members:
            hub.reply(client, n.ERR_NOTONCHANNEL, name, "You're not on that channel")
        else:
            part(hub, client, channel, reason)


# TOPIC <channel> [:<topic>]
def handle_topic(hub: Hub, client: Client, message: Message) -> None:
    name = message.params[0]
    channel = hub.find_channel(name)
    if channel is None:
        hub.reply(client, n.ERR_NOSUCHCHANNEL, name, "No such channel")
        return
    if len(message.params) < 2:
        send_topic(hub, client, channel)
        return
    if client not in channel.members:
        hub.reply(client, n.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if "t" in channel.modes and client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    if channel.topic_locked_for(client):
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "The topic is locked (ChanServ TOPICLOCK)")
        return
    set_topic(hub, client, channel, message.params[1][:MAX_TOPIC_LENGTH], hub.wall_clock())


# NAMES [<channel>{,<channel>}]
def handle_names(hub: Hub, client: Client, message: Message) -> None:
    if not message.params:
        for channel in list(hub.channels.values()):
            if channel.members and channel.visible_to(client):
                send_names(hub, client, channel)
        return
    for name in message.params[0].split(","):
        named = hub.find_channel(name)
        if named is None:
            hub.reply(client, n.RPL_ENDOFNAMES, name, "End of /NAMES list")
        else:
            send_names(hub, client, named)


def _list_condition(term: str, now: float) -> Callable[[Channel], bool] | None:
    """A LIST condition (ELIST=CMNTU), or None for a name or mask: ``>n``/``<n`` users,
    ``C>n``/``C<n`` created more/less than n minutes ago, ``T>n``/``T<n`` topic set more/less
    than n minutes ago (as InspIRCd and Solanum read them), ``!mask`` a name that does not match."""
    kind = term[0] if term[:1] in "CT" and term[1:2] in ("<", ">") else ""
    sign, digits = term[len(kind) : len(kind) + 1], term[len(kind) + 1 :]
    if sign in ("<", ">") and digits.isdigit():
        bound = int(digits)
        if not kind:
            return (lambda c: len(c.members) > bound) if sign == ">" else (lambda c: len(c.members) < bound)
        cutoff = now - bound * 60
        if kind == "C":
            return (lambda c: c.created < cutoff) if sign == ">" else (lambda c: c.created > cutoff)
        return (lambda c: bool(c.topic) and c.topic_at < cutoff) if sign == ">" else (lambda c: c.topic_at > cutoff)
    if term.startswith("!"):
        return lambda channel: not mask_matches(term[1:], channel.name)
    return None


# LIST [<channel>|<mask>|<condition>{,...}]
def handle_list(hub: Hub, client: Client, message: Message) -> None:
    """Channels matching any of the names and masks given (all when none is) and every condition."""
    hub.reply(client, n.RPL_LISTSTART, "Channel", "Users  Name")
    now = hub.wall_clock()
    masks, conditions = [], []
    for term in (term for term in message.param(0).split(",") if term):
        condition = _list_condition(term, now)
        if condition is None:
            masks.append(term)
        else:
            conditions.append(condition)
    for channel in list(hub.channels.values()):
        # An empty permanent channel exists but is not listed, as ergo does for registered
        # channels nobody is in: LIST shows where people are.
        if not channel.members or not channel.visible_to(client):
            continue
        if masks and not any(mask_matches(mask, channel.name) for mask in masks):
            continue
        if all(accept(channel) for accept in conditions):
            hub.reply(client, n.RPL_LIST, channel.name, str(len(channel.members)), channel.topic)
    hub.reply(client, n.RPL_LISTEND, "End of /LIST")


# KICK <channel>{,<channel>} <user>{,<user>} [:<comment>]
def handle_kick(hub: Hub, client: Client, message: Message) -> None:
    """One channel and any number of its members, or as many channels as users, in pairs
    (RFC 2812 3.2.8); each kick goes out as a KICK of its own."""
    names, nicks = message.params[0].split(","), message.params[1].split(",")
    if len(names) != 1 and len(names) != len(nicks):
        hub.reply(client, n.ERR_NEEDMOREPARAMS, "KICK", "Give one channel, or a channel for each user")
        return
    reason = (message.param(2) or client.nick or "")[:MAX_KICK_LENGTH]
    refused: set[str] = set()  # channels already answered with why not: once each, not once per nick
    for name, nick in zip(names * len(nicks) if len(names) == 1 else names, nicks, strict=True):
        if name in refused:
            continue
        channel = hub.find_channel(name)
        if channel is None or client not in channel.members or client not in channel.operators:
            refused.add(name)
            if channel is None:
                hub.reply(client, n.ERR_NOSUCHCHANNEL, name, "No such channel")
            elif client not in channel.members:
                hub.reply(client, n.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
            else:
                hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        elif (target := hub.find_client(nick)) is None or target not in channel.members:
            hub.reply(client, n.ERR_USERNOTINCHANNEL, nick, channel.name, "They aren't on that channel")
        else:
            kick(hub, client, channel, target, reason)


def send_topic(hub: Hub, client: Client, channel: Channel) -> None:
    if not channel.topic:
        hub.reply(client, n.RPL_NOTOPIC, channel.name, "No topic is set")
        return
    hub.reply(client, n.RPL_TOPIC, channel.name, channel.topic)
    hub.reply(client, n.RPL_TOPICWHOTIME, channel.name, channel.topic_by, str(int(channel.topic_at)))

def send_names(hub: Hub, client: Client, channel: Channel) -> None:
    """353 lines (split to fit 512 bytes) and one 366."""
    if not channel.visible_to(client):
        hub.reply(client, n.RPL_ENDOFNAMES, channel.name, "End of /NAMES list")
        return
    symbol = "@" if "s" in channel.modes else "="
    header = f":{hub.config.name} {n.RPL_NAMREPLY} {client.display_nick} {symbol} {channel.name} :"
    budget = 510 - len(header.encode(errors=WIRE))
    batch: list[str] = []
    used = 0
    every = "multi-prefix" in client.caps
    full = "userhost-in-names" in client.caps
    for member in channel.members:
        entry = channel.prefix_of(member, every=every) + (member.prefix if full else member.nick or "")
        cost = len(entry.encode(errors=WIRE)) + 1
        if batch and used + cost > budget:
            hub.send_line(client, header + " ".join(batch))
            batch, used = [], 0
        batch.append(entry)
        used += cost
    if batch:
        hub.send_line(client, header + " ".join(batch))
    hub.reply(client, n.RPL_ENDOFNAMES, channel.name, "End of /NAMES list")
