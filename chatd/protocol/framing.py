"""Line framing with a bound: bytes from a socket in, complete lines out.

Invariants:
- The buffer never holds more than ``max_line_bytes`` bytes of an unfinished line;
  a peer cannot grow server memory by never sending a newline.
- A line whose body (after any IRCv3 tags) passes 510 bytes, or whose whole length
  passes the buffer bound, is reported once as ``OVERLONG`` and its bytes are
  dropped up to and including the next newline; the connection goes on.
- ``\\r\\n`` and ``\\n`` both end a line, split anywhere across reads.
- Bytes that are not UTF-8 survive the round trip: ``decode_line`` turns each into a lone
  surrogate (U+DC80..U+DCFF, Python's ``surrogateescape``) and encoding with ``WIRE``
  gives the very bytes back, so a peer sees what the sender sent (the IRCv3 WebSocket
  spec asks servers to relay such bytes; text-subprotocol WebSocket clients get U+FFFD).
"""

from __future__ import annotations

import codecs
from typing import Final


class _Overlong:
    """Marker type for a line that exceeded the limit."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OVERLONG"


OVERLONG: Final = _Overlong()

# RFC 2812 allows 512 bytes including CRLF; IRCv3 lets clients add up to 4096 bytes of tags.
MAX_LINE_BYTES: Final = 512
MAX_BODY_BYTES: Final = MAX_LINE_BYTES - 2
MAX_TAGS_BYTES: Final = 4096
"""What a client may send as tags, ``@`` and the separating space included (IRCv3 message-tags)."""


def _body_too_long(line: bytes) -> bool:
    """True when the part after the tags exceeds 510 bytes (512 with CRLF), or the tags 4096."""
    if len(line) <= MAX_BODY_BYTES:
        return False
    if line[:1] != b"@":
        return True
    space = line.find(b" ")
    return space < 0 or space + 1 > MAX_TAGS_BYTES or len(line) - space - 1 > MAX_BODY_BYTES


def decode_line(line: bytes) -> str:
    """Decode a wire line as UTF-8, each invalid byte kept as a lone surrogate.

    No byte sequence fails, and nothing is lost: ``line.encode(errors=WIRE)`` (what every
    outgoing line goes through) gives back the bytes, so a legacy client's Latin-1 ``caf\\xe9``
    reaches its peers as ``caf\\xe9`` rather than being guessed at and re-encoded.
    """
    return line.decode("utf-8", "surrogateescape")


def _wire_errors(error: UnicodeError) -> tuple[bytes, int]:
    """Escaped bytes (U+DC80..U+DCFF) become the bytes they stand for; any other lone
    surrogate (which no decoded line holds, but text from elsewhere might) becomes U+FFFD:
    encoding an outgoing line must never raise."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return (
        b"".join(bytes((ord(char) - 0xDC00,)) if "\udc80" <= char <= "\udcff" else b"\xef\xbf\xbd" for char in chunk),
        error.end,
    )


WIRE: Final = "chatd.wire"
"""The ``errors`` of every ``str.encode`` of text going out (sockets, Redis): UTF-8, with the
invalid bytes ``decode_line`` escaped put back as they came."""
codecs.register_error(WIRE, _wire_errors)


class LineReader:
    """Accumulates received bytes and yields complete lines without terminators."""

    __slots__ = ("_buffer", "_max_line_bytes", "_skipping")

    def __init__(self, max_line_bytes: int = MAX_TAGS_BYTES + 1 + MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_line_bytes = max_line_bytes
        self._skipping = False

    @property
    def pending(self) -> bool:
        """True when bytes of an unterminated line are buffered."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[bytes | _Overlong]:
        """Add received bytes; return the lines they completed, in order.

        One ``split`` per read rather than a search per line: a busy client's read holds
        dozens of lines, and the per-line Python work is what framing costs.
        """
        buffer = self._buffer
        if buffer:
            data = bytes(buffer) + data
            buffer.clear()
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        parts = data.split(b"\n")
        tail = parts.pop()
        if self._skipping and parts:
            del parts[0]  # the end of an overlong line, already reported
            self._skipping = False
        lines: list[bytes | _Overlong]
        if parts and max(map(len, parts)) > MAX_BODY_BYTES:
            lines = [OVERLONG if _body_too_long(part) else part for part in parts]
        else:
            lines = list(parts)
        if not self._skipping:
            if len(tail) > self._max_line_bytes:
                self._skipping = True
                lines.append(OVERLONG)
            else:
                buffer += tail
        return lines

    def take_partial(self) -> bytes | _Overlong:
        """Return and forget the unterminated bytes, as a line (for peers that never send newlines)."""
        partial = bytes(self._buffer).rstrip(b"\r")
        self._buffer.clear()
        return OVERLONG if _body_too_long(partial) else partial
