"""The command table and one handler per verb.

``dispatch`` does the shared checks once — unknown verb (421), not registered
(451), too few parameters (461) — so handlers never re-check them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd import __version__
from chatd.core.client import Client, Mode
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower, is_channel_name, is_valid_nick
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.hub import Hub

Handler = Callable[["Hub", Client, Message], None]

TOPIC_LENGTH = 390
CTCP_ACTION_PREFIX = "\x01ACTION "


@dataclass(frozen=True, slots=True)
class Command:
    handler: Handler
    min_params: int = 0
    before_registration: bool = False


def dispatch(hub: Hub, client: Client, message: Message) -> None:
    """Run one command from an IRC client after the checks every command shares."""
    command = COMMANDS.get(message.command)
    if command is None:
        if client.registered:
            hub.reply(client, n.ERR_UNKNOWNCOMMAND, message.command, "Unknown command")
        else:
            hub.reply(client, n.ERR_NOTREGISTERED, "You have not registered")
        return
    if not client.registered and not command.before_registration:
        hub.reply(client, n.ERR_NOTREGISTERED, "You have not registered")
        return
    if len(message.params) < command.min_params:
        hub.reply(client, n.ERR_NEEDMOREPARAMS, message.command, "Not enough parameters")
        return
    command.handler(hub, client, message)


# ---- registration ---------------------------------------------------------------


# CAP <subcommand> [:<capabilities>]
def handle_cap(hub: Hub, client: Client, message: Message) -> None:
    sub = message.params[0].upper()
    target = client.display_nick
    if sub == "LS":
        if not client.registered:
            client.cap_negotiating = True
        hub.send_line(client, format_message("CAP", target, "LS", "", source=hub.config.name))
    elif sub == "LIST":
        hub.send_line(client, format_message("CAP", target, "LIST", "", source=hub.config.name))
    elif sub == "REQ":
        if not client.registered:
            client.cap_negotiating = True
        hub.send_line(client, format_message("CAP", target, "NAK", message.param(1), source=hub.config.name))
    elif sub == "END":
        if client.cap_negotiating:
            client.cap_negotiating = False
            hub.try_complete_registration(client)
    else:
        hub.reply(client, n.ERR_INVALIDCAPCMD, sub, "Invalid CAP command")


# PASS <password>
def handle_pass(hub: Hub, client: Client, message: Message) -> None:
    if client.registered:
        hub.reply(client, n.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    client.password = message.params[0]


# NICK <nickname>
def handle_nick(hub: Hub, client: Client, message: Message) -> None:
    nick = message.param(0)
    if not nick:
        hub.reply(client, n.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    if not is_valid_nick(nick):
        hub.reply(client, n.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")
        return
    holder = hub.find_client(nick)
    if holder is not None and holder is not client:
        hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
        return
    if nick == client.nick:
        return
    if not client.registered:
        hub.claim_nick(client, nick)
        hub.try_complete_registration(client)
        return
    old_prefix, old_nick = client.prefix, client.nick
    hub.claim_nick(client, nick)
    hub.send_to_peers(
        client,
        format_message("NICK", nick, source=old_prefix),
        f"* {old_nick} is now known as {nick}",
        include_self=True,
    )


# USER <username> <mode> <unused> :<realname>
def handle_user(hub: Hub, client: Client, message: Message) -> None:
    if client.registered or client.user is not None:
        hub.reply(client, n.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    username = "".join(ch for ch in message.params[0] if ch not in "@!: ")[:16] or "user"
    client.user = "~" + username
    client.realname = message.params[3]
    if client.nick is not None:
        client.update_prefix()
    hub.try_complete_registration(client)


# PING <token>
def handle_ping(hub: Hub, client: Client, message: Message) -> None:
    if not message.params or not message.params[0]:
        hub.reply(client, n.ERR_NOORIGIN, "No origin specified")
        return
    hub.send_line(client, format_message("PONG", hub.config.name, message.params[0], source=hub.config.name))


# PONG <token>
def handle_pong(hub: Hub, client: Client, message: Message) -> None:
    """Nothing to do: any line from a client already counts as a sign of life."""


# QUIT [:<reason>]
def handle_quit(hub: Hub, client: Client, message: Message) -> None:
    reason = message.param(0)
    hub.quit(client, f"Quit: {reason}" if reason else "Quit")


# ---- channels -------------------------------------------------------------------


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
    topic = message.params[1][:TOPIC_LENGTH]
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


# ---- messages -------------------------------------------------------------------


def _plain_rendering(command: str, nick: str, text: str) -> str:
    if text.startswith(CTCP_ACTION_PREFIX):
        return f"* {nick} {text[len(CTCP_ACTION_PREFIX) :].rstrip(chr(1))}"
    if command == "NOTICE":
        return f"-{nick}- {text}"
    return f"{nick}: {text}"


def _relay(hub: Hub, client: Client, message: Message, *, errors: bool) -> None:
    """PRIVMSG and NOTICE: same delivery, but a NOTICE never provokes an error reply."""
    if not message.params or not message.params[0]:
        if errors:
            hub.reply(client, n.ERR_NORECIPIENT, f"No recipient given ({message.command})")
        return
    if len(message.params) < 2 or not message.params[1]:
        if errors:
            hub.reply(client, n.ERR_NOTEXTTOSEND, "No text to send")
        return
    text = message.params[1]
    nick = client.nick or ""
    for target_name in message.params[0].split(","):
        if target_name[:1] == "#":
            channel = hub.find_channel(target_name)
            if channel is None:
                if errors:
                    hub.reply(client, n.ERR_NOSUCHCHANNEL, target_name, "No such channel")
                continue
            member = client in channel.members
            if ("n" in channel.modes and not member) or (
                "m" in channel.modes and client not in channel.operators and client not in channel.voiced
            ):
                if errors:
                    hub.reply(client, n.ERR_CANNOTSENDTOCHAN, channel.name, "Cannot send to channel")
                continue
            hub.send_to_channel(
                channel,
                format_message(message.command, channel.name, text, source=client.prefix),
                _plain_rendering(message.command, nick, text),
                skip=client,
            )
            continue
        target = hub.find_client(target_name)
        if target is None or not target.registered:
            if errors:
                hub.reply(client, n.ERR_NOSUCHNICK, target_name, "No such nick/channel")
            continue
        if target.mode is Mode.PLAIN:
            target.send(f"[private] {_plain_rendering(message.command, nick, text)}\n".encode())
        else:
            hub.send_line(target, format_message(message.command, target.nick or "", text, source=client.prefix))
        if errors and target.away is not None:
            hub.reply(client, n.RPL_AWAY, target.nick or "", target.away)


# PRIVMSG <target>{,<target>} :<text>
def handle_privmsg(hub: Hub, client: Client, message: Message) -> None:
    _relay(hub, client, message, errors=True)


# NOTICE <target>{,<target>} :<text>
def handle_notice(hub: Hub, client: Client, message: Message) -> None:
    _relay(hub, client, message, errors=False)


# ---- queries --------------------------------------------------------------------


def _who_reply(hub: Hub, asker: Client, target: Client, channel: Channel | None) -> None:
    flags = "G" if target.away is not None else "H"
    if channel is not None:
        flags += channel.prefix_of(target)
    hub.reply(
        asker,
        n.RPL_WHOREPLY,
        channel.name if channel else "*",
        target.user or "",
        target.host,
        hub.config.name,
        target.nick or "",
        flags,
        f"0 {target.realname}",
    )


# WHO <mask>
def handle_who(hub: Hub, client: Client, message: Message) -> None:
    mask = message.param(0, "*")
    channel = hub.find_channel(mask) if mask[:1] == "#" else None
    if channel is not None:
        for member in channel.members:
            _who_reply(hub, client, member, channel)
    elif mask[:1] != "#":
        target = hub.find_client(mask)
        if target is not None and target.registered:
            shared = next((ch for ch in target.channels.values() if client in ch.members), None)
            _who_reply(hub, client, target, shared)
    hub.reply(client, n.RPL_ENDOFWHO, mask, "End of WHO list")


# WHOIS [<server>] <nick>
def handle_whois(hub: Hub, client: Client, message: Message) -> None:
    if not message.params or not message.params[-1]:
        hub.reply(client, n.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    nick = message.params[-1]
    target = hub.find_client(nick)
    if target is None or not target.registered:
        hub.reply(client, n.ERR_NOSUCHNICK, nick, "No such nick/channel")
        hub.reply(client, n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
        return
    name = target.nick or ""
    hub.reply(client, n.RPL_WHOISUSER, name, target.user or "", target.host, "*", target.realname)
    channels = " ".join(ch.prefix_of(target) + ch.name for ch in target.channels.values())
    if channels:
        hub.reply(client, n.RPL_WHOISCHANNELS, name, channels)
    hub.reply(client, n.RPL_WHOISSERVER, name, hub.config.name, "chatd")
    if target.away is not None:
        hub.reply(client, n.RPL_AWAY, name, target.away)
    idle = int(hub.clock() - target.last_seen)
    hub.reply(client, n.RPL_WHOISIDLE, name, str(idle), str(int(target.signon)), "seconds idle, signon time")
    hub.reply(client, n.RPL_ENDOFWHOIS, name, "End of /WHOIS list")


# AWAY [:<message>]
def handle_away(hub: Hub, client: Client, message: Message) -> None:
    text = message.param(0)
    if text:
        client.away = text[:390]
        hub.reply(client, n.RPL_NOWAWAY, "You have been marked as being away")
    else:
        client.away = None
        hub.reply(client, n.RPL_UNAWAY, "You are no longer marked as being away")


# ---- modes ----------------------------------------------------------------------

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


# ---- server queries -------------------------------------------------------------


# MOTD
def handle_motd(hub: Hub, client: Client, message: Message) -> None:
    hub.send_motd(client)


# LUSERS
def handle_lusers(hub: Hub, client: Client, message: Message) -> None:
    hub.send_lusers(client)


# VERSION
def handle_version(hub: Hub, client: Client, message: Message) -> None:
    hub.reply(client, n.RPL_VERSION, f"chatd-{__version__}", hub.config.name, "")
    for start in range(0, len(hub.isupport), 12):
        hub.reply(client, n.RPL_ISUPPORT, *hub.isupport[start : start + 12], "are supported by this server")


# USERHOST <nick>{ <nick>}
def handle_userhost(hub: Hub, client: Client, message: Message) -> None:
    entries = []
    for nick in message.params[:5]:
        target = hub.find_client(nick)
        if target is not None and target.registered:
            away = "-" if target.away is not None else "+"
            entries.append(f"{target.nick}={away}{target.user}@{target.host}")
    hub.reply(client, n.RPL_USERHOST, " ".join(entries))


# ISON <nick>{ <nick>}
def handle_ison(hub: Hub, client: Client, message: Message) -> None:
    online = []
    for word in message.params:
        for nick in word.split():
            target = hub.find_client(nick)
            if target is not None and target.registered:
                online.append(target.nick or "")
    hub.reply(client, n.RPL_ISON, " ".join(online))


COMMANDS: dict[str, Command] = {
    "AWAY": Command(handle_away),
    "CAP": Command(handle_cap, min_params=1, before_registration=True),
    "ISON": Command(handle_ison, min_params=1),
    "JOIN": Command(handle_join, min_params=1),
    "KICK": Command(handle_kick, min_params=2),
    "LIST": Command(handle_list),
    "LUSERS": Command(handle_lusers),
    "MODE": Command(handle_mode, min_params=1),
    "MOTD": Command(handle_motd),
    "NAMES": Command(handle_names),
    "NICK": Command(handle_nick, before_registration=True),
    "NOTICE": Command(handle_notice),
    "PART": Command(handle_part, min_params=1),
    "PASS": Command(handle_pass, min_params=1, before_registration=True),
    "PING": Command(handle_ping, before_registration=True),
    "PONG": Command(handle_pong, before_registration=True),
    "PRIVMSG": Command(handle_privmsg),
    "QUIT": Command(handle_quit, before_registration=True),
    "TOPIC": Command(handle_topic, min_params=1),
    "USER": Command(handle_user, min_params=4, before_registration=True),
    "USERHOST": Command(handle_userhost, min_params=1),
    "VERSION": Command(handle_version),
    "WHO": Command(handle_who),
    "WHOIS": Command(handle_whois),
}
