"""PROXY protocol v1/v2 (HAProxy's spec): the parser on real headers built per the spec, and both
backends with --proxy-protocol: the proxied address is the client's host (WHOIS), untrusted sources
and garbage are refused, LOCAL keeps the socket's address, TLS behind the header works."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import struct
from pathlib import Path

import pytest

from chatd.backends.proxy_protocol import V2_SIGNATURE, ProxyHeaderError, ProxyHeaderParser
from chatd.backends.tls import server_context
from chatd.backends.websocket import parse_networks
from tests.helpers import DEADLINE_S, IrcClient
from tests.test_tls import certificate  # noqa: F401 (a fixture)
from tests.wsclient import ws_server


def v2_header(command: int, family: int, addresses: bytes, tlvs: bytes = b"") -> bytes:
    """A v2 header as the spec lays it out: signature, version 2 and command, family and
    transport, the length of what follows, then the addresses (and any TLVs)."""
    body = addresses + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(body)) + body


def v2_ipv4(source: str, source_port: int, destination: str = "192.0.2.1", destination_port: int = 6667) -> bytes:
    addresses = (
        ipaddress.IPv4Address(source).packed
        + ipaddress.IPv4Address(destination).packed
        + struct.pack("!HH", source_port, destination_port)
    )
    return v2_header(0x1, 0x11, addresses)


def v2_ipv6(source: str, source_port: int, tlvs: bytes = b"") -> bytes:
    addresses = (
        ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address("2001:db8::1").packed
        + struct.pack("!HH", source_port, 6667)
    )
    return v2_header(0x1, 0x21, addresses, tlvs)


V2_LOCAL = v2_header(0x0, 0x00, b"")


@pytest.mark.parametrize(
    ("header", "source"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 6667\r\n", ("203.0.113.7", 56324)),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 6667\r\n", ("2001:db8::7", 4000)),
        (b"PROXY UNKNOWN\r\n", None),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
        (v2_ipv4("198.51.100.20", 40000), ("198.51.100.20", 40000)),
        (v2_ipv6("2001:db8::20", 41000, tlvs=b"\x01\x00\x02h2"), ("2001:db8::20", 41000)),  # an ALPN TLV
        (v2_ipv6("::ffff:198.51.100.21", 42000), ("198.51.100.21", 42000)),
        (V2_LOCAL, None),
    ],
)
def test_parser_reads_headers_a_byte_at_a_time_and_leaves_what_follows(
    header: bytes, source: tuple[str, int] | None
) -> None:
    parser = ProxyHeaderParser()
    for byte in header[:-1]:
        assert parser.feed(bytes([byte])) is None
    assert parser.feed(header[-1:] + b"NICK x\r\n") == b"NICK x\r\n"
    assert parser.done and parser.source == source


@pytest.mark.parametrize(
    "data",
    [
        b"NICK x\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n",
        b"PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 99999 6667\r\n",
        b"PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n",
        b"PROXY " + b"9" * 120,
        V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),  # version 3
        V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12),  # command 2
        V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4),  # IPv4 cut short
        V2_SIGNATURE[:6] + b"x",
    ],
)
def test_parser_refuses_what_is_not_a_header(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        ProxyHeaderParser().feed(data)


def _whois_host(asker: IrcClient, nick: str) -> str:
    asker.send(f"WHOIS {nick}")
    return asker.expect("311").params[3]


def _proxied(address: tuple[str, int], header: bytes, nick: str) -> IrcClient:
    client = IrcClient(address)
    client.send_raw(header)
    client.register(nick)
    return client


def test_proxied_addresses_are_the_clients_hosts(backend: str) -> None:
    # The WebSocket port (no PROXY header there) is where the asker comes from.
    with ws_server(backend, trusted_proxies=parse_networks("127.0.0.1"), proxy_protocol=True) as server:
        address = server.address
        v1 = _proxied(address, b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 6667\r\n", "viaone")
        v2 = _proxied(address, v2_ipv4("198.51.100.20", 40000), "viatwo")
        six = _proxied(address, v2_ipv6("2001:db8::20", 41000), "viasix")
        local = _proxied(address, V2_LOCAL, "local")
        for client, host in ((v1, "203.0.113.7"), (v2, "198.51.100.20"), (six, "2001:db8::20"), (local, "127.0.0.1")):
            assert _whois_host(local, client.nick or "") == host
        v1.send("PRIVMSG viatwo :through the balancer")
        assert v2.expect("PRIVMSG").source == "viaone!~u@203.0.113.7"


def test_a_header_split_across_reads_and_the_first_line_in_the_same_read(backend: str) -> None:
    with ws_server(backend, trusted_proxies=parse_networks("127.0.0.1"), proxy_protocol=True) as server:
        header = v2_ipv4("198.51.100.30", 1234)
        client = IrcClient(server.address)
        client.send_raw(header[:7])
        client.send_raw(header[7:] + b"NICK split\r\nUSER u 0 * :u\r\n")
        client.until("376", "422")
        assert _whois_host(client, "split") == "198.51.100.30"


def test_garbage_and_untrusted_sources_are_refused(backend: str) -> None:
    with ws_server(backend, trusted_proxies=parse_networks("127.0.0.1"), proxy_protocol=True) as server:
        garbage = IrcClient(server.address)
        garbage.send_raw(b"NICK sneaky\r\nUSER u 0 * :u\r\n")
        assert garbage.wait_closed() == []
    with ws_server(backend, trusted_proxies=parse_networks("192.0.2.0/24"), proxy_protocol=True) as server:
        untrusted = IrcClient(server.address)
        untrusted.send_raw(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 6667\r\n")
        assert untrusted.wait_closed() == []


def test_a_stalled_header_blocks_nobody(backend: str) -> None:
    with ws_server(backend, trusted_proxies=parse_networks("127.0.0.1"), proxy_protocol=True) as server:
        stalled = socket.create_connection(server.address)
        stalled.sendall(b"PROXY TCP4 203.0")
        client = _proxied(server.address, V2_LOCAL, "fine")
        client.sync()
        stalled.close()


def test_tls_behind_a_proxy_header(backend: str, certificate: tuple[Path, Path]) -> None:  # noqa: F811
    cert, key = certificate
    context = server_context(str(cert), str(key))
    options = {"trusted_proxies": parse_networks("127.0.0.1"), "proxy_protocol": True}
    with ws_server(backend, tls_context=context, tls_port=0, **options) as server:
        raw = socket.create_connection(server.server.addresses["tls"], timeout=DEADLINE_S)
        raw.sendall(v2_ipv4("198.51.100.40", 5555))
        client_context = ssl.create_default_context(cafile=str(cert))
        tls = client_context.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"NICK secure\r\nUSER u 0 * :u\r\nWHOIS secure\r\n")
        seen = b""
        while b" 311 " not in seen:
            chunk = tls.recv(65536)
            assert chunk, seen
            seen += chunk
        line = next(line for line in seen.split(b"\r\n") if b" 311 " in line)
        assert line.split(b" ")[5] == b"198.51.100.40"
        tls.close()
