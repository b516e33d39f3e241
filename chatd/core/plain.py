"""Plain mode: the classroom protocol, a name line and then one message per line.

A plain client is a member of the plain channel (``#lobby``) under a nick made
from its name. IRC members see its lines as PRIVMSGs; it sees theirs as
``name: text`` lines, and joins, parts and quits as ``* ...`` lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.client import Mode
from chatd.core.event import CODEC_PLAIN
from chatd.protocol.casemap import irc_lower, nick_from_plain_name
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

PLAIN_USER = "plain"


def unique_nick(hub: Hub, wanted: str) -> str:
    """``wanted`` if free, else ``wanted2``, ``wanted3``… cut to fit NICKLEN."""
    if hub.find_client(wanted) is None:
        return wanted
    suffix = 2
    while True:
        tail = str(suffix)
        candidate = wanted[: 32 - len(tail)] + tail
        if irc_lower(candidate) not in hub.clients_by_key:
            return candidate
        suffix += 1


def start_plain(hub: Hub, client: Client, name: str) -> None:
    """Make an undecided connection a plain client named after its first line."""
    client.mode = Mode.PLAIN
    client.codec = CODEC_PLAIN
    client.user = PLAIN_USER
    client.realname = "plain-mode client"
    hub.claim_nick(client, unique_nick(hub, nick_from_plain_name(name)))
    hub.mark_registered(client)
    channel_name = hub.config.plain_channel
    others = len(hub.find_channel(channel_name).members) if hub.find_channel(channel_name) else 0
    client.send(f"* Welcome, {client.nick}: you are in {channel_name} with {others} others\n".encode())
    hub.join(client, channel_name)


def handle_plain_line(hub: Hub, client: Client, text: str) -> None:
    """A line from a plain client is a message to the plain channel; empty lines are ignored."""
    text = text.replace("\r", "").replace("\0", "")
    if not text.strip():
        return
    channel = client.channels.get(irc_lower(hub.config.plain_channel))
    if channel is None:
        client.send(f"* You are not in {hub.config.plain_channel}\n".encode())
        return
    event = hub.send_to_channel(
        channel,
        format_message("PRIVMSG", channel.name, text, source=client.prefix),
        f"{client.nick}: {text}",
        skip=client,
    )
    hub.record(channel, event)
    if hub.cluster is not None:
        hub.cluster.channel_message(client, channel, event)
