"""REDACT (IRCv3 draft/message-redaction): a message taken back by its sender, or removed by a
channel operator.

The message is looked up in history, so a server keeping none, or a message older than what it
keeps, cannot be redacted (``UNKNOWN_MSGID``). Who sent it is read from its history entry: the
account it was sent from, else the full ``nick!user@host``. A redaction leaves the history for
good, on every node of a network, and reaches the members (or the other party) with the
capability; everyone else is told nothing, as the specification asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.conversations import private_keys
from chatd.core.kept_tagmsg import TAGMSG_KIND
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.client import Client
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub
    from chatd.history.history import HistoryEntry

REDACTION_CAP = "draft/message-redaction"
REDACTABLE_KINDS = frozenset({"message", TAGMSG_KIND})
"""PRIVMSG, NOTICE and TAGMSG entries; a JOIN or a TOPIC is not a message to take back."""


INVALID_TARGET = "INVALID_TARGET"
UNKNOWN_MSGID = "UNKNOWN_MSGID"
FORBIDDEN = "REDACT_FORBIDDEN"


def _fail(hub: Hub, client: Client, code: str, *context: str) -> None:
    texts = {
        INVALID_TARGET: f"You cannot delete messages from {context[0]}",
        UNKNOWN_MSGID: "This message does not exist or is too old",
        FORBIDDEN: "You are not authorised to delete this message",
    }
    hub.send_line(client, format_message("FAIL", "REDACT", code, *context, texts[code], source=hub.config.name))


def sent_by(entry: HistoryEntry, client: Client) -> bool:
    """Whether ``client`` sent the message of ``entry``: by account when it was sent from one."""
    if entry.account is not None:
        return client.account is not None and irc_lower(entry.account) == irc_lower(client.account)
    return entry.line.startswith(f":{client.prefix} ")


def _found(hub: Hub, keys: list[str], msgid: str) -> HistoryEntry | None:
    history = hub.history
    if history is None:
        return None
    for key in keys:
        entry = history.entry(key, msgid)
        if entry is not None and entry.kind in REDACTABLE_KINDS:
            return entry
    return None


# REDACT <target> <msgid> [:<reason>]
def handle_redact(hub: Hub, client: Client, message: Message) -> None:
    target_name, msgid = message.params[0], message.params[1]
    reason = message.param(2)
    if target_name[:1] == "#":
        channel = hub.find_channel(target_name)
        if channel is None or client not in channel.members:
            _fail(hub, client, INVALID_TARGET, target_name)
            return
        found = _found(hub, [channel.name_key], msgid)
        if found is None:
            _fail(hub, client, UNKNOWN_MSGID, channel.name, msgid)
            return
        if not sent_by(found, client) and client not in channel.operators:
            _fail(hub, client, FORBIDDEN, channel.name, msgid)
            return
        redact_in_channel(hub, client, channel, msgid, reason)
        return
    target = hub.find_client(target_name)
    if target is None or not target.registered:
        _fail(hub, client, INVALID_TARGET, target_name)
        return
    found = _found(hub, private_keys(hub, client, target), msgid)
    if found is None:
        _fail(hub, client, UNKNOWN_MSGID, target.nick or "", msgid)
        return
    if not sent_by(found, client):
        _fail(hub, client, FORBIDDEN, target.nick or "", msgid)
        return
    redact_private(hub, client, target, msgid, reason)


def _event(hub: Hub, client: Client, target: str, msgid: str, reason: str) -> Delivery:
    params = (target, msgid, reason) if reason else (target, msgid)
    return hub.event(format_message("REDACT", *params, source=client.prefix), None, account=client.account)


def redact_in_channel(hub: Hub, client: Client, channel: Channel, msgid: str, reason: str) -> None:
    event = _event(hub, client, channel.name, msgid, reason)
    deliver_redaction(hub, channel, msgid, event, skip=client)
    if "echo-message" in client.caps:
        hub.send_event(client, event)
    if hub.cluster is not None:
        hub.cluster.redacted(client, channel, None, msgid, event)


def deliver_redaction(hub: Hub, channel: Channel, msgid: str, event: Delivery, skip: Client | None = None) -> None:
    """Forget the message here and tell this node's members that negotiated the capability."""
    if hub.history is not None:
        hub.history.redact(channel.name_key, msgid)
    for member in list(channel.members):
        if member is not skip and member.node is None and REDACTION_CAP in member.caps:
            hub.send_event(member, event)


def redact_private(hub: Hub, client: Client, target: Client, msgid: str, reason: str) -> None:
    event = _event(hub, client, target.nick or "", msgid, reason)
    forget_private(hub, client, target, msgid)
    if target.node is not None and hub.cluster is not None:
        hub.cluster.redacted(client, None, target, msgid, event)
    elif target is not client and REDACTION_CAP in target.caps:
        hub.send_event(target, event)
    if "echo-message" in client.caps:
        hub.send_event(client, event)


def forget_private(hub: Hub, sender: Client, target: Client, msgid: str) -> None:
    """A private message leaves this node's history, under every key its conversation is kept by."""
    if hub.history is not None:
        for key in private_keys(hub, sender, target):
            hub.history.redact(key, msgid)
