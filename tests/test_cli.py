"""chatd as a user runs it: a subprocess with options, environment, signals and exit codes."""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    if "--data-dir" not in args and "CHATD_DATA_DIR" not in (env or {}):
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


# --- option values: every source checked alike, every error naming what the user typed (issue 12) ---

FLAG_OPTIONS = {
    "no_persist": "CHATD_NO_PERSIST",
    "history_private": "CHATD_HISTORY_PRIVATE",
    "reuse_port": "CHATD_REUSE_PORT",
}


def settings_from(argv: list[str], env: dict[str, str], tmp_path: Path) -> argparse.Namespace:
    """The options chatd would run with, parsed by the real CLI in this process (no server started)."""
    from chatd.cli import parse_settings

    args, _ = parse_settings(["--data-dir", str(tmp_path / "data"), *argv], env)
    return args


@pytest.mark.parametrize(("word", "value"), [(w, True) for w in ("1", "true", "YES", "On")] + [
    (w, False) for w in ("0", "False", "no", "OFF")
])  # fmt: skip
def test_on_off_options_read_every_spelling_from_the_environment(word: str, value: bool, tmp_path: Path) -> None:
    args = settings_from([], dict.fromkeys(FLAG_OPTIONS.values(), word), tmp_path)
    assert [getattr(args, dest) for dest in FLAG_OPTIONS] == [value] * len(FLAG_OPTIONS)


@pytest.mark.parametrize(("toml", "value"), [("true", True), ("false", False), ('"yes"', True), ('"off"', False),
                                             ("1", True), ("0", False)])  # fmt: skip
