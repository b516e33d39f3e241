"""Case mapping and name rules for nicks and channels (CASEMAPPING=rfc1459).

Under rfc1459 the characters ``[]\\~`` are the upper-case forms of ``{}|^``, so
``Nick[a]`` and ``nick{a}`` are the same nick. Keys are case-mapped once, where a
name enters the server, never per comparison.
"""

from __future__ import annotations

import re
from typing import Final

CASEMAPPING: Final = "rfc1459"
MAX_NICK_LENGTH: Final = 32
MAX_CHANNEL_LENGTH: Final = 50
CHANNEL_TYPES: Final = "#"
MAX_TOPIC_LENGTH: Final = 390

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~"
_LOWER = "abcdefghijklmnopqrstuvwxyz{}|^"
_TO_LOWER = str.maketrans(_UPPER, _LOWER)

# modern.ircdocs.horse: a nick must not start with a digit, '-', '#', ':' or '$', and
# must not contain spaces, commas, '*', '?', '!', '@' or '.'; we keep to RFC 2812's set.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")
_NICK_BAD_CHAR_RE = re.compile(r"[^A-Za-z0-9\[\]\\`_^{|}-]")


def irc_lower(name: str) -> str:
    """The case-mapped key of a nick or channel name."""
    return name.translate(_TO_LOWER)


def is_valid_nick(nick: str) -> bool:
    """True for a nick that RFC 2812 allows and that fits NICKLEN."""
    return len(nick) <= MAX_NICK_LENGTH and _NICK_RE.match(nick) is not None


def is_channel_name(name: str) -> bool:
    """True for ``#name`` within CHANLEN, without space, comma, BEL or NUL, and valid UTF-8.

    A name is a key (case-mapped, stored, shared between nodes): bytes that are not
    UTF-8 (kept as lone surrogates by ``decode_line``) would make one that no store or
    peer can hold as text, so such a name is refused like any other bad one.
    """
    return (
        1 < len(name) <= MAX_CHANNEL_LENGTH
        and name[0] in CHANNEL_TYPES
        and not any(char in name for char in " ,\x07\0\r\n:")
        and (name.isascii() or _SURROGATE_RE.search(name) is None)
    )


def nick_from_plain_name(name: str) -> str:
    """Turn whatever a plain-mode user typed as a name into a valid nick.

    Characters a nick cannot hold become ``_``; a leading digit or dash gets a
    ``_`` in front; the result is cut to NICKLEN. Never returns an empty string.
    """
    cleaned = _NICK_BAD_CHAR_RE.sub("_", name.strip())
    if not cleaned:
        cleaned = "guest"
    if not _NICK_RE.match(cleaned[0]):
        cleaned = "_" + cleaned
    return cleaned[:MAX_NICK_LENGTH]
