"""MODE for channels and users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.channel import Ban
from chatd.core.client import Client
from chatd.core.limits import MAX_KEY_LENGTH, MAX_MODES_WITH_PARAMS
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.mask import normalize_mask
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.hub import Hub


# CHANMODES=b,k,l,imnst: A (list, always a parameter), B (parameter both ways),
# C (parameter only when set), D (flags). Prefix modes o and v take a nick.
LIST_MODES = frozenset("b")
KEY_MODES = frozenset("k")
LIMIT_MODES = frozenset("l")
FLAG_MODES = frozenset("imnst")
MEMBER_MODES = frozenset("ov")
USER_MODES = frozenset("iw")
MAX_BANS = 100


def _send_ban_list(hub: Hub, client: Client, channel: Channel) -> None:
    for ban in channel.bans:
        hub.reply(client, n.RPL_BANLIST, channel.name, ban.mask, ban.set_by, str(int(ban.set_at)))
    hub.reply(client, n.RPL_ENDOFBANLIST, channel.name, "End of channel ban list")


def _channel_mode(hub: Hub, client: Client, channel: Channel, message: Message) -> None:
    if len(message.params) < 2:
        shown = client in channel.members
        hub.reply(client, n.RPL_CHANNELMODEIS, channel.name, *channel.mode_string(with_params=shown).split(" "))
        hub.reply(client, n.RPL_CREATIONTIME, channel.name, str(int(channel.created)))
        return
    changes = message.params[1]
    args = list(message.params[2:])
    if changes.lstrip("+") == "b" and not args:
        _send_ban_list(hub, client, channel)
        return
    if client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    applied: list[tuple[str, str, str | None]] = []
    sign = "+"
    with_params = 0
    for char in changes:
        if char in "+-":
            sign = char
            continue
        adding = sign == "+"
        takes_param = (
            char in LIST_MODES or char in MEMBER_MODES or char in KEY_MODES or (char in LIMIT_MODES and adding)
        )
        if takes_param:
            if not args:
                if char in LIST_MODES:
                    _send_ban_list(hub, client, channel)
                else:
                    hub.reply(client, n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
                continue
            with_params += 1
            if with_params > MAX_MODES_WITH_PARAMS:
                break
            param = args.pop(0)
        else:
            param = ""
        if char in FLAG_MODES:
            if adding != (char in channel.modes):
                (channel.modes.add if adding else channel.modes.discard)(char)
                applied.append((sign, char, None))
        elif char in MEMBER_MODES:
            target = hub.find_client(param)
            if target is None:
                hub.reply(client, n.ERR_NOSUCHNICK, param, "No such nick/channel")
            elif target not in channel.members:
                hub.reply(client, n.ERR_USERNOTINCHANNEL, param, channel.name, "They aren't on that channel")
            else:
                group = channel.operators if char == "o" else channel.voiced
                if adding != (target in group):
                    (group.add if adding else group.discard)(target)
                    applied.append((sign, char, target.nick))
        elif char in KEY_MODES:
            if adding:
                if " " in param or "," in param or param.startswith(":"):
                    hub.reply(client, n.ERR_INVALIDMODEPARAM, channel.name, "k", "*", "Invalid channel key")
                    continue
                key = param[:MAX_KEY_LENGTH]
                if key and key != channel.mode_key:
                    channel.mode_key = key
                    applied.append((sign, char, key))
            elif channel.mode_key is not None:
                channel.mode_key = None
                applied.append((sign, char, "*"))
        elif char in LIMIT_MODES:
            if adding:
                if param.isdigit() and int(param) > 0 and int(param) != channel.limit:
                    channel.limit = int(param)
                    applied.append((sign, char, str(channel.limit)))
            elif channel.limit is not None:
                channel.limit = None
                applied.append((sign, char, None))
        elif char in LIST_MODES:
            mask = normalize_mask(param)
            present = next((ban for ban in channel.bans if irc_lower(ban.mask) == irc_lower(mask)), None)
            if adding and present is None:
                if len(channel.bans) >= MAX_BANS:
                    hub.reply(client, n.ERR_BANLISTFULL, channel.name, "b", "Channel ban list is full")
                    continue
                channel.bans.append(Ban(mask, client.prefix, hub.wall_clock()))
                applied.append((sign, char, mask))
            elif not adding and present is not None:
                channel.bans.remove(present)
                applied.append((sign, char, present.mask))
        else:
            hub.reply(client, n.ERR_UNKNOWNMODE, char, "is unknown mode char to me")
    if not applied:
        return
    hub.save_channel(channel)
    mode_text, params, last = "", [], ""
    for sign, char, param in applied:
        if sign != last:
            mode_text += sign
            last = sign
        mode_text += char
        if param is not None:
            params.append(param)
    event = hub.send_to_channel(
        channel,
        format_message("MODE", channel.name, mode_text, *params, source=client.prefix),
        f"* {client.nick} sets mode {mode_text} {' '.join(params)}".rstrip(),
    )
    if hub.cluster is not None:
        hub.cluster.modes_changed(client, channel, applied, event)


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
        if not hub.set_user_mode(client, char, sign == "+"):
            continue
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
