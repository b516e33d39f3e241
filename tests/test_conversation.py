"""Many clients at once: exactly-once, per-sender-ordered delivery; one failing handler harms no one else.

Fifty clients run over both backends (their read, fan-out and write paths under
load); a failing handler is the core's business and runs on the hub harness.
"""

from __future__ import annotations

import selectors
import time

import pytest

from chatd.core import commands
from chatd.protocol.message import Message, parse
from tests.harness import HubHarness
from tests.helpers import DEADLINE_S, RunningServer

MEMBERS = 50
MESSAGES_EACH = 20


def test_fifty_clients_every_message_exactly_once_in_order(server: RunningServer) -> None:
    clients = [server.client(f"user{i}") for i in range(MEMBERS)]
    for client in clients:
        client.send("JOIN #crowd")
        client.until("366")
    # Everyone has joined once the last joiner's JOIN has reached the first member.
    clients[0].wait_for_line(lambda line: line.startswith(f":user{MEMBERS - 1}!") and " JOIN " in line)
    for round_number in range(MESSAGES_EACH):
        for index, client in enumerate(clients):
            client.send(f"PRIVMSG #crowd :{index}:{round_number}")

    expected = (MEMBERS - 1) * MESSAGES_EACH
    received: dict[int, list[tuple[int, int]]] = {index: [] for index in range(MEMBERS)}
    selector = selectors.DefaultSelector()
    for index, client in enumerate(clients):
        client.sock.setblocking(False)
        selector.register(client.sock, selectors.EVENT_READ, index)
    deadline = time.monotonic() + 4 * DEADLINE_S
    while any(len(got) < expected for got in received.values()) and time.monotonic() < deadline:
        for key, _ in selector.select(0.5):
            index = key.data
            client = clients[index]
            client.buffer += client.sock.recv(65536)
            *lines, client.buffer = client.buffer.split(b"\r\n")
            for line in lines:
                message = parse(line.decode())
                if message.command == "PRIVMSG":
                    sender, number = message.params[1].split(":")
                    assert message.source.startswith(f"user{sender}!")
                    received[index].append((int(sender), int(number)))
    selector.close()

    for index, got in received.items():
        assert len(got) == expected, f"user{index} got {len(got)} of {expected}"
        assert all(sender != index for sender, _ in got)
        for sender in range(MEMBERS):
            if sender != index:
                assert [n for s, n in got if s == sender] == list(range(MESSAGES_EACH))


def test_exception_in_a_handler_closes_only_that_client(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(hub: object, client: object, message: Message) -> None:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setitem(commands.COMMANDS, "TIME", commands.Command(broken))
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    for client in (a, b):
        client.send("JOIN #safe")
        client.expect("366")
    victim = hub.client("victim")
    victim.send("JOIN #safe")
    victim.expect("366")
    victim.send("TIME")
    assert any(line.startswith("ERROR") for line in victim.wait_closed())
    assert a.expect("QUIT").source.startswith("victim!")
    a.send("PRIVMSG #safe :life goes on")
    assert b.expect("PRIVMSG").params == ("#safe", "life goes on")
