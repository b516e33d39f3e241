"""MODE for channels and users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.channel import (
    FLAG_MODES,
    KEY_MODES,
    LIMIT_MODES,
    LIST_MODES,
    MAX_BANS,
    MEMBER_MODES,
    ModeChange,
    change_modes,
    takes_param,
)
from chatd.core.client import Client
from chatd.core.limits import MAX_KEY_LENGTH, MAX_MODES_WITH_PARAMS
from chatd.core.users import set_user_mode
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chatd.core.channel import Channel
    from chatd.core.hub import Hub

__all__ = [
    "FLAG_MODES",
    "KEY_MODES",
    "LIMIT_MODES",
    "LIST_MODES",
    "MAX_BANS",
    "MAX_KEY_LENGTH",
    "MAX_MODES_WITH_PARAMS",
    "MEMBER_MODES",
    "USER_MODES",
    "handle_mode",
]

USER_MODES = frozenset("Biw")
"""What a user may set on itself: ``B`` bot (IRCv3 bot-mode), ``i`` invisible, ``w`` wallops."""


LIST_REPLIES = {
    "b": (n.RPL_BANLIST, n.RPL_ENDOFBANLIST, "End of channel ban list"),
    "e": (n.RPL_EXCEPTLIST, n.RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
    "I": (n.RPL_INVEXLIST, n.RPL_ENDOFINVEXLIST, "End of channel invite exception list"),
}
"""Per list mode: its entry numeric, its end numeric and the end's text."""


def _send_list(hub: Hub, client: Client, channel: Channel, char: str) -> None:
    """A list mode's entries (mask, who set it, when). Bans are for anyone to see; the
    exceptions say whom the operators trust, so only they see those (482 for others)."""
    if char != "b" and client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    entry, end, text = LIST_REPLIES[char]
    for item in channel.mode_list(char):
        hub.reply(client, entry, channel.name, item.mask, item.set_by, str(int(item.set_at)))
    hub.reply(client, end, channel.name, text)


def _changes(hub: Hub, client: Client, channel: Channel, text: str, args: list[str]) -> Iterator[ModeChange]:
    """The changes a MODE line asks for, each with its parameter, read as ``apply_modes`` asks.

    A list mode without a parameter shows the list and a parameter mode without one is
    answered 461, at its place among the refusals ``apply_modes`` reports; past
    ``MAX_MODES_WITH_PARAMS`` parameters the rest of the line is ignored.
    """
    sign = "+"
    with_params = 0
    for char in text:
        if char in "+-":
            sign = char
            continue
        param = None
        if takes_param(char, sign == "+"):
            if not args:
                if char in LIST_MODES:
                    _send_list(hub, client, channel, char)
                else:
                    hub.reply(client, n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
                continue
            with_params += 1
            if with_params > MAX_MODES_WITH_PARAMS:
                return
            param = args.pop(0)
        yield sign, char, param


def _channel_mode(hub: Hub, client: Client, channel: Channel, message: Message) -> None:
    if len(message.params) < 2:
        shown = client in channel.members
        hub.reply(client, n.RPL_CHANNELMODEIS, channel.name, *channel.mode_string(with_params=shown).split(" "))
        hub.reply(client, n.RPL_CREATIONTIME, channel.name, str(int(channel.created)))
        return
    text = message.params[1]
    args = list(message.params[2:])
    if text.lstrip("+") in LIST_MODES and not args:
        _send_list(hub, client, channel, text.lstrip("+"))
        return
    if client not in channel.operators:
        hub.reply(client, n.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    change_modes(hub, client, channel, _changes(hub, client, channel, text, args))


def _user_mode(hub: Hub, client: Client, message: Message) -> None:
    if irc_lower(message.params[0]) != client.nick_key:
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
        if not set_user_mode(hub, client, char, sign == "+"):
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
