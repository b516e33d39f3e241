"""IRC over WebSocket (IRCv3 WebSocket extension) over both backends, with websockets' real client:
subprotocols, one line per message, non-UTF-8 both ways, the line limit, origins, flood control and
the send queue, a stalled handshake, X-Forwarded-For behind a trusted proxy, WebSocket over TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from chatd.backends.websocket import WebPolicy, WebSocketSession, parse_networks, parse_origins
from tests.helpers import DEADLINE_S, IrcClient, wait_until
from tests.test_tls import certificate  # noqa: F401 (a fixture)
from tests.wsclient import WsClient, ws_server, ws_url

BINARY, TEXT = "binary.ircv3.net", "text.ircv3.net"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [([BINARY], BINARY), ([TEXT], TEXT), ([BINARY, TEXT], BINARY), ([TEXT, BINARY], TEXT), (["x.example", TEXT], TEXT)],
)
def test_subprotocol_is_the_clients_first_choice_and_a_tcp_client_talks_to_it(
    backend: str, offered: list[str], chosen: str
) -> None:
    with ws_server(backend) as server:
        tcp = server.client("tcp")
        web = WsClient(ws_url(server), "web", subprotocols=offered)
        assert web.conn.subprotocol == chosen
        for client in (tcp, web):
            client.send("JOIN #web")
            client.expect("366")
        web.send("PRIVMSG #web :hello from the browser")
        assert tcp.expect("PRIVMSG").params == ("#web", "hello from the browser")
        tcp.send("PRIVMSG #web :hello back")
        message = web.expect("PRIVMSG")
        assert message.params == ("#web", "hello back") and message.source.startswith("tcp!")
        kind = bytes if chosen == BINARY else str
        assert web.received and all(isinstance(m, kind) for m in web.received)
        # One line per message, never CR/LF: the registration burst came as many messages.
        assert len(web.received) > 10
        assert all(("\n" not in m and "\r" not in m) if isinstance(m, str) else b"\n" not in m for m in web.received)


def test_no_subprotocol_means_text(backend: str) -> None:
    with ws_server(backend) as server:
        web = WsClient(ws_url(server), "plainweb")
        assert web.conn.subprotocol is None
        assert all(isinstance(m, str) for m in web.received)


def test_non_utf8_is_valid_text_in_text_mode_and_the_cores_bytes_in_binary_mode(backend: str) -> None:
    with ws_server(backend) as server:
        tcp = server.client("tcp")
        text = WsClient(ws_url(server), "texty", subprotocols=[TEXT])
        binary = WsClient(ws_url(server), "binny", subprotocols=[BINARY])
        tcp.send_raw(b"PRIVMSG texty :caf\xe9 \xff\r\nPRIVMSG binny :caf\xe9 \xff\r\n")
        text.expect("PRIVMSG")
        binary.expect("PRIVMSG")
        # The core relays the bytes as they came; a text frame must be valid UTF-8, so U+FFFD.
        assert isinstance(text.received[-1], str) and text.received[-1].endswith("caf\ufffd \ufffd")
        assert isinstance(binary.received[-1], bytes) and binary.received[-1].endswith(b"caf\xe9 \xff")
        # A binary message from a text-mode client is taken as bytes (irctest testSendNonUtf8Text).
        text.send_binary(b"PRIVMSG tcp :na\xefve")
        tcp.wait_for_line(lambda line: "PRIVMSG tcp" in line)
        assert tcp.raw_lines[-1].endswith(b"PRIVMSG tcp :na\xefve")


def _opened_session(subprotocol: str) -> tuple[WebSocketSession, ClientProtocol]:
    """A server session and a sans-I/O client joined in memory, past the handshake."""
    session = WebSocketSession(WebPolicy(), "127.0.0.1")
    client = ClientProtocol(parse_uri("ws://127.0.0.1:1/"), subprotocols=[subprotocol])
    client.send_request(client.connect())
    assert session.receive(b"".join(client.data_to_send())) == b""
    client.receive_data(session.take_output())
    assert session.open and client.events_received()
    return session, client


@pytest.mark.parametrize(
    ("subprotocol", "expected"), [(TEXT, ["caf\N{REPLACEMENT CHARACTER}", "two"]), (BINARY, [b"caf\xe9", b"two"])]
)
def test_the_cores_invalid_utf8_becomes_u_fffd_in_text_frames_and_stays_in_binary(
    subprotocol: str, expected: list[str | bytes]
) -> None:
    session, client = _opened_session(subprotocol)
    session.send(b"caf\xe9\r\ntwo\r\n")  # two lines written at once: two messages
    client.receive_data(session.take_output())
    frames = client.events_received()
    got = [frame.data.decode() if frame.opcode is Opcode.TEXT else frame.data for frame in frames]
    assert got == expected
    assert {frame.opcode for frame in frames} == {Opcode.TEXT if subprotocol == TEXT else Opcode.BINARY}


def test_invalid_utf8_in_a_text_frame_fails_the_connection_with_1007(backend: str) -> None:
    with ws_server(backend) as server:
        web = WsClient(ws_url(server), "bad", subprotocols=[TEXT])
        with web.conn.protocol_mutex:
            web.conn.protocol.send_frame(Frame(Opcode.TEXT, b"PRIVMSG bad :\xff"))
            web.conn.send_data()
        web.wait_closed()
        assert web.conn.protocol.close_rcvd is not None and web.conn.protocol.close_rcvd.code == 1007
        IrcClient(server.address, "still").sync()


def test_overlong_line_gets_417_and_the_connection_goes_on(backend: str) -> None:
    with ws_server(backend) as server:
        tcp = server.client("tcp")
        web = WsClient(ws_url(server), "web", subprotocols=[TEXT])
        web.send("PRIVMSG tcp :" + "x" * 600)
        assert web.expect("417")
        web.send("PRIVMSG tcp :" + "y" * (510 - len("PRIVMSG tcp :")))  # exactly the limit: fine
        assert tcp.expect("PRIVMSG").params[0] == "tcp"


def test_origin_default_is_the_servers_own_and_others_get_403(backend: str) -> None:
    with ws_server(backend) as server:
        host, port = server.server.addresses["ws"]
        WsClient(ws_url(server), "same", origin=f"http://{host}:{port}").sync()
        with pytest.raises(InvalidStatus) as refused:
            WsClient(ws_url(server), origin="https://evil.example")
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            WsClient(ws_url(server), origin=f"http://{host}:{port + 1}")
        IrcClient(server.address, "unbothered").sync()


def test_origin_allow_list_and_star(backend: str) -> None:
    with ws_server(backend, ws_origins=parse_origins("https://chat.example.org")) as server:
        WsClient(ws_url(server), "listed", origin="https://chat.example.org").sync()
        with pytest.raises(InvalidStatus) as refused:
            WsClient(ws_url(server), origin="https://other.example.org")
        assert refused.value.response.status_code == 403
    with ws_server(backend, ws_origins=parse_origins("*")) as server:
        WsClient(ws_url(server), "anyone", origin="https://evil.example").sync()


def test_quit_sends_error_then_a_close_frame(backend: str) -> None:
    with ws_server(backend) as server:
        web = WsClient(ws_url(server), "leaver")
        web.send("QUIT :bye")
        lines = web.wait_closed()
        assert lines and lines[-1].startswith("ERROR")
        assert web.conn.protocol.close_rcvd is not None and web.conn.protocol.close_rcvd.code == 1000


def test_plain_mode_over_websocket(backend: str) -> None:
    with ws_server(backend) as server:
        irc = server.client("watcher")
        irc.send("JOIN #lobby")
        irc.expect("366")
        web = WsClient(ws_url(server))
        web.send("alice")
        web.send("hello lobby")
        message = irc.expect("PRIVMSG")
        assert message.source.startswith("alice!") and message.params == ("#lobby", "hello lobby")


def test_a_persistent_flooder_is_cut_with_excess_flood(backend: str) -> None:
    with ws_server(backend, flood_burst=5, flood_rate=50.0, flood_excess_limit=20) as server:
        watcher = server.client("watcher")
        web = WsClient(ws_url(server), "flooder")
        for client in (watcher, web):
            client.send("JOIN #f")
            client.expect("366")
        with contextlib.suppress(ConnectionClosed):  # the server may close on us mid-flood
            for index in range(2000):
                web.send(f"PRIVMSG #f :{index}")
        # Closed (its ERROR may be lost: closing on unread input resets the connection, as over TCP).
        web.wait_closed()
        quit_message = watcher.expect("QUIT")
        assert quit_message.source.startswith("flooder!") and quit_message.params == ("Excess Flood",)


def _raw_websocket(address: tuple[str, int], receive_buffer: int) -> tuple[socket.socket, ClientProtocol]:
    """A WebSocket that never reads after its handshake: websockets' sans-I/O client on a tiny socket."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(DEADLINE_S)
    sock.connect(address)
    protocol = ClientProtocol(parse_uri(f"ws://{address[0]}:{address[1]}/"), subprotocols=[TEXT])
    protocol.send_request(protocol.connect())
    for data in protocol.data_to_send():
        sock.sendall(data)
    while protocol.handshake_exc is None and not protocol.events_received():
        protocol.receive_data(sock.recv(4096))
    assert protocol.state.name == "OPEN"
    return sock, protocol


