"""What the user typed, turned into lines to send and local effects; shared by the UI and headless mode.

Sans-I/O like the state: ``interpret`` returns an ``Outcome`` and the caller does the
sending, quitting and redrawing. It may change the state (open a query buffer, record
our own messages), because that is where buffers live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from chatc.buffers import SERVER_KEY
from chatc.state import CTCP_DELIM, DEFAULT_HISTORY_PAGE, ClientState, HistoryRefused
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import format_message

# The server relays ":nick!user@host PRIVMSG target :text\r\n" in 512 bytes; we cannot
# know our host as the server shows it, so we reserve room for a long one.
MAX_LINE_BYTES: Final = 512
RESERVED_HOST_BYTES: Final = 64
RESERVED_USER_BYTES: Final = 12


@dataclass(slots=True)
class Outcome:
    """What the caller must do for one input line."""

    lines: list[str] = field(default_factory=list)
    quit_reason: str | None = None
    switch_to: str | None = None  # buffer key
    buffer_number: int | None = None  # 1-based, from /buffer N
    clear: bool = False
    reconnect: bool = False
    history_key: str | None = None  # a CHATHISTORY request for this buffer is in the lines: cancel it if unsent


@dataclass(frozen=True, slots=True)
class CommandInfo:
    usage: str
    help: str


COMMANDS: Final[dict[str, CommandInfo]] = {
    "join": CommandInfo("/join #channel [key]", "join a channel and switch to it"),
    "part": CommandInfo("/part [#channel] [reason]", "leave a channel (default: this one)"),
    "msg": CommandInfo("/msg target text", "send a message to a nick or channel"),
    "query": CommandInfo("/query nick [text]", "open a private conversation"),
    "me": CommandInfo("/me action", "send an action (CTCP ACTION)"),
    "notice": CommandInfo("/notice target text", "send a notice"),
    "nick": CommandInfo("/nick newnick", "change your nick"),
    "topic": CommandInfo("/topic [#channel] [text]", "show or set the topic"),
    "names": CommandInfo("/names [#channel]", "list the nicks in a channel"),
    "who": CommandInfo("/who [mask]", "list users matching a mask"),
    "whois": CommandInfo("/whois nick", "show who a nick is"),
    "list": CommandInfo("/list [#channel]", "list channels"),
    "away": CommandInfo("/away [message]", "set away (no message: back)"),
    "history": CommandInfo("/history [N]", f"fetch N (default {DEFAULT_HISTORY_PAGE}) older messages of this channel"),
    "quote": CommandInfo("/quote RAW LINE", "send a raw protocol line"),
    "buffer": CommandInfo("/buffer N", "switch to buffer number N"),
    "reconnect": CommandInfo("/reconnect", "connect again now instead of waiting for the next retry"),
    "close": CommandInfo("/close", "close this buffer (parting a channel)"),
    "clear": CommandInfo("/clear", "clear this buffer"),
    "help": CommandInfo("/help", "list commands and keys"),
    "quit": CommandInfo("/quit [reason]", "leave the server and exit"),
}

KEYS_HELP: Final = (
    "Keys: Alt-1..9 or Ctrl-N/Ctrl-P switch buffers, Tab completes, Up/Down history, "
    "PageUp/PageDown scroll (PageUp at the top fetches older history), F2 nick list, Ctrl-D on an empty line quits."
)


class CommandError(Exception):
    """Bad input from the user: the message is shown to them, nothing is sent."""


def split_text(text: str, max_bytes: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes, at spaces where possible.

    Never splits inside a character: a server would drop or mangle the broken halves.
    """
    pieces: list[str] = []
    while len(text.encode()) > max_bytes:
        cut = len(text.encode()[:max_bytes].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ") if space == cut else text[cut:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def _text_budget(state: ClientState, command: str, target: str) -> int:
    overhead = f":{state.nick}!{'u' * RESERVED_USER_BYTES}@{'h' * RESERVED_HOST_BYTES} {command} {target} :\r\n"
    return max(32, MAX_LINE_BYTES - len(overhead.encode()))


def _say(state: ClientState, target: str, text: str, kind: str = "privmsg") -> list[str]:
    """PRIVMSG/NOTICE lines for ``text`` (split if long), recording them in our own buffer."""
    command = "NOTICE" if kind == "notice" else "PRIVMSG"
    wrap = kind == "action"
    budget = _text_budget(state, command, target) - (len("\x01ACTION \x01") if wrap else 0)
    lines = []
    for piece in split_text(text, budget):
        body = f"{CTCP_DELIM}ACTION {piece}{CTCP_DELIM}" if wrap else piece
        lines.append(format_message(command, target, body))
        state.record_own_message(target, piece, kind)
    return lines


def _active_target(state: ClientState) -> str:
    buf = state.active
    if buf.kind == "server":
        raise CommandError("This is the server buffer: /join a channel or /query a nick first")
    return buf.name


def _need(args: str, usage_of: str) -> str:
    if not args.strip():
        raise CommandError("usage: " + COMMANDS[usage_of].usage)
    return args.strip()


def _channel_arg(state: ClientState, args: str) -> tuple[str, str]:
    """(channel, rest): an explicit leading channel, else the active channel buffer."""
    first, _, rest = args.strip().partition(" ")
    if first and state.is_channel(first):
        return first, rest
    buf = state.active
    if buf.kind != "channel":
        raise CommandError("Not in a channel buffer: name the channel")
    return buf.name, args.strip()


def _cmd_join(state: ClientState, args: str, out: Outcome) -> None:
    channel, _, key = _need(args, "join").partition(" ")
    if not state.is_channel(channel):
        channel = "#" + channel
    out.lines.append(format_message("JOIN", channel, key) if key else format_message("JOIN", channel))
    out.switch_to = state.open_buffer(channel).key


def _cmd_part(state: ClientState, args: str, out: Outcome) -> None:
    channel, reason = _channel_arg(state, args)
    out.lines.append(format_message("PART", channel, reason) if reason else format_message("PART", channel))


def _cmd_msg(state: ClientState, args: str, out: Outcome) -> None:
    target, _, text = _need(args, "msg").partition(" ")
    if not text:
        raise CommandError("usage: " + COMMANDS["msg"].usage)
    out.lines.extend(_say(state, target, text))


def _cmd_notice(state: ClientState, args: str, out: Outcome) -> None:
    target, _, text = _need(args, "notice").partition(" ")
    if not text:
        raise CommandError("usage: " + COMMANDS["notice"].usage)
    out.lines.extend(_say(state, target, text, "notice"))


def _cmd_query(state: ClientState, args: str, out: Outcome) -> None:
    nick, _, text = _need(args, "query").partition(" ")
    if state.is_channel(nick):
        raise CommandError("/query takes a nick; use /join for channels")
    out.switch_to = state.open_buffer(nick).key
    if text:
        out.lines.extend(_say(state, nick, text))


def _cmd_me(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.extend(_say(state, _active_target(state), _need(args, "me"), "action"))


def _cmd_nick(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(format_message("NICK", _need(args, "nick").split(" ")[0]))


def _cmd_topic(state: ClientState, args: str, out: Outcome) -> None:
    channel, text = _channel_arg(state, args)
    out.lines.append(format_message("TOPIC", channel, text) if text else format_message("TOPIC", channel))


def _cmd_names(state: ClientState, args: str, out: Outcome) -> None:
    channel, _ = _channel_arg(state, args)
    out.lines.append(format_message("NAMES", channel))


def _cmd_who(state: ClientState, args: str, out: Outcome) -> None:
    mask = args.strip() or (state.active.name if state.active.kind == "channel" else "")
    out.lines.append(format_message("WHO", *mask.split(" ")[:2]) if mask else "WHO")


def _cmd_whois(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(format_message("WHOIS", _need(args, "whois").split(" ")[0]))


def _cmd_list(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(format_message("LIST", *args.split()[:1]))


def _cmd_away(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(format_message("AWAY", args.strip()) if args.strip() else "AWAY")


def _cmd_history(state: ClientState, args: str, out: Outcome) -> None:
    count = args.strip() or str(DEFAULT_HISTORY_PAGE)
    if not count.isdigit() or int(count) < 1:
        raise CommandError("usage: " + COMMANDS["history"].usage)
    try:
        out.lines.append(state.request_history(state.active_key, int(count)))
    except HistoryRefused as exc:
        raise CommandError(str(exc)) from None
    out.history_key = state.active_key


def _cmd_quote(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(_need(args, "quote"))


def _cmd_buffer(state: ClientState, args: str, out: Outcome) -> None:
    number = _need(args, "buffer")
    if not number.isdigit() or not 1 <= int(number) <= len(state.buffers):
        raise CommandError(f"No buffer {number}; there are {len(state.buffers)}")
    out.buffer_number = int(number)


def _cmd_close(state: ClientState, args: str, out: Outcome) -> None:
    buf = state.active
    if buf.kind == "server":
        raise CommandError("The server buffer cannot be closed; /quit leaves")
    if buf.kind == "channel" and buf.joined:
        out.lines.append(format_message("PART", buf.name))
    state.wanted_channels.pop(buf.key, None)
    state.close_buffer(buf.key)
    out.switch_to = SERVER_KEY


def _cmd_clear(state: ClientState, args: str, out: Outcome) -> None:
    out.clear = True
    state.clear_buffer(state.active_key)


def _cmd_help(state: ClientState, args: str, out: Outcome) -> None:
    for info in COMMANDS.values():
        state.info(f"{info.usage:<28} {info.help}")
    state.info(KEYS_HELP)


def _cmd_reconnect(state: ClientState, args: str, out: Outcome) -> None:
    out.reconnect = True


def _cmd_quit(state: ClientState, args: str, out: Outcome) -> None:
    out.quit_reason = args.strip() or "chatc"


_DISPATCH: Final[dict[str, Callable[[ClientState, str, Outcome], None]]] = {
    "join": _cmd_join,
    "part": _cmd_part,
    "msg": _cmd_msg,
    "notice": _cmd_notice,
    "query": _cmd_query,
    "me": _cmd_me,
    "nick": _cmd_nick,
    "topic": _cmd_topic,
    "names": _cmd_names,
    "who": _cmd_who,
    "whois": _cmd_whois,
    "list": _cmd_list,
    "away": _cmd_away,
    "history": _cmd_history,
    "quote": _cmd_quote,
    "buffer": _cmd_buffer,
    "close": _cmd_close,
    "clear": _cmd_clear,
    "help": _cmd_help,
    "reconnect": _cmd_reconnect,
    "quit": _cmd_quit,
}


def interpret(state: ClientState, text: str, target: str | None = None) -> Outcome:
    """Turn one input line into an ``Outcome``.

    A line not starting with ``/`` (or starting with ``//``, for a literal slash) is a
    message to ``target``, by default the active buffer. Raises ``CommandError`` with a
    message for the user on bad input; never raises anything else for any text.
    """
    out = Outcome()
    text = text.replace("\r", "").replace("\0", "")
    if "\n" in text:
        for part in text.split("\n"):
            if part:
                sub = interpret(state, part, target)
                out.lines.extend(sub.lines)
        return out
    if not text.strip():
        return out
    if text.startswith("/") and not text.startswith("//"):
        name, _, args = text[1:].partition(" ")
        handler = _DISPATCH.get(name.lower())
        if handler is None:
            raise CommandError(f"Unknown command /{name}; /help lists them")
        try:
            handler(state, args, out)
        except ValueError as exc:  # format_message refused a parameter
            raise CommandError(f"Cannot send that: {exc}") from None
        return out
    if text.startswith("//"):
        text = text[1:]
    destination = target if target is not None else _active_target(state)
    if irc_lower(destination) == SERVER_KEY:
        raise CommandError("No channel to send to")
    out.lines.extend(_say(state, destination, text))
    return out
