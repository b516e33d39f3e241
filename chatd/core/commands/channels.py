"""Channel membership and state: JOIN, PART, TOPIC, NAMES, LIST, KICK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.client import Client, Mode
from chatd.protocol import numerics as n
from chatd.protocol.casemap import MAX_TOPIC_LENGTH, irc_lower, is_channel_name
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
    for name in message.params[0].split(","):
        if not name:
            continue
        if not is_channel_name(name):
            hub.reply(client, n.ERR_NOSUCHCHANNEL, name, "No such channel")
            continue
        if irc_lower(name) in client.channels:
            continue
        hub.join(client, name)


def part(hub: Hub, client: Client, channel: Channel, reason: str) -> None:
    params = (channel.name, reason) if reason else (channel.name,)
    plain = f"* {client.nick} has left {channel.name}" + (f" ({reason})" if reason else "")
    hub.send_to_channel(channel, format_message("PART", *params, source=client.prefix), plain)
    hub.leave(client, channel)


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
        hub.send_topic(client, channel)
        return
    if client not in channel.members:
        hub.reply(client, n.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if "t" in channel.modes and client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    topic = message.params[1][:MAX_TOPIC_LENGTH]
    channel.topic, channel.topic_by, channel.topic_at = topic, client.prefix, hub.wall_clock()
    hub.send_to_channel(
        channel,
        format_message("TOPIC", channel.name, topic, source=client.prefix),
        f"* {client.nick} changed the topic to: {topic}",
    )


# NAMES [<channel>{,<channel>}]
def handle_names(hub: Hub, client: Client, message: Message) -> None:
    if not message.params:
        for channel in list(hub.channels.values()):
            hub.send_names(client, channel)
        return
    for name in message.params[0].split(","):
        channel = hub.find_channel(name)
        if channel is None:
            hub.reply(client, n.RPL_ENDOFNAMES, name, "End of /NAMES list")
        else:
            hub.send_names(client, channel)


# LIST [<channel>{,<channel>}]
def handle_list(hub: Hub, client: Client, message: Message) -> None:
    hub.reply(client, n.RPL_LISTSTART, "Channel", "Users  Name")
    if message.params and message.params[0]:
        wanted = [hub.find_channel(name) for name in message.params[0].split(",")]
        channels = [channel for channel in wanted if channel is not None]
    else:
        channels = list(hub.channels.values())
    for channel in channels:
        hub.reply(client, n.RPL_LIST, channel.name, str(len(channel.members)), channel.topic)
    hub.reply(client, n.RPL_LISTEND, "End of /LIST")


# KICK <channel> <user>{,<user>} [:<comment>]
def handle_kick(hub: Hub, client: Client, message: Message) -> None:
    channel = hub.find_channel(message.params[0])
    if channel is None:
        hub.reply(client, n.ERR_NOSUCHCHANNEL, message.params[0], "No such channel")
        return
    if client not in channel.members:
        hub.reply(client, n.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    reason = message.param(2) or client.nick or ""
    for nick in message.params[1].split(","):
        target = hub.find_client(nick)
        if target is None or target not in channel.members:
            hub.reply(client, n.ERR_USERNOTINCHANNEL, nick, channel.name, "They aren't on that channel")
            continue
        hub.send_to_channel(
            channel,
            format_message("KICK", channel.name, target.nick or "", reason, source=client.prefix),
            f"* {target.nick} was kicked by {client.nick} ({reason})",
        )
        hub.leave(target, channel)
        if target.mode is Mode.PLAIN and channel.name == hub.config.plain_channel:
            hub.quit(target, f"Kicked from {channel.name} by {client.nick}")
