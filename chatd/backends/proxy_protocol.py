"""The PROXY protocol header (HAProxy's spec, versions 1 and 2), parsed from bytes, no I/O.

A load balancer in TCP mode puts one header in front of a connection's first byte saying
whom the connection is really from. ``ProxyHeaderParser.feed`` takes bytes as they come
and returns, once the header is complete, what followed it (the client's own first
bytes); ``source`` is then the client's address, or None for a header that says to keep
the socket's (v2 LOCAL, a health check; v1 UNKNOWN; v2 UNSPEC or UNIX families).

Invariants:
- At most ``V1_MAX_BYTES`` (v1) or 16 + 65535 (v2: its length field) bytes are buffered.
- Anything that is not a well-formed header raises ``ProxyHeaderError`` as soon as it
  can be told: the connection is then closed (the spec: a receiver must not guess).
- v2 TLVs after the addresses are skipped; only the source address and port are used.
"""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107
"""The longest v1 line the spec allows, CRLF included."""

V2_LOCAL, V2_PROXY = 0x0, 0x1
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0x0, 0x1, 0x2, 0x3


class ProxyHeaderError(ValueError):
    """Not a PROXY header, or a malformed one."""


class ProxyHeaderParser:
    """Collects a connection's first bytes until its PROXY header is complete."""

    __slots__ = ("_buffer", "done", "source")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.done = False
        self.source: tuple[str, int] | None = None
        """The client's (address, port) the header gave; None: keep the socket's."""

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; return what follows the header once it is complete (maybe ``b""``), else None.

        Raises ``ProxyHeaderError`` for bytes that cannot begin or be a header.
        """
        buffer = self._buffer
        buffer += data
        if buffer[:1] == b"\r":
            return self._v2()
        if buffer[:1] == b"P":
            return self._v1()
        if buffer:
            raise ProxyHeaderError("no PROXY header")
        return None

    def _finish(self, length: int, source: tuple[str, int] | None) -> bytes:
        rest = bytes(self._buffer[length:])
        self._buffer.clear()
        self.done = True
        self.source = source
        return rest

    def _v1(self) -> bytes | None:
        buffer = self._buffer
        if not buffer.startswith(V1_PREFIX[: len(buffer)]) or (
            len(buffer) >= len(V1_PREFIX) and not buffer.startswith(V1_PREFIX)
        ):
            raise ProxyHeaderError("no PROXY header")
        end = buffer.find(b"\r\n", 0, V1_MAX_BYTES)
        if end < 0:
            if len(buffer) >= V1_MAX_BYTES:
                raise ProxyHeaderError("PROXY v1 line too long")
            return None
        fields = bytes(buffer[:end]).split(b" ")
        if len(fields) >= 2 and fields[1] == b"UNKNOWN":
            return self._finish(end + 2, None)
        if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
            raise ProxyHeaderError("malformed PROXY v1 line")
        _, family, source, destination, source_port, destination_port = (
            field.decode("ascii", "replace") for field in fields
        )
        version = 4 if family == "TCP4" else 6
        for text in (source, destination):
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise ProxyHeaderError(f"bad address {text!r} in PROXY v1 line") from None
            if address.version != version:
                raise ProxyHeaderError(f"{text!r} is not an IPv{version} address")
        ports = []
        for text in (source_port, destination_port):
            if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
                raise ProxyHeaderError(f"bad port {text!r} in PROXY v1 line")
            ports.append(int(text))
        return self._finish(end + 2, (str(ipaddress.ip_address(source)), ports[0]))

    def _v2(self) -> bytes | None:
        buffer = self._buffer
        if not buffer.startswith(V2_SIGNATURE[: len(buffer)]) or (
            len(buffer) >= len(V2_SIGNATURE) and not buffer.startswith(V2_SIGNATURE)
        ):
            raise ProxyHeaderError("no PROXY header")
        if len(buffer) < 16:
            return None
        version_command, family, length = struct.unpack_from("!BBH", buffer, 12)
        if version_command >> 4 != 2:
            raise ProxyHeaderError("PROXY header of an unknown version")
        command = version_command & 0x0F
        if command not in (V2_LOCAL, V2_PROXY):
            raise ProxyHeaderError("PROXY v2 header with an unknown command")
        if len(buffer) < 16 + length:
            return None
        if command == V2_LOCAL:
            return self._finish(16 + length, None)
        address_family = family >> 4
        if address_family == AF_INET:
            if length < 12:
                raise ProxyHeaderError("PROXY v2 IPv4 addresses cut short")
            source = ipaddress.IPv4Address(bytes(buffer[16:20]))
            (port,) = struct.unpack_from("!H", buffer, 24)
            return self._finish(16 + length, (str(source), port))
        if address_family == AF_INET6:
            if length < 36:
                raise ProxyHeaderError("PROXY v2 IPv6 addresses cut short")
            source6 = ipaddress.IPv6Address(bytes(buffer[16:32]))
            (port,) = struct.unpack_from("!H", buffer, 48)
            mapped = source6.ipv4_mapped
            return self._finish(16 + length, (str(mapped if mapped is not None else source6), port))
        if address_family in (AF_UNSPEC, AF_UNIX):
            return self._finish(16 + length, None)
        raise ProxyHeaderError("PROXY v2 header with an unknown address family")
