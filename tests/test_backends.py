"""The seams under the backends: the core's Session without sockets, the backend registry,
and a held client resumed as soon as the network answers — both backends."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from chatd.core import Hub, ServerConfig
from chatd.core.session import HOLD_POLL_S, PAUSE_FLUSH_S, Session
from tests.helpers import REDIS_SERVER, Capture, IrcClient, RedisServer


class Clock:
    """A hand-driven monotonic clock for a hub and its sessions."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session_of(clock: Clock, **config: object) -> tuple[Session, Capture]:
    hub = Hub(ServerConfig(**config), clock, time.time)  # type: ignore[arg-type]
    transport = Capture()
    return Session(hub, hub.connect(transport, "127.0.0.1")), transport


def test_bytes_with_no_newline_become_a_line_only_after_the_pause() -> None:
    clock = Clock()
    session, transport = session_of(clock)
    assert session.data_received(b"ali", clock.now) == clock.now + PAUSE_FLUSH_S
    clock.now += PAUSE_FLUSH_S / 2
    due = session.data_received(b"ce", clock.now)  # more bytes: the pause starts again
    assert due == clock.now + PAUSE_FLUSH_S
    assert session.timer(clock.now + PAUSE_FLUSH_S / 2) == due  # early: nothing happens
    assert not transport.data
    clock.now = due
    assert session.timer(clock.now) is None
    assert b"Welcome, alice" in bytes(transport.data)  # plain mode took "alice" as the name


def test_an_irc_client_waits_for_its_newline() -> None:
    clock = Clock()
    session, _ = session_of(clock)
    assert session.data_received(b"NICK al\r\nUSER u 0 * :R\r\n", clock.now) is None
    assert session.data_received(b"PRIVMSG #x :half", clock.now) is None  # IRC now: no pause rule
    assert session.reading


def test_flood_control_stops_reading_until_the_bucket_refills() -> None:
    clock = Clock()
    session, transport = session_of(clock, flood_burst=2, flood_rate=1.0, flood_excess_limit=50)
    lines = b"NICK al\r\nUSER u 0 * :R\r\n" + b"PING a\r\n" * 3
    due = session.data_received(lines, clock.now)
    assert due is not None and not session.reading
    assert transport.messages()[-1].command != "PONG"  # only the burst ran
    pongs = 0
    while not session.reading:
        assert due is not None
        clock.now = due
        due = session.timer(clock.now)
        pongs += sum(message.command == "PONG" for message in transport.messages())
    assert pongs == 3 and due is None


def test_the_backend_package_imports_no_server_until_one_is_asked_for() -> None:
    code = (
        "import sys, chatd.backends, chatd.backends.base, chatd.backends.connection\n"
        "assert not [m for m in sys.modules if m.endswith('_server')], sorted(sys.modules)\n"
        "chatd.backends.create_server('threads', chatd.backends.BackendSettings(port=0))\n"
        "assert 'chatd.backends.threaded_server' in sys.modules\n"
        "assert 'chatd.backends.asyncio_server' not in sys.modules\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": root})
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed")
def test_a_held_registration_goes_on_when_the_nick_claim_is_answered(backend: str, redis: RedisServer) -> None:
    from tests.test_cluster import cluster_node

    with cluster_node(backend, redis, "held") as server:
        for attempt in range(3):
            client = IrcClient(server.address)
            started = time.monotonic()
            client.register(f"waiter{attempt}")  # USER waits in the backlog while NICK is claimed
            took = time.monotonic() - started
            client.close()
            if took < HOLD_POLL_S / 2:
                return
        raise AssertionError(f"registration took {took:.2f}s: resumed by the poll, not by the answer")
