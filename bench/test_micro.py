"""Micro-benchmarks of the hot paths, without sockets: ``pytest bench/`` (pytest-benchmark).

They measure the pieces one delivery goes through — framing a read, parsing a
line, formatting one, and the core's fan-out of one PRIVMSG to 1000 members — so
a change to any of them shows up here before it shows up in a full bench run.
"""

from __future__ import annotations

import time

import pytest

from chatd.core import Hub, ServerConfig
from chatd.protocol.framing import LineReader
from chatd.protocol.message import format_message, parse

pytest.importorskip("pytest_benchmark")

LINE = ":alice!alice@127.0.0.1 PRIVMSG #lobby :hello there, this is a fairly ordinary chat line"
MEMBERS = 1000


class NullTransport:
    """A transport that accepts everything and keeps nothing: only the core's cost is measured."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> bool:
        self.writes += 1
        return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        pass


def test_parse(benchmark) -> None:  # type: ignore[no-untyped-def]
    message = benchmark(parse, LINE)
    assert message.command == "PRIVMSG"


def test_format(benchmark) -> None:  # type: ignore[no-untyped-def]
    text = benchmark(format_message, "PRIVMSG", "#lobby", "hello there, an ordinary line", source="alice!a@host")
    assert text.endswith(":hello there, an ordinary line")


def test_framing_64k_read(benchmark) -> None:  # type: ignore[no-untyped-def]
    line = b"PRIVMSG #lobby :" + b"x" * 60 + b"\r\n"
    chunk = line * (65536 // len(line))
    reader = LineReader()
    lines = benchmark(reader.feed, chunk)
    assert len(lines) == 65536 // len(line)


def test_core_fanout_to_1000_members(benchmark) -> None:  # type: ignore[no-untyped-def]
    config = ServerConfig(flood_rate=0.0) if "flood_rate" in ServerConfig.__dataclass_fields__ else ServerConfig()
    hub = Hub(config, time.monotonic, time.time)
    transports = []
    clients = []
    for index in range(MEMBERS):
        transport = NullTransport()
        client = hub.connect(transport, "127.0.0.1")
        hub.receive(client, [f"NICK m{index}".encode(), f"USER m{index} 0 * :m".encode(), b"JOIN #lobby"])
        transports.append(transport)
        clients.append(client)
    sender = clients[0]
    before = sum(t.writes for t in transports)
    benchmark(hub.receive, sender, [b"PRIVMSG #lobby :hello everyone, one line to a thousand members"])
    rounds = benchmark.stats.stats.rounds if benchmark.stats else 1
    assert sum(t.writes for t in transports) - before >= (MEMBERS - 1) * rounds


class BufferGroup:
    """A backend's fan-out group at its simplest: one append per connection, as selectors does."""

    __slots__ = ("outboxes", "transports")

    def __init__(self, offered) -> None:  # type: ignore[no-untyped-def]
        self.transports = list(offered)
        self.outboxes = [bytearray() for _ in self.transports]

    def send(self, data: bytes, skip: object) -> None:
        for outbox in self.outboxes:
            outbox += data
            if len(outbox) > 1 << 20:
                outbox.clear()


def test_core_group_fanout_to_1000_members(benchmark) -> None:  # type: ignore[no-untyped-def]
    """The same fan-out through the ``Hub.fanout_groups`` seam the selectors backend uses."""
    config = ServerConfig(flood_rate=0.0)
    hub = Hub(config, time.monotonic, time.time)
    groups: list[BufferGroup] = []
    hub.fanout_groups = lambda offered: groups.append(BufferGroup(offered)) or groups[-1]  # type: ignore[assignment, func-returns-value]
    clients = []
    for index in range(MEMBERS):
        client = hub.connect(NullTransport(), "127.0.0.1")
        hub.receive(client, [f"NICK m{index}".encode(), f"USER m{index} 0 * :m".encode(), b"JOIN #lobby"])
        clients.append(client)
    benchmark(hub.receive, clients[0], [b"PRIVMSG #lobby :hello everyone, one line to a thousand members"])
    assert len(groups[-1].transports) == MEMBERS
