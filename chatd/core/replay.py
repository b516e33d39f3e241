"""Replay on join: a joining client is shown the channel's last messages, in the form it can take.

- With ``server-time`` they carry their original time (inside a ``chathistory`` batch when
  the client negotiated ``batch``, with their msgid under ``message-tags``).
- Without it, IRC clients get the time as a ``[HH:MM]`` prefix of the text, inside a CTCP
  ACTION (``\\x01ACTION [09:31] waves\\x01``), never in front of its ``\\x01``.
- Plain clients get ``[HH:MM] name: text``.
- Other CTCP requests (VERSION, PING, ...) are never replayed: a client would answer them.
- Only the channel's current life is replayed (``chatd.core.permanent.history_floor``).
- Kept TAGMSGs come only to clients shown them (``chatd.core.kept_tagmsg``).
- The sender's account tag, client-only tags and a JOIN's extended form follow the client's caps
  (``chatd.core.attribution``), as they would live.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.attribution import add_stored_tags, stored_line
from chatd.core.client import Dialect
from chatd.core.event import server_time
from chatd.core.kept_tagmsg import TAGMSG_KIND, shown_tagmsgs
from chatd.core.permanent import history_floor
from chatd.protocol.framing import WIRE
from chatd.protocol.message import format_message, format_tags, parse

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.client import Client
    from chatd.core.hub import Hub
    from chatd.core.ports import StoredEntry

CTCP_MARK = "\x01"
ACTION_PREFIX = "\x01ACTION "


def replayable(entry: StoredEntry) -> bool:
    """Everything but CTCP requests other than ACTION, which would make clients answer."""
    message = parse(entry.line)
    text = message.params[-1] if message.params else ""
    return not text.startswith(CTCP_MARK) or text.startswith(ACTION_PREFIX)


def stamped(text: str, when: float) -> str:
    """The text with a ``[HH:MM]`` prefix, inside a CTCP ACTION when it is one."""
    stamp = f"[{server_time(when)[11:16]}]"
    if text.startswith(ACTION_PREFIX):
        return f"{ACTION_PREFIX}{stamp} {text[len(ACTION_PREFIX):]}"
    return f"{stamp} {text}"


def replay_history(hub: Hub, client: Client, channel: Channel) -> None:
    if hub.history is None or hub.config.history_on_join <= 0:
        return
    entries = [
        entry
        for entry in hub.history.recent(
            channel.name_key,
            hub.config.history_on_join,
            events="draft/event-playback" in client.caps,
            since=history_floor(hub, channel),
        )
        if replayable(entry) and (entry.kind != TAGMSG_KIND or shown_tagmsgs(client.caps))
    ]
    if not entries:
        return
    if client.dialect is Dialect.PLAIN:
        for entry in entries:
            if entry.plain is not None:
                client.send(f"[{server_time(entry.time)[11:16]}] {entry.plain}\n".encode(errors=WIRE))
        return
    if "server-time" not in client.caps:
        for entry in entries:
            message = parse(entry.line)
            if message.command not in ("PRIVMSG", "NOTICE"):
                continue  # events are only asked for with draft/event-playback, which implies server-time
            text = stamped(message.params[-1], entry.time)
            hub.send_line(client, format_message(message.command, *message.params[:-1], text, source=message.source))
        return
    batch_id = ""
    if "batch" in client.caps:
        hub._batch_counter += 1
        batch_id = f"H{hub._batch_counter}"
        hub.send_line(
            client, format_message("BATCH", f"+{batch_id}", "chathistory", channel.name, source=hub.config.name)
        )
    for entry in entries:
        tags = {"time": server_time(entry.time)}
        if batch_id:
            tags["batch"] = batch_id
        if "message-tags" in client.caps:
            tags["msgid"] = entry.msgid
        add_stored_tags(entry, client, tags)
        hub.send_line(client, f"@{format_tags(tags)} {stored_line(entry, client)}")
    if batch_id:
        hub.send_line(client, format_message("BATCH", f"-{batch_id}", source=hub.config.name))
