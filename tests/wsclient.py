"""Test clients for chatd's WebSocket listener: websockets' own sync client, as irctest uses it, and
a server started with the WebSocket options (``ws_server``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from chatd.backends import BackendSettings
from chatd.core import ServerConfig
from chatd.history.account_store import MemoryAccountStore
from tests.helpers import DEADLINE_S, IrcConversation, RunningServer


class WsClient(IrcConversation):
    """An IRC conversation over one WebSocket: one line per message, in the negotiated mode.

    ``received`` keeps every message as it came (str for text frames, bytes for binary).
    """

    def __init__(
        self, url: str, nick: str | None = None, subprotocols: list[str] | None = None, **options: Any
    ) -> None:
        self.conn: ClientConnection = connect(
            url, subprotocols=subprotocols, open_timeout=DEADLINE_S, close_timeout=DEADLINE_S, legacy=True, **options
        )
        self.binary = self.conn.subprotocol == "binary.ircv3.net"
        self.lines: list[str] = []
        self.received: list[str | bytes] = []
        self.nick = None
        if nick is not None:
            self.register(nick)

    def send_raw(self, data: bytes) -> None:
        """One message per line, without CR/LF, as the spec says a client sends them."""
        for line in data.split(b"\r\n"):
            if line:
                self.conn.send(line if self.binary else line.decode())

    def send_binary(self, data: bytes) -> None:
        self.conn.send(data)

    def read_line(self, timeout: float = DEADLINE_S) -> str | None:
        try:
            message = self.conn.recv(timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"nothing received in {timeout:g}s; saw {self.lines[-10:]!r}") from None
        except ConnectionClosed:
            return None
        self.received.append(message)
        # ``received`` keeps the bytes as they came; ``lines`` shows invalid UTF-8 as U+FFFD.
        line = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        self.lines.append(line)
        return line

    def close(self) -> None:
        self.conn.close()


@contextmanager
def ws_server(backend: str, sendq_bytes: int = 1 << 20, **options: Any) -> Iterator[RunningServer]:
    """A server on 127.0.0.1 with a WebSocket port (``ws_port=0``); ``options`` are BackendSettings
    fields where they are one, ServerConfig fields otherwise."""
    fields = {field.name for field in dataclasses.fields(BackendSettings)}
    backend_options = {key: value for key, value in options.items() if key in fields}
    config = {key: value for key, value in options.items() if key not in fields}
    backend_options.setdefault("ws_port", 0)
    settings = BackendSettings(
        host="127.0.0.1",
        port=0,
        sendq_bytes=sendq_bytes,
        config=ServerConfig(**config),
        accounts=MemoryAccountStore(),
        **backend_options,
    )
    server = RunningServer(backend, settings)
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


def ws_url(server: RunningServer, kind: str = "ws") -> str:
    host, port = server.server.addresses[kind]
    return f"{kind}://{host}:{port}"
