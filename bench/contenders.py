"""The servers the bench measures, each started as a subprocess on a free loopback port.

Every contender is a separate process so its CPU time and memory can be read from
/proc without the generator's cost mixed in. A peer that is not installed is
reported as skipped with the reason, never as an error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.procstat import free_port, raise_nofile_limit

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
BENCH_MAX_CLIENTS = 19_000
"""chatd's client cap for the bench: room for 10k idle clients plus the conversation."""


@dataclass(frozen=True, slots=True)
class Contender:
    """How to find and start one server; ``kind`` picks the command line."""

    name: str
    kind: str
    backend: str = ""
    description: str = ""
    history: bool = False
    """chatd only: keep its SQLite history (in the run's temporary directory) instead of --no-persist."""

    @property
    def is_chatd(self) -> bool:
        return self.kind == "chatd"

    @property
    def connect_window(self) -> int:
        """Registrations the generator keeps in flight: miniircd and irc.server listen with a
        backlog of 5, and a fuller accept queue drops handshakes, which would look like their failure."""
        return 4 if self.kind in ("miniircd", "irc") else 128

    @property
    def websocket_missing(self) -> str:
        """Why this contender cannot take IRC over WebSocket, or "" when it can (chatd's ``--ws-port``)."""
        if not self.is_chatd:
            return "no IRC over WebSocket listener"
        if self.backend not in chatd_backends():
            return "runs outside chatd's command line, without --ws-port"
        return ""

    @property
    def has_sendq(self) -> bool:
        """Whether the server cuts a client whose queue passes a bound (chatd's --sendq)."""
        return self.kind in ("chatd", "ngircd")

    def missing(self) -> str | None:
        """Why this contender cannot run here, or None when it can."""
        if self.kind == "miniircd" and shutil.which("miniircd") is None:
            return "miniircd not installed (pip install miniircd)"
        if self.kind == "ngircd" and _ngircd_path() is None:
            return "ngircd not installed (apt-get install ngircd)"
        if self.kind == "irc" and importlib.util.find_spec("irc") is None:
            return "irc package not installed (pip install irc)"
        if self.kind == "chatd" and self.backend not in (*chatd_backends(), *BENCH_BACKENDS):
            return f"this chatd's command line does not offer --backend {self.backend}"
        return None

    def settings(self, sendq_bytes: int) -> str:
        """The settings this contender runs with, for the report."""
        if self.kind == "chatd":
            module = BENCH_BACKENDS.get(self.backend)
            start = f"--backend {self.backend}" if module is None else f"python -m {module}"
            flags = " ".join([f"{start} --sendq {sendq_bytes}", *chatd_extra_flags(persist=self.history)])
            return f"{flags}{' (SQLite history on)' if self.history else ''} (TCP_NODELAY on)"
        if self.kind == "bare":
            return "no sendq bound, TCP_NODELAY on"
        if self.kind == "ngircd":
            return "MaxPenaltyTime=0 (flood control off), built-in write buffer limits"
        if self.kind == "miniircd":
            return "defaults (select, no sendq bound, Nagle on)"
        return "defaults (thread per connection, Nagle on)"


CONTENDERS: tuple[Contender, ...] = (
    Contender("selectors", "chatd", "selectors", "chatd, one selectors event loop"),
    Contender("threads", "chatd", "threads", "chatd, a thread per connection"),
    Contender("selectors+history", "chatd", "selectors", "chatd selectors with its SQLite history on", True),
    Contender("asyncio", "chatd", "asyncio", "chatd core on bench's asyncio server (uvloop when installed)"),
    Contender("bare", "bare", "", "bare selectors fan-out loop, minimal IRC (the practical limit)"),
    Contender("miniircd", "miniircd", "", "miniircd (Python, select)"),
    Contender("ngircd", "ngircd", "", "ngircd (C, event loop)"),
    Contender("irc.server", "irc", "", "irc.server from the irc package (Python, threads)"),
)
CONTENDER_NAMES = tuple(c.name for c in CONTENDERS)

BENCH_BACKENDS = {"asyncio": "bench.asyncio_server"}
"""chatd servers that live in the bench, not behind ``chatd --backend``: the module to run
with chatd's options (the asyncio contender left chatd's command line in issue 12)."""


def chatd_extra_flags(*, persist: bool = False) -> list[str]:
    """Options that turn off chatd's flood control when this chatd has it (senders here are floods),
    and, unless ``persist``, its history database (the peers keep no history either; the
    ``selectors+history`` contender measures what history costs)."""
    try:
        from chatd.cli import build_parser
    except ImportError:
        return []
    options = {flag for action in build_parser()._actions for flag in action.option_strings}
    flags = ["--flood-rate", "0"] if "--flood-rate" in options else []
    return [*flags, "--no-persist"] if "--no-persist" in options and not persist else flags


def chatd_backends() -> tuple[str, ...]:
    """The backends this checkout's ``chatd --backend`` accepts (asyncio left the command line
    in issue 12; an older checkout still offers it, and the bench can still measure that one)."""
    try:
        from chatd.cli import build_parser
    except ImportError:
        return ()
    for action in build_parser()._actions:
        if "--backend" in action.option_strings:
            return tuple(action.choices or ())
    return ()


def _ngircd_path() -> str | None:
    return shutil.which("ngircd") or next(
        (p for p in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if os.access(p, os.X_OK)), None
    )


NGIRCD_CONFIG = """\
[Global]
Name = {name}
Info = chatd bench peer
Listen = {host}
Ports = {port}
PidFile = {tmp}/ngircd.pid
MotdPhrase = bench
{identity}
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
{links}"""

