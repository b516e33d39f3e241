"""SASL (IRCv3 sasl-3.1) and PASS logins over both backends: PLAIN, SCRAM-SHA-256, EXTERNAL with a
TLS client certificate, the 400-byte chunking, aborts, 907, throttling, and registration waiting
for the answer."""

from __future__ import annotations

import base64
import functools
import hashlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import scramp

from chatd.backends.tls import server_context
from chatd.core.accounts import make_record
from chatd.core.ports import AccountRecord
from chatd.core.sasl import add_certfp, challenge_lines
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message
from tests.helpers import IrcClient, RunningServer, running_server


@functools.cache
def record(name: str, password: str) -> AccountRecord:
    """Hashing is slow on purpose: each account is made once per test run."""
    return make_record(name, password)


def accounts(*pairs: tuple[str, str]) -> MemoryAccountStore:
    store = MemoryAccountStore()
    for name, password in pairs:
        assert store.create_account(irc_lower(name), record(name, password))
    return store


@contextmanager
def sasl_server(backend: str, *pairs: tuple[str, str], **options: object) -> Iterator[RunningServer]:
    with running_server(backend, accounts=accounts(*pairs), flood_rate=0, **options) as server:
        yield server


def plain(authcid: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


def begin(client: IrcClient, mechanism: str = "PLAIN", nick: str = "tester") -> None:
    """CAP negotiation with sasl, NICK and USER, and ``AUTHENTICATE <mechanism>`` answered by ``+``."""
    client.send("CAP LS 302")
    client.send("CAP REQ :sasl")
    while (reply := client.expect("CAP")).params[1] == "LS":
        pass
    assert reply.params[1] == "ACK"
    client.send(f"NICK {nick}")
    client.send("USER u 0 * :u")
    client.send(f"AUTHENTICATE {mechanism}")
    assert client.expect("AUTHENTICATE").params == ("+",)


def numerics(messages: list[Message]) -> list[str]:
    return [m.command for m in messages if m.command.isdigit() and m.command.startswith("9")]


def test_plain_success_then_registration(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client)
        client.send("AUTHENTICATE " + plain("alice", "sesame"))
        seen = client.until(n.RPL_SASLSUCCESS)
        logged_in = next(m for m in seen if m.command == n.RPL_LOGGEDIN)
        assert logged_in.params[2] == "alice"
        assert numerics(seen) == [n.RPL_LOGGEDIN, n.RPL_SASLSUCCESS]
        client.send("CAP END")
        client.expect(n.RPL_WELCOME)
        client.send("AUTHENTICATE PLAIN")
        assert client.expect(n.ERR_SASLALREADY).params[0] == "tester"


def test_plain_with_authzid_and_any_case(backend: str) -> None:
    with sasl_server(backend, ("Alice", "sesame")) as server:
        client = server.client()
        begin(client)
        client.send("AUTHENTICATE " + plain("ALICE", "sesame", authzid="alice"))
        assert client.expect(n.RPL_LOGGEDIN).params[2] == "Alice"


def test_plain_failure_says_why_and_allows_another_try(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client)
        client.send("AUTHENTICATE " + plain("alice", "millet"))
        failure = client.expect(n.ERR_SASLFAIL, n.RPL_LOGGEDIN)
        assert failure.command == n.ERR_SASLFAIL
        assert "Invalid account name or password" in failure.params[-1]
        client.send("AUTHENTICATE " + plain("nobody", "sesame"))  # no exchange now: not a mechanism
        assert client.expect(n.ERR_SASLFAIL).params[-1].startswith("SASL authentication failed")
        client.send("AUTHENTICATE PLAIN")
        client.expect("AUTHENTICATE")
        client.send("AUTHENTICATE " + plain("alice", "sesame"))
        client.expect(n.RPL_SASLSUCCESS)


def test_unknown_mechanism_lists_ours(backend: str) -> None:
    with sasl_server(backend) as server:
        client = server.client()
        client.send("CAP REQ sasl")
        client.expect("CAP")
        client.send("AUTHENTICATE FOO")
        mechs = client.expect(n.RPL_SASLMECHS)
        assert mechs.params[1] == "PLAIN,SCRAM-SHA-256,EXTERNAL"
        assert client.expect_any().command == n.ERR_SASLFAIL


def test_authenticate_needs_the_sasl_cap(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        client.send("AUTHENTICATE PLAIN")
        assert "sasl capability" in client.expect(n.ERR_SASLFAIL).params[-1]


def test_scram_sha_256_success_and_wrong_password(backend: str) -> None:
    with sasl_server(backend, ("Scramtest", "sesame")) as server:
        for password, succeeds in (("millet", False), ("sesame", True)):
            client = server.client()
            begin(client, "SCRAM-SHA-256")
            scram = scramp.ScramClient(["SCRAM-SHA-256"], "scramtest", password)
            client.send("AUTHENTICATE " + base64.b64encode(scram.get_client_first().encode()).decode())
            server_first = client.expect("AUTHENTICATE").params[0]
            scram.set_server_first(base64.b64decode(server_first).decode())
            client.send("AUTHENTICATE " + base64.b64encode(scram.get_client_final().encode()).decode())
            if not succeeds:
                assert "Invalid account name or password" in client.expect(n.ERR_SASLFAIL).params[-1]
                client.close()
                continue
            server_final = client.expect("AUTHENTICATE").params[0]
            scram.set_server_final(base64.b64decode(server_final).decode())  # the server proved itself
            client.send("AUTHENTICATE +")
            seen = client.until(n.RPL_SASLSUCCESS)
            assert numerics(seen) == [n.RPL_LOGGEDIN, n.RPL_SASLSUCCESS]
            assert seen[0].params[2] == "Scramtest"


def test_scram_for_an_unknown_account_fails_like_a_wrong_password(backend: str) -> None:
    with sasl_server(backend) as server:
        client = server.client()
        begin(client, "SCRAM-SHA-256")
        scram = scramp.ScramClient(["SCRAM-SHA-256"], "ghost", "sesame")
        client.send("AUTHENTICATE " + base64.b64encode(scram.get_client_first().encode()).decode())
        scram.set_server_first(base64.b64decode(client.expect("AUTHENTICATE").params[0]).decode())
        client.send("AUTHENTICATE " + base64.b64encode(scram.get_client_final().encode()).decode())
        assert "Invalid account name or password" in client.expect(n.ERR_SASLFAIL).params[-1]


def test_scram_after_registration_is_refused_plain_is_not(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        client.send("CAP REQ sasl")
        client.send("CAP END")
        client.register("late")
        client.send("AUTHENTICATE SCRAM-SHA-256")
        assert "before connection registration" in client.expect(n.ERR_SASLFAIL).params[-1]
        client.send("AUTHENTICATE PLAIN")
        client.expect("AUTHENTICATE")
        client.send("AUTHENTICATE " + plain("alice", "sesame"))
        assert numerics(client.until(n.RPL_SASLSUCCESS)) == [n.RPL_LOGGEDIN, n.RPL_SASLSUCCESS]


def test_abort_and_garbage(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client)
        client.send("AUTHENTICATE *")
        client.expect(n.ERR_SASLABORTED)
        client.send("AUTHENTICATE PLAIN")
        client.expect("AUTHENTICATE")
        client.send("AUTHENTICATE !!!notbase64")
        assert "base64" in client.expect(n.ERR_SASLFAIL).params[-1]
        client.send("AUTHENTICATE PLAIN")
        client.expect("AUTHENTICATE")
        client.send("AUTHENTICATE " + base64.b64encode(b"no nul bytes").decode())
        assert "Invalid PLAIN message" in client.expect(n.ERR_SASLFAIL).params[-1]


def test_chunking_exactly_400_and_more(backend: str) -> None:
    exact = "x" * (300 - len("\0alice\0"))  # 300 bytes encode to exactly 400
    longer = "y" * 500
    with sasl_server(backend, ("alice", exact), ("bob", longer)) as server:
        client = server.client()
        begin(client)
        payload = plain("alice", exact)
        assert len(payload) == 400
        client.send("AUTHENTICATE " + payload)
        client.send("AUTHENTICATE +")
        assert client.expect(n.RPL_LOGGEDIN).params[2] == "alice"
        client.expect(n.RPL_SASLSUCCESS)

        other = server.client()
        begin(other, nick="other")
        payload = plain("bob", longer)
        chunks = [payload[i : i + 400] for i in range(0, len(payload), 400)]
        assert len(chunks) == 2 and len(chunks[1]) < 400
        for chunk in chunks:
            other.send("AUTHENTICATE " + chunk)
        assert other.expect(n.RPL_LOGGEDIN).params[2] == "bob"


def test_server_challenges_are_chunked_the_same_way() -> None:
    def params(payload: bytes) -> list[str]:
        return [line.split(" ", 2)[2] for line in challenge_lines("chatd", payload)]

    assert params(b"") == ["+"]
    exact = params(b"x" * 300)
    assert [len(p) for p in exact] == [400, 1] and exact[1] == "+"
    assert [len(p) for p in params(b"x" * 301)] == [400, 4]
    assert base64.b64decode("".join(params(b"y" * 700))) == b"y" * 700


def test_an_oversized_chunk_is_905_and_an_endless_response_904(backend: str) -> None:
    with sasl_server(backend) as server:
        client = server.client()
        begin(client)
        client.send("AUTHENTICATE " + "A" * 401)
        client.expect(n.ERR_SASLTOOLONG)
        client.send("AUTHENTICATE PLAIN")
        client.expect("AUTHENTICATE")
        for _ in range(21):  # 8400 bytes of base64: past the bound
            client.send("AUTHENTICATE " + "A" * 400)
        assert "too long" in client.expect(n.ERR_SASLFAIL).params[-1]
        client.send("AUTHENTICATE PLAIN")  # a fresh start after the failure
        assert client.expect("AUTHENTICATE").params == ("+",)


def test_throttling_refuses_the_fourth_try_unchecked(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client)
        for _ in range(3):
            client.send("AUTHENTICATE " + plain("alice", "wrong"))
            assert "Invalid account name or password" in client.expect(n.ERR_SASLFAIL).params[-1]
            client.send("AUTHENTICATE PLAIN")
            client.expect("AUTHENTICATE")
        client.send("AUTHENTICATE " + plain("alice", "sesame"))  # right, but refused without a check
        refusal = client.expect(n.ERR_SASLFAIL, n.RPL_LOGGEDIN)
        assert refusal.command == n.ERR_SASLFAIL
        assert "Too many failed login attempts" in refusal.params[-1]
        # SCRAM from the same address is refused too.
        client.send("AUTHENTICATE SCRAM-SHA-256")
        client.expect("AUTHENTICATE")
        scram = scramp.ScramClient(["SCRAM-SHA-256"], "alice", "sesame")
        client.send("AUTHENTICATE " + base64.b64encode(scram.get_client_first().encode()).decode())
        assert "Too many failed login attempts" in client.expect(n.ERR_SASLFAIL).params[-1]


def test_cap_end_waits_for_the_sasl_answer(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client)
        # The answer, CAP END and a JOIN in one write: the check runs off the loop meanwhile.
        client.send_raw(f"AUTHENTICATE {plain('alice', 'sesame')}\r\nCAP END\r\nJOIN #after\r\n".encode())
        seen = client.until("366")
        order = [m.command for m in seen]
        assert order.index(n.RPL_LOGGEDIN) < order.index(n.RPL_SASLSUCCESS) < order.index(n.RPL_WELCOME)
        assert n.ERR_NOTREGISTERED not in order


def test_cap_end_mid_exchange_aborts_it(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client)
        client.send("CAP END")
        seen = client.until(n.RPL_WELCOME)
        assert numerics(seen) == [n.ERR_SASLABORTED]


def test_pass_account_password_logs_in_before_001(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        client.send("PASS alice:sesame")
        client.send("NICK alice")
        client.send("USER u 0 * :u")
        seen = client.until(n.RPL_WELCOME)
        assert [m.params[2] for m in seen if m.command == n.RPL_LOGGEDIN] == ["alice"]

        wrong = server.client()
        wrong.send("PASS alice:millet")
        wrong.send("NICK bob")
        wrong.send("USER u 0 * :u")
        seen = wrong.until(n.RPL_WELCOME)
        assert n.RPL_LOGGEDIN not in [m.command for m in seen]
        notice = next(m for m in seen if m.command == "NOTICE")
        assert "Login via PASS failed: Invalid account name or password" in notice.params[-1]


def test_pass_with_a_server_password(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame"), password="letmein") as server:
        both = server.client()
        both.send("PASS letmein:alice:sesame")
        both.register("alice")
        assert both.lines and any(f" {n.RPL_LOGGEDIN} " in line for line in both.lines)

        only_server = server.client()
        only_server.send("PASS letmein")
        only_server.register("bob")
        assert not any(f" {n.RPL_LOGGEDIN} " in line for line in only_server.lines)

        only_account = server.client()
        only_account.send("PASS alice:sesame")
        only_account.send("NICK carol")
        only_account.send("USER u 0 * :u")
        assert only_account.expect(n.ERR_PASSWDMISMATCH, n.RPL_WELCOME).command == n.ERR_PASSWDMISMATCH


# ---- EXTERNAL over TLS with a client certificate ----------------------------------------------


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("sasl-tls")
    return {name: _self_signed(folder, name) for name in ("localhost", "alice", "stranger")}


def fingerprint(cert: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


class TlsClient(IrcClient):
    """An IrcClient over TLS that trusts the test server and may present a certificate of its own."""

    def __init__(self, address: tuple[str, int], server_cert: Path, own: tuple[Path, Path] | None) -> None:
        context = ssl.create_default_context(cafile=str(server_cert))
        if own is not None:
            context.load_cert_chain(str(own[0]), str(own[1]))
        self.sock = context.wrap_socket(socket.create_connection(address, timeout=10), server_hostname="localhost")
        self.buffer = b""
        self.lines = []
        self.raw_lines = []
        self.nick = None


def test_external_with_a_self_signed_client_certificate(
    backend: str, certificates: dict[str, tuple[Path, Path]]
) -> None:
    server_cert, server_key = certificates["localhost"]
    store = accounts(("alice", "sesame"))
    assert add_certfp(store, "alice", fingerprint(certificates["alice"][0]).upper())
    assert not add_certfp(store, "nobody", fingerprint(certificates["stranger"][0]))
    context = server_context(str(server_cert), str(server_key))
    with running_server(backend, tls_context=context, accounts=store, flood_rate=0) as server:
        assert server.server.tls_address is not None
        client = TlsClient(server.server.tls_address, server_cert, certificates["alice"])
        begin(client, "EXTERNAL")
        client.send("AUTHENTICATE +")
        seen = client.until(n.RPL_SASLSUCCESS)
        assert [m.params[2] for m in seen if m.command == n.RPL_LOGGEDIN] == ["alice"]

        stranger = TlsClient(server.server.tls_address, server_cert, certificates["stranger"])
        begin(stranger, "EXTERNAL", nick="stranger")
        stranger.send("AUTHENTICATE " + base64.b64encode(b"alice").decode())
        assert "not registered" in stranger.expect(n.ERR_SASLFAIL).params[-1]

        anonymous = TlsClient(server.server.tls_address, server_cert, None)  # no certificate: still welcome
        begin(anonymous, "EXTERNAL", nick="anonymous")
        anonymous.send("AUTHENTICATE +")
        assert "No client certificate" in anonymous.expect(n.ERR_SASLFAIL).params[-1]
        anonymous.send("CAP END")
        anonymous.expect(n.RPL_WELCOME)


def test_external_over_plaintext_has_no_certificate(backend: str) -> None:
    with sasl_server(backend, ("alice", "sesame")) as server:
        client = server.client()
        begin(client, "EXTERNAL")
        client.send("AUTHENTICATE +")
        assert "No client certificate" in client.expect(n.ERR_SASLFAIL).params[-1]
