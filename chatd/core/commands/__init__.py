"""The command table and the checks every command shares.

``dispatch`` does the shared checks once — unknown verb (421), not registered
(451), too few parameters (461) — so handlers never re-check them. Handlers live
in one module per command family, each introduced by its syntax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.core.client import Client
from chatd.core.commands.account_registration import handle_register, handle_verify
from chatd.core.commands.authenticate import handle_authenticate
from chatd.core.commands.channels import (
    handle_invite,
    handle_join,
    handle_kick,
    handle_list,
    handle_names,
    handle_part,
    handle_topic,
)
from chatd.core.commands.chathistory import handle_chathistory
from chatd.core.commands.messages import handle_notice, handle_privmsg, handle_tagmsg
from chatd.core.commands.modes import handle_mode
from chatd.core.commands.monitor import handle_monitor
from chatd.core.commands.oper import handle_kill, handle_oper, handle_wallops
from chatd.core.commands.queries import (
    handle_admin,
    handle_away,
    handle_help,
    handle_info,
    handle_ison,
    handle_links,
    handle_lusers,
    handle_motd,
    handle_setname,
    handle_time,
    handle_userhost,
    handle_version,
    handle_whois,
    handle_whowas,
)
from chatd.core.commands.redact import handle_redact
from chatd.core.commands.registration import (
    handle_cap,
    handle_nick,
    handle_pass,
    handle_ping,
    handle_pong,
    handle_quit,
    handle_user,
)
from chatd.core.commands.who import handle_who
from chatd.core.replies import run_labeled
from chatd.core.services import ALIASES, handle_alias
from chatd.protocol import numerics as n
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatd.core.hub import Hub

Handler = Callable[["Hub", Client, Message], None]


@dataclass(frozen=True, slots=True)
class Command:
    handler: Handler
    min_params: int = 0
    before_registration: bool = False


def dispatch(hub: Hub, client: Client, message: Message) -> None:
    """Run one command from an IRC client after the checks every command shares.

    A command carrying a ``label`` tag from a client that negotiated
    labeled-response and batch gets its whole response labeled (IRCv3).
    """
    label = message.tags.get("label") if message.tags else None
    if label and "labeled-response" in client.caps and "batch" in client.caps:
        run_labeled(hub, client, label, lambda: _run(hub, client, message))
    else:
        _run(hub, client, message)


def _run(hub: Hub, client: Client, message: Message) -> None:
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


COMMANDS: dict[str, Command] = {
    "ADMIN": Command(handle_admin),
    "CHATHISTORY": Command(handle_chathistory, min_params=1),
    "HELP": Command(handle_help),
    "HELPOP": Command(handle_help),
    "INFO": Command(handle_info),
    "KILL": Command(handle_kill, min_params=1),
    "LINKS": Command(handle_links),
    "OPER": Command(handle_oper, min_params=2),
    "TIME": Command(handle_time),
    "WALLOPS": Command(handle_wallops, min_params=1),
    "WHOWAS": Command(handle_whowas),
    "AUTHENTICATE": Command(handle_authenticate, min_params=1, before_registration=True),
    "AWAY": Command(handle_away),
    "CAP": Command(handle_cap, min_params=1, before_registration=True),
    "INVITE": Command(handle_invite, min_params=0),
    "ISON": Command(handle_ison, min_params=1),
    "JOIN": Command(handle_join, min_params=1),
    "KICK": Command(handle_kick, min_params=2),
    "LIST": Command(handle_list),
    "LUSERS": Command(handle_lusers),
    "MODE": Command(handle_mode, min_params=1),
    "MONITOR": Command(handle_monitor, min_params=1),
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
    "REDACT": Command(handle_redact, min_params=2),
    "REGISTER": Command(handle_register, min_params=3, before_registration=True),
    "SETNAME": Command(handle_setname, min_params=1),
    "TAGMSG": Command(handle_tagmsg, min_params=1),
    "TOPIC": Command(handle_topic, min_params=1),
    "USER": Command(handle_user, min_params=4, before_registration=True),
    "USERHOST": Command(handle_userhost, min_params=1),
    "VERIFY": Command(handle_verify, min_params=2, before_registration=True),
    "VERSION": Command(handle_version),
    "WHO": Command(handle_who),
    "WHOIS": Command(handle_whois),
    **{alias: Command(handle_alias, min_params=1) for alias in ALIASES},
}
