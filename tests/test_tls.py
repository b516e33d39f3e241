"""TLS beside plaintext, in both backends: chat across the two, stalled handshakes, garbage."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from chatd.backends.tls import server_context
from tests.helpers import IrcClient, LineClient, running_server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsIrcClient(IrcClient):
    """An IrcClient whose socket is wrapped in TLS, verifying the test certificate."""

    def __init__(self, address: tuple[str, int], cert: Path, nick: str | None = None) -> None:
        context = ssl.create_default_context(cafile=str(cert))
        raw = socket.create_connection(address, timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.buffer = b""
        self.lines = []
        self.raw_lines = []
        self.nick = nick
        if nick is not None:
            self.register(nick)


def test_tls_and_plaintext_clients_talk(backend: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with running_server(backend, tls_context=server_context(str(cert), str(key)), flood_rate=0) as server:
        assert server.server.tls_address is not None
        secure = TlsIrcClient(server.server.tls_address, cert, "secure")
        plain = server.client("plain")
        for client in (secure, plain):
            client.send("JOIN #mixed")
            client.until("366")
        secure.send("PRIVMSG #mixed :over TLS")
        assert plain.expect("PRIVMSG").params == ("#mixed", "over TLS")
        for nick, shown in (("secure", True), ("plain", False)):
            plain.send(f"WHOIS {nick}")
            assert ("671" in [m.command for m in plain.until("318")]) is shown  # RPL_WHOISSECURE
        plain.send("PRIVMSG #mixed :" + "long reply " * 40)
        assert secure.expect("PRIVMSG").params[1] == "long reply " * 40
        for i in range(200):  # enough to need many records and partial writes
            plain.send(f"PRIVMSG #mixed :burst {i}")
        assert [secure.expect("PRIVMSG").params[1] for _ in range(200)] == [f"burst {i}" for i in range(200)]


def test_stalled_handshake_holds_nobody_up(backend: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with running_server(backend, tls_context=server_context(str(cert), str(key))) as server:
        assert server.server.tls_address is not None
        stallers = [LineClient(server.server.tls_address) for _ in range(3)]
        stallers[0].send_raw(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then silence
        others = [TlsIrcClient(server.server.tls_address, cert, f"fine{i}") for i in range(3)]
        plain = server.client("plain")
        others[0].send("PRIVMSG plain :handshakes went on")
        assert plain.expect("PRIVMSG").params == ("plain", "handshakes went on")
        for staller in stallers:
            staller.close()


def test_plaintext_spoken_to_the_tls_port_is_dropped(backend: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with running_server(backend, tls_context=server_context(str(cert), str(key))) as server:
        assert server.server.tls_address is not None
        confused = LineClient(server.server.tls_address)
        confused.send_raw(b"NICK oops\r\nUSER a 0 * :a\r\n")
        confused.wait_closed()
        assert TlsIrcClient(server.server.tls_address, cert, "after").sync() is not None
