"""What the user typed, turned into lines to send and local effects; shared by the UI and headless mode.

Sans-I/O like the state: ``interpret`` returns an ``Outcome`` and the caller does the
sending, quitting and redrawing. It may change the state (open a query buffer, record
our own messages), because that is where buffers live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from chatc.accounts import NICKSERV, hide_password, is_secret
from chatc.buffers import SERVER_KEY
from chatc.messages import CTCP_DELIM
from chatc.state import DEFAULT_HISTORY_PAGE, ClientState, HistoryRefused
from chatd.protocol.casemap import irc_lower
from chatd.protocol.mask import normalize_mask
from chatd.protocol.message import format_message

# The server relays ":nick!user@host PRIVMSG target :text\r\n" in 512 bytes; we cannot
# know our host as the server shows it, so we reserve room for a long one.
MAX_LINE_BYTES: Final = 512
RESERVED_HOST_BYTES: Final = 64
RESERVED_USER_BYTES: Final = 12
# Mode changes with an argument per MODE line: 3 is the least any server's ISUPPORT MODES allows.
MODES_PER_LINE: Final = 3


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
    secret: bool = False  # the line carries a password: the input history must not keep it


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
    "list": CommandInfo("/list [pattern]", "list channels (a bare word matches inside names: *word*)"),
    "whowas": CommandInfo("/whowas nick [count]", "show who a nick was, after they left"),
    "kick": CommandInfo("/kick nick [reason]", "remove a nick from this channel"),
    "ban": CommandInfo("/ban [mask]", "ban a mask (a bare nick means nick!*@*); no mask lists the bans"),
    "unban": CommandInfo("/unban mask...", "lift bans"),
    "kickban": CommandInfo("/kickban nick [reason]", "ban nick!*@*, then kick the nick"),
    "mode": CommandInfo("/mode [target] modes...", "show or change the modes of a channel (or yours)"),
    "op": CommandInfo("/op nick...", "give channel operator status"),
    "deop": CommandInfo("/deop nick...", "take channel operator status"),
    "voice": CommandInfo("/voice nick...", "give voice"),
    "devoice": CommandInfo("/devoice nick...", "take voice"),
    "invite": CommandInfo("/invite nick [#channel]", "invite a nick to a channel (default: this one)"),
    "ctcp": CommandInfo("/ctcp nick VERB [args]", "send a CTCP request (VERSION, PING, TIME...)"),
    "ignore": CommandInfo("/ignore [mask]", "hide everything from a mask (nick or nick!user@host); alone: list"),
    "unignore": CommandInfo("/unignore mask", "stop ignoring a mask"),
    "away": CommandInfo("/away [message]", "set away (no message: back)"),
    "register": CommandInfo(
        "/register [account] password [email]", "register an account (REGISTER, or NickServ where there is none)"
    ),
    "verify": CommandInfo("/verify account code", "complete a registration with the code the server sent"),
    "identify": CommandInfo("/identify [account] password", "log in to an account through NickServ"),
    "ns": CommandInfo("/ns command...", "send a command to NickServ (/ns help lists them)"),
    "cs": CommandInfo("/cs command...", "send a command to ChanServ (/cs help lists them)"),
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
        state.record_own_message(target, hide_password(target, piece), kind)
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
    out.secret = is_secret(target, text)
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
    """A bare word is looked for inside channel names, as weechat's /list does; masks and names go as typed."""
    pattern = args.strip().split(" ")[0]
    if pattern and not state.is_channel(pattern) and not any(char in pattern for char in "*?<>!"):
        pattern = f"*{pattern}*"
    out.lines.append(format_message("LIST", pattern) if pattern else "LIST")


