"""Numeric replies: where each is shown, what registration and ISUPPORT teach us, and readable text
for the replies a user asks for (instead of raw parameters).

``show_numeric`` and the 001/005 handlers are part of ``ClientState``; they change buffers only
through ``BufferModel`` events. Errors go to the buffer the user is looking at, and so do replies
to the commands a user types (``ACTIVE_BUFFER_NUMERICS``); the rest goes to the server buffer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from chatc.buffers import SERVER_KEY, BufferRenamed
from chatc.events import ErrorReply, Event, Registered, SendLine, ServerText, send_line
from chatc.text import safe_text
from chatd.protocol import numerics as n
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatc.state import ClientState

# Replies to commands the user typed: shown in the buffer the user is looking at.
ACTIVE_BUFFER_NUMERICS: Final = frozenset(
    {
        n.RPL_AWAY, n.RPL_UNAWAY, n.RPL_NOWAWAY, n.RPL_WHOISUSER, n.RPL_WHOISSERVER, n.RPL_ENDOFWHO,
        n.RPL_WHOISIDLE, n.RPL_ENDOFWHOIS, n.RPL_WHOISCHANNELS, n.RPL_LISTSTART, n.RPL_LIST, n.RPL_LISTEND,
        n.RPL_CHANNELMODEIS, n.RPL_WHOREPLY, n.RPL_USERHOST, n.RPL_ISON, n.RPL_VERSION, n.RPL_TIME,
        n.RPL_WHOWASUSER, n.RPL_ENDOFWHOWAS, n.RPL_INVITING, n.RPL_BANLIST, n.RPL_ENDOFBANLIST,
        n.RPL_WHOISOPERATOR, n.RPL_WHOISACCOUNT, n.RPL_WHOISACTUALLY, n.RPL_WHOISHOST, n.RPL_WHOISSECURE,
    }
)  # fmt: skip


def _idle(seconds: str) -> str:
    if not seconds.isdigit():
        return seconds
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _nick(source: str) -> str:
    return source.split("!", 1)[0]


def describe_reply(code: str, params: tuple[str, ...]) -> str | None:
    """Readable text for the replies users ask for (WHOIS, WHO, LIST, AWAY); None means show the raw text.

    ``params`` excludes our own nick. Missing parameters give None rather than a half sentence.
    """

    def get(index: int) -> str:
        return params[index] if index < len(params) else ""

    if code == n.RPL_WHOISUSER and len(params) >= 5:
        return f"{get(0)} is {get(1)}@{get(2)} ({get(4)})"
    if code == n.RPL_WHOISSERVER and len(params) >= 3:
        return f"{get(0)} is connected to {get(1)} ({get(2)})"
    if code == n.RPL_WHOISCHANNELS and len(params) >= 2:
        return f"{get(0)} is on {get(1)}"
    if code == n.RPL_WHOISIDLE and len(params) >= 3:
        signon = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(get(2)))) if get(2).isdigit() else get(2)
        return f"{get(0)} has been idle {_idle(get(1))}, signed on {signon}"
    if code == n.RPL_AWAY and len(params) >= 2:
        return f"{get(0)} is away: {get(1)}"
    if code == n.RPL_WHOREPLY and len(params) >= 7:
        realname = get(6).split(" ", 1)[1] if " " in get(6) else get(6)
        return f"{get(0)} {get(4)} {get(5)} {get(1)}@{get(2)} ({realname})"
    if code == n.RPL_WHOWASUSER and len(params) >= 5:
        return f"{get(0)} was {get(1)}@{get(2)} ({get(4)})"
    if code == n.RPL_INVITING and len(params) >= 2:
        return f"Inviting {get(0)} to {get(1)}"
    if code == n.RPL_BANLIST and len(params) >= 2:
        return f"{get(0)}: ban {get(1)}" + (f" set by {_nick(get(2))}" if get(2) else "")
    if code == n.RPL_LIST and len(params) >= 2:
        return f"{get(0)} ({get(1)} users) {get(2)}".rstrip()
    return None


def show_numeric(state: ClientState, message: Message) -> list[Event]:
    """The general case: errors to the active buffer, replies to the user's commands there too, the rest
    to the server buffer."""
    code = message.command
    params = message.params[1:]  # params[0] is our nick (or "*")
    text = " ".join(params)
    if code == n.ERR_UNKNOWNCOMMAND and message.param(1).upper() == "CAP":
        state.cap.stop()  # a server without IRCv3 capabilities: it registers us anyway
        state.add_line(state.buffers[SERVER_KEY], "info", "The server does not support capabilities")
        return []
    if code == n.ERR_UNKNOWNCOMMAND and message.param(1).upper() == "CHATHISTORY":
        state.cancel_all_history()  # offered the capability but not the command: no answer is coming
    if code[0] in "45" and code != n.ERR_NOMOTD:  # a missing MOTD is no error to the user
        state.add_line(state.active, "error", text)
        events: list[Event] = [ErrorReply(code, safe_text(text))]
        if not state.registered and code in (n.ERR_NICKNAMEINUSE, n.ERR_ERRONEUSNICKNAME, n.ERR_UNAVAILRESOURCE):
            events.extend(_retry_nick(state))
        return events
    if code in (n.RPL_NOWAWAY, n.RPL_UNAWAY):
        state.away = code == n.RPL_NOWAWAY
    buf = state.active if code in ACTIVE_BUFFER_NUMERICS else state.buffers[SERVER_KEY]
    text = describe_reply(code, params) or text
    state.add_line(buf, "info", text)
    return [ServerText(buf.name, safe_text(text))]


def _retry_nick(state: ClientState) -> list[Event]:
    """During registration a taken nick would stall us: try ``nick_``, then ``nick__``, then numbered."""
    state._nick_attempts += 1
    base = state.wanted_nick if state._nick_attempts < 3 else "chatc"
    suffix = "_" * state._nick_attempts if state._nick_attempts < 3 else str(state._nick_attempts)
    state.nick = (base[: 30 - len(suffix)] + suffix) if base else f"chatc{state._nick_attempts}"
    state.add_line(state.buffers[SERVER_KEY], "info", f"Trying nick {state.nick}")
    return send_line("NICK", state.nick)


def handle_welcome(state: ClientState, message: Message) -> list[Event]:
    state.registered = True
    state.cap.stop()  # registered: whatever was not negotiated by now never will be
    state.nick = message.param(0, state.nick)
    if message.source:
        state.model.apply(BufferRenamed(SERVER_KEY, SERVER_KEY, safe_text(message.source)))
    state.add_line(state.buffers[SERVER_KEY], "info", message.param(1))
    events: list[Event] = [Registered(safe_text(state.nick))]
    events.extend(SendLine(line) for line in state.rejoin_lines())
    return events


def handle_isupport(state: ClientState, message: Message) -> list[Event]:
    for token in message.params[1:-1]:
        name, _, value = token.partition("=")
        if name == "CHATHISTORY":
            state.history_limit = int(value) if value.isdigit() else 0
        elif name == "MSGREFTYPES":
            state.msgref_types = frozenset(value.split(","))
        elif name == "CHANTYPES" and value:
            state.chantypes = value
        elif name == "NETWORK" and value:
            state.network = safe_text(value)
        elif name == "PREFIX" and value.startswith("(") and ")" in value:
            modes, symbols = value[1:].split(")", 1)
            if len(modes) == len(symbols):
                state.prefix_modes, state.prefix_symbols = modes, symbols
    state.add_line(state.buffers[SERVER_KEY], "info", " ".join(message.params[1:]))
    return []
