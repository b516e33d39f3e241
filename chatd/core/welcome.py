"""What a client is told about the server: the welcome burst (001-005), LUSERS, MOTD and ISUPPORT.

ISUPPORT is built from the constants the handlers enforce (``chatd.core.limits``,
``chatd.protocol.casemap``), so what is advertised is what is enforced.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chatd import __version__
from chatd.core.channel import ACCOUNT_EXTBAN, EXTBAN_PREFIX, MUTE_EXTBAN
from chatd.core.client import BOT_MODE
from chatd.core.config import ServerConfig
from chatd.core.limits import (
    CHATHISTORY_MAX,
    MAX_AWAY_LENGTH,
    MAX_CHANNEL_LENGTH,
    MAX_KICK_LENGTH,
    MAX_MESSAGE_TARGETS,
    MAX_MODES_WITH_PARAMS,
    MAX_MONITOR_TARGETS,
    MAX_NICK_LENGTH,
    MAX_TOPIC_LENGTH,
    MAX_USERHOST_NICKS,
    STATUSMSG_PREFIXES,
)
from chatd.protocol import numerics as n
from chatd.protocol.casemap import CASEMAPPING, CHANNEL_TYPES
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

log = logging.getLogger("chatd")

ISUPPORT_PER_LINE = 12
USER_MODES = "Biow"
CHANNEL_MODES = "CbeIiklmnorstv"
CHANNEL_MODES_WITH_PARAMS = "beIklov"


def isupport_tokens(config: ServerConfig) -> list[str]:
    """The RPL_ISUPPORT tokens, sorted; ``config.isupport_extra`` adds or overrides some."""
    tokens = {
        "ACCOUNTEXTBAN": ACCOUNT_EXTBAN,
        "AWAYLEN": str(MAX_AWAY_LENGTH),
        "BOT": BOT_MODE,
        "CASEMAPPING": CASEMAPPING,
        "CHANLIMIT": f"{CHANNEL_TYPES}:",
        "CHANMODES": "beI,k,l,Cimnrst",
        "CHANNELLEN": str(MAX_CHANNEL_LENGTH),
        "CHATHISTORY": str(CHATHISTORY_MAX),
        "MSGREFTYPES": "timestamp,msgid",
        "ELIST": "CMNTU",
        "EXCEPTS": "e",
        "EXTBAN": f"{EXTBAN_PREFIX},{ACCOUNT_EXTBAN}{MUTE_EXTBAN}",
        "INVEX": "I",
        "CHANTYPES": CHANNEL_TYPES,
        "KICKLEN": str(MAX_KICK_LENGTH),
        "MODES": str(MAX_MODES_WITH_PARAMS),
        "MONITOR": str(MAX_MONITOR_TARGETS),
        "NETWORK": config.network,
        "NICKLEN": str(MAX_NICK_LENGTH),
        "PREFIX": "(ov)@+",
        "STATUSMSG": STATUSMSG_PREFIXES,
        "TARGMAX": ",".join(
            f"{command}:{limit}"
            for command, limit in (
                ("KICK", ""),  # one channel, any number of its members
                ("NAMES", 1),
                ("NOTICE", MAX_MESSAGE_TARGETS),
                ("PRIVMSG", MAX_MESSAGE_TARGETS),
                ("TAGMSG", MAX_MESSAGE_TARGETS),
                ("USERHOST", MAX_USERHOST_NICKS),
                ("WHOIS", 1),
            )
        ),
        "TOPICLEN": str(MAX_TOPIC_LENGTH),
        "WHOX": "",
    }
    tokens.update(config.isupport_extra)
    return [f"{key}={value}" if value else key for key, value in sorted(tokens.items())]


def send_isupport(hub: Hub, client: Client) -> None:
    tokens = hub.isupport
    for start in range(0, len(tokens), ISUPPORT_PER_LINE):
        hub.reply(client, n.RPL_ISUPPORT, *tokens[start : start + ISUPPORT_PER_LINE], "are supported by this server")


def send_welcome(hub: Hub, client: Client) -> None:
    """The burst a client gets once registered: 001-004, ISUPPORT, LUSERS and the MOTD."""
    config = hub.config
    log.debug("registered %s", client.prefix)
    hub.reply(client, n.RPL_WELCOME, f"Welcome to the {config.network} IRC Network {client.prefix}")
    hub.reply(client, n.RPL_YOURHOST, f"Your host is {config.name}, running version chatd-{__version__}")
    hub.reply(client, n.RPL_CREATED, f"This server was created {config.created}")
    hub.send_line(
        client,
        format_message(
            n.RPL_MYINFO,
            client.display_nick,
            config.name,
            f"chatd-{__version__}",
            USER_MODES,
            CHANNEL_MODES,
            CHANNEL_MODES_WITH_PARAMS,
            source=config.name,
        ),
    )
    send_isupport(hub, client)
    send_lusers(hub, client)
    send_motd(hub, client)


def send_lusers(hub: Hub, client: Client) -> None:
    # Counters kept as users come, go and change modes: a welcome burst must not scan every client.
    users = hub.user_count
    invisible = hub.user_mode_counts["i"]
    unknown = len(hub.clients) - users
    operators = hub.user_mode_counts["o"]
    everyone, servers = users, 1
    if hub.cluster is not None:
        remote_users, remote_invisible, remote_servers = hub.cluster.census()
        everyone, invisible, servers = users + remote_users, invisible + remote_invisible, 1 + remote_servers
    hub.reply(
        client,
        n.RPL_LUSERCLIENT,
        f"There are {everyone - invisible} users and {invisible} invisible on {servers} servers",
    )
    if operators:
        hub.reply(client, n.RPL_LUSEROP, str(operators), "operator(s) online")
    if unknown:
        hub.reply(client, n.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
    formed = sum(1 for channel in hub.channels.values() if channel.members)  # not empty permanent ones
    hub.reply(client, n.RPL_LUSERCHANNELS, str(formed), "channels formed")
    hub.reply(client, n.RPL_LUSERME, f"I have {users} clients and 0 servers")
    top = str(hub.max_seen_users)
    hub.reply(client, n.RPL_LOCALUSERS, str(users), top, f"Current local users {users}, max {top}")
    if hub.cluster is not None:
        hub.reply(client, n.RPL_GLOBALUSERS, f"Current global users {everyone}")  # no network-wide max kept
    else:
        hub.reply(client, n.RPL_GLOBALUSERS, str(users), top, f"Current global users {users}, max {top}")


def send_motd(hub: Hub, client: Client) -> None:
    lines = hub.config.motd_lines
    if lines is None:
        hub.reply(client, n.ERR_NOMOTD, "MOTD File is missing")
        return
    hub.reply(client, n.RPL_MOTDSTART, f"- {hub.config.name} Message of the day - ")
    for line in lines:
        hub.reply(client, n.RPL_MOTD, f"- {line}")
    hub.reply(client, n.RPL_ENDOFMOTD, "End of /MOTD command.")