NGIRCD_LINK = """\
[Server]
Name = {name}
Host = {host}
{port}MyPassword = {password}
PeerPassword = {password}
"""
"""One server link of a linked network; ``port`` (``Port = P`` and a newline) on the side that
connects, empty on the side that accepts."""


@dataclass(frozen=True, slots=True)
class NgircdNode:
    """One ngircd of a network linked by IRC's own server protocol (``bench.linked``): its
    server name and the ``[Server]`` blocks of its links."""

    name: str
    links: str = ""


def checkout_environment() -> dict[str, str]:
    """The environment for a server subprocess, with this checkout first on the import path.

    Servers run in a scratch directory, where ``python -m chatd`` would otherwise import
    whatever chatd is installed: the bench must measure the code it ships with.
    """
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


class ScratchProcess:
    """A subprocess the bench started, with a scratch directory holding its log.

    Subclasses set ``process``, ``log``, ``log_path`` and ``tmp`` when they start it.
    """

    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path
    tmp: tempfile.TemporaryDirectory[str]

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-300:].strip().replace("\n", " | ")
        return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self.log.close()
        self.tmp.cleanup()


class RunningServer(ScratchProcess):
    """A started contender: its pid, port and the subprocess to stop.

    ``extra_args`` go at the end of a chatd command line (the cluster scenario's
    ``--cluster URL --node-id ID``). ``seed`` fills a chatd's data directory before it
    starts (the login scenario's accounts); the contender must keep its history there.
    With ``websocket`` a chatd also listens for IRC over WebSocket on ``ws_port``.
    """

    def __init__(
        self,
        contender: Contender,
        sendq_bytes: int,
        extra_args: Sequence[str] = (),
        seed: Callable[[Path], None] | None = None,
        *,
        websocket: bool = False,
        ngircd: NgircdNode | None = None,
    ) -> None:
        """``ngircd``: this ngircd's name and links in a linked network (one ngircd alone without)."""
        self.contender = contender
        self.ngircd = ngircd or NgircdNode("bench.local")
        self.port = free_port(HOST)
        self.ws_port = free_port(HOST) if websocket else None
        if websocket:
            extra_args = [*extra_args, "--ws-port", str(self.ws_port)]
        self.tmp = tempfile.TemporaryDirectory(prefix="chatd-bench-")
        self.log_path = Path(self.tmp.name) / "server.log"
        if seed is not None:
            seed(self.data_dir)
        command = [*self._command(sendq_bytes), *extra_args]
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile_limit,
            cwd=self.tmp.name,
            env=checkout_environment(),
        )
        self.pid = self.process.pid

    @property
    def data_dir(self) -> Path:
        """A history-keeping chatd's ``--data-dir``."""
        return Path(self.tmp.name) / "data"

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def ws_address(self) -> tuple[str, int] | None:
        """Where IRC over WebSocket is served, when this server was started with ``websocket``."""
        return None if self.ws_port is None else (HOST, self.ws_port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where clients may connect: one address here, one per node for a cluster."""
        return [self.address]

    @property
    def pids(self) -> list[int]:
        """The processes whose CPU time and memory count as the server's."""
        return [self.pid]

    @property
    def side_pids(self) -> list[int]:
        """Helper processes measured apart from the server (a cluster's Redis); none here."""
        return []

    def _command(self, sendq_bytes: int) -> list[str]:
        c = self.contender
        port = str(self.port)
        if c.kind == "chatd":
            module = BENCH_BACKENDS.get(c.backend)
            start = ["-m", "chatd", "--backend", c.backend] if module is None else ["-m", module]
            return [
                sys.executable, *start, "--host", HOST, "--port", port,
                "--sendq", str(sendq_bytes), "--log-level", "warning", "--max-clients", str(BENCH_MAX_CLIENTS),
                "--ping-interval", "600", *chatd_extra_flags(persist=c.history),
                *(["--data-dir", str(self.data_dir)] if c.history else []),
            ]  # fmt: skip
        if c.kind == "bare":
            return [sys.executable, "-m", "bench.bare_loop", "--host", HOST, "--port", port]
        if c.kind == "miniircd":
            command = [shutil.which("miniircd") or "miniircd", "--listen", HOST, "--ports", port]
            if os.geteuid() == 0:
                command += ["--setuid", "root"]
            return command
        if c.kind == "ngircd":
            identity = "ServerUID = 0\nServerGID = 0\n" if os.geteuid() == 0 else ""
            config = Path(self.tmp.name) / "ngircd.conf"
            node = self.ngircd
            config.write_text(
                NGIRCD_CONFIG.format(
                    name=node.name, host=HOST, port=port, tmp=self.tmp.name, identity=identity, links=node.links
                )
            )
            return [_ngircd_path() or "ngircd", "-n", "-f", str(config)]
        if c.kind == "irc":
            return [sys.executable, "-m", "irc.server", "-a", HOST, "-p", port, "-l", "ERROR"]
        raise ValueError(f"unknown contender kind {c.kind!r}")

    def wait_ready(self) -> None:
        """Return once the port accepts connections; raise RuntimeError if the server died or hung."""
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = [self.address] if self.ws_address is None else [self.address, self.ws_address]
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.contender.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(waiting[0], timeout=0.5):
                    waiting.pop(0)
                if not waiting:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.contender.name} did not accept connections within {START_TIMEOUT_S:.0f}s")

    def alive(self) -> bool:
        return self.process.poll() is None


def find(names: list[str]) -> list[Contender]:
    by_name = {c.name: c for c in CONTENDERS}
    return [by_name[name] for name in names]
