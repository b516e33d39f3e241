"""The login scenario: a storm of SASL PLAIN logins while a two-client conversation measures the server.

The question (issue 14): does checking passwords stall everyone else? Each login costs the
server an scrypt hash; if that ran on the event loop, 50 logins would hold every other client
for seconds. The control conversation is two clients in a closed loop (one PRIVMSG in flight,
answered by the other), first alone and then during the storm: its round-trip p50/p99 in
both phases is the figure, beside the logins per second and each login's time.

Invariants:
- The accounts exist before the server starts: they are written into its SQLite database
  (the store chatd itself uses), so the storm measures logging in, not registering. One
  scrypt hash and one set of SCRAM keys serve every seeded account (deriving 50 would take
  longer than the storm); the server still runs one full scrypt check per login.
- The control pair and the storm each run in a process of their own, so neither's client
  work delays the other's; both stamp with ``time.monotonic_ns()``, one clock for every
  process on the machine, and the bench splits the control's samples by the storm's times.
- The control is checked exactly-once: every answer must carry the sequence number of the
  message in flight; anything else ends the control and fails the run.
- Every wait has a deadline; a login that does not end in 903 and 001 is counted, with why.
"""

from __future__ import annotations

import base64
import contextlib
import multiprocessing
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PASSWORD = "bench-login-password"
CONTROL_NICKS = ("ctla", "ctlb")
GOAL_P99_MS = 50.0
"""The issue's bound on the control conversation's p99 while 50 clients log in."""
LINE_TIMEOUT_S = 10.0
"""How long the control waits for one answer before calling it lost."""
RECV_BYTES = 65536
SASL_FAILURES = {b"421", b"902", b"904", b"905", b"906", b"908"}
"""Numerics that end a login: 421 where the server has no AUTHENTICATE at all."""


def account_name(index: int) -> str:
    return f"acct{index}"


def seed_accounts(data_dir: Path, count: int) -> None:
    """Create ``count`` accounts (``acct0``… with ``PASSWORD``) in chatd's database under ``data_dir``."""
    from chatd.core.accounts import make_record
    from chatd.history.account_store import SqliteAccountStore
    from chatd.history.store import SqliteStore
    from chatd.protocol.casemap import irc_lower

    template = make_record("acct", PASSWORD)
    store = SqliteStore(str(data_dir))
    try:
        accounts = SqliteAccountStore(store)
        for index in range(count):
            name = account_name(index)
            accounts.create_account(irc_lower(name), replace(template, name=name))
    finally:
        store.close()


@dataclass
class LoginRun:
    """What one storm against one server gave, in nanoseconds; the bench turns it into a row."""

    control: list[tuple[int, int]] = field(default_factory=list)
    """(sent_ns, round_trip_ns) of every control round trip, in order."""
    control_errors: list[str] = field(default_factory=list)
    baseline_from_ns: int = 0
    storm_from_ns: int = 0
    storm_until_ns: int = 0
    logins: list[tuple[int, int]] = field(default_factory=list)
    """(started_ns, logged_in_ns) of each login that succeeded: from the TCP connect to 903."""
    failures: list[str] = field(default_factory=list)
    storm_cpu_s: float = 0.0
    """The server's CPU seconds from the storm's start to its end."""
    storm_wait_s: float = 0.0
    """Seconds the server's threads were ready to run but waited for a CPU, over the storm.

    Each login's time is its queue behind the other logins' hashes, so logins per second is
    the worker pool's CPU share: on a machine busy with other work this, not the backend,
    is what moves it (a storm that waited twice as long runs about half as fast)."""


# ---- the control conversation ------------------------------------------------------


class LineSocket:
    """A blocking client socket read line by line, each wait bounded."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        self.sock = socket.create_connection(address, timeout=LINE_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.send(b"NICK %s\r\nUSER %s 0 * :bench control\r\n" % (nick.encode(), nick.encode()))
        while self.line().split(b" ", 2)[1:2] != [b"001"]:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next line that is not a PING (answered here); raises OSError at EOF or timeout."""
        while True:
            while b"\n" not in self.buffer:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.buffer += data
            line, self.buffer = self.buffer.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if line.startswith(b"PING"):
                self.send(b"PONG" + line[4:] + b"\r\n")
                continue
            return line

    def privmsg(self) -> bytes:
        """The text of the next PRIVMSG, skipping anything else the server says."""
        while True:
            parts = self.line().split(b" ", 3)
            if len(parts) == 4 and parts[1] == b"PRIVMSG":
                return parts[3].removeprefix(b":")


