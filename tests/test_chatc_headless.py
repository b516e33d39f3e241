"""chatc without a terminal, end to end: ``python -m chatc`` as a subprocess with pipes, against a real chatd."""

from __future__ import annotations

import asyncio
import io
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatc.connection import ServerAddress
from chatc.headless import HeadlessClient
from chatc.state import ClientState
from chatd.backends.tls import server_context
from tests.helpers import DEADLINE_S, IrcClient, RunningServer, running_server

ROOT = Path(__file__).resolve().parent.parent


class ChatcProcess:
    """A headless chatc with its stdout read by a thread, so tests can wait for lines with a deadline."""

    def __init__(self, *args: str, env_extra: dict[str, str] | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
        for name in list(env):
            if name.startswith("CHATC_"):  # the test's own options only
                env.pop(name)
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatc", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._stderr: list[bytes] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_thread.start()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.extend(self.proc.stderr)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8").rstrip("\n"))
        self.lines.put(None)

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode("utf-8"))
        self.proc.stdin.flush()

    def close_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait_line(self, wanted: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"chatc never printed {wanted!r}; printed {self.seen!r}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise EOFError(f"chatc exited before printing {wanted!r}; printed {self.seen!r}")
            self.seen.append(line)
            if line == wanted:
                return

    def printed(self) -> list[str]:
        """Every line printed, including those no ``wait_line`` consumed; waits for stdout to close."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                return self.seen
            self.seen.append(line)

    def finish(self) -> tuple[int, str]:
        """Exit status and stderr, waiting (with a deadline) for the process to end."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._stderr_thread.join(timeout=DEADLINE_S)
        return self.proc.returncode, b"".join(self._stderr).decode("utf-8", "replace")


@pytest.fixture
def peer(server: RunningServer) -> Iterator[IrcClient]:
    client = server.client("peer")
    client.send("JOIN #t")
    client.expect("366")
    yield client
    client.close()


def start_chatc(server: RunningServer, nick: str = "bot", *extra: str) -> ChatcProcess:
    host, port = server.address
    return ChatcProcess("--host", host, "--port", str(port), "--nick", nick, "--channel", "#t", *extra)


def wait_joined(peer: IrcClient, nick: str) -> None:
    peer.wait_for_line(lambda line: line.startswith(f":{nick}!") and " JOIN " in line)


def test_every_piped_line_arrives_in_order_before_chatc_exits(server: RunningServer, peer: IrcClient) -> None:
    # More than chatc's burst, so its pacing is exercised; few enough to stay quick at 3 lines/s.
    texts = [f"line {i} ünïcödé" for i in range(20)]
    chatc = start_chatc(server)
    wait_joined(peer, "bot")
    chatc.write("".join(text + "\n" for text in texts))
    chatc.close_input()
    received = []
    while len(received) < len(texts):
        message = peer.expect("PRIVMSG")
        received.append(message.params[-1])
    assert received == texts
    peer.wait_for_line(lambda line: line.startswith(":bot!") and " QUIT " in line)
    status, stderr = chatc.finish()
    assert status == 0, stderr
    assert "Traceback" not in stderr


def test_incoming_messages_are_printed_one_per_line_and_sanitised(server: RunningServer, peer: IrcClient) -> None:
    chatc = start_chatc(server)
    wait_joined(peer, "bot")
    peer.send("PRIVMSG #t :hello bot")
    chatc.wait_line("#t <peer> hello bot")
    peer.send("PRIVMSG #t :\x01ACTION waves\x01")
    chatc.wait_line("#t * peer waves")
    peer.send("PRIVMSG bot :psst \x1b[2Jgotcha")
    chatc.wait_line("peer <peer> psst ^[[2Jgotcha")
    peer.send("NOTICE #t :heads up")
    chatc.wait_line("#t -peer- heads up")
    chatc.close_input()
    status, stderr = chatc.finish()
    assert status == 0, stderr


def test_slash_commands_work_from_a_pipe(server: RunningServer, peer: IrcClient) -> None:
    chatc = start_chatc(server)
    wait_joined(peer, "bot")
    chatc.write("/msg peer private hello\n/me dances\n/notice peer pipes are fine\n/quit done here\n")
    assert peer.expect("PRIVMSG").params == ("peer", "private hello")
    assert peer.expect("PRIVMSG").params == ("#t", "\x01ACTION dances\x01")
    assert peer.expect("NOTICE").params == ("peer", "pipes are fine")
    quit_message = peer.expect("QUIT")
    assert quit_message.source is not None and quit_message.source.startswith("bot!")
    assert "done here" in quit_message.params[-1]
    status, stderr = chatc.finish()
    assert status == 0, stderr


def test_bad_input_lines_are_reported_and_make_the_exit_status_nonzero(
    server: RunningServer, peer: IrcClient
) -> None:
    chatc = start_chatc(server)
    wait_joined(peer, "bot")
    chatc.write("/nosuchcommand\nstill sent\n")
    chatc.close_input()
    assert peer.expect("PRIVMSG").params == ("#t", "still sent")
    status, stderr = chatc.finish()
    assert status == 1
    assert "Unknown command /nosuchcommand" in stderr
    assert "Traceback" not in stderr


def test_a_taken_nick_is_replaced_so_registration_never_stalls(server: RunningServer, peer: IrcClient) -> None:
    chatc = start_chatc(server, "peer")
    wait_joined(peer, "peer_")
    chatc.write("hi from the other peer\n")
    chatc.close_input()
    message = peer.expect("PRIVMSG")
    assert message.source is not None and message.source.startswith("peer_!")
    status, stderr = chatc.finish()
    assert status == 0, stderr
    assert "chatc: nick peer is taken; using peer_ instead\n" in stderr  # a script learns its nick


def test_unreachable_server_gives_a_clear_error_and_nonzero_exit() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chatc = ChatcProcess("--port", str(port), "--nick", "bot", "--channel", "#t")
    chatc.close_input()
    status, stderr = chatc.finish()
    assert status == 1
    assert f"cannot connect to 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--port", "abc"], "--port: not a port number: 'abc'"),
        (["--port", "70000"], "--port: port out of range 1-65535: 70000"),
        (["--nick", "123abc"], "--nick: '123abc': a nick cannot start with a digit"),
        (["--nick", "a" * 33], f"--nick: '{'a' * 33}': a nick has at most 32 characters (33 given)"),
        (["--nick", "a.b"], "--nick: 'a.b': a nick cannot contain '.'"),
        (["--channel", "#a,b"], "--channel: not a valid channel name: '#a,b'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_saying_why(args: list[str], why: str) -> None:
    chatc = ChatcProcess(*args)
    chatc.close_input()
    status, stderr = chatc.finish()
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith(f"chatc: {why}"), stderr  # no usage dump


def test_password_is_sent_and_a_wrong_one_is_a_clear_failure(backend: str) -> None:
    with running_server(backend, password="s3cret") as server:
        peer = server.client()
        peer.send("PASS s3cret")
        peer.register("peer")
        peer.send("JOIN #t")
        peer.expect("366")
        host, port = server.address
        common = ("--host", host, "--port", str(port))
        good = ChatcProcess(*common, "--nick", "bot", "--channel", "#t", "--password", "s3cret")
        wait_joined(peer, "bot")
        good.write("authenticated\n")
        good.close_input()
        assert peer.expect("PRIVMSG").params == ("#t", "authenticated")
        status, stderr = good.finish()
        assert status == 0, stderr
        bad = ChatcProcess(*common, "--nick", "bot2", "--password", "wrong")
        bad.close_input()
        status, stderr = bad.finish()
        assert status == 1
        assert "464" in stderr
        assert "Traceback" not in stderr
        peer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (needs the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("chatc-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_checks_the_certificate_and_talks_when_it_is_trusted(backend: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with running_server(backend, tls_context=server_context(str(cert), str(key))) as server:
        assert server.server.tls_address is not None
        host, port = server.server.tls_address
        peer = server.client("peer")
        peer.send("JOIN #t")
        peer.expect("366")
        common = ("--host", host, "--port", str(port), "--channel", "#t")
        untrusted = ChatcProcess(*common, "--nick", "bot0", "--tls")
        untrusted.close_input()
        status, stderr = untrusted.finish()
        assert status == 1
        assert "certificate verify failed" in stderr and "Traceback" not in stderr
        for nick, options in (("bot1", ("--tls-ca", str(cert))), ("bot2", ("--tls-insecure",))):
            chatc = ChatcProcess(*common, "--nick", nick, *options)
            wait_joined(peer, nick)
            peer.send(f"PRIVMSG #t :over tls to {nick}")
            chatc.wait_line(f"#t <peer> over tls to {nick}")
            chatc.write("and back\n")
            chatc.close_input()
            message = peer.expect("PRIVMSG")
            assert message.source is not None and message.source.startswith(f"{nick}!")
            assert message.params == ("#t", "and back")
            status, stderr = chatc.finish()
            assert status == 0, stderr
        peer.close()


def test_a_missing_ca_file_is_a_usage_error() -> None:
    chatc = ChatcProcess("--nick", "bot", "--tls-ca", "/nonexistent/ca.pem")
    status, stderr = chatc.finish()
    assert status == 2
    assert "--tls-ca" in stderr and "Traceback" not in stderr


def test_a_server_that_never_registers_us_is_an_error_not_a_hang() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (in the kernel) and never speaks
        address = ServerAddress(*silent.getsockname()[:2])
        stdout, stderr = io.StringIO(), io.StringIO()
        client = HeadlessClient(address, ClientState("bot"), "#t", stdout, stderr, registration_timeout_s=0.5)
        read_fd, write_fd = os.pipe()
        try:
            with open(read_fd, "rb") as stdin:
                status = asyncio.run(client.run(stdin))
        finally:
            os.close(write_fd)
    assert status == 1
    assert "did not accept us within 0.5s" in stderr.getvalue()
    assert stdout.getvalue() == ""


def test_options_come_from_the_environment_and_the_command_line_wins(server: RunningServer, peer: IrcClient) -> None:
    host, port = server.address
    env = {"CHATC_HOST": host, "CHATC_PORT": str(port), "CHATC_NICK": "envbot"}
    chatc = ChatcProcess("--channel", "#t", env_extra=env)
    wait_joined(peer, "envbot")
    chatc.close_input()
    assert chatc.finish()[0] == 0
    chatc = ChatcProcess("--channel", "#t", "--nick", "clibot", env_extra=env)
    wait_joined(peer, "clibot")
    chatc.close_input()
    assert chatc.finish()[0] == 0
    bad = ChatcProcess(env_extra={"CHATC_PORT": "not-a-port"})
    status, stderr = bad.finish()
    assert status == 2 and "not a port number" in stderr
