"""The hub harness itself: it frames and paces input as a backend does, on its own clock."""

from __future__ import annotations

import time

from chatd.protocol import numerics as n
from tests.harness import HubHarness


def test_bytes_are_framed_as_by_the_backends() -> None:
    client = HubHarness().client("framed")
    client.send_raw(b"PING :spl")
    client.send_raw(b"it\r\nPING :bare newline\n")
    assert client.expect("PONG").params[-1] == "split"
    assert client.expect("PONG").params[-1] == "bare newline"
    client.send("PRIVMSG framed :" + "x" * 600)
    assert client.expect(n.ERR_INPUTTOOLONG)
    client.send("PING :still here")
    assert client.expect("PONG").params[-1] == "still here"


def test_flood_control_paces_lines_on_the_hand_clock_without_sleeping() -> None:
    harness = HubHarness()
    client = harness.client("paced")
    started, real_start = harness.clock.now, time.monotonic()
    for number in range(30):
        client.send(f"PING :{number}")
    pongs = [client.expect("PONG").params[-1] for _ in range(30)]
    assert pongs == [str(number) for number in range(30)]
    assert harness.clock.now - started >= 4.5  # 10 at once (less registration's 2), then 4 a second
    assert time.monotonic() - real_start < 2.0


def test_a_hang_up_reaches_the_others() -> None:
    harness = HubHarness()
    leaver, stayer = harness.client("leaver"), harness.client("stayer")
    for client in (leaver, stayer):
        client.send("JOIN #h")
        client.expect(n.RPL_ENDOFNAMES)
    leaver.close()
    assert stayer.expect("QUIT").params == ("Connection closed",)
