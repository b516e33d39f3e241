"""Making network text safe to show, and the small presentation helpers built on it.

Anything a peer sends can end up on the user's terminal, so every string that came
from the network passes through ``safe_text`` before it is rendered. prompt_toolkit
draws characters rather than writing raw bytes, but a terminal escape smuggled into
a nick or a message would still corrupt the screen (or worse) in the headless mode,
where lines go straight to stdout.
"""

from __future__ import annotations

import re
import zlib
from typing import Final

from chatd.protocol.casemap import irc_lower

# mIRC formatting: bold, colour (with optional fg,bg digits), hex colour, reset, monospace,
# reverse, italic, strikethrough, underline. They are stripped, not rendered.
_FORMATTING_RE: Final = re.compile(
    r"\x03(\d{1,2}(,\d{1,2})?)?|\x04([0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
# Bidirectional overrides and isolates can make text display in a different order than it reads.
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _neutralise(char: str) -> str:
    code = ord(char)
    if char == "\t":
        return " "
    if code < 0x20:
        return "^" + chr(code + 0x40)  # caret notation: ESC shows as ^[
    if code == 0x7F:
        return "^?"
    if 0x80 <= code < 0xA0 or char in _BIDI_CONTROLS:
        return f"<U+{code:04X}>"
    return char


_UNSAFE_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(_BIDI_CONTROLS)) + "]")


def safe_text(text: str) -> str:
    """``text`` with IRC formatting removed and every control character made visible.

    The result holds no C0/C1 control, DEL or bidi override, so it cannot move the
    cursor, change colours or start an escape sequence on any terminal.
    """
    text = _FORMATTING_RE.sub("", text)
    return _UNSAFE_RE.sub(lambda match: _neutralise(match.group()), text)


NICK_COLOURS: Final = (
    "ansired",
    "ansigreen",
    "ansiyellow",
    "ansiblue",
    "ansimagenta",
    "ansicyan",
    "ansibrightred",
    "ansibrightgreen",
    "ansibrightyellow",
    "ansibrightblue",
    "ansibrightmagenta",
    "ansibrightcyan",
)


def nick_colour(nick: str) -> str:
    """A colour for ``nick`` that is the same in every run and for every case spelling.

    crc32 rather than ``hash()``: string hashing is randomised per process.
    """
    return NICK_COLOURS[zlib.crc32(irc_lower(nick).encode("utf-8", "surrogateescape")) % len(NICK_COLOURS)]


def mentions(text: str, nick: str) -> bool:
    """True when ``nick`` appears in ``text`` as a whole word (case-mapped), the way IRC clients highlight."""
    if not nick:
        return False
    pattern = r"(?<![\w\[\]\\`^{|}-])" + re.escape(irc_lower(nick)) + r"(?![\w\[\]\\`^{|}-])"
    return re.search(pattern, irc_lower(text)) is not None


def nick_of(source: str | None) -> str:
    """The nick of a message source (``nick!user@host``), or "" for a line without one."""
    return (source or "").split("!", 1)[0]
