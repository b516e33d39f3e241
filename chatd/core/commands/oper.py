"""Server operators: OPER, KILL, WALLOPS. Credentials come from the config file as scrypt hashes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.client import Client
from chatd.core.passwords import verify_password
from chatd.core.users import deliver_wallops, kill, set_user_mode
from chatd.protocol import numerics as n
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.hub import Hub


def _is_operator(hub: Hub, client: Client) -> bool:
    if "o" in client.user_modes:
        return True
    hub.reply(client, n.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator")
    return False


# OPER <name> <password>
def handle_oper(hub: Hub, client: Client, message: Message) -> None:
    stored = hub.config.operators.get(message.params[0])
    if stored is None:
        hub.reply(client, n.ERR_NOOPERHOST, "No O-lines for your host")
        return
    if not verify_password(message.params[1], stored):
        hub.reply(client, n.ERR_PASSWDMISMATCH, "Password incorrect")
        return
    if set_user_mode(hub, client, "o", True):
        hub.send_line(client, format_message("MODE", client.nick or "", "+o", source=hub.config.name))
    hub.reply(client, n.RPL_YOUREOPER, "You are now an IRC operator")


# KILL <nick> :<reason>
def handle_kill(hub: Hub, client: Client, message: Message) -> None:
    if not _is_operator(hub, client):
        return
    target = hub.find_client(message.params[0])
    if target is None or not target.registered:
        hub.reply(client, n.ERR_NOSUCHNICK, message.params[0], "No such nick/channel")
        return
    reason = f"Killed ({client.nick} ({message.param(1) or 'no reason'}))"
    if target.node is not None and hub.cluster is not None:
        hub.cluster.killed(client, target, reason)  # its own node ends it; everyone then sees the QUIT
        return
    kill(hub, target, reason, client.prefix)


# WALLOPS :<text>
def handle_wallops(hub: Hub, client: Client, message: Message) -> None:
    if not _is_operator(hub, client):
        return
    line = format_message("WALLOPS", message.params[0], source=client.prefix)
    deliver_wallops(hub, line)
    if hub.cluster is not None:
        hub.cluster.wallops(client, line)
