"""Real IRC clients log in to chatd with SASL: weechat (PLAIN and SCRAM-SHA-256) and irssi (PLAIN).

Passing with chatc and the test clients alone could hide a server that only understands our own
clients' choices; weechat and irssi each run their own CAP/AUTHENTICATE dance. They run in a tmux
session of the test's own (a private socket in the test's directory, killed afterwards) with a
throwaway home directory, typed at with send-keys and read with capture-pane.

The login is judged on the server: the hub's client for the user must carry the account. The
screen is read too, for what the user would see (the 900 line); every wait polls with a deadline.
Each test is skipped, saying which package is missing, where tmux, weechat or irssi is not
installed (Debian: tmux, weechat-curses and weechat-plugins, irssi).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.core.accounts import make_record
from chatd.core.commands import COMMANDS
from chatd.history.account_store import MemoryAccountStore
from tests.helpers import RunningServer, running_server, wait_until

ACCOUNT = "alice"
PASSWORD = "correct-horse-battery"
CLIENT_DEADLINE_S = 30.0
"""A real client starts, loads its plugins and negotiates: slower than our own, on a loaded CI box."""


def _require(*programs: str) -> None:
    packages = {"tmux": "tmux", "weechat": "weechat-curses weechat-plugins", "irssi": "irssi"}
    for program in programs:
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed (apt-get install -y {packages[program]})")


@pytest.fixture(scope="module")
def alice() -> object:
    """alice's account record: hashing is slow on purpose, so once for the module."""
    return make_record(ACCOUNT, PASSWORD)


@pytest.fixture
def account_server(backend: str, alice: object) -> Iterator[RunningServer]:
    if "AUTHENTICATE" not in COMMANDS:
        pytest.skip("this chatd has no AUTHENTICATE (SASL) yet")
    store = MemoryAccountStore()
    store.create_account(ACCOUNT, alice)  # type: ignore[arg-type]
    with running_server(backend, accounts=store) as server:
        yield server


class Tmux:
    """One detached tmux session on a private server socket; ``close`` kills that server only."""

    def __init__(self, directory: Path, command: list[str]) -> None:
        self.socket = directory / "tmux.sock"
        environment = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8", "HOME": str(directory)}
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "160", "-y", "45", shlex.join(command),
            env=environment,
        )  # fmt: skip

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=10, env=env
        )
        if result.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def type(self, line: str) -> None:
        """Type ``line`` literally (no key names), then Enter."""
        self._tmux("send-keys", "-t", "t", "-l", line)
        self._tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        """The pane as text, with its scrollback (a client may have scrolled the line away)."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=10)


def logged_in(server: RunningServer, account: str) -> bool:
    """Whether some client on the server is logged in to ``account`` (read across threads: retried)."""
    try:
        return any(client.account == account for client in list(server.server.hub.clients.values()))
    except RuntimeError:  # the dict changed size while copied: the next poll reads it again
        return False


def wait_logged_in(server: RunningServer, tmux: Tmux, what: str) -> None:
    """Logged in on the server, shown on screen, and seen by another user: WHOIS answers 330."""
    try:
        wait_until(lambda: logged_in(server, ACCOUNT), f"{what} to log in", CLIENT_DEADLINE_S)
        wait_until(lambda: f"logged in as {ACCOUNT}" in tmux.screen(), f"{what} to show the login", 10)
        wait_until(lambda: (found := server.server.hub.find_client(ACCOUNT)) and found.registered, "registration")
    except AssertionError as error:
        raise AssertionError(f"{error}; the screen:\n{tmux.screen()}") from None
    bob = server.client("bob")
    try:
        bob.send(f"WHOIS {ACCOUNT}")
        whois = bob.expect("330", "318")
        assert whois.command == "330" and whois.params[1:3] == (ACCOUNT, ACCOUNT), whois
    finally:
        bob.close()


def weechat_command(home: Path, port: int, mechanism: str, password: str) -> list[str]:
    """weechat with a throwaway home, told on its command line (``-r``) to add chatd and connect."""
    version = subprocess.run(["weechat", "--version"], capture_output=True, text=True, timeout=10).stdout
    tls = "tls" if int((version.strip().split(".") or ["3"])[0] or 3) >= 4 else "ssl"  # renamed in 4.0
    server = "irc.server.chatd"
    commands = [
        f"/server add chatd 127.0.0.1/{port}",
        f"/set {server}.{tls} off",
        f"/set {server}.nicks {ACCOUNT}",
        f"/set {server}.sasl_mechanism {mechanism}",
        f"/set {server}.sasl_username {ACCOUNT}",
        f"/set {server}.sasl_password {password}",
        f"/set {server}.autoreconnect off",
        "/connect chatd",
    ]
    return ["weechat", "--dir", str(home), "--run-command", ";".join(commands)]


@pytest.mark.parametrize("mechanism", ["plain", "scram-sha-256"])
def test_weechat_logs_in_with_sasl(account_server: RunningServer, tmp_path: Path, mechanism: str) -> None:
    _require("tmux", "weechat")
    port = account_server.address[1]
    tmux = Tmux(tmp_path, weechat_command(tmp_path / "weechat", port, mechanism, PASSWORD))
    try:
        wait_logged_in(account_server, tmux, f"weechat ({mechanism})")
    finally:
        tmux.close()


def test_weechat_with_a_wrong_password_is_told_and_not_logged_in(account_server: RunningServer, tmp_path: Path) -> None:
    _require("tmux", "weechat")
    port = account_server.address[1]
    tmux = Tmux(tmp_path, weechat_command(tmp_path / "weechat", port, "plain", "not-the-password"))
    try:
        wait_until(lambda: "904" in tmux.screen() or "SASL authentication failed" in tmux.screen(), "the 904")
        assert not logged_in(account_server, ACCOUNT)
    except AssertionError as error:
        raise AssertionError(f"{error}; the screen:\n{tmux.screen()}") from None
    finally:
        tmux.close()


def test_irssi_logs_in_with_sasl_plain(account_server: RunningServer, tmp_path: Path) -> None:
    _require("tmux", "irssi")
    port = account_server.address[1]
    home = tmp_path / "irssi"
    home.mkdir()
    tmux = Tmux(tmp_path, ["irssi", f"--home={home}", "-n", ACCOUNT])
    try:
        wait_until(lambda: "Irssi" in tmux.screen(), "irssi to start", CLIENT_DEADLINE_S)
        tmux.type(
            f"/network add -nick {ACCOUNT} -sasl_mechanism PLAIN -sasl_username {ACCOUNT} "
            f"-sasl_password {PASSWORD} chatdnet"
        )
        tmux.type(f"/server add -network chatdnet -notls -cap 127.0.0.1 {port}")
        tmux.type("/connect chatdnet")
        wait_logged_in(account_server, tmux, "irssi")
    finally:
        tmux.close()
