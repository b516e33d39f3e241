"""Test clients that talk to a real chatd over real sockets, waiting with deadlines, never sleeps."""

from __future__ import annotations

import itertools
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from chatd.backends import BackendSettings, create_server
from chatd.core import ServerConfig
from chatd.core.ports import AccountStore
from chatd.history import History
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.message import Message, parse

DEADLINE_S = 10.0
POLL_S = 0.02
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> object:
    """Poll ``condition`` until it returns something true, and return that; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL_S)  # a polling interval, not a wait for something to happen


class RedisServer:
    """A throwaway redis-server, loopback only; can be stopped or killed and restarted on its port.

    Without ``aof`` it keeps nothing: a restart is an empty Redis. With ``aof`` (and a
    ``data_dir`` to keep it in) every write is fsynced to the append-only file before the
    reply, so a restart on the same port and directory comes back with all of its data.
    """

    def __init__(self, aof: bool = False, data_dir: str | None = None) -> None:
        if aof and data_dir is None:
            raise ValueError("an AOF Redis needs a data_dir that outlives its process")
        self.port = free_port()
        self.aof = aof
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        where = ["--dir", self.data_dir] if self.data_dir is not None else []
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence, *where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, "redis-server to answer PING")  # -LOADING while it reads its AOF

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the AOF is complete; ``start`` brings the data back."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(DEADLINE_S)

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE_S)

    def command_on_each(self, *args: str) -> list[object]:
        """``command`` on every server (one here; each master of a ``RedisClusterServers``)."""
        return [self.command(*args)]

    def command(self, *args: str) -> object:
        """One command over a fresh redis-py connection; the reply as Redis sent it (bytes, int, list)."""
        import redis

        with redis.Redis(port=self.port, socket_timeout=DEADLINE_S, protocol=2) as client:
            client.response_callbacks.clear()
            return client.execute_command(*args)


class Conversation:
    """Reading lines under a deadline, on any line source and its clock.

    The socket suite's ``LineClient``/``IrcClient`` and the hub harness's ``HubClient``
    share these methods; each source gives ``read_line``, ``send_raw`` and ``now``.
    """

    lines: list[str]

    def now(self) -> float:
        return time.monotonic()

    def read_line(self, timeout: float = DEADLINE_S) -> str | None:
        raise NotImplementedError

    def send_raw(self, data: bytes) -> None:
        raise NotImplementedError

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = DEADLINE_S) -> str:
        deadline = self.now() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - self.now()))
            if line is None:
                raise EOFError(f"connection closed; saw {self.lines[-10:]!r}")
            if predicate(line):
                return line

    def wait_closed(self, timeout: float = DEADLINE_S) -> list[str]:
        """Read until the other side closes; return the lines seen on the way."""
        seen = []
        deadline = self.now() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - self.now()))
            if line is None:
                return seen
            seen.append(line)


class IrcConversation(Conversation):
    """An IRC peer's side of a conversation: send commands, wait for parsed messages."""

    nick: str | None

    def send(self, line: str) -> None:
        self.send_raw(line.encode() + b"\r\n")

    def register(self, nick: str, user: str = "u") -> list[Message]:
        self.nick = nick
        self.send(f"NICK {nick}")
        self.send(f"USER {user} 0 * :Real {nick}")
        return self.until("376", "422")

    def expect(self, *commands: str, timeout: float = DEADLINE_S) -> Message:
        """Skip messages until one with a command in ``commands``; answer server PINGs."""
        deadline = self.now() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - self.now()))
            if line is None:
                raise EOFError(f"connection closed waiting for {commands}; saw {self.lines[-10:]!r}")
            message = parse(line)
            if message.command in commands:
                return message
            if message.command == "PING" and "PING" not in commands:
                self.send(f"PONG :{message.param(0)}")

    def until(self, *commands: str, timeout: float = DEADLINE_S) -> list[Message]:
        """All messages up to and including the first whose command is in ``commands``."""
        seen: list[Message] = []
        deadline = self.now() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - self.now()))
            if line is None:
                raise EOFError(f"connection closed waiting for {commands}; saw {self.lines[-10:]!r}")
            message = parse(line)
            seen.append(message)
            if message.command in commands:
                return seen

    def sync(self) -> list[Message]:
        """Everything the server sent before the answer to a fresh PING (replies keep order)."""
        token = f"sync{next(_SYNC_TOKENS)}"
        self.send(f"PING {token}")
        seen: list[Message] = []
        while True:
            message = self.expect_any()
            if message.command == "PONG" and message.params[-1] == token:
                return seen
            seen.append(message)

    def expect_any(self) -> Message:
        line = self.read_line()
        if line is None:
            raise EOFError(f"connection closed; saw {self.lines[-10:]!r}")
        return parse(line)


