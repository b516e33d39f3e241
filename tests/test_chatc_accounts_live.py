"""chatc's SASL login over real sockets: ``python -m chatc --sasl`` (headless) and the full-screen UI against a
small scripted SASL server (PLAIN, and SCRAM-SHA-256 through scramp's server side), and against a real chatd.

The scripted server is what a test can run whatever the server in this tree offers; it checks the wire
format (chunking, CAP END only after the outcome) the way a strict server would.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from scramp import ScramMechanism

from chatc.connection import ServerAddress
from chatc.sasl import Credentials
from chatc.state import ClientState
from chatc.ui import ChatUI
from chatd.core.accounts import make_record
from chatd.core.commands import COMMANDS
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import parse
from tests.helpers import DEADLINE_S, running_server
from tests.test_chatc_headless import ChatcProcess
from tests.test_chatc_ui import until

SCRAM_OFFER = "sasl=PLAIN,SCRAM-SHA-256,EXTERNAL"


class SaslServer:
    """One connection: CAP LS 302 with ``offer``, ACK of any REQ, AUTHENTICATE PLAIN or SCRAM-SHA-256 for
    account ``alice`` with ``password``, 900/903 or 904, 001 after CAP END, ERROR on QUIT. Records lines."""

    def __init__(self, password: str = "hunter2", offer: str = SCRAM_OFFER) -> None:
        self.password = password
        self.offer = offer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.lines: list[str] = []
        self.done = threading.Event()
        mechanism = ScramMechanism("SCRAM-SHA-256")
        keys = mechanism.make_auth_info(password, iteration_count=4096)
        self._scram = mechanism.make_server(lambda username: keys)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.sock:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(DEADLINE_S)
                self._talk(conn)
        self.done.set()

    def _talk(self, conn: socket.socket) -> None:
        data = b""
        mechanism = payload = ""
        steps = 0
        nick = "me"
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while b"\n" in data:
                raw, data = data.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode()
                self.lines.append(line)
                message = parse(line)
                reply: list[str] = []
                if message.command == "CAP" and message.param(0) == "LS":
                    reply.append(f":srv CAP * LS :server-time {self.offer}")
                elif message.command == "CAP" and message.param(0) == "REQ":
                    reply.append(f":srv CAP * ACK :{message.param(1)}")
                elif message.command == "NICK":
                    nick = message.param(0)
                elif message.command == "AUTHENTICATE" and not mechanism:
                    mechanism = message.param(0)
                    reply.append("AUTHENTICATE +")
                elif message.command == "AUTHENTICATE":
                    assert len(message.param(0)) <= 400
                    if message.param(0) != "+":
                        payload += message.param(0)
                    if len(message.param(0)) == 400:
                        continue
                    decoded, payload = base64.b64decode(payload).decode(), ""
                    steps += 1
                    reply.extend(self._step(mechanism, steps, decoded, nick))
                elif message.command == "CAP" and message.param(0) == "END":
                    reply.append(f":srv 001 {nick} :Welcome")
                elif message.command == "PING":
                    reply.append(f":srv PONG srv :{message.param(0)}")
                elif message.command == "QUIT":
                    conn.sendall(b"ERROR :bye\r\n")
                    return
                for out in reply:
                    conn.sendall(out.encode() + b"\r\n")

    def _step(self, mechanism: str, step: int, decoded: str, nick: str) -> list[str]:
        ok = [f":srv 900 {nick} {nick}!u@h alice :You are now logged in as alice", f":srv 903 {nick} :SASL success"]
        failed = [f":srv 904 {nick} :SASL authentication failed: Invalid account credentials"]
        if mechanism == "PLAIN":
            return ok if decoded == f"alice\0alice\0{self.password}" else failed
        try:
            if step == 1:
                self._scram.set_client_first(decoded)
                return [f"AUTHENTICATE {base64.b64encode(self._scram.get_server_first().encode()).decode()}"]
            if step == 2:
                self._scram.set_client_final(decoded)
                return [f"AUTHENTICATE {base64.b64encode(self._scram.get_server_final().encode()).decode()}"]
        except Exception:  # scramp refuses a wrong proof: that is a failed login
            return failed
        return ok


def commands_seen(server: SaslServer) -> list[str]:
    """The commands chatc sent, in order, CAP with its subcommand: ``CAP LS``, ``AUTHENTICATE``, ``CAP END``."""
    return [" ".join(line.split(" ")[: 2 if line.startswith("CAP") else 1]) for line in server.lines]


def sasl_chatc(fake: SaslServer, *extra: str, password: str = "hunter2") -> ChatcProcess:
    host, port = fake.address
    return ChatcProcess("--host", host, "--port", str(port), "--sasl", *extra, env_extra={"CHATC_PASSWORD": password})


def test_headless_sasl_scram_logs_in_with_the_password_from_chatc_password() -> None:
    fake = SaslServer()
    status, errors = sasl_chatc(fake, "--nick", "me", "--account", "alice").finish()
    assert status == 0, errors
    assert "chatc: You are now logged in as alice" in errors
    assert "AUTHENTICATE SCRAM-SHA-256" in fake.lines
    seen = commands_seen(fake)
    assert seen.index("CAP END") > seen.index("AUTHENTICATE") and "PASS" not in seen  # CHATC_PASSWORD is no PASS


def test_headless_sasl_failure_says_why_and_exits_1() -> None:
    fake = SaslServer(offer="sasl=PLAIN")
    status, errors = sasl_chatc(fake, "--nick", "alice", password="wrong").finish()
    assert status == 1, errors
    assert "chatc: SASL login failed: SASL authentication failed: Invalid account credentials" in errors
    assert errors.count("SASL login failed") == 1, errors
    assert "CAP END" not in fake.lines and fake.lines[-1].startswith("QUIT")


def test_headless_sasl_fail_continue_registers_without_the_account() -> None:
    fake = SaslServer(offer="sasl=PLAIN")
    status, errors = sasl_chatc(fake, "--nick", "alice", "--sasl-fail", "continue", password="wrong").finish()
    assert status == 0, errors
    assert "Invalid account credentials; continuing without an account" in errors


def test_sasl_without_a_password_or_a_terminal_is_a_usage_error() -> None:
    status, errors = ChatcProcess("--port", "1", "--nick", "alice", "--sasl").finish()
    assert status == 2
    assert "--sasl needs a terminal to ask for the password, or CHATC_PASSWORD" in errors


@pytest.mark.parametrize("offer", ["sasl=PLAIN", SCRAM_OFFER])
def test_the_ui_shows_the_account_and_keeps_passwords_out_of_the_input_history(offer: str) -> None:
    fake = SaslServer(offer=offer)

    async def scenario() -> None:
        with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
            ui = ChatUI(ServerAddress(*fake.address), ClientState("me", (), sasl=Credentials("alice", "hunter2")))
            task = asyncio.create_task(ui.run())
            await until(lambda: ui.connection.status == "connected", "registration")
            assert ui.state.account == "alice"
            assert " [account: alice]" in "".join(fragment[1] for fragment in ui._status_fragments())
            keys.send_text("/identify alice s3cret\r")
            await until(lambda: any("IDENTIFY" in line for line in fake.lines), "the IDENTIFY")
            keys.send_text("/whois alice\r")
            await until(lambda: any("WHOIS" in line for line in fake.lines), "the WHOIS")
            assert list(ui.input.buffer.history.get_strings()) == ["/whois alice"]
            shown = [line.text for buf in ui.state.buffer_list for line in buf.lines]
            assert not any("s3cret" in text for text in shown)
            ui.quit("test over")
            await asyncio.wait_for(task, DEADLINE_S)

    asyncio.run(scenario())
    assert "PRIVMSG NickServ :IDENTIFY alice s3cret" in fake.lines


# ---- against a real chatd ---------------------------------------------------------------------------------------

SERVER_HAS_SASL = "AUTHENTICATE" in COMMANDS
SERVER_HAS_REGISTER = "REGISTER" in COMMANDS


def store_with(name: str, password: str) -> MemoryAccountStore:
    store = MemoryAccountStore()
    assert store.create_account(irc_lower(name), make_record(name, password))
    return store


@pytest.mark.skipif(not SERVER_HAS_SASL, reason="this chatd has no AUTHENTICATE yet")
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_login_to_chatd(backend: str, mechanism: str) -> None:
    with running_server(backend, accounts=store_with("alice", "hunter2")) as server:
        host, port = server.address
        chatc = ChatcProcess(
            "--host", host, "--port", str(port), "--nick", "alice", "--sasl", "--sasl-mechanism", mechanism,
            env_extra={"CHATC_PASSWORD": "hunter2"},
        )  # fmt: skip
        status, errors = chatc.finish()
    assert status == 0, errors
    assert "chatc: You are now logged in as alice" in errors, errors


@pytest.mark.skipif(not SERVER_HAS_SASL, reason="this chatd has no AUTHENTICATE yet")
def test_a_failed_login_to_chatd_says_the_servers_reason(backend: str) -> None:
    with running_server(backend, accounts=store_with("alice", "hunter2")) as server:
        host, port = server.address
        chatc = ChatcProcess(
            "--host", host, "--port", str(port), "--nick", "alice", "--sasl", env_extra={"CHATC_PASSWORD": "nope"}
        )
        status, errors = chatc.finish()
    assert status == 1, errors
    reason = errors.split("chatc: SASL login failed: ", 1)[1].strip()
    assert reason and "nope" not in errors, errors


@pytest.mark.skipif(not SERVER_HAS_REGISTER, reason="this chatd has no REGISTER yet")
def test_register_with_chatd(backend: str) -> None:
    store = MemoryAccountStore()
    with running_server(backend, accounts=store) as server:
        host, port = server.address
        chatc = ChatcProcess("--host", host, "--port", str(port), "--nick", "newbie")
        chatc.write("/register s3cret\n")
        status, errors = chatc.finish()
    assert status == 0, errors
    assert "chatc: Account newbie registered" in errors, errors
    assert store.account(irc_lower("newbie")) is not None
