"""Questions about users and the server (WHO is in ``who``): WHOIS, AWAY, MOTD, LUSERS, VERSION, USERHOST, ISON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd import __version__
from chatd.core.client import BOT_MODE, Client
from chatd.core.event import server_time
from chatd.core.help import HELP_TEXT
from chatd.core.limits import MAX_AWAY_LENGTH, MAX_USERHOST_NICKS
from chatd.core.presence import tell_watchers
from chatd.core.services import whois_service
from chatd.core.welcome import send_isupport, send_lusers, send_motd
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.hub import Hub


# WHOIS [<server>] <nick>
def handle_whois(hub: Hub, client: Client, message: Message) -> None:
    if not message.params or not message.params[-1]:
        hub.reply(client, n.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    nick = message.params[-1]
    target = hub.find_client(nick)
    if target is None and whois_service(hub, client, nick):
        return
    if target is None or not target.registered:
        hub.reply(client, n.ERR_NOSUCHNICK, nick, "No such nick/channel")
        hub.reply(client, n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
        return
    name = target.nick or ""
    hub.reply(client, n.RPL_WHOISUSER, name, target.user or "", target.host, "*", target.realname)
    channels = " ".join(ch.prefix_of(target) + ch.name for ch in target.channels.values() if ch.visible_to(client))
    if channels:
        hub.reply(client, n.RPL_WHOISCHANNELS, name, channels)
    hub.reply(client, n.RPL_WHOISSERVER, name, target.node or hub.config.name, "chatd")
    if "o" in target.user_modes:
        hub.reply(client, n.RPL_WHOISOPERATOR, name, "is an IRC operator")
    if getattr(target.transport, "tls", None) is not None:  # a backend connection over TLS (or WSS)
        hub.reply(client, n.RPL_WHOISSECURE, name, "is using a secure connection")
    if target.account is not None:
        hub.reply(client, n.RPL_WHOISACCOUNT, name, target.account, "is logged in as")
    if BOT_MODE in target.user_modes:
        hub.reply(client, n.RPL_WHOISBOT, name, "is a bot")
    if target.away is not None:
        hub.reply(client, n.RPL_AWAY, name, target.away)
    idle = int(hub.clock() - target.last_seen)
    hub.reply(client, n.RPL_WHOISIDLE, name, str(idle), str(int(target.signon)), "seconds idle, signon time")
    hub.reply(client, n.RPL_ENDOFWHOIS, name, "End of /WHOIS list")


MAX_REALNAME_LENGTH = 128


# AWAY [:<message>]
def handle_away(hub: Hub, client: Client, message: Message) -> None:
    text = message.param(0)
    if text:
        client.away = text[:MAX_AWAY_LENGTH]
        hub.reply(client, n.RPL_NOWAWAY, "You have been marked as being away")
        line = format_message("AWAY", client.away, source=client.prefix)
    else:
        client.away = None
        hub.reply(client, n.RPL_UNAWAY, "You are no longer marked as being away")
        line = format_message("AWAY", source=client.prefix)
    event = hub.send_to_peers(client, line, None, include_self=False, only_cap="away-notify")
    tell_watchers(hub, client, event, "away-notify")
    if hub.cluster is not None:
        hub.cluster.user_changed(client)


# SETNAME :<realname>   (IRCv3 setname)
def handle_setname(hub: Hub, client: Client, message: Message) -> None:
    realname = message.params[0]
    if not realname or len(realname) > MAX_REALNAME_LENGTH:
        hub.send_line(
            client,
            format_message("FAIL", "SETNAME", "INVALID_REALNAME", "Realname is not valid", source=hub.config.name),
        )
        return
    client.realname = realname
    event = hub.send_to_peers(
        client, format_message("SETNAME", realname, source=client.prefix), None, include_self=True, only_cap="setname"
    )
    tell_watchers(hub, client, event, "setname")
    if hub.cluster is not None:
        hub.cluster.user_changed(client)


# MOTD
def handle_motd(hub: Hub, client: Client, message: Message) -> None:
    send_motd(hub, client)


# LUSERS
def handle_lusers(hub: Hub, client: Client, message: Message) -> None:
    send_lusers(hub, client)


# VERSION
def handle_version(hub: Hub, client: Client, message: Message) -> None:
    hub.reply(client, n.RPL_VERSION, f"chatd-{__version__}", hub.config.name, "")
    send_isupport(hub, client)


# USERHOST <nick>{ <nick>}
def handle_userhost(hub: Hub, client: Client, message: Message) -> None:
    entries = []
    for nick in message.params[:MAX_USERHOST_NICKS]:
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


# WHOWAS <nick> [<count>]
def handle_whowas(hub: Hub, client: Client, message: Message) -> None:
    if not message.params or not message.params[0]:
        hub.reply(client, n.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    nick = message.params[0]
    count = int(message.param(1)) if message.param(1).isdigit() and int(message.param(1)) > 0 else 0
    key = irc_lower(nick)
    entries = [entry for entry in hub.whowas if irc_lower(entry.nick) == key]
    if count:
        entries = entries[:count]
    if not entries:
        hub.reply(client, n.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
    for entry in entries:
        hub.reply(client, n.RPL_WHOWASUSER, entry.nick, entry.user, entry.host, "*", entry.realname)
        hub.reply(client, n.RPL_WHOISSERVER, entry.nick, hub.config.name, server_time(entry.left_at))
    hub.reply(client, n.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")


# TIME [<server>]
def handle_time(hub: Hub, client: Client, message: Message) -> None:
    hub.reply(client, n.RPL_TIME, hub.config.name, server_time(hub.wall_clock()))


# INFO [<server>]
def handle_info(hub: Hub, client: Client, message: Message) -> None:
    for line in (
        f"chatd {__version__}: a chat server speaking IRC and a plain line mode.",
        "A sans-I/O core behind a selectors event loop or a thread per connection.",
        f"Up since {hub.config.created}.",
    ):
        hub.reply(client, n.RPL_INFO, line)
    hub.reply(client, n.RPL_ENDOFINFO, "End of INFO")


# ADMIN [<server>]
def handle_admin(hub: Hub, client: Client, message: Message) -> None:
    location, location2, contact = hub.config.admin_lines
    hub.reply(client, n.RPL_ADMINME, hub.config.name, "Administrative info")
    hub.reply(client, n.RPL_ADMINLOC1, location or hub.config.name)
    hub.reply(client, n.RPL_ADMINLOC2, location2 or hub.config.network)
    hub.reply(client, n.RPL_ADMINEMAIL, contact or "no contact configured")


# HELP [<subject>]   (also HELPOP)
def handle_help(hub: Hub, client: Client, message: Message) -> None:
    subject = message.param(0, "*").lower()
    text = HELP_TEXT.get(subject)
    if text is None:
        hub.reply(client, n.ERR_HELPNOTFOUND, subject, "No help available on this topic")
        return
    first, *rest = text
    hub.reply(client, n.RPL_HELPSTART, subject, first)
    for line in rest:
        hub.reply(client, n.RPL_HELPTXT, subject, line)
    hub.reply(client, n.RPL_ENDOFHELP, subject, "End of /HELP")


# LINKS [[<remote server>] <server mask>]
def handle_links(hub: Hub, client: Client, message: Message) -> None:
    """A network of one, and one with no description to give: just the end of the list (allowed by the spec)."""
    hub.reply(client, n.RPL_ENDOFLINKS, message.param(0, "*") or "*", "End of /LINKS list")
