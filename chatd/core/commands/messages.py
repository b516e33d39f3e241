"""Delivery of text: PRIVMSG and NOTICE to channels and nicks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.channel import CTCP_ACTION, Channel
from chatd.core.client import BOT_MODE, Client
from chatd.core.kept_tagmsg import TAGMSG_KIND, tagmsg_kept
from chatd.core.limits import MAX_MESSAGE_TARGETS, STATUSMSG_PREFIXES
from chatd.core.services import find_service
from chatd.protocol import numerics as n
from chatd.protocol.framing import WIRE, decode_line
from chatd.protocol.message import Message, format_message, format_tags

if TYPE_CHECKING:
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub



def _plain_rendering(command: str, nick: str, text: str) -> str:
    if text.startswith(CTCP_ACTION):
        return f"* {nick} {text[len(CTCP_ACTION) :].rstrip(chr(1))}"
    if command == "NOTICE":
        return f"-{nick}- {text}"
    return f"{nick}: {text}"


MAX_CLIENT_TAGS_BYTES = 4094
MAX_LINE_BYTES = 510
"""A relayed line, source prefix included, without its tags and CRLF (RFC 1459's 512 with CRLF)."""


def _text_line(command: str, target: str, params: tuple[str, ...], source: str) -> str:
    """A relayed PRIVMSG/NOTICE (or TAGMSG, with no params): the text always a trailing
    parameter, ``:`` and all, as servers write it and as clients that split on `` :`` expect."""
    if not params:
        return format_message(command, target, source=source)
    return f"{format_message(command, target, source=source)} :{params[0]}"


def fit_line(line: str) -> str:
    """``line`` cut to ``MAX_LINE_BYTES`` at a character boundary: a client may send 510 bytes
    of its own, and the source prefix the server adds must not push the relayed copy past
    what every receiver accepts (the text, the last parameter, is what gets shorter)."""
    if len(line) <= MAX_LINE_BYTES // 4:  # the common case: short enough in any encoding
        return line
    data = line.encode(errors=WIRE)
    if len(data) <= MAX_LINE_BYTES:
        return line
    cut = MAX_LINE_BYTES
    for _ in range(3):  # back to the start of a UTF-8 character, so no valid one is split
        if data[cut] & 0xC0 != 0x80:
            break
        cut -= 1
    return data[:cut].decode("utf-8", "surrogateescape")


def client_only_tags(message: Message) -> dict[str, str]:
    """The ``+name`` tags a client attached, to relay to tag-aware recipients (within 4094 bytes)."""
    tags = {key: value for key, value in message.tags.items() if key.startswith("+") and key[1:]}
    while tags and len(format_tags(tags).encode(errors=WIRE)) > MAX_CLIENT_TAGS_BYTES:
        tags.popitem()
    return tags


def sender_tags(client: Client, message: Message | None = None) -> dict[str, str] | None:
    """The tags a message of ``client`` carries to tag-aware recipients: the ``+`` tags it
    attached, and the valueless ``bot`` tag when it is in bot mode (IRCv3 bot-mode: set by the
    server only, so a client cannot pass itself off as one, nor hide being one)."""
    tags = client_only_tags(message) if message is not None and message.tags else None
    if BOT_MODE in client.user_modes:
        tags = {**(tags or {}), "bot": ""}
    return tags


def _relay(hub: Hub, client: Client, message: Message, *, errors: bool, tags_only: bool = False) -> None:
    """PRIVMSG, NOTICE and TAGMSG: one delivery path; NOTICE never provokes an error reply.

    Channel messages reach every member but the sender, who gets the same event
    back when it negotiated echo-message; TAGMSG reaches only tag-aware clients.
    """
    if not message.params or not message.params[0]:
        if errors:
            hub.reply(client, n.ERR_NORECIPIENT, f"No recipient given ({message.command})")
        return
    text = message.param(1)
    if not tags_only and not text:
        if errors:
            hub.reply(client, n.ERR_NOTEXTTOSEND, "No text to send")
        return
    params = () if tags_only else (text,)
    plain_text = None if tags_only else _plain_rendering(message.command, client.plain_name, text)
    tags = sender_tags(client, message)
    echo = "echo-message" in client.caps
    targets = message.params[0].split(",")
    if len(targets) > MAX_MESSAGE_TARGETS:
        if errors:
            hub.reply(client, n.ERR_TOOMANYTARGETS, targets[MAX_MESSAGE_TARGETS], "Too many targets")
        targets = targets[:MAX_MESSAGE_TARGETS]
    for target_name in targets:
        status = target_name[0] if target_name[:1] in STATUSMSG_PREFIXES and target_name[1:2] == "#" else ""
        if target_name[len(status) : len(status) + 1] == "#":
            channel = hub.find_channel(target_name[len(status) :])
            if channel is None:
                if errors:
                    hub.reply(client, n.ERR_NOSUCHCHANNEL, target_name, "No such channel")
                continue
            if not channel.can_speak(client):
                if errors:
                    hub.reply(client, n.ERR_CANNOTSENDTOCHAN, status + channel.name, "Cannot send to channel")
                continue
            if channel.refuses_text(text):
                if errors:
                    hub.reply(client, n.ERR_CANNOTSENDTOCHAN, status + channel.name, "Cannot send CTCP to channel (+C)")
                continue
            line = fit_line(_text_line(message.command, status + channel.name, params, client.prefix))
            if status:
                _deliver_to_status(hub, client, channel, status, line, plain_text, tags, echo=echo, tags_only=tags_only)
            else:
                _deliver_to_channel(hub, client, channel, line, plain_text, tags, echo=echo, tags_only=tags_only)
            continue
        service = find_service(target_name)
        if service is not None:
            if message.command == "PRIVMSG":  # never a NOTICE: services do not answer those
                service.handler(hub, client, service, text)
            continue
        target = hub.find_client(target_name)
        if target is None or not target.registered:
            if errors:
                hub.reply(client, n.ERR_NOSUCHNICK, target_name, "No such nick/channel")
            continue
        event = hub.event(
            fit_line(_text_line(message.command, target.nick or "", params, client.prefix)),
            None if plain_text is None else f"[private] {plain_text}",
            tags,
            tags_only=tags_only,
            account=client.account,
        )
        hub.stats.messages += 1
        hub.stats.deliveries += target.node is None  # a user of another node: its node delivers
        if target is client:
            # To oneself: the copy as recipient is not part of a labeled response; the echo is.
            hub.send_event_unlabeled(target, event)
        elif target.node is not None and hub.cluster is not None:
            hub.cluster.private_message(client, target, event)
        else:
            hub.send_event(target, event)
        if echo:
            hub.send_event(client, event)
        hub.record_private(client, target, event)
        if errors and target.away is not None and not tags_only:
            hub.reply(client, n.RPL_AWAY, target.nick or "", target.away)


def _deliver_to_channel(
    hub: Hub,
    client: Client,
    channel: Channel,
    line: str,
    plain_text: str | None,
    tags: dict[str, str] | None,
    *,
    echo: bool,
    tags_only: bool = False,
) -> None:
    hub.stats.messages += 1
    event = hub.send_to_channel(channel, line, plain_text, client, tags, tags_only=tags_only, account=client.account)
    if echo:
        hub.send_event(client, event)
    if not tags_only:
        hub.record(channel, event)
    elif tagmsg_kept(tags):
        hub.record(channel, event, TAGMSG_KIND)
    if hub.cluster is not None:
        hub.cluster.channel_message(client, channel, event)


def _deliver_to_status(
    hub: Hub,
    client: Client,
    channel: Channel,
    status: str,
    line: str,
    plain_text: str | None,
    tags: dict[str, str] | None,
    *,
    echo: bool,
    tags_only: bool,
) -> None:
    """A STATUSMSG: to the members with ``status`` only, so it is kept out of the channel's
    history (which every member may read)."""
    hub.stats.messages += 1
    plain = None if plain_text is None else f"[{status}{channel.name}] {plain_text}"
    event = hub.event(line, plain, tags, tags_only=tags_only, account=client.account)
    deliver_to_status(hub, channel, status, event, skip=client)
    if echo:
        hub.send_event(client, event)
    if hub.cluster is not None:
        hub.cluster.status_message(client, channel, event, status)


def deliver_to_status(hub: Hub, channel: Channel, status: str, event: Delivery, skip: Client | None = None) -> None:
    """A STATUSMSG to this node's members with ``status`` (for the sender's node and the others)."""
    recipients = [member for member in channel.with_status(status) if member is not skip and member.node is None]
    hub.stats.deliveries += len(recipients)
    hub.generic_fanout(recipients, event, None)


FAST_PREFIXES = (b"PRIVMSG #", b"NOTICE #")
"""Lines that may take ``relay_to_channel_fast``: the bulk of a busy server's input."""


def relay_to_channel_fast(hub: Hub, client: Client, raw: bytes) -> bool:
    """Relay ``PRIVMSG #channel :text`` (or NOTICE) from a registered IRC client without
    parsing it into a ``Message``; False, having done nothing, for anything less plain.

    Parsing, dispatch and formatting cost more than the fan-out to a small channel, and
    nearly every line a busy server reads is one message to one channel. Whatever the
    general path would answer with an error (unknown channel, +n, +m, bans), or treat
    specially (several targets, no colon, odd spacing, NUL), is left to it, so both paths
    give the same result.
    """
    line = decode_line(raw)
    command, _, rest = line.partition(" ")
    target, _, text = rest.partition(" ")
    if text[:1] != ":" or len(text) < 2 or "," in target or "\0" in text or "\r" in text:
        return False
    text = text[1:]
    channel = hub.find_channel(target)
    if channel is None or not channel.can_speak(client) or channel.refuses_text(text):
        return False
    _deliver_to_channel(
        hub,
        client,
        channel,
        fit_line(f":{client.prefix} {command} {channel.name} :{text}"),
        _plain_rendering(command, client.plain_name, text),
        sender_tags(client),
        echo="echo-message" in client.caps,
    )
    return True


# PRIVMSG <target>{,<target>} :<text>
def handle_privmsg(hub: Hub, client: Client, message: Message) -> None:
    _relay(hub, client, message, errors=True)


# NOTICE <target>{,<target>} :<text>
def handle_notice(hub: Hub, client: Client, message: Message) -> None:
    _relay(hub, client, message, errors=False)


# TAGMSG <target>{,<target>}   (IRCv3 message-tags: tags with no text)
def handle_tagmsg(hub: Hub, client: Client, message: Message) -> None:
    _relay(hub, client, message, errors=True, tags_only=True)
