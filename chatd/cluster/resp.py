"""RESP2, the Redis wire protocol, without I/O: encode commands, parse replies incrementally.

Only what a client needs: commands go out as arrays of bulk strings; replies come
back as simple strings (``str``), errors (``RespError`` values, returned, not
raised), integers (``int``), bulk strings (``bytes``, or None for the null bulk)
and arrays (``list``, or None for the null array), nested to any depth.

Invariants:
- ``RespParser`` consumes a reply only once all of it has arrived; a partial reply
  stays in the buffer untouched, so bytes may be fed in any split.
- A declared length is checked against ``MAX_BULK_BYTES`` / ``MAX_ARRAY_ITEMS`` before
  anything is allocated for it: a broken or hostile peer cannot make us reserve
  gigabytes with one header line (the reason redis bounds ``proto-max-bulk-len``).
"""

from __future__ import annotations

from typing import Final

MAX_BULK_BYTES: Final = 64 << 20
MAX_ARRAY_ITEMS: Final = 1 << 20
MAX_LINE_BYTES: Final = 64 << 10
"""A header or simple line longer than this is a protocol error, not something to wait for."""


class RespError(Exception):
    """An error reply from the server (``-ERR ...``); parsers return it as a value."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RespError) and other.args == self.args

    def __hash__(self) -> int:
        return hash(self.args)


class ProtocolError(Exception):
    """The byte stream is not RESP2; the connection cannot be trusted any more."""


class _Incomplete(Exception):
    """Internal: the buffer ends inside a reply."""


_MESSAGE_HEAD: Final = b"*3\r\n$7\r\nmessage\r\n$"


def _incomplete() -> None:
    raise _Incomplete


NEED_MORE: Final = object()
"""Returned by ``RespParser.get`` when no complete reply is buffered."""

RespValue = str | int | bytes | RespError | list["RespValue"] | None


def _as_bytes(arg: bytes | str | int | float) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        # surrogatepass: a relayed line keeps an invalid client byte as a lone surrogate
        # (chatd.protocol.framing), which JSON carries and ``json.loads`` of bytes gives back.
        return arg.encode("utf-8", "surrogatepass")
    return str(arg).encode()


def encode_command(*args: bytes | str | int | float) -> bytes:
    """One command as RESP: an array of bulk strings (``str`` as UTF-8, numbers in decimal)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _as_bytes(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


def encode_value(value: RespValue) -> bytes:
    """Any reply value as RESP2, the way a server sends it (tests and fakes use this)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, RespError):
        return b"-" + str(value.args[0] if value.args else "ERR").encode() + b"\r\n"
    if isinstance(value, bool):
        raise TypeError("RESP2 has no booleans")
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        if "\r" in value or "\n" in value:
            raise ValueError("a simple string cannot hold CR or LF")
        return b"+" + value.encode() + b"\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(encode_value(item) for item in value)
    raise TypeError(f"cannot encode {type(value).__name__} as RESP")


class RespParser:
    """Feed bytes as they arrive; take complete replies out in order with ``get``."""

    __slots__ = ("_buffer", "_pos")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a reply."""
        return len(self._buffer)

    def get(self) -> object:
        """The next complete reply, or ``NEED_MORE``. Raises ProtocolError on a malformed stream."""
        if not self._buffer:
            return NEED_MORE
        self._pos = 0
        try:
            value = self._value()
        except _Incomplete:
            return NEED_MORE
        del self._buffer[: self._pos]
        return value

    def replies(self) -> list[RespValue]:
        """Every complete reply buffered now, oldest first.

        The consumed bytes are cut from the buffer once at the end, not after each reply:
        one read can hold thousands of pub/sub messages, and a cut per reply would move
        the rest of the buffer each time.
        """
        out: list[RespValue] = []
        buffer = self._buffer
        start = 0
        try:
            while start < len(buffer):
                self._pos = start
                try:
                    value = self._message() if buffer.startswith(_MESSAGE_HEAD, start) else None
                    if value is None:
                        self._pos = start
                        value = self._value()
                except _Incomplete:
                    break
                out.append(value)
                start = self._pos
        finally:
            del buffer[:start]
        return out

    def _message(self) -> list[RespValue] | None:
        """A pub/sub ``message`` push, the bulk of a subscriber's input, without the general
        recursion; None when anything looks unusual (the general parser then decides)."""
        buffer = self._buffer
        parts: list[RespValue] = [b"message"]
        pos = self._pos + len(_MESSAGE_HEAD) - 1
        for _ in range(2):
            if buffer[pos : pos + 1] != b"$":
                return None if len(buffer) > pos else _incomplete()
            end = buffer.find(b"\r\n", pos, pos + 24)
            if end < 0:
                return None if len(buffer) >= pos + 24 else _incomplete()
            head = buffer[pos + 1 : end]
            if not head.isdigit() or len(head) > 10:
                return None
            data_end = end + 2 + int(head)
            if len(buffer) < data_end + 2:
                raise _Incomplete
            if buffer[data_end : data_end + 2] != b"\r\n":
                return None
            parts.append(bytes(buffer[end + 2 : data_end]))
            pos = data_end + 2
        self._pos = pos
        return parts

    def _line(self) -> bytes | bytearray:
        buffer = self._buffer
        end = buffer.find(b"\r\n", self._pos)
        if end < 0:
            if len(buffer) - self._pos > MAX_LINE_BYTES:
                raise ProtocolError("line too long")
            raise _Incomplete
        line = buffer[self._pos : end]
        self._pos = end + 2
        return line

    def _length(self, line: bytes | bytearray, limit: int) -> int:
        try:
            length = int(line)
        except ValueError:
            raise ProtocolError(f"bad length {bytes(line[:20])!r}") from None
        if length < -1 or length > limit:
            raise ProtocolError(f"length {length} out of bounds")
        return length

    def _value(self) -> RespValue:
        if self._pos >= len(self._buffer):
            raise _Incomplete
        kind = self._buffer[self._pos]
        self._pos += 1
        line = self._line()
        if kind == 0x2B:  # +
            return line.decode("utf-8", "replace")
        if kind == 0x2D:  # -
            return RespError(line.decode("utf-8", "replace"))
        if kind == 0x3A:  # :
            try:
                return int(line)
            except ValueError:
                raise ProtocolError(f"bad integer {bytes(line[:20])!r}") from None
        if kind == 0x24:  # $
            length = self._length(line, MAX_BULK_BYTES)
            if length == -1:
                return None
            end = self._pos + length
            if len(self._buffer) < end + 2:
                raise _Incomplete
            if self._buffer[end : end + 2] != b"\r\n":
                raise ProtocolError("bulk string not terminated by CRLF")
            data = bytes(self._buffer[self._pos : end])
            self._pos = end + 2
            return data
        if kind == 0x2A:  # *
            count = self._length(line, MAX_ARRAY_ITEMS)
            if count == -1:
                return None
            return [self._value() for _ in range(count)]
        raise ProtocolError(f"unknown reply type {bytes([kind])!r}")
