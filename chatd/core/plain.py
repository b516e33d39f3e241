"""Plain mode: the classroom protocol, a name line and then one message per line.

A plain client is a member of the plain channel (``#lobby``) under a nick made
from its name. IRC members see its lines as PRIVMSGs; it sees theirs as
``name: text`` lines, and joins, parts and quits as ``* ...`` lines.

Invariants:
- A plain client has two names, both chosen once, when its first line arrives:
  its nick (an ASCII transliteration of what it typed, valid and unique, which IRC
  users see) and its ``plain_name`` (what it typed, cleaned, which plain-form lines
  show). Its realname is what it typed, so WHOIS tells IRC users too.
- Plain names are as unique as nicks: when the nick needed a number to be unique,
  the plain name ends in the same number (the second ``Маша`` is ``Masha2`` on IRC,
  and ``Маша`` followed by ``2`` in plain lines), so no plain user can pass for
  another, nor for an IRC user: a look-alike of ``bob`` spelt with a Cyrillic o
  transliterates to the taken ``bob`` and so is numbered too.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from anyascii import anyascii

from chatd.core.client import Dialect
from chatd.core.commands import COMMANDS
from chatd.core.event import CODEC_PLAIN
from chatd.core.users import mark_registered
from chatd.protocol.casemap import MAX_NICK_LENGTH, irc_lower, nick_from_plain_name
from chatd.protocol.framing import WIRE
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

PLAIN_USER = "plain"
REGISTRATION_VERBS = frozenset({"CAP", "PASS", "NICK", "USER"})
MAX_PLAIN_NAME_LENGTH = MAX_NICK_LENGTH
"""Characters of a typed name kept for display: a name, not a sentence, on every line it says."""

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
"""Controls, format characters (bidi overrides among them), surrogates, private use: never shown."""


def unique_suffix(hub: Hub, wanted: str) -> tuple[str, str]:
    """``(wanted, "")`` if that nick is free, else the first free ``wanted2``, ``wanted3``…
    (cut to fit NICKLEN) and the number it took, so a plain name can carry the same."""
    if hub.find_client(wanted) is None:
        return wanted, ""
    suffix = 2
    while True:
        tail = str(suffix)
        candidate = wanted[: MAX_NICK_LENGTH - len(tail)] + tail
        if irc_lower(candidate) not in hub.clients_by_key:
            return candidate, tail
        suffix += 1


def clean_plain_name(typed: str) -> str:
    """What a typed name shows as: invisible characters dropped, runs of spaces made one,
    cut to ``MAX_PLAIN_NAME_LENGTH``; empty when nothing printable was typed."""
    words = (
        "".join(char for char in word if unicodedata.category(char) not in _INVISIBLE_CATEGORIES)
        for word in typed.split()
    )
    return " ".join(word for word in words if word)[:MAX_PLAIN_NAME_LENGTH]


def plain_names(hub: Hub, typed: str) -> tuple[str, str]:
    """The nick and the plain name for a plain client that typed ``typed`` as its name.

    The nick is the name transliterated to ASCII (``Маша`` → ``Masha``; anyascii, so
    every script reads as something rather than ``____``), then made a valid nick and
    unique; the plain name is the cleaned name, with the nick's number if it needed one.
    """
    shown = clean_plain_name(typed)
    nick, suffix = unique_suffix(hub, nick_from_plain_name(anyascii(shown)))
    if not shown:
        return nick, nick
    if suffix:
        shown = shown[: MAX_PLAIN_NAME_LENGTH - len(suffix)] + suffix
    return nick, shown


def speaks_irc(first: Message) -> bool:
    """Whether an undecided connection's first line is IRC rather than a name typed by a person.

    IRC is a registration verb (CAP, PASS, NICK, USER) with or without parameters,
    or any other verb of the command table *with* parameters (``PRIVMSG #x :hi``,
    ``join #x``, ``QUIT :bye``; verbs in any case, as IRC has them): a client or a
    person testing by hand, never a name. Such a connection is an unregistered IRC
    one from then on, as ngircd and ergo keep it: it gets what any server answers
    (``451 ERR_NOTREGISTERED`` for most, PONG for PING) and may still register.

    A verb alone (``quit``, ``list``, ``help``, ``away``) is a name: one word is what a
    person types when asked for a name, and IRC clients open with CAP, PASS or NICK.
    Everything else (``alice``, ``Маша``, ``Anna Karenina``) is a name.
    """
    if first.command in REGISTRATION_VERBS:
        return True
    return bool(first.params) and first.command in COMMANDS


def start_plain(hub: Hub, client: Client, name: str) -> None:
    """Make an undecided connection a plain client named after its first line."""
    client.dialect = Dialect.PLAIN
    hub.stats.plain_connections += 1
    client.codec = CODEC_PLAIN
    client.user = PLAIN_USER
    nick, shown = plain_names(hub, name)
    client.realname = clean_plain_name(name) or nick
    hub.claim_nick(client, nick)
    client.plain_name = shown  # after claim_nick, which makes it the nick for everyone else
    mark_registered(hub, client)
    channel_name = hub.config.plain_channel
    channel = hub.find_channel(channel_name)
    others = len(channel.members) if channel is not None else 0
    company = "1 other" if others == 1 else f"{others} others"
    known_as = "" if nick == shown else f" ({nick} to IRC users)"
    client.send(f"* Welcome, {shown}{known_as}: you are in {channel_name} with {company}\n".encode(errors=WIRE))
    hub.join(client, channel_name)


def handle_plain_line(hub: Hub, client: Client, text: str) -> None:
    """A line from a plain client is a message to the plain channel; empty lines are ignored."""
    text = text.replace("\r", "").replace("\0", "")
    if not text.strip():
        return
    channel = client.channels.get(irc_lower(hub.config.plain_channel))
    if channel is None:
        client.send(f"* You are not in {hub.config.plain_channel}\n".encode(errors=WIRE))
        return
    event = hub.send_to_channel(
        channel,
        format_message("PRIVMSG", channel.name, text, source=client.prefix),
        f"{client.plain_name}: {text}",
        skip=client,
    )
    hub.record(channel, event)
    if hub.cluster is not None:
        hub.cluster.channel_message(client, channel, event)