def control_main(conn: Connection, address: tuple[str, int], limit_s: float) -> None:
    """Register the pair, say ``ready``, then ping-pong until told to stop (or ``limit_s``)."""
    samples: list[tuple[int, int]] = []
    errors: list[str] = []
    try:
        a, b = (LineSocket(address, nick) for nick in CONTROL_NICKS)
    except OSError as error:
        conn.send({"kind": "ready", "error": f"control pair did not register: {error}"})
        return
    conn.send({"kind": "ready"})
    deadline = time.monotonic() + limit_s
    seq = 0
    to_b = b"PRIVMSG %s :" % CONTROL_NICKS[1].encode()
    to_a = b"PRIVMSG %s :" % CONTROL_NICKS[0].encode()
    try:
        while not conn.poll() and time.monotonic() < deadline:
            payload = b"%d %d" % (seq, time.monotonic_ns())
            sent_ns = int(payload.split()[1])
            a.send(to_b + payload + b"\r\n")
            if b.privmsg() != payload:
                errors.append(f"round trip {seq}: ctlb got another message than the one in flight")
                break
            b.send(to_a + payload + b"\r\n")
            if a.privmsg() != payload:
                errors.append(f"round trip {seq}: ctla got another answer than the one in flight")
                break
            samples.append((sent_ns, time.monotonic_ns() - sent_ns))
            seq += 1
    except OSError as error:
        errors.append(f"round trip {seq} lost: {error or type(error).__name__}")
    with contextlib.suppress(OSError):
        a.sock.close()
        b.sock.close()
    conn.send({"kind": "done", "samples": samples, "errors": errors})


# ---- the storm ---------------------------------------------------------------------


class Login:
    """One storm client: CAP LS 302, REQ sasl, AUTHENTICATE PLAIN, 903, CAP END, 001."""

    __slots__ = ("buffer", "caps", "done", "error", "logged_in_ns", "name", "sock", "started_ns")

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.started_ns = time.monotonic_ns()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.caps: set[bytes] = set()
        self.logged_in_ns = 0
        self.done = False
        self.error = ""

    def opening(self) -> bytes:
        return b"CAP LS 302\r\nNICK %s\r\nUSER %s 0 * :bench login\r\n" % (self.name, self.name)

    def on_line(self, line: bytes) -> bytes:
        """What to send on ``line`` (often nothing); sets ``done``/``error``/``logged_in_ns``."""
        if line.startswith(b"PING"):
            return b"PONG" + line[4:] + b"\r\n"
        if line.startswith(b"ERROR"):
            self.fail(line.decode("utf-8", "replace"))
            return b""
        parts = line.split(b" ")
        verb = parts[1] if len(parts) > 1 else b""
        if verb == b"CAP" and len(parts) > 3:
            return self._cap(parts[3], parts[4:])
        if b"AUTHENTICATE" in (parts[0], verb) and parts[-1] == b"+":
            token = base64.b64encode(b"%s\0%s\0%s" % (self.name, self.name, PASSWORD.encode()))
            return b"AUTHENTICATE " + token + b"\r\n"
        if verb == b"903":
            self.logged_in_ns = time.monotonic_ns()
            return b"CAP END\r\n"
        if verb in SASL_FAILURES:
            self.fail(line.decode("utf-8", "replace"))
        elif verb == b"001":
            self.done = True
            if not self.logged_in_ns:
                self.fail("registered without a 903")
        return b""

    def _cap(self, sub: bytes, rest: list[bytes]) -> bytes:
        if sub == b"LS":
            more = rest[:1] == [b"*"]
            names = b" ".join(rest[1:] if more else rest).removeprefix(b":").split()
            self.caps.update(name.split(b"=", 1)[0] for name in names)
            if more:
                return b""
            if b"sasl" not in self.caps:
                self.fail("the server does not offer sasl")
                return b"CAP END\r\n"
            return b"CAP REQ :sasl\r\n"
        if sub == b"ACK":
            return b"AUTHENTICATE PLAIN\r\n"
        if sub == b"NAK":
            self.fail("the server refused CAP REQ :sasl")
            return b"CAP END\r\n"
        return b""

    def fail(self, why: str) -> None:
        self.done = True
        self.error = self.error or f"{self.name.decode()}: {why[:160]}"


