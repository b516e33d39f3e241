"""chatd as a user runs it: a subprocess with options, environment, signals and exit codes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers import DEADLINE_S, IrcClient


def start_chatd(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    """Start chatd on a free port; return the process and the port it reported listening on."""
    if "--data-dir" not in args:
        args = ("--data-dir", tempfile.mkdtemp(prefix="chatd-test-"), *args)
    process = subprocess.Popen(
        [sys.executable, "-m", "chatd", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "listening on" in line:
            return process, int(line.rsplit(":", 1)[1].split()[0])
    process.wait(DEADLINE_S)
    raise AssertionError(f"chatd did not start (exit {process.returncode})")


@contextmanager
def chatd_process(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    process, port = start_chatd(*args, env=env)
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(DEADLINE_S)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_error_to_every_client(backend: str, signum: int) -> None:
    with chatd_process("--backend", backend) as (process, port):
        clients = [IrcClient(("127.0.0.1", port), f"c{i}") for i in range(3)]
        process.send_signal(signum)
        for client in clients:
            assert "ERROR :Server shutting down" in client.wait_closed()
        assert process.wait(DEADLINE_S) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


def test_options_from_environment(backend: str) -> None:
    env = {"CHATD_NAME": "env.example", "CHATD_BACKEND": backend}
    with chatd_process(env=env) as (_, port):
        messages = IrcClient(("127.0.0.1", port)).register("e")
        assert messages[0].source == "env.example"


def test_motd_file_option(tmp_path: pytest.TempPathFactory) -> None:
    motd = tmp_path / "motd.txt"  # type: ignore[operator]
    motd.write_text("Hello from the file\n")
    with chatd_process("--motd-file", str(motd)) as (_, port):
        messages = IrcClient(("127.0.0.1", port)).register("m")
        assert ("m", "- Hello from the file") in [m.params for m in messages if m.command == "372"]


def run_chatd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if "--data-dir" not in args:
        args = ("--data-dir", tempfile.mkdtemp(prefix="chatd-test-"), *args)
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "complaint"),
    [
        (["--port", "70000"], {}, "--port"),
        (["--backend", "fibers"], {}, "--backend"),
        (["--sendq", "-1"], {}, "--sendq"),
        (["--bogus"], {}, "--bogus"),
        ([], {"CHATD_PORT": "many"}, "CHATD_PORT: 'many' is not a port number (0-65535)"),
        (["--motd-file", "/nonexistent/motd"], {}, "--motd-file"),
        (["--plain-channel", "lobby"], {}, "--plain-channel"),
    ],
)
def test_bad_options_give_one_line_and_nonzero_exit(args: list[str], env: dict[str, str], complaint: str) -> None:
    result = run_chatd(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and complaint in lines[0] and "Traceback" not in result.stderr


def test_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_chatd("--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"chatd: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_help_documents_every_option() -> None:
    result = run_chatd("--help")
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--backend",
        "--name",
        "--motd-file",
        "--password",
        "--sendq",
        "--ping-interval",
        "--ping-timeout",
        "--max-clients",
        "--log-level",
        "CHATD_PORT",
    ):
        assert option in result.stdout


def test_connect_and_disconnect_are_logged(backend: str) -> None:
    with chatd_process("--backend", backend) as (process, port):
        client = IrcClient(("127.0.0.1", port), "logged")
        client.close()
        assert process.stderr is not None
        deadline = time.monotonic() + DEADLINE_S
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "closed connection" in line or time.monotonic() > deadline:
                break
        assert len([line for line in seen if "connection from 127.0.0.1" in line]) == 2


def test_shutdown_flushes_messages_already_accepted(backend: str) -> None:
    with chatd_process("--backend", backend, "--flood-rate", "0") as (process, port):
        address = ("127.0.0.1", port)
        sender = IrcClient(address, "sender")
        receiver = IrcClient(address, "receiver", receive_buffer=4096)
        for client in (sender, receiver):
            client.send("JOIN #last")
            client.until("366")
        count = 500
        for i in range(count):
            sender.send(f"PRIVMSG #last :{i} " + "q" * 100)
        sender.sync()  # the server has taken every message before it is told to stop
        process.send_signal(signal.SIGTERM)
        lines = receiver.wait_closed()
        numbers = [int(line.split(" :", 1)[1].split()[0]) for line in lines if " PRIVMSG " in line]
        assert numbers == list(range(count))
        assert lines[-1] == "ERROR :Server shutting down"
        assert process.wait(DEADLINE_S) == 0


def test_config_file_sets_options_operators_and_admin(tmp_path: pytest.TempPathFactory) -> None:
    from chatd.core.passwords import hash_password

    config = tmp_path / "chatd.toml"  # type: ignore[operator]
    config.write_text(
        '[server]\nname = "irc.example.org"\n\n'
        '[admin]\nlocation = "Example Org"\ncontact = "ops@example.org"\n\n'
        f'[operators]\nroot = "{hash_password("pw")}"\n'
    )
    with chatd_process("--config", str(config)) as (_, port):
        client = IrcClient(("127.0.0.1", port))
        assert client.register("c")[0].source == "irc.example.org"
        client.send("OPER root pw")
        assert client.expect("381")
        client.send("ADMIN")
        admin = client.until("259")
        assert admin[1].params[1] == "Example Org" and admin[-1].params[1] == "ops@example.org"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[server\n", "not valid TOML"),
        ("[server]\nbogus = 1\n", "[server] has no option 'bogus'"),
        ('[operators]\nroot = "plaintext"\n', "scrypt hash"),
        ("[weird]\n", "unknown section"),
    ],
)
def test_bad_config_file_is_one_line(tmp_path: pytest.TempPathFactory, content: str, complaint: str) -> None:
    config = tmp_path / "chatd.toml"  # type: ignore[operator]
    config.write_text(content)
    result = run_chatd("--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and complaint in lines[0], lines


def test_hash_password_reads_stdin() -> None:
    from chatd.core.passwords import verify_password

    result = subprocess.run(
        [sys.executable, "-m", "chatd", "--hash-password"],
        input="hunter2\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert result.returncode == 0 and verify_password("hunter2", result.stdout.strip())
