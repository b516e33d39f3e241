"""What people say: PRIVMSG, NOTICE and CTCP, replayed history, AWAY, INVITE, ERROR and FAIL.

These handlers are part of ``ClientState`` (``chatc/state.py`` dispatches to them); they change
buffers only through ``BufferModel`` events. Invariants of this part:
- /ignore drops everything from a matching source (message, notice, action, CTCP, even its answer),
  never our own lines.
- Only the CTCP queries every client answers (VERSION, PING, CLIENTINFO) get an answer, and never
  one from history or from our own echo.
- A replayed line is shown muted, never changes a channel (members, topic, joined), never counts as
  unread, and is skipped when the buffer already shows its msgid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chatc.accounts import hide_password
from chatc.buffers import (
    SERVER_KEY,
    LineRedacted,
)
from chatc.events import (
    ErrorReply,
    Event,
    MessageReceived,
    ServerText,
    send_line,
)
from chatc.text import mentions, nick_of, safe_text
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatc.state import ClientState

CTCP_DELIM: Final = "\x01"


def handle_privmsg(state: ClientState, message: Message) -> list[Event]:
    sender = nick_of(message.source)
    if state.ignores.matches(message.source) and not state.is_me(sender):
        return []  # /ignore: no message, notice, action or CTCP (not even an answer) from them
    target = message.param(0)
    text = message.param(1)
    notice = message.command == "NOTICE"
    kind = "notice" if notice else "privmsg"
    events: list[Event] = []
    if text.startswith(CTCP_DELIM):
        body = text.strip(CTCP_DELIM)
        verb, _, argument = body.partition(" ")
        verb = verb.upper()
        if verb == "ACTION":
            kind, text = "action", argument
        elif notice:
            text = f"CTCP {verb} reply: {argument}"
        elif state.is_me(sender):
            return []  # echo-message returning our own CTCP query: nothing to answer or show
        else:
            events.extend(_ctcp_reply(sender, verb, argument))
            state.add_line(state.buffers[SERVER_KEY], "info", f"CTCP {verb} from {sender}")
            return events
    own = state.is_me(sender)
    if state.is_channel(target.lstrip(state.prefix_symbols)):
        buf = state.open_buffer(target.lstrip(state.prefix_symbols))
    elif not state.registered or "!" not in (message.source or "") or not sender:
        buf = state.buffers[SERVER_KEY]  # server notices, pre-registration AUTH notices
    elif own:  # echo-message: shown where record_own_message would have shown it (a password masked)
        text = hide_password(target, text)
        buf = state._show_own(target, text, kind)
        return [MessageReceived(buf.name, safe_text(sender), safe_text(text), kind, own)]
    else:
        buf = state.open_buffer(sender)
    highlight = not own and (buf.kind == "query" or mentions(text, state.nick))
    state.add_line(buf, kind, text, sender, own=own, highlight=highlight)
    events.append(MessageReceived(buf.name, safe_text(sender), safe_text(text), kind, own, highlight))
    return events


def handle_redact(state: ClientState, message: Message) -> list[Event]:
    """REDACT <target> <msgid> [:reason]: the line it names, in the channel or the query it was
    said in, shows who deleted it (and why) in its place."""
    target, msgid, reason = message.param(0), message.param(1), message.param(2)
    sender = nick_of(message.source)
    if not msgid or not sender:
        return []
    # A channel's line is in the channel; a private message's in the query with the other party.
    key = irc_lower(target if state.is_channel(target) or state.is_me(sender) else sender)
    note = f"(message deleted by {safe_text(sender)}{': ' + safe_text(reason) if reason else ''})"
    state.model.apply(LineRedacted(key, msgid, note))
    return []


def _ctcp_reply(sender: str, verb: str, argument: str) -> list[Event]:
    """Answer the CTCP queries every client answers; stay silent on the rest."""
    answers = {"VERSION": "chatc", "PING": argument, "CLIENTINFO": "ACTION CLIENTINFO PING VERSION"}
    if verb not in answers or not sender:
        return []
    body = f"{verb} {answers[verb]}".strip()
    return send_line("NOTICE", sender, f"{CTCP_DELIM}{body}{CTCP_DELIM}")


def handle_history_line(state: ClientState, message: Message, target: str) -> list[Event]:
    """A replayed line: shown muted in its buffer, with no effect on the channel or on unread counts."""
    source = nick_of(message.source)
    command = message.command
    channel = message.param(0)
    if command in ("PRIVMSG", "NOTICE"):
        if state.ignores.matches(message.source) and not state.is_me(source):
            return []
        text = message.param(1)
        kind = "notice" if command == "NOTICE" else "privmsg"
        if text.startswith(CTCP_DELIM):
            verb, _, argument = text.strip(CTCP_DELIM).partition(" ")
            if verb.upper() != "ACTION":
                return []  # an old CTCP query is not ours to answer
            kind, text = "action", argument
        name = channel.lstrip(state.prefix_symbols)
        if not state.is_channel(name):
            name = target or (channel if state.is_me(source) else source)
        buf = state.open_buffer(name)
        if state._line_msgid and state._line_msgid in buf.msgids:
            return []  # replayed again after a reconnect: already on screen
        own = state.is_me(source)
        state.add_line(buf, kind, text, source, own=own, history=True)
        return [MessageReceived(buf.name, safe_text(source), safe_text(text), kind, own, history=True)]
    described = {
        "JOIN": ("join", f"{source} has joined {channel}"),
        "PART": ("part", f"{source} has left {channel}"),
        "QUIT": ("quit", f"{source} has quit"),
        "KICK": ("part", f"{message.param(1)} was kicked from {channel} by {source}"),
        "TOPIC": ("topic", f"{source} changed the topic to: {message.param(1)}"),
        "NICK": ("nick", f"{source} is now known as {channel}"),
    }.get(command)
    buf = state.buffer(target) if target else None
    if described is not None and buf is not None and state._line_msgid not in buf.msgids:
        state.add_line(buf, described[0], described[1], source, history=True)
    return []


def handle_away(state: ClientState, message: Message) -> list[Event]:
    """away-notify: a nick we share a channel with went away (with a message) or came back (without)."""
    nick = nick_of(message.source)
    reason = message.param(0)
    if not nick:
        return []
    if state.is_me(nick):
        state.away = bool(reason)
        return []
    key = irc_lower(nick)
    if reason:
        state.away_nicks[key] = safe_text(reason)
    else:
        state.away_nicks.pop(key, None)
    query = state.buffers.get(key)
    if query is not None and query.kind == "query":
        state.add_line(query, "info", f"{nick} is away: {reason}" if reason else f"{nick} is back", nick)
    return []


def handle_invite(state: ClientState, message: Message) -> list[Event]:
    """Shown where the user is looking: an invitation is only useful if it is seen."""
    by = nick_of(message.source)
    channel = message.param(1)
    text = f"{by} invites you to {channel} (/join {channel})"
    state.add_line(state.active, "info", text, by, highlight=True)
    return [ServerText(state.active.name, safe_text(text))]


def handle_error(state: ClientState, message: Message) -> list[Event]:
    text = message.param(0, "closing link")
    state.add_line(state.buffers[SERVER_KEY], "error", f"Server closed the link: {text}")
    return [ErrorReply("ERROR", safe_text(text))]


def describe_standard_reply(message: Message) -> str:
    """IRCv3 standard replies in words: ``FAIL REGISTER ACCOUNT_EXISTS alice :Account already exists`` reads
    ``REGISTER failed: Account already exists (ACCOUNT_EXISTS alice)``; WARN and NOTE likewise."""
    command, code = message.param(0), message.param(1)
    description = message.params[-1] if len(message.params) > 2 else ""
    context = " ".join(message.params[2:-1])
    what = {"FAIL": "failed", "WARN": "warning", "NOTE": "note"}.get(message.command, message.command)
    head = f"{command} {what}" if command and command != "*" else what.capitalize()
    detail = " ".join(part for part in (code, context) if part)
    return f"{head}: {description}" + (f" ({detail})" if detail else "")


def handle_standard_reply(state: ClientState, message: Message) -> list[Event]:
    """WARN and NOTE: shown where the user is looking (they answer what the user just did), not as errors."""
    text = describe_standard_reply(message)
    state.add_line(state.active, "info", text)
    return [ServerText(state.active.name, safe_text(text))]


def handle_fail(state: ClientState, message: Message) -> list[Event]:
    """IRCv3 standard replies: ``FAIL <command> <code> [context...] :text``, shown as an error.

    A ``FAIL CHATHISTORY`` answering our request (by its label, or without labels the
    oldest request in flight) is shown in that buffer and ends the request.
    """
    text = describe_standard_reply(message)
    buf = state.active
    if message.param(0).upper() == "CHATHISTORY":
        key = state.history_failed(message.tags.get("label", ""), state.batch_of(message))
        if key is not None:
            buf = state.buffers.get(key, buf)
            text = f"Cannot fetch history: {message.params[-1]} ({message.param(1)})"
    state.add_line(buf, "error", text)
    return [ErrorReply("FAIL", safe_text(text))]