def test_a_websocket_that_never_reads_is_cut_at_its_sendq(backend: str) -> None:
    sendq = 64 * 1024
    with ws_server(backend, sendq_bytes=sendq, flood_rate=0) as server:
        sender, reader = server.client("sender"), server.client("reader")
        for client in (sender, reader):
            client.send("JOIN #flood")
            client.expect("366")
        sock, protocol = _raw_websocket(server.server.addresses["ws"], 4096)
        for line in ("NICK sleeper", "USER s 0 * :s", "JOIN #flood"):
            protocol.send_text(line.encode())
        for data in protocol.data_to_send():
            sock.sendall(data)
        reader.expect("JOIN")
        text = "z" * 400
        quit_seen = None
        for batch in range((sendq + 6 * 1024 * 1024) // (len(text) * 100) + 1):
            for index in range(100):
                sender.send(f"PRIVMSG #flood :{batch}.{index} {text}")
            for _ in range(100):
                message = reader.expect("PRIVMSG", "QUIT")
                if message.command == "QUIT":
                    quit_seen = message
                    break
            if quit_seen is not None:
                break
        if quit_seen is None:
            quit_seen = reader.expect("QUIT")
        assert quit_seen.source.startswith("sleeper!") and quit_seen.params[0] == "SendQ exceeded"
        sock.close()


def test_a_stalled_handshake_blocks_nobody(backend: str) -> None:
    with ws_server(backend) as server:
        stalled = socket.create_connection(server.server.addresses["ws"])
        stalled.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # and never the rest
        silent = socket.create_connection(server.server.addresses["ws"])  # says nothing at all
        tcp = server.client("tcp")
        web = WsClient(ws_url(server), "web", subprotocols=[TEXT])
        web.send("PRIVMSG tcp :still chatting")
        assert tcp.expect("PRIVMSG").params == ("tcp", "still chatting")
        tcp.send("PRIVMSG web :me too")
        assert web.expect("PRIVMSG").params == ("web", "me too")
        stalled.close()
        silent.close()


def _whois_host(asker: IrcClient, nick: str) -> str:
    asker.send(f"WHOIS {nick}")
    return asker.expect("311").params[3]


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(backend: str) -> None:
    headers = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
    with ws_server(backend) as server:
        asker = server.client("asker")
        WsClient(ws_url(server), "direct", additional_headers=headers).sync()
        assert _whois_host(asker, "direct") == "127.0.0.1"
    with ws_server(backend, trusted_proxies=parse_networks("127.0.0.0/8, 203.0.113.7")) as server:
        asker = server.client("asker")
        WsClient(ws_url(server), "proxied", additional_headers=headers).sync()
        # 203.0.113.7 is a trusted proxy too: the client is the rightmost address not trusted.
        assert _whois_host(asker, "proxied") == "198.51.100.9"


def test_per_address_limit_counts_the_forwarded_address(backend: str) -> None:
    with ws_server(backend, trusted_proxies=parse_networks("127.0.0.1"), max_per_ip=1) as server:
        first = WsClient(ws_url(server), "first", additional_headers={"X-Forwarded-For": "192.0.2.1"})
        WsClient(ws_url(server), "other", additional_headers={"X-Forwarded-For": "192.0.2.2"}).sync()
        refused = WsClient(ws_url(server), additional_headers={"X-Forwarded-For": "192.0.2.1"})
        lines = refused.wait_closed()
        assert lines and lines[0].startswith("ERROR") and "Too many connections" in lines[0]
        first.sync()


def test_websocket_over_tls(backend: str, certificate: tuple[Path, Path]) -> None:  # noqa: F811
    from chatd.backends.tls import server_context

    cert, key = certificate
    with ws_server(backend, tls_context=server_context(str(cert), str(key)), wss_port=0) as server:
        tcp = server.client("tcp")
        context = ssl.create_default_context(cafile=str(cert))
        host, port = server.server.addresses["wss"]
        web = WsClient(f"wss://localhost:{port}", "secure", subprotocols=[BINARY], ssl=context)
        web.send("PRIVMSG tcp :over wss")
        assert tcp.expect("PRIVMSG").params == ("tcp", "over wss")
        wait_until(lambda: host, "a bound address")