def storm_main(conn: Connection, address: tuple[str, int], count: int, timeout_s: float) -> None:
    """Open ``count`` login clients at once, drive them to 001, report each one's times."""
    selector = selectors.DefaultSelector()
    logins = [Login(account_name(index)) for index in range(count)]
    for login in logins:
        login.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            login.sock.connect(address)
        selector.register(login.sock, selectors.EVENT_WRITE, login)
    pending = {login.sock: login.opening() for login in logins}
    deadline = time.monotonic() + timeout_s
    left = count
    while left and time.monotonic() < deadline:
        for key, mask in selector.select(0.05):
            login: Login = key.data
            if mask & selectors.EVENT_WRITE:
                out = pending.pop(login.sock, b"")
                try:
                    login.sock.sendall(out)  # a few short lines: they fit the socket buffer
                except OSError as error:
                    login.fail(f"connect failed: {error}")
                selector.modify(login.sock, selectors.EVENT_READ, login)
            elif mask & selectors.EVENT_READ:
                _read(login)
            if login.done:
                selector.unregister(login.sock)
                left -= 1
    for login in logins:
        if not login.done:
            login.fail(f"not logged in and registered within {timeout_s:.0f}s")
    conn.send(
        {
            "kind": "done",
            "logins": [(x.started_ns, x.logged_in_ns) for x in logins if not x.error],
            "failures": [x.error for x in logins if x.error],
            "until_ns": time.monotonic_ns(),
        }
    )
    for login in logins:
        login.sock.close()


def _read(login: Login) -> None:
    try:
        data = login.sock.recv(RECV_BYTES)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as error:
        login.fail(f"connection lost: {error}")
        return
    if not data:
        login.fail("the server closed the connection")
        return
    *lines, login.buffer = (login.buffer + data).split(b"\n")
    answer = b"".join(login.on_line(line.rstrip(b"\r")) for line in lines if not login.done)
    if answer:
        with contextlib.suppress(OSError):
            login.sock.sendall(answer)


# ---- the run -----------------------------------------------------------------------


def run_queue_s(pids: list[int]) -> float:
    """Seconds the threads of ``pids`` have waited, runnable, for a CPU (0.0 where Linux does not say).

    The second field of ``/proc/<pid>/task/<tid>/schedstat``; threads that ended are not counted.
    """
    total_ns = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total_ns += int((task / "schedstat").read_text().split()[1])
    return total_ns / 1e9


def run_login(
    address: tuple[str, int],
    count: int,
    baseline_s: float,
    timeout_s: float,
    server_cpu_s: Callable[[], float],
    server_wait_s: Callable[[], float] = lambda: 0.0,
) -> LoginRun:
    """The control alone for ``baseline_s``, then during a storm of ``count`` logins.

    ``server_cpu_s`` reads the server's CPU time and ``server_wait_s`` the time its threads
    waited for a CPU, each taken just before and after the storm.

    Raises RuntimeError when a helper process does not answer in time.
    """
    context = multiprocessing.get_context("fork")
    run = LoginRun()
    control, control_child = context.Pipe()
    limit_s = baseline_s + timeout_s + 30
    control_process = context.Process(target=control_main, args=(control_child, address, limit_s), daemon=True)
    control_process.start()
    control_child.close()
    storm_process = None
    try:
        ready = _receive(control, timeout_s, "the control pair")
        if "error" in ready:
            raise RuntimeError(ready["error"])
        run.baseline_from_ns = time.monotonic_ns()
        if control.poll(baseline_s):  # the control ended early: it says why below
            run.storm_from_ns = run.storm_until_ns = time.monotonic_ns()
        else:
            storm, storm_child = context.Pipe()
            cpu_before, wait_before = server_cpu_s(), server_wait_s()
            run.storm_from_ns = time.monotonic_ns()
            storm_process = context.Process(
                target=storm_main, args=(storm_child, address, count, timeout_s), daemon=True
            )
            storm_process.start()
            storm_child.close()
            result = _receive(storm, timeout_s + 30, "the login storm")
            run.storm_until_ns = result["until_ns"]
            run.storm_cpu_s = server_cpu_s() - cpu_before
            run.storm_wait_s = server_wait_s() - wait_before
            run.logins = [tuple(pair) for pair in result["logins"]]  # type: ignore[misc]
            run.failures = result["failures"]
        with contextlib.suppress(BrokenPipeError, OSError):
            control.send("stop")
        done = _receive(control, LINE_TIMEOUT_S + 10, "the control pair")
        run.control = [tuple(pair) for pair in done["samples"]]  # type: ignore[misc]
        run.control_errors = done["errors"]
    finally:
        for process in (control_process, storm_process):
            if process is not None:
                process.join(5.0)
                if process.is_alive():
                    process.kill()
                    process.join(2.0)
    return run


def _receive(conn: Connection, timeout_s: float, who: str) -> dict[str, Any]:
    if not conn.poll(timeout_s):
        raise RuntimeError(f"{who} did not answer within {timeout_s:.0f}s")
    try:
        reply: dict[str, Any] = conn.recv()
    except EOFError as error:
        raise RuntimeError(f"{who} died") from error
    return reply