def test_on_off_options_from_the_config_file(toml: str, value: bool, tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text("[server]\n" + "".join(f"{key.replace('_', '-')} = {toml}\n" for key in FLAG_OPTIONS))
    args = settings_from(["--config", str(config)], {}, tmp_path)
    assert [getattr(args, dest) for dest in FLAG_OPTIONS] == [value] * len(FLAG_OPTIONS)


def test_environment_beats_file_and_command_line_beats_both(tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text('[server]\nno_persist = true\nport = 7001\nname = "file.example"\n')
    env = {"CHATD_CONFIG": str(config), "CHATD_NO_PERSIST": "no", "CHATD_PORT": "7002"}
    args = settings_from(["--port", "7003"], env, tmp_path)
    assert (args.no_persist, args.port, args.name) == (False, 7003, "file.example")


def startup_log(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> list[str]:
    """What chatd logs up to and including its "listening on" line; the server is then stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chatd", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})},
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if "listening on" in line:
                return lines
        raise AssertionError(f"chatd did not start: {lines}")
    finally:
        process.kill()
        process.wait(DEADLINE_S)


@pytest.mark.parametrize("word", ["0", "false", "No", "off", "1", "TRUE", "yes", "On"])
def test_no_persist_from_the_environment_decides_where_history_lives(word: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = startup_log("--data-dir", str(data), env={"CHATD_NO_PERSIST": word})
    persisted = word.lower() in ("0", "false", "no", "off")
    assert (data / "chatd.sqlite3").exists() == persisted
    history = [line.split(" INFO ", 1)[1] for line in log if " INFO history " in line]
    expected = f"history database {data / 'chatd.sqlite3'}"
    assert history == [
        expected if persisted else "history in memory only (no-persist is on): nothing is kept when chatd stops"
    ]


def test_startup_log_names_the_database_by_absolute_path(tmp_path: Path) -> None:
    log = startup_log("--data-dir", "relative-data", cwd=tmp_path)
    assert any(line.endswith(f" INFO history database {tmp_path / 'relative-data' / 'chatd.sqlite3'}") for line in log)


def test_no_persist_in_the_config_file_as_a_toml_boolean(tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    for value, persisted in (("false", True), ("true", False)):
        data = tmp_path / f"data-{value}"
        config.write_text(f"[server]\nno_persist = {value}\n")
        log = startup_log("--config", str(config), "--data-dir", str(data))
        assert (data / "chatd.sqlite3").exists() == persisted
        assert any(("history database" if persisted else "history in memory only") in line for line in log)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a bad value must give: exit 2, no usage dump, no traceback."""
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and "usage:" not in result.stderr, result.stderr
    return lines[0]


ACCEPTED = "(use 1/0, true/false, yes/no or on/off)"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "abc"], {}, "chatd: --port: 'abc' is not a port number (0-65535)"),
        ([], {"CHATD_PORT": "abc"}, "chatd: CHATD_PORT: 'abc' is not a port number (0-65535)"),
        ([], {"CHATD_TLS_PORT": "65536"}, "chatd: CHATD_TLS_PORT: '65536' is not a port number (0-65535)"),
        (["--sendq", "1.5"], {}, "chatd: --sendq: '1.5' is not a whole number greater than 0"),
        ([], {"CHATD_MAX_PER_IP": "-1"}, "chatd: CHATD_MAX_PER_IP: '-1' is not a whole number, 0 or more"),
        (["--ping-interval", "0"], {}, "chatd: --ping-interval: '0' is not a number of seconds greater than 0"),
        ([], {"CHATD_HISTORY_MAX_AGE": "nan"},
         "chatd: CHATD_HISTORY_MAX_AGE: 'nan' is not a number of seconds, 0 or more"),
        ([], {"CHATD_NO_PERSIST": "maybe"}, f"chatd: CHATD_NO_PERSIST: 'maybe' is not on or off {ACCEPTED}"),
        ([], {"CHATD_REUSE_PORT": ""}, f"chatd: CHATD_REUSE_PORT: '' is not on or off {ACCEPTED}"),
        ([], {"CHATD_BACKEND": "asyncio"}, "chatd: CHATD_BACKEND: 'asyncio' is not one of selectors, threads"),
        ([], {"CHATD_LOG_LEVEL": "INFO"}, "chatd: CHATD_LOG_LEVEL: 'INFO' is not one of debug, info, warning, error"),
        (["--backend", "asyncio"], {},
         "chatd: --backend: invalid choice: 'asyncio' (choose from 'selectors', 'threads')"),
        (["--bogus"], {}, "chatd: unrecognized arguments: --bogus (see chatd --help)"),
        (["--port"], {}, "chatd: --port: expected one argument"),
        ([], {"CHATD_PLAIN_CHANNEL": "lobby"},
         "chatd: CHATD_PLAIN_CHANNEL: 'lobby' is not a channel name (like #lobby)"),
    ],
)  # fmt: skip
def test_bad_values_name_the_flag_or_variable_the_user_typed(
    args: list[str], env: dict[str, str], message: str
) -> None:
    assert one_line_error(run_chatd(*args, env=env)) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('port = "abc"', "[server] port: 'abc' is not a port number (0-65535)"),
        ("port = 6667.5", "[server] port: 6667.5 is not a port number (0-65535)"),
        ("port = true", "[server] port: true is not a port number (0-65535)"),
        ("sendq = 1.5", "[server] sendq: 1.5 is not a whole number greater than 0"),
        ("ping-interval = -2", "[server] ping-interval: -2 is not a number of seconds greater than 0"),
        ("no_persist = 2", f"[server] no_persist: 2 is not on or off {ACCEPTED}"),
        ('no_persist = "maybe"', f"[server] no_persist: 'maybe' is not on or off {ACCEPTED}"),
        ("password = 1234", "[server] password: 1234 is not text (in TOML, write it in quotes)"),
        ('backend = "asyncio"', "[server] backend: 'asyncio' is not one of selectors, threads"),
        ("bogus = 1", "[server] has no option 'bogus' (see chatd --help)"),
        ("config = 'other.toml'", "[server] has no option 'config' (see chatd --help)"),
    ],
)
def test_bad_config_values_name_the_file_and_key(line: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text(f"[server]\n{line}\n")
    assert one_line_error(run_chatd("--config", str(config))) == f"chatd: {config}: {message}"


def test_unreadable_config_names_the_option_that_named_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert one_line_error(run_chatd("--config", str(missing))) == (
        f"chatd: --config: cannot read {missing}: No such file or directory"
    )
    assert one_line_error(run_chatd(env={"CHATD_CONFIG": str(missing)})).startswith("chatd: CHATD_CONFIG: cannot read")


# --- the data directory (issue 12): what is wrong with it, before the store opens ---


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("")
    assert one_line_error(run_chatd("--data-dir", str(in_the_way))) == (
        f"chatd: --data-dir: {in_the_way} is a file, not a directory"
    )
    below = in_the_way / "data"
    assert one_line_error(run_chatd(env={"CHATD_DATA_DIR": str(below)})) == (
        f"chatd: CHATD_DATA_DIR: {in_the_way} is a file, not a directory (so {below} cannot be created)"
    )


DROP_TO_NOBODY = """
import os, pwd, sys
import shutil  # argparse imports it on first use, from where nobody may not read
import chatd.cli  # everything imported while the interpreter's own files (under /root) are readable
chatd.cli.build_parser().format_help()
nobody = pwd.getpwnam("nobody")
os.setgid(nobody.pw_gid)
os.setgroups([])
os.setuid(nobody.pw_uid)
sys.exit(chatd.cli.main(sys.argv[1:]))
"""


def run_chatd_unprivileged(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """chatd as a user who may not write a root-owned 0700 directory; returns the result and that user.

    As root, the process drops to ``nobody`` after importing (the interpreter may live under an
    unreadable /root), as a service manager would start it. Otherwise the test's own user is
    used: the directory is made 0500 instead, which it cannot write either.
    """
    if os.geteuid() == 0:
        command = [sys.executable, "-c", DROP_TO_NOBODY, *args]
        user = "nobody"
    else:
        command = [sys.executable, "-m", "chatd", *args]
        user = pwd.getpwuid(os.geteuid()).pw_name
    result = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S, cwd="/")
    return result, user


@pytest.mark.parametrize("create", [False, True], ids=["to-create", "existing"])
def test_data_dir_without_write_permission_says_so_and_names_the_user(create: bool) -> None:
    locked = Path(tempfile.mkdtemp(prefix="chatd-locked-"))  # 0700, owned by this user
    try:
        if os.geteuid() != 0:
            locked.chmod(0o500)
        data = locked / "data" if not create else locked
        result, user = run_chatd_unprivileged("--port", "0", "--data-dir", str(data))
        line = one_line_error(result)
        # nobody cannot even look into root's 0700 directory; a user with 0500 can, but not create there
        reach = "reach" if os.geteuid() == 0 else "create"
        where = f"write in {locked}: permission denied" if create else f"{reach} {data}: permission denied in {locked}"
        assert line.startswith(f"chatd: --data-dir: cannot {where} (chatd runs as user {user}, uid "), line
    finally:
        locked.chmod(0o700)
        locked.rmdir()


# --- permanent channels: [channels."#name"] in the config file (issue 12) ---


def test_channels_tables_become_permanent_channels(tmp_path: Path) -> None:
    from chatd.cli import parse_settings
    from chatd.core.config import PermanentChannel

    config = tmp_path / "chatd.toml"
    config.write_text(
        '[channels."#lobby"]\ntopic = "Welcome"\nmodes = "nt"\n\n'
        '[channels."#quiet"]\nmodes = "+mst"\n\n'
        '[channels."#plain"]\n'
    )
    _, settings = parse_settings(["--config", str(config), "--no-persist"], {})
    assert settings.config.permanent_channels == (
        PermanentChannel("#lobby", "Welcome", "nt"),
        PermanentChannel("#quiet", "", "mst"),
        PermanentChannel("#plain", "", "nt"),
    )
    with chatd_process("--config", str(config)) as (_, port):  # and the server starts with them
        assert IrcClient(("127.0.0.1", port)).register("c")[0].command == "001"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[channels."lobby"]', """[channels."lobby"]: 'lobby' is not a channel name"""),
        ('[channels."#a b"]', """[channels."#a b"]: '#a b' is not a channel name"""),
        ('[channels."#a,b"]', """[channels."#a,b"]: '#a,b' is not a channel name"""),
        ('[channels."#bell\\u0007"]', """[channels."#bell\x07"]: '#bell\\x07' is not a channel name"""),
        ('[channels."#tab\\t"]', """[channels."#tab\t"]: '#tab\\t' is not a channel name"""),
        (f'[channels."#{"x" * 50}"]', f"""[channels."#{"x" * 50}"]: '#{"x" * 50}' is not a channel name"""),
        ('[channels."#t"]\ntopic = 5', """[channels."#t"] topic: 5 is not text"""),
        (f'[channels."#t"]\ntopic = "{"é" * 196}"', """[channels."#t"] topic: 392 bytes is too long (at most 390"""),
        ('[channels."#t"]\ntopic = "a\\nb"', """[channels."#t"] topic: a topic is one line"""),
        ('[channels."#t"]\nmodes = "ntk"', """[channels."#t"] modes: 'ntk' has letters other than Cimnst"""),
        ('[channels."#t"]\nmodes = ["n"]', """[channels."#t"] modes: ['n'] is not text"""),
        ('[channels."#t"]\nowner = "me"', """[channels."#t"]: has no key 'owner' (it has topic, modes)"""),
        ('[channels."#Lobby"]\n[channels."#lobby"]',
         """[channels."#lobby"]: is the same channel as [channels."#Lobby"]"""),
        ('[channels."#a[b]"]\n[channels."#A{B}"]', """[channels."#A{B}"]: is the same channel as [channels."#a[b]"]"""),
        ('[channels]\n"#t" = "topic"', """[channels."#t"]: must be a table"""),
        ("channels = 5", "channels must be a table"),
    ],
)  # fmt: skip
def test_bad_channel_tables_are_one_line_naming_file_and_key(toml: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text(toml + "\n")
    assert one_line_error(run_chatd("--config", str(config))).startswith(f"chatd: {config}: {message}")


def test_topic_of_exactly_390_bytes_is_accepted(tmp_path: Path) -> None:
    from chatd.cli import parse_settings

    config = tmp_path / "chatd.toml"
    config.write_text(f'[channels."#t"]\ntopic = "{"é" * 195}"\n')
    _, settings = parse_settings(["--config", str(config), "--no-persist"], {})
    assert [len(channel.topic.encode()) for channel in settings.config.permanent_channels] == [390]
