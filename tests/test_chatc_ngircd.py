"""chatc against a second, independent IRC server: ngircd from Debian (skipped when it is not installed).

Passing against chatd alone could hide a client that only understands chatd's
choices; ngircd differs in MOTD, notices, NAMES, modes and flood handling.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEADLINE_S, IrcClient
from tests.test_chatc_headless import ChatcProcess
from tests.test_chatc_ui import running_ui, shows, until

NGIRCD = shutil.which("ngircd") or next(
    (path for path in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if Path(path).exists()), None
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(address: tuple[str, int], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ngircd exited with {proc.returncode}")
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling for the port to open, under the deadline above


@pytest.fixture
def ngircd(tmp_path: Path) -> Iterator[tuple[str, int]]:
    if NGIRCD is None:
        pytest.skip("ngircd is not installed (apt-get install -y ngircd)")
    # A free port found by binding port 0; ngircd cannot be told to pick one itself, so
    # there is a small window in which another process could take it. Retry once.
    for _attempt in range(2):
        port = _free_port()
        config = tmp_path / "ngircd.conf"
        config.write_text(
            "[Global]\nName = irc.test.local\nInfo = chatc test\nListen = 127.0.0.1\n"
            f"Ports = {port}\nMotdPhrase = chatc test server\nPidFile = {tmp_path / 'ngircd.pid'}\n"
            "[Limits]\nMaxConnectionsIP = 0\nPingTimeout = 120\n"
            "[Options]\nPAM = no\nIdent = no\nDNS = no\n"
        )
        proc = subprocess.Popen(
            [NGIRCD, "--nodaemon", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_listening(("127.0.0.1", port), proc)
        except (OSError, RuntimeError):
            proc.kill()
            proc.wait()
            continue
        try:
            yield ("127.0.0.1", port)
        finally:
            proc.terminate()
            proc.wait(timeout=DEADLINE_S)
        return
    pytest.fail("ngircd did not start")


@pytest.fixture
def peer(ngircd: tuple[str, int]) -> Iterator[IrcClient]:
    client = IrcClient(ngircd, "zed")
    client.send("JOIN #t")
    client.expect("366")
    yield client
    client.close()


def test_headless_chatc_talks_both_ways_with_ngircd(ngircd: tuple[str, int], peer: IrcClient) -> None:
    host, port = ngircd
    chatc = ChatcProcess("--host", host, "--port", str(port), "--nick", "bot", "--channel", "#t")
    peer.wait_for_line(lambda line: line.startswith(":bot!") and " JOIN " in line)
    peer.send("PRIVMSG #t :hello from ngircd")
    chatc.wait_line("#t <zed> hello from ngircd")
    texts = [f"paced line {i}" for i in range(12)]
    chatc.write("".join(text + "\n" for text in texts) + "/me is done\n")
    chatc.close_input()
    received = [peer.expect("PRIVMSG").params[-1] for _ in range(len(texts) + 1)]
    assert received == [*texts, "\x01ACTION is done\x01"]
    status, stderr = chatc.finish()
    assert status == 0, stderr
    assert chatc.printed() == ["#t <zed> hello from ngircd"]  # server notices are not printed as conversation


def test_ui_against_ngircd_sends_receives_and_tracks_names(ngircd: tuple[str, int], peer: IrcClient) -> None:
    async def scenario() -> None:
        async with running_ui(ngircd, nick="me") as (ui, keys):
            await until(lambda: ui.state.active.name == "#t" and "zed" in ui.state.active.nicks, "join and names")
            assert ui.state.buffer_list[0].name == "irc.test.local"
            keys.send_text("typed in chatc\r")
            message = await asyncio.to_thread(peer.expect, "PRIVMSG")
            assert message.params == ("#t", "typed in chatc")
            peer.send("PRIVMSG #t :\x01ACTION replies\x01")
            await until(lambda: shows(ui, "#t", "replies"), "the action")
            peer.send("NICK zed2")
            await until(lambda: "zed2" in ui.state.active.nicks and "zed" not in ui.state.active.nicks, "nick change")
            keys.send_text("/part\r")
            await until(lambda: not ui.state.active.joined, "part")

    asyncio.run(scenario())


def test_ui_against_ngircd_negotiates_only_what_it_offers_and_echoes_locally(
    ngircd: tuple[str, int], peer: IrcClient
) -> None:
    """ngircd offers few capabilities (no echo-message, server-time or batch): chatc must still register,
    keep its own local copy of what it says (exactly one), and use the clock for timestamps."""

    async def scenario() -> None:
        async with running_ui(ngircd, nick="me") as (ui, keys):
            await until(lambda: ui.state.active.name == "#t" and "zed" in ui.state.active.nicks, "join and names")
            assert ui.state.caps <= ui.state.caps_offered
            assert not ui.state.caps & {"echo-message", "server-time", "batch"}
            assert not ui.state.cap_negotiating
            keys.send_text("said once\r")
            message = await asyncio.to_thread(peer.expect, "PRIVMSG")
            assert message.params == ("#t", "said once")
            mine = [line for line in ui.state.active.lines if line.text == "said once"]
            assert len(mine) == 1 and mine[0].own and not mine[0].history
            # No draft/chathistory either: /history says so instead of sending a command ngircd lacks.
            keys.send_text("/history\r")
            await until(lambda: "does not offer message history" in ui.state.active.lines[-1].text, "the notice")
            assert ui.state.active.lines[-1].kind == "error" and not ui.state.history_pending(ui.state.active_key)

    asyncio.run(scenario())