def _cmd_whowas(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(format_message("WHOWAS", *_need(args, "whowas").split()[:2]))


def _cmd_kick(state: ClientState, args: str, out: Outcome) -> None:
    channel, rest = _channel_arg(state, args)
    nick, _, reason = _need(rest, "kick").partition(" ")
    out.lines.append(format_message("KICK", channel, nick, reason) if reason else format_message("KICK", channel, nick))


def _mode_lines(channel: str, sign: str, mode: str, arguments: list[str]) -> list[str]:
    """``MODE #chan +ooo a b c`` lines, at most ``MODES_PER_LINE`` changes each (the RFC's minimum for MODES)."""
    lines = []
    for start in range(0, len(arguments), MODES_PER_LINE):
        chunk = arguments[start : start + MODES_PER_LINE]
        lines.append(format_message("MODE", channel, sign + mode * len(chunk), *chunk))
    return lines


def _cmd_ban(state: ClientState, args: str, out: Outcome) -> None:
    channel, rest = _channel_arg(state, args)
    masks = [normalize_mask(mask) for mask in rest.split()]
    out.lines.extend(_mode_lines(channel, "+", "b", masks) if masks else [format_message("MODE", channel, "+b")])


def _cmd_unban(state: ClientState, args: str, out: Outcome) -> None:
    channel, rest = _channel_arg(state, args)
    out.lines.extend(_mode_lines(channel, "-", "b", [normalize_mask(mask) for mask in _need(rest, "unban").split()]))


def _cmd_kickban(state: ClientState, args: str, out: Outcome) -> None:
    """Ban first, then kick: kicked first, the nick could rejoin in between."""
    channel, rest = _channel_arg(state, args)
    nick, _, reason = _need(rest, "kickban").partition(" ")
    out.lines.extend(_mode_lines(channel, "+", "b", [normalize_mask(nick)]))
    out.lines.append(format_message("KICK", channel, nick, reason) if reason else format_message("KICK", channel, nick))


def _cmd_mode(state: ClientState, args: str, out: Outcome) -> None:
    """``/mode +i`` changes the active channel's modes (in a channel buffer) or our own (elsewhere)."""
    words = args.split()
    if words and (state.is_channel(words[0]) or state.is_me(words[0])):
        target, changes = words[0], words[1:]
    elif state.active.kind == "channel":
        target, changes = state.active.name, words
    elif words:
        target, changes = state.nick, words
    else:
        raise CommandError("usage: " + COMMANDS["mode"].usage)
    out.lines.append(format_message("MODE", target, *changes))


def _status_command(sign: str, mode: str, name: str) -> Callable[[ClientState, str, Outcome], None]:
    def handler(state: ClientState, args: str, out: Outcome) -> None:
        channel, rest = _channel_arg(state, args)
        out.lines.extend(_mode_lines(channel, sign, mode, _need(rest, name).split()))

    return handler


def _cmd_invite(state: ClientState, args: str, out: Outcome) -> None:
    nick, _, rest = _need(args, "invite").partition(" ")
    channel = rest.strip().split(" ")[0]
    if not channel:
        if state.active.kind != "channel":
            raise CommandError("Not in a channel buffer: name the channel")
        channel = state.active.name
    out.lines.append(format_message("INVITE", nick, channel))


def _cmd_ctcp(state: ClientState, args: str, out: Outcome) -> None:
    target, _, rest = _need(args, "ctcp").partition(" ")
    verb, _, argument = rest.strip().partition(" ")
    if not verb:
        raise CommandError("usage: " + COMMANDS["ctcp"].usage)
    verb = verb.upper()
    if verb == "PING" and not argument:
        argument = str(int(state.clock()))  # the answer echoes it: that is how the round trip is timed
    body = f"{verb} {argument}".strip()
    out.lines.append(format_message("PRIVMSG", target, f"{CTCP_DELIM}{body}{CTCP_DELIM}"))
    state.info(f"CTCP {verb} sent to {target}")


def _cmd_ignore(state: ClientState, args: str, out: Outcome) -> None:
    mask = args.strip().split(" ")[0]
    if not mask:
        masks = state.ignores.masks
        state.info("Ignoring: " + " ".join(masks) if masks else "Ignoring nobody")
        return
    full, new = state.ignores.add(mask)
    state.info(f"Ignoring {full}" if new else f"Already ignoring {full}")


def _cmd_unignore(state: ClientState, args: str, out: Outcome) -> None:
    mask = _need(args, "unignore").split(" ")[0]
    removed = state.ignores.remove(mask)
    if removed is None:
        raise CommandError(f"Not ignoring {normalize_mask(mask)}; /ignore lists the masks")
    state.info(f"No longer ignoring {removed}")


def _cmd_away(state: ClientState, args: str, out: Outcome) -> None:
    out.lines.append(format_message("AWAY", args.strip()) if args.strip() else "AWAY")


def _cmd_register(state: ClientState, args: str, out: Outcome) -> None:
    """``/register [account] password [email]``: an email is the word with an ``@``. draft/account-registration's
    ``REGISTER <account|*> <email|*> <password>`` where the server offers it, else NickServ's REGISTER."""
    words = _need(args, "register").split()
    email = words.pop() if len(words) > 1 and "@" in words[-1] else "*"
    if len(words) not in (1, 2):
        raise CommandError("usage: " + COMMANDS["register"].usage)
    account, password = (words[0], words[1]) if len(words) == 2 else ("*", words[0])
    out.secret = True
    if "draft/account-registration" in state.caps_offered:
        options = state.cap.values.get("draft/account-registration", "").split(",")
        if email == "*" and "email-required" in options:
            raise CommandError("This server needs an email to register: /register [account] password email")
        if account != "*" and not state.is_me(account) and "custom-account-name" not in options:
            raise CommandError(f"This server registers your nick as the account: /nick {account} first")
        out.lines.append(format_message("REGISTER", account, email, password))
        state.info(f"Registering {state.nick if account == '*' else account}...")
        return
    if account != "*" and not state.is_me(account):
        raise CommandError(f"NickServ registers your current nick: /nick {account} first")
    text = f"REGISTER {password}" + (f" {email}" if email != "*" else "")
    out.lines.append(format_message("PRIVMSG", NICKSERV, text))
    state.info(f"Registering {state.nick} with NickServ...")


def _cmd_verify(state: ClientState, args: str, out: Outcome) -> None:
    words = _need(args, "verify").split()
    if len(words) != 2:
        raise CommandError("usage: " + COMMANDS["verify"].usage)
    out.secret = True
    out.lines.append(format_message("VERIFY", *words))


def _cmd_identify(state: ClientState, args: str, out: Outcome) -> None:
    """``PRIVMSG NickServ :IDENTIFY [account] password``; shown (and kept in history) without the password."""
    words = _need(args, "identify").split()
    if len(words) > 2:
        raise CommandError("usage: " + COMMANDS["identify"].usage)
    out.secret = True
    out.lines.append(format_message("PRIVMSG", NICKSERV, "IDENTIFY " + " ".join(words)))
    state.info(f"Identifying to NickServ as {words[0] if len(words) == 2 else state.nick}...")


def _service_command(service: str, name: str) -> Callable[[ClientState, str, Outcome], None]:
    def handler(state: ClientState, args: str, out: Outcome) -> None:
        text = _need(args, name)
        out.secret = is_secret(service, text)
        out.lines.extend(_say(state, service, text))

    return handler


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
    line = _need(args, "quote")
    command, _, rest = line.partition(" ")
    if command.upper() in ("PASS", "AUTHENTICATE", "REGISTER", "VERIFY"):
        out.secret = True
    elif command.upper() in ("NS", "NICKSERV", "PRIVMSG"):
        target, _, text = rest.partition(" ") if command.upper() == "PRIVMSG" else (NICKSERV, "", rest)
        out.secret = is_secret(target, text.removeprefix(":"))
    out.lines.append(line)


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
    "whowas": _cmd_whowas,
    "kick": _cmd_kick,
    "ban": _cmd_ban,
    "unban": _cmd_unban,
    "kickban": _cmd_kickban,
    "mode": _cmd_mode,
    "op": _status_command("+", "o", "op"),
    "deop": _status_command("-", "o", "deop"),
    "voice": _status_command("+", "v", "voice"),
    "devoice": _status_command("-", "v", "devoice"),
    "invite": _cmd_invite,
    "ctcp": _cmd_ctcp,
    "ignore": _cmd_ignore,
    "unignore": _cmd_unignore,
    "away": _cmd_away,
    "history": _cmd_history,
    "register": _cmd_register,
    "verify": _cmd_verify,
    "identify": _cmd_identify,
    "ns": _service_command(NICKSERV, "ns"),
    "cs": _service_command("ChanServ", "cs"),
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
                out.secret = out.secret or sub.secret
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
