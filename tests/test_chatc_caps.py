"""chatc's capability negotiation (``chatc/caps.py``): what it asks for, and that registration never stalls.

The first half feeds lines to the sans-I/O state; the second half runs chatc against small fake
servers that answer CAP badly or not at all.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from chatc.state import ClientState, SendLine
from chatd.protocol.message import parse
from tests.helpers import DEADLINE_S
from tests.test_chatc_ircv3 import CHATD_CAPS, USED_BY_CHATC, negotiated
from tests.test_chatc_ui import running_ui, until

# ---- negotiation, sans I/O -----------------------------------------------------------


def test_cap_ls_302_multiline_then_req_of_what_chatc_uses_then_end_after_ack() -> None:
    state = ClientState("me")
    assert state.registration_lines()[0] == "CAP LS 302"
    assert state.feed(":srv CAP * LS * :account-notify away-notify batch sasl=PLAIN,EXTERNAL invite-notify") == []
    events = state.feed(
        ":srv CAP * LS :draft/chathistory draft/message-redaction echo-message labeled-response message-tags"
        " multi-prefix server-time setname"
    )
    assert events == [SendLine(f"CAP REQ :{USED_BY_CHATC.replace('cap-notify ', '')}")]
    assert state.cap_negotiating and not state.caps
    assert state.feed(f":srv CAP * ACK :{USED_BY_CHATC.replace('cap-notify ', '')}") == [SendLine("CAP END")]
    assert state.caps == set(USED_BY_CHATC.split()) - {"cap-notify"}
    assert not state.cap_negotiating
    assert "sasl" in state.caps_offered


def test_an_endless_cap_ls_is_bounded() -> None:
    state = ClientState("me")
    state.registration_lines()
    for number in range(2000):
        state.feed(f":srv CAP * LS * :junk{number}a junk{number}b")
    assert state.feed(":srv CAP * LS :server-time") == [SendLine("CAP END")]  # past the bound: not seen
    assert len(state.caps_offered) == 256


def test_chatds_offer_is_requested_in_full_minus_what_chatc_does_not_use() -> None:
    state = ClientState("me")
    state.registration_lines()
    assert state.feed(f":srv CAP * LS :{CHATD_CAPS}") == [SendLine(f"CAP REQ :{USED_BY_CHATC}")]


def test_a_nak_still_ends_negotiation_and_registration_completes_without_caps() -> None:
    state = ClientState("me")
    state.registration_lines()
    state.feed(":srv CAP * LS :server-time echo-message")
    assert state.feed(":srv CAP * NAK :echo-message server-time") == [SendLine("CAP END")]
    assert state.caps == set()
    state.feed(":srv 001 me :Welcome")
    assert state.registered
    assert state.record_own_message("#room", "hi") is not None  # no echo-message: the local copy stays


def test_nothing_wanted_on_offer_ends_negotiation_at_once() -> None:
    state = ClientState("me")
    state.registration_lines()
    assert state.feed(":srv CAP * LS :sasl invite-notify") == [SendLine("CAP END")]
    state = ClientState("me")
    state.registration_lines()
    assert state.feed(":srv CAP * LS :") == [SendLine("CAP END")]


def test_a_server_without_cap_registers_us_and_its_421_is_no_error() -> None:
    state = ClientState("me")
    state.registration_lines()
    assert state.feed(":old.server 421 * CAP :Unknown command") == []
    assert not state.cap_negotiating
    events = state.feed(":old.server 001 me :Welcome")
    assert state.registered and not any(isinstance(event, SendLine) and "CAP" in event.line for event in events)
    assert state.end_cap_negotiation() == []  # the connection's timeout then has nothing to send


def test_a_server_that_ignores_cap_entirely_still_registers_and_001_closes_negotiation() -> None:
    state = ClientState("me")
    state.registration_lines()
    state.feed(":quiet 001 me :Welcome")
    assert state.registered and not state.cap_negotiating
    assert state.feed(":quiet CAP me ACK :server-time") == []  # late or stray: no CAP END after registration
    assert state.end_cap_negotiation() == []


def test_the_timeout_ends_a_negotiation_the_server_left_hanging() -> None:
    state = ClientState("me")
    state.registration_lines()
    state.feed(":srv CAP * LS :server-time")
    assert state.end_cap_negotiation() == ["CAP END"]
    assert state.end_cap_negotiation() == []
    assert state.feed(":srv CAP * ACK :server-time") == []  # a late ACK enables, but sends no second END
    assert state.caps == {"server-time"}


def test_cap_new_requests_what_chatc_uses_and_del_withdraws_it() -> None:
    state = negotiated("server-time")
    assert state.feed(":srv CAP me NEW :echo-message sasl") == [SendLine("CAP REQ echo-message")]
    assert state.feed(":srv CAP me ACK :echo-message") == []  # after registration: no CAP END
    assert state.record_own_message("#room", "hi") is None
    state.feed(":srv CAP me DEL :echo-message")
    assert "echo-message" not in state.caps
    assert state.record_own_message("#room", "hi") is not None  # back to the local copy
    assert state.feed(":srv CAP me NEW :server-time") == []  # already on: nothing to ask


def test_an_ack_with_a_minus_disables() -> None:
    state = negotiated("server-time echo-message")
    state.feed(":srv CAP me ACK :-echo-message")
    assert state.caps == {"server-time"}


def test_a_new_connection_forgets_the_old_caps() -> None:
    state = negotiated()
    state.connection_lost("gone")
    assert state.caps == set()
    assert state.registration_lines()[0] == "CAP LS 302"
    assert state.cap_negotiating


# ---- using them, sans I/O ------------------------------------------------------------


# ---- servers that answer CAP badly -------------------------------------------------------


class CapServer:
    """A one-connection IRC server that answers CAP LS, then NAKs a REQ or never answers it.

    Like a real CAP server it holds registration until ``CAP END``; it records the lines
    it received, so the test can check the negotiation chatc went through.
    """

    def __init__(self, answer_req: str) -> None:
        self.answer_req = answer_req  # "nak" or "silent"
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.lines: list[str] = []
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.sock:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(DEADLINE_S)
                data = b""
                ended = has_user = False
                while not self.done.is_set():
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                    while b"\n" in data:
                        raw, data = data.split(b"\n", 1)
                        line = raw.rstrip(b"\r").decode()
                        self.lines.append(line)
                        command = parse(line)
                        if command.command == "CAP" and command.param(0) == "LS":
                            conn.sendall(b":capsrv CAP * LS :server-time echo-message\r\n")
                        elif command.command == "CAP" and command.param(0) == "REQ" and self.answer_req == "nak":
                            conn.sendall(f":capsrv CAP * NAK :{command.param(1)}\r\n".encode())
                        elif command.command == "CAP" and command.param(0) == "END":
                            ended = True
                        elif command.command == "USER":
                            has_user = True
                        elif command.command == "QUIT":
                            conn.sendall(b"ERROR :bye\r\n")
                            self.done.set()
                            break
                        if ended and has_user and command.command in ("CAP", "USER"):
                            conn.sendall(b":capsrv 001 me :Welcome\r\n")
        self.done.set()


@pytest.mark.parametrize("answer_req", ["nak", "silent"])
def test_registration_completes_when_the_server_naks_or_never_answers_the_req(answer_req: str) -> None:
    fake = CapServer(answer_req)

    async def scenario() -> None:
        async with running_ui(fake.address, channels=(), cap_timeout_s=0.2) as (ui, _keys):
            await until(lambda: ui.connection.status == "connected", "registration")
            assert ui.state.caps == set()
            assert ui.state.record_own_message("someone", "hi") is not None  # local echo, as without CAP

    asyncio.run(scenario())
    assert fake.done.wait(DEADLINE_S)
    commands = [line for line in fake.lines if line.startswith("CAP")]
    assert commands == ["CAP LS 302", "CAP REQ :echo-message server-time", "CAP END"]
