"""MODE for channels and users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.client import Client
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.hub import Hub


CHANNEL_FLAG_MODES = frozenset("ntm")
CHANNEL_MEMBER_MODES = frozenset("ov")
USER_MODES = frozenset("iw")


def _channel_mode(hub: Hub, client: Client, channel: Channel, message: Message) -> None:
    if len(message.params) < 2:
        hub.reply(client, n.RPL_CHANNELMODEIS, channel.name, channel.mode_string())
        hub.reply(client, n.RPL_CREATIONTIME, channel.name, str(int(channel.created)))
        return
    changes = message.params[1]
    args = list(message.params[2:])
    if changes.lstrip("+") == "b" and not args:
        hub.reply(client, n.RPL_ENDOFBANLIST, channel.name, "End of channel ban list")
        return
    if client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    applied: list[tuple[str, str, str | None]] = []
    sign = "+"
    for char in changes:
        if char in "+-":
            sign = char
        elif char in CHANNEL_FLAG_MODES:
            present = char in channel.modes
            if sign == "+" and not present:
                channel.modes.add(char)
                applied.append((sign, char, None))
            elif sign == "-" and present:
                channel.modes.discard(char)
                applied.append((sign, char, None))
        elif char in CHANNEL_MEMBER_MODES:
            if not args:
                hub.reply(client, n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
                continue
            nick = args.pop(0)
            target = hub.find_client(nick)
            if target is None:
                hub.reply(client, n.ERR_NOSUCHNICK, nick, "No such nick/channel")
                continue
            if target not in channel.members:
                hub.reply(client, n.ERR_USERNOTINCHANNEL, nick, channel.name, "They aren't on that channel")
                continue
            group = channel.operators if char == "o" else channel.voiced
            if sign == "+" and target not in group:
                group.add(target)
                applied.append((sign, char, target.nick))
            elif sign == "-" and target in group:
                group.discard(target)
                applied.append((sign, char, target.nick))
        elif char == "b":
            continue
        else:
            hub.reply(client, n.ERR_UNKNOWNMODE, char, "is unknown mode char to me")
    if not applied:
        return
    mode_text, params, last = "", [], ""
    for sign, char, param in applied:
        if sign != last:
            mode_text += sign
            last = sign
        mode_text += char
        if param is not None:
            params.append(param)
    hub.send_to_channel(
        channel,
        format_message("MODE", channel.name, mode_text, *params, source=client.prefix),
        f"* {client.nick} sets mode {mode_text} {' '.join(params)}".rstrip(),
    )


def _user_mode(hub: Hub, client: Client, message: Message) -> None:
    if irc_lower(message.params[0]) != client.key:
        hub.reply(client, n.ERR_USERSDONTMATCH, "Can't change mode for other users")
        return
    if len(message.params) < 2:
        hub.reply(client, n.RPL_UMODEIS, "+" + "".join(sorted(client.user_modes)))
        return
    sign, changed, last = "+", "", ""
    for char in message.params[1]:
        if char in "+-":
            sign = char
            continue
        if char not in USER_MODES and (char != "o" or sign == "+"):
            hub.reply(client, n.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
            continue
        if (sign == "+") == (char in client.user_modes):
            continue
        if sign == "+":
            client.user_modes.add(char)
        else:
            client.user_modes.discard(char)
        if sign != last:
            changed += sign
            last = sign
        changed += char
    if changed:
        hub.send_line(client, format_message("MODE", client.nick or "", changed, source=client.prefix))


# MODE <target> [<modestring> [<mode arguments>...]]
def handle_mode(hub: Hub, client: Client, message: Message) -> None:
    target = message.params[0]
    if target[:1] == "#":
        channel = hub.find_channel(target)
        if channel is None:
            hub.reply(client, n.ERR_NOSUCHCHANNEL, target, "No such channel")
        else:
            _channel_mode(hub, client, channel, message)
        return
    if hub.find_client(target) is None:
        hub.reply(client, n.ERR_NOSUCHNICK, target, "No such nick/channel")
        return
    _user_mode(hub, client, message)
