"""IRCv3 ``draft/chathistory``: clients page through a channel's past.

CHATHISTORY LATEST <target> <*|ref> <limit> | BEFORE <target> <ref> <limit> |
AFTER <target> <ref> <limit> | AROUND <target> <ref> <limit> |
BETWEEN <target> <ref> <ref> <limit> | TARGETS <timestamp> <timestamp> <limit>

A reference is ``timestamp=YYYY-MM-DDThh:mm:ss.sssZ`` or ``msgid=<id>``. Answers
always come in a batch (``chathistory`` or ``draft/chathistory-targets``), empty
when nothing matches; problems are ``FAIL CHATHISTORY <code>``. Only channels the
client is in can be read, and its own private conversations: by account between
logged-in users, by nick with --history-private (``chatd.core.conversations``);
TARGETS lists both channels and the accounts it has conversations with. Events, and the
TAGMSGs history keeps (``chatd.core.kept_tagmsg``), come only with draft/event-playback.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatd.core.attribution import add_stored_tags, stored_line
from chatd.core.client import Client
from chatd.core.conversations import private_conversation, recent_correspondents
from chatd.core.event import server_time
from chatd.core.kept_tagmsg import TAGMSG_KIND, shown_tagmsgs
from chatd.core.limits import CHATHISTORY_MAX
from chatd.core.permanent import history_floor
from chatd.core.ports import StoredEntry
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message, format_tags

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.hub import Hub

SUBCOMMANDS = ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS")


def _fail(hub: Hub, client: Client, code: str, *context: str) -> None:
    hub.send_line(client, format_message("FAIL", "CHATHISTORY", code, *context, source=hub.config.name))


def _parse_timestamp(text: str) -> float | None:
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        try:
            moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return None
    return moment.replace(tzinfo=datetime.UTC).timestamp()


TIMESTAMP_GRAIN_S = 0.001
"""Times are shown to the millisecond (``server_time``) but kept finer: a message shown as T
may lie anywhere in [T, T + 1 ms)."""


def _resolve(hub: Hub, channel_key: str, reference: str, *, lower: bool = False) -> float | None:
    """A message reference as a time; None when it is malformed or names no message.

    A ``timestamp=`` used as a lower bound (``lower``) excludes every message shown with
    that very time, as a client holding a message's time tag means "after this one"."""
    kind, _, value = reference.partition("=")
    if kind == "timestamp":
        moment = _parse_timestamp(value)
        return _excluding_shown(moment) if moment is not None and lower else moment
    if kind == "msgid" and value and hub.history is not None:
        return hub.history.find_time(channel_key, value)
    return None


def _excluding_shown(moment: float) -> float:
    """A lower bound from a shown time ``moment``: past every message shown with it."""
    return math.nextafter(moment + TIMESTAMP_GRAIN_S, -math.inf)


def _send_batch(hub: Hub, client: Client, target: str, entries: Sequence[StoredEntry]) -> None:
    hub._batch_counter += 1
    batch_id = f"C{hub._batch_counter}"
    hub.send_line(client, format_message("BATCH", f"+{batch_id}", "chathistory", target, source=hub.config.name))
    with_msgid = "message-tags" in client.caps
    tagmsgs = shown_tagmsgs(client.caps)
    for entry in entries:
        if entry.kind == TAGMSG_KIND and not tagmsgs:
            continue
        tags = {"batch": batch_id, "time": server_time(entry.time)}
        if with_msgid:
            tags["msgid"] = entry.msgid
        add_stored_tags(entry, client, tags)
        hub.send_line(client, f"@{format_tags(tags)} {stored_line(entry, client)}")
    hub.send_line(client, format_message("BATCH", f"-{batch_id}", source=hub.config.name))