_SYNC_TOKENS = itertools.count()


class LineClient(Conversation):
    """A blocking socket with line reading under a deadline."""

    def __init__(self, address: tuple[str, int], receive_buffer: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Before connect, so the advertised window stays small: a reader that never reads.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(DEADLINE_S)
        self.sock.connect(address)
        self.buffer = b""
        self.lines: list[str] = []
        self.raw_lines: list[bytes] = []
        """Each line of ``lines`` as the bytes that came (``lines`` shows invalid UTF-8 as U+FFFD)."""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self, timeout: float = DEADLINE_S) -> str | None:
        """The next line without its terminator, or None at EOF. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line within {timeout}s; have {self.buffer!r}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                if self.buffer:
                    line, self.buffer = self.buffer, b""
                    return line.decode("utf-8", "replace")
                return None
            self.buffer += data
        raw, self.buffer = self.buffer.split(b"\n", 1)
        raw = raw.rstrip(b"\r")
        line = raw.decode("utf-8", "replace")
        self.lines.append(line)
        self.raw_lines.append(raw)
        return line

    def close(self) -> None:
        self.sock.close()


class IrcClient(LineClient, IrcConversation):
    """An IRC test client: send commands, wait for parsed messages."""

    def __init__(self, address: tuple[str, int], nick: str | None = None, receive_buffer: int | None = None) -> None:
        super().__init__(address, receive_buffer)
        self.nick = nick
        if nick is not None:
            self.register(nick)


class RunningServer:
    """A chatd server in a thread of the test process."""

    def __init__(self, backend: str, settings: BackendSettings) -> None:
        self.backend = backend
        self.server = create_server(backend, settings)
        self.server.bind()
        self.address = self.server.address
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"chatd-{backend}", daemon=True)

    def client(self, nick: str | None = None) -> IrcClient:
        return IrcClient(self.address, nick)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=DEADLINE_S)
        assert not self.thread.is_alive(), "server did not stop"


@contextmanager
def running_server(
    backend: str,
    sendq_bytes: int = 1 << 20,
    tls_context: ssl.SSLContext | None = None,
    history: History | None = None,
    accounts: AccountStore | None = None,
    **config: object,
) -> Iterator[RunningServer]:
    """A server on 127.0.0.1:0 in a thread; with accounts in memory unless ``accounts`` is given
    (as chatd always has a store: in memory with --no-persist)."""
    settings = BackendSettings(
        host="127.0.0.1",
        port=0,
        sendq_bytes=sendq_bytes,
        config=ServerConfig(**config),  # type: ignore[arg-type]
        tls_port=0 if tls_context is not None else None,
        tls_context=tls_context,
        history=history,
        accounts=MemoryAccountStore() if accounts is None else accounts,
    )
    server = RunningServer(backend, settings)
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


class Capture:
    """A transport for a Hub driven without sockets: it keeps what the hub writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> bool:
        self.data += data
        return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        self.data += farewell

    def messages(self) -> list[Message]:
        lines = bytes(self.data).decode().split("\r\n")[:-1]
        self.data.clear()
        return [parse(line) for line in lines]
