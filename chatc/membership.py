"""Who is where: JOIN, PART, KICK, QUIT, NICK, TOPIC, MODE prefixes and the NAMES, TOPIC and WHO replies.

These handlers are part of ``ClientState`` (``chatc/state.py`` dispatches to them and keeps their
fields); they change buffers only through ``BufferModel`` events. Invariants of this part:
- A channel's member list is what the last NAMES reply said, changed since by JOIN, PART, KICK,
  QUIT, NICK and MODE; lines replayed from history never change it.
- ``wanted_channels`` gains a channel when we join it and loses it when we part or are kicked.
- Away states are kept only for nicks still seen in some channel, so the map cannot grow forever.
- A WHO we sent ourselves (on join, with away-notify) is read quietly; the user's own WHO is shown.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatc.buffers import (
    SERVER_KEY,
    BufferRenamed,
    ChannelEntered,
    ChannelLeft,
    MemberAdded,
    MemberRemoved,
    MemberRenamed,
    MembersSet,
    PrefixSet,
    TopicSet,
)
from chatc.events import (
    Event,
    Joined,
    NickChanged,
    Parted,
    Quit,
    ServerText,
    TopicChanged,
    send_line,
)
from chatc.replies import show_numeric
from chatc.text import nick_of, safe_text
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatc.state import ClientState


def handle_join(state: ClientState, message: Message) -> list[Event]:
    nick = nick_of(message.source)
    events: list[Event] = []
    for channel in message.param(0).split(","):
        if not channel:
            continue
        buf = state.open_buffer(channel)
        own = state.is_me(nick)
        if own:
            state.model.apply(ChannelEntered(irc_lower(channel)))
            state.wanted_channels[buf.key] = channel
        state.model.apply(MemberAdded(irc_lower(channel), irc_lower(nick), nick))
        state.add_line(buf, "join", f"{nick} has joined {channel}", nick, own=own)
        events.append(Joined(buf.name, safe_text(nick), own))
        if own and "away-notify" in state.caps:
            # away-notify only reports changes; who is away already, a WHO tells (read quietly).
            state._quiet_who.add(buf.key)
            events.extend(send_line("WHO", channel))
    return events


def _left(state: ClientState, channel: str, nick: str, reason: str, kicked_by: str = "") -> list[Event]:
    buf = state.buffer(channel)
    own = state.is_me(nick)
    if buf is None:
        return []
    state.model.apply(MemberRemoved(irc_lower(channel), irc_lower(nick)))
    if own:
        state.model.apply(ChannelLeft(irc_lower(channel)))
        state.wanted_channels.pop(buf.key, None)
    if kicked_by:
        text = f"{nick} was kicked from {buf.name} by {kicked_by}" + (f" ({reason})" if reason else "")
    else:
        text = f"{nick} has left {buf.name}" + (f" ({reason})" if reason else "")
    state.add_line(buf, "part", text, nick, own=own)
    forget_absent_away(state)
    return [Parted(buf.name, safe_text(nick), safe_text(reason), own, safe_text(kicked_by))]


def handle_part(state: ClientState, message: Message) -> list[Event]:
    events: list[Event] = []
    for channel in message.param(0).split(","):
        events.extend(_left(state, channel, nick_of(message.source), message.param(1)))
    return events


def handle_kick(state: ClientState, message: Message) -> list[Event]:
    return _left(state, message.param(0), message.param(1), message.param(2), nick_of(message.source))


def handle_quit(state: ClientState, message: Message) -> list[Event]:
    nick = nick_of(message.source)
    key = irc_lower(nick)
    reason = message.param(0)
    channels = []
    for buf_key, buf in state.buffers.items():
        if key in buf.nicks or (buf.kind == "query" and buf.key == key):
            state.model.apply(MemberRemoved(buf_key, key))
            state.add_line(buf, "quit", f"{nick} has quit" + (f" ({reason})" if reason else ""), nick)
            if buf.kind == "channel":
                channels.append(buf.name)
    state.away_nicks.pop(key, None)
    return [Quit(safe_text(nick), safe_text(reason), tuple(channels))]


def handle_nick(state: ClientState, message: Message) -> list[Event]:
    old = nick_of(message.source)
    new = message.param(0)
    if not old or not new:
        return []
    old_key, new_key = irc_lower(old), irc_lower(new)
    own = state.is_me(old)
    if old_key in state.away_nicks:
        state.away_nicks[new_key] = state.away_nicks.pop(old_key)
    if own:
        state.nick = new
        state.wanted_nick = new
    text = f"You are now known as {new}" if own else f"{old} is now known as {new}"
    for buf_key, buf in list(state.buffers.items()):
        if old_key in buf.nicks:
            state.model.apply(MemberRenamed(buf_key, old_key, new_key, new))
            state.add_line(buf, "nick", text, new, own=own)
        elif own and buf.kind != "channel":  # the server buffer and every query: we are in each of them
            state.add_line(buf, "nick", text, new, own=True)
    query = state.buffers.get(old_key)
    if query is not None and query.kind == "query" and (new_key == old_key or new_key not in state.buffers):
        state.model.apply(BufferRenamed(old_key, new_key, safe_text(new)))
        state.add_line(query, "nick", f"{old} is now known as {new}", new)
    return [NickChanged(safe_text(old), safe_text(new), own)]


def handle_topic(state: ClientState, message: Message) -> list[Event]:
    buf = state.open_buffer(message.param(0))
    by = nick_of(message.source)
    state.model.apply(TopicSet(irc_lower(message.param(0)), safe_text(message.param(1))))
    state.add_line(buf, "topic", f"{by} changed the topic to: {message.param(1)}", by)
    return [TopicChanged(buf.name, buf.topic, safe_text(by))]


def handle_mode(state: ClientState, message: Message) -> list[Event]:
    target = message.param(0)
    by = nick_of(message.source) or "server"
    changes = " ".join(message.params[1:])
    if state.is_channel(target):
        buf = state.open_buffer(target)
        _apply_prefix_modes(state, irc_lower(target), message.params[1:])
    else:
        buf = state.buffers[SERVER_KEY]
    state.add_line(buf, "mode", f"{by} sets mode {changes} on {target}", by)
    return [ServerText(buf.name, safe_text(f"mode {changes} {target}"))]


def _apply_prefix_modes(state: ClientState, channel_key: str, params: tuple[str, ...]) -> None:
    """Keep the @/+ shown in the nick list in step with +o/-o/+v/-v."""
    buf = state.buffers[channel_key]
    if not params:
        return
    args = list(params[1:])
    adding = True
    for char in params[0]:
        if char in "+-":
            adding = char == "+"
            continue
        if char in state.prefix_modes:
            if not args:
                return
            key = irc_lower(args.pop(0))
            symbol = state.prefix_symbols[state.prefix_modes.index(char)]
            current = buf.prefixes.get(key, "").replace(symbol, "")
            if adding:
                current = "".join(s for s in state.prefix_symbols if s in current + symbol)
            state.model.apply(PrefixSet(channel_key, key, current))
        elif char in "bkelIjf" and args and (adding or char != "l"):
            args.pop(0)  # list and parameter modes consume an argument we do not track


def handle_names_reply(state: ClientState, message: Message) -> list[Event]:
    key = irc_lower(message.param(2))
    collected = state._names_incoming.setdefault(key, {})
    for entry in message.param(3).split():
        bare = entry.lstrip(state.prefix_symbols)
        if bare:
            collected[nick_of(bare)] = entry[: len(entry) - len(bare)]
    return []


def handle_end_of_names(state: ClientState, message: Message) -> list[Event]:
    channel = message.param(1)
    collected = state._names_incoming.pop(irc_lower(channel), {})
    buf = state.buffer(channel)
    if buf is not None and buf.kind == "channel" and buf.joined:
        nicks = {irc_lower(nick): nick for nick in collected}
        prefixes = {irc_lower(nick): prefix for nick, prefix in collected.items() if prefix}
        state.model.apply(MembersSet(irc_lower(channel), nicks, prefixes))
        shown = buf.sorted_nicks()
    else:
        buf = state.active
        shown = [prefix[:1] + nick for nick, prefix in collected.items()]
    text = f"Names on {channel} ({len(shown)}): " + " ".join(shown)
    state.add_line(buf, "info", text)
    return [ServerText(buf.name, safe_text(text))]


def handle_topic_reply(state: ClientState, message: Message) -> list[Event]:
    buf = state.open_buffer(message.param(1))
    key = irc_lower(message.param(1))
    if message.command == n.RPL_TOPIC:
        state.model.apply(TopicSet(key, safe_text(message.param(2))))
        state.add_line(buf, "topic", f"Topic for {buf.name}: {message.param(2)}")
        return [TopicChanged(buf.name, buf.topic, "")]
    state.model.apply(TopicSet(key, ""))
    state.add_line(buf, "topic", f"No topic is set for {buf.name}")
    return []


def handle_topic_who_time(state: ClientState, message: Message) -> list[Event]:
    buf = state.buffer(message.param(1))
    if buf is not None:
        when = message.param(3)
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(when))) if when.isdigit() else when
        state.add_line(buf, "topic", f"Topic set by {nick_of(message.param(2))} on {stamp}")
    return []


def handle_who_reply(state: ClientState, message: Message) -> list[Event]:
    """A WHO line: from our own WHO on join it only updates away states (``G`` flag); else it is shown."""
    if irc_lower(message.param(1)) not in state._quiet_who:
        return show_numeric(state, message)
    key = irc_lower(message.param(5))
    if message.param(6).startswith("G"):
        state.away_nicks.setdefault(key, "")
    elif message.param(6).startswith("H"):
        state.away_nicks.pop(key, None)
    return []


def handle_end_of_who(state: ClientState, message: Message) -> list[Event]:
    key = irc_lower(message.param(1))
    if key not in state._quiet_who:
        return show_numeric(state, message)
    state._quiet_who.discard(key)
    return []


def forget_absent_away(state: ClientState) -> None:
    """Away states are only kept for nicks still seen in some channel, so the map cannot grow forever."""
    present = {key for buf in state.buffers.values() for key in buf.nicks}
    for key in [key for key in state.away_nicks if key not in present]:
        del state.away_nicks[key]