def _targets(hub: Hub, client: Client, message: Message) -> None:
    """The channels and conversations whose newest message lies between two times (in either
    order, both excluded), oldest first, each with that time, bare (spec and ergo). A target
    with a newer message than the window is not listed: it is found by a later window."""
    start, end = (_parse_timestamp(message.param(index).removeprefix("timestamp=")) for index in (1, 2))
    limit = message.param(3)
    if start is None or end is None or not limit.isdigit():
        _fail(hub, client, "INVALID_PARAMS", "TARGETS", "Invalid timestamps or limit")
        return
    low, high = _excluding_shown(min(start, end)), max(start, end)
    assert hub.history is not None
    found = []
    for channel in client.channels.values():
        floor = math.nextafter(history_floor(hub, channel), -math.inf)
        when = hub.history.latest_time(channel.name_key, floor, math.inf)
        if when is not None and low < when < high:
            found.append((when, channel.name))
    found.extend(recent_correspondents(hub, client, low, high))
    found.sort()
    hub._batch_counter += 1
    batch_id = f"C{hub._batch_counter}"
    hub.send_line(client, format_message("BATCH", f"+{batch_id}", "draft/chathistory-targets", source=hub.config.name))
    for when, name in found[: min(int(limit), CHATHISTORY_MAX)]:
        hub.send_line(
            client,
            f"@batch={batch_id} "
            + format_message("CHATHISTORY", "TARGETS", name, server_time(when), source=hub.config.name),
        )
    hub.send_line(client, format_message("BATCH", f"-{batch_id}", source=hub.config.name))


def _conversation(hub: Hub, client: Client, target: str) -> tuple[str, str, float] | None:
    """The history key, display name and earliest readable time of what a client may read: a
    channel it is in (from its current life on, unless it is permanent), or its private
    conversation with a nick (chatd.core.conversations: by account, or by nick)."""
    channel: Channel | None = client.channels.get(irc_lower(target))
    if channel is not None:
        return channel.name_key, channel.name, history_floor(hub, channel)
    if target[:1] != "#" and target:
        return private_conversation(hub, client, target)
    return None


# CHATHISTORY <subcommand> ...
def handle_chathistory(hub: Hub, client: Client, message: Message) -> None:
    sub = message.params[0].upper()
    if sub not in SUBCOMMANDS:
        _fail(hub, client, "INVALID_PARAMS", sub, "Unknown subcommand")
        return
    if hub.history is None:
        _fail(hub, client, "MESSAGE_ERROR", sub, "History is not kept on this server")
        return
    if sub == "TARGETS":
        _targets(hub, client, message)
        return
    target = message.param(1)
    conversation = _conversation(hub, client, target)
    if conversation is None:
        _fail(hub, client, "INVALID_TARGET", sub, target or "*", "Messages could not be retrieved")
        return
    key, name, floor = conversation
    # Entries are strictly after ``low``: the floor itself is readable.
    low = math.nextafter(floor, -math.inf)
    limit_text = message.param(4) if sub == "BETWEEN" else message.param(3)
    if not limit_text.isdigit() or int(limit_text) <= 0:
        _fail(hub, client, "INVALID_PARAMS", sub, "Invalid limit")
        return
    limit = min(int(limit_text), CHATHISTORY_MAX)
    history = hub.history
    events = "draft/event-playback" in client.caps
    first_ref = message.param(2)
    resolved = (
        low if sub == "LATEST" and first_ref == "*" else _resolve(hub, key, first_ref, lower=sub in ("LATEST", "AFTER"))
    )
    if resolved is None:
        _fail(hub, client, "INVALID_PARAMS", sub, "Invalid message reference")
        return
    after = max(resolved, low)
    if sub == "LATEST":
        entries = history.between(key, after, math.inf, limit, newest=True, events=events)
    elif sub == "BEFORE":
        entries = history.between(key, low, after, limit, newest=True, events=events)
    elif sub == "AFTER":
        entries = history.between(key, after, math.inf, limit, newest=False, events=events)
    elif sub == "AROUND":
        # Half before the reference, the rest from it on (the referenced message first).
        earlier = history.between(key, low, after, limit // 2, newest=True, events=events)
        remaining = limit - len(earlier)
        later = history.between(key, max(after - 1e-6, low), math.inf, remaining, newest=False, events=events)
        entries = [*earlier, *later]
    else:  # BETWEEN: both bounds excluded, whichever order they come in
        second_ref = message.param(3)
        other = _resolve(hub, key, second_ref)
        if other is None:
            _fail(hub, client, "INVALID_PARAMS", sub, "Invalid message reference")
            return
        backwards = resolved > other
        start, start_ref, end = (other, second_ref, resolved) if backwards else (resolved, first_ref, other)
        if start_ref.startswith("timestamp="):
            start = _excluding_shown(start)
        entries = history.between(key, max(start, low), end, limit, newest=backwards, events=events)
    _send_batch(hub, client, name, entries)
