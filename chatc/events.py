"""The events the client state reports; frozen, so a listener cannot change what happened.

All text in them has been through ``safe_text``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatd.protocol.message import format_message


@dataclass(frozen=True, slots=True)
class SendLine:
    """A line the connection must send on the state's behalf."""

    line: str


@dataclass(frozen=True, slots=True)
class Registered:
    """The server accepted us (001); ``nick`` is the nick it gave us."""

    nick: str


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A PRIVMSG, NOTICE or CTCP ACTION, already sanitised; ``buffer`` is the display name.

    ``history`` is set for a message the server replayed (a ``chathistory`` batch): it
    was said before we joined, so it is neither news nor a highlight.
    """

    buffer: str
    sender: str
    text: str
    kind: str  # "privmsg", "notice" or "action"
    own: bool = False
    highlight: bool = False
    history: bool = False


@dataclass(frozen=True, slots=True)
class Joined:
    channel: str
    nick: str
    own: bool


@dataclass(frozen=True, slots=True)
class Parted:
    """A nick left a channel by PART or KICK (``kicked_by`` set)."""

    channel: str
    nick: str
    reason: str
    own: bool
    kicked_by: str = ""


@dataclass(frozen=True, slots=True)
class Quit:
    nick: str
    reason: str
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NickChanged:
    old: str
    new: str
    own: bool


@dataclass(frozen=True, slots=True)
class TopicChanged:
    channel: str
    topic: str
    by: str


@dataclass(frozen=True, slots=True)
class ServerText:
    """Informational text from the server (numerics, MOTD, server notices)."""

    buffer: str
    text: str


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error numeric (4xx/5xx) or an ``ERROR`` line; ``code`` is the numeric or ``ERROR``."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """Our account changed or an account command succeeded (900, 901, ACCOUNT, REGISTER SUCCESS): ``text``
    says what, ``account`` is the account we are logged in to now (None: none)."""

    text: str
    account: str | None


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The SASL login did not succeed; ``reason`` says why (the server's 904 text, or ours). ``fatal``: the
    connection gives up (``--sasl-fail disconnect``) instead of going on unauthenticated."""

    reason: str
    fatal: bool


Event = (
    SendLine | Registered | MessageReceived | Joined | Parted | Quit | NickChanged | TopicChanged | ServerText
    | ErrorReply | AccountStatus | LoginFailed
)  # fmt: skip


def send_line(command: str, *params: str) -> list[Event]:
    """A ``SendLine`` for the reply, or nothing when a parameter from the network cannot be sent back
    (a NUL in a PING token, say): answering with a malformed line would be worse than not answering."""
    try:
        return [SendLine(format_message(command, *params))]
    except ValueError:
        return []
