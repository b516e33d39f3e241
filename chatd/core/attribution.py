"""Who sent it: the sender's account on what others are shown (IRCv3 ``account-tag``,
``extended-join``), live and from history.

Invariants:
- A live event from a logged-in user carries its account (``Delivery.account``); who is
  shown it is the codec's business (``chatd.core.event``): only clients that negotiated
  ``account-tag`` get the ``account`` tag, and clients without it get the same bytes as
  if there were none.
- A JOIN carries its extended-join form (``Delivery.extended_line``) beside the short
  one, is delivered to each member in the form it negotiated, and is stored in the
  extended form. What comes back from history goes through ``stored_line`` and
  ``add_stored_tags``, so a replay or CHATHISTORY shows the same forms and tags a live
  message would.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chatd.protocol.message import format_message, parse

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.client import Client
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub
    from chatd.core.ports import StoredEntry


def extended_join_line(client: Client, channel: Channel) -> str:
    """``:prefix JOIN #chan <account|*> :<realname>`` (extended-join)."""
    return format_message("JOIN", channel.name, client.account or "*", client.realname, source=client.prefix)


def announce_join(hub: Hub, client: Client, channel: Channel) -> Delivery:
    """Show the channel's members (``client`` included) that it joined, each in its form;
    members with away-notify also learn that it is away. Returns the JOIN, to be recorded."""
    joined = hub.event(
        format_message("JOIN", channel.name, source=client.prefix),
        f"* {client.plain_name} has joined {channel.name}",
        account=client.account,
    )
    joined.extended_line = extended_join_line(client, channel)
    hub.deliver(channel, joined, None)
    if client.away is not None:
        away = hub.event(format_message("AWAY", client.away, source=client.prefix), None, account=client.account)
        for member in channel.members:
            if member is not client and "away-notify" in member.caps:
                hub.send_event(member, away)
    return joined


def stored_line(entry: StoredEntry, client: Client) -> str:
    """The line of a history entry as ``client`` takes it: a JOIN stored in its extended form
    is shortened for clients without extended-join."""
    line = entry.line
    if " JOIN " not in line or "extended-join" in client.caps:
        return line
    message = parse(line)
    if message.command != "JOIN" or len(message.params) < 2:
        return line
    return format_message("JOIN", message.params[0], source=message.source)


def add_stored_tags(entry: StoredEntry, client: Client, tags: dict[str, str]) -> None:
    """Add to ``tags`` what ``client`` negotiated to see of a history entry: its sender's
    account (account-tag) and the client-only tags it was sent with (message-tags)."""
    account = entry.account
    if account and "account-tag" in client.caps:
        tags["account"] = account
    if entry.tags and "message-tags" in client.caps:
        tags.update(json.loads(entry.tags))
