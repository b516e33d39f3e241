"""Services: NickServ and ChanServ, pseudo-users the core answers itself (as ergo does).

A user talks to a service with ``PRIVMSG NickServ :IDENTIFY pw`` or the aliases
``NS``/``NICKSERV`` and ``CS``/``CHANSERV`` (``/ns identify pw``); the service answers
with NOTICEs from its own prefix. No connection, node or nick table entry backs a
service: its nick is reserved (nobody can take it) and a message to it never leaves
this server and is never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.core.services import chanserv, nickserv
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

ServiceHandler = Callable[["Hub", "Client", "Service", str], None]
"""A service's answer to one message: (hub, sender, the service, the text sent)."""


@dataclass(frozen=True, slots=True)
class Service:
    nick: str
    handler: ServiceHandler
    realname: str

    def prefix(self, hub: Hub) -> str:
        return f"{self.nick}!{self.nick}@{hub.config.name}"

    def tell(self, hub: Hub, client: Client, text: str) -> None:
        """One NOTICE from the service to ``client``."""
        hub.send_line(client, format_message("NOTICE", client.display_nick, text, source=self.prefix(hub)))


SERVICES: dict[str, Service] = {
    "nickserv": Service("NickServ", nickserv.handle, "Nickname services"),
    "chanserv": Service("ChanServ", chanserv.handle, "Channel services"),
}

ALIASES = {"NS": "nickserv", "NICKSERV": "nickserv", "CS": "chanserv", "CHANSERV": "chanserv"}
"""Commands that talk to a service directly (``/ns``, ``/msg NickServ`` and ``/nickserv`` alike)."""


def find_service(name: str) -> Service | None:
    return SERVICES.get(irc_lower(name))


def is_service_nick(nick: str) -> bool:
    return irc_lower(nick) in SERVICES


def handle_alias(hub: Hub, client: Client, message: Message) -> None:
    """``NS <text…>`` / ``CS <text…>``: the rest of the line goes to the service as one message."""
    service = SERVICES[ALIASES[message.command]]
    service.handler(hub, client, service, " ".join(message.params))


def whois_service(hub: Hub, client: Client, nick: str) -> bool:
    """WHOIS of a service: 311, 312 and 318 as for a user of this server; False for any other nick."""
    service = find_service(nick)
    if service is None:
        return False
    hub.reply(client, n.RPL_WHOISUSER, service.nick, service.nick, hub.config.name, "*", service.realname)
    hub.reply(client, n.RPL_WHOISSERVER, service.nick, hub.config.name, "Network services")
    hub.reply(client, n.RPL_ENDOFWHOIS, service.nick, "End of /WHOIS list")
    return True
