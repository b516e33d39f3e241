"""Delivery of text: PRIVMSG and NOTICE to channels and nicks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.client import Client, Mode
from chatd.protocol import numerics as n
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.hub import Hub

CTCP_ACTION_PREFIX = "\x01ACTION "


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
            if not channel.can_speak(client):
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
