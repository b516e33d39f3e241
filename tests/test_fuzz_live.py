"""Random bytes, random splits and random disconnects against a live server, while a control
conversation goes on: the conversation loses nothing and the server stays up."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading

from tests.helpers import running_server

VERBS = [
    b"PRIVMSG",
    b"NOTICE",
    b"JOIN",
    b"PART",
    b"NICK",
    b"USER",
    b"MODE",
    b"KICK",
    b"TOPIC",
    b"WHO",
    b"WHOIS",
    b"CAP",
    b"PING",
    b"QUIT",
    b"LIST",
    b"NAMES",
    b"AWAY",
    b"PASS",
    b"\xff\xfe",
    b"",
]


def random_line(rng: random.Random) -> bytes:
    """Mostly plausible IRC with hostile parameters, sometimes pure noise."""
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(0, 700))
    words = [rng.choice(VERBS)]
    for _ in range(rng.randint(0, 6)):
        words.append(
            rng.choice(
                [
                    b"#control",
                    b"#x",
                    b"control1",
                    b"*",
                    b":",
                    b"0",
                    b"+o",
                    b"-t+n",
                    b"#" + rng.randbytes(3),
                    rng.randbytes(rng.randint(0, 20)),
                    b"a" * 600,
                ]
            )
        )
    if rng.random() < 0.5:
        words.append(b":" + rng.randbytes(rng.randint(0, 50)))
    prefix = b"@" + rng.randbytes(rng.randint(0, 30)) + b" " if rng.random() < 0.1 else b""
    return prefix + b" ".join(words) + rng.choice([b"\r\n", b"\n", b"\r", b""])


def chaos_connection(address: tuple[str, int], seed: int) -> None:
    rng = random.Random(seed)
    with contextlib.suppress(OSError):
        sock = socket.create_connection(address, timeout=5)
        if rng.random() < 0.5:
            sock.sendall(f"NICK chaos{seed}\r\nUSER c 0 * :c\r\nJOIN #control,#x\r\n".encode())
        stream = b"".join(random_line(rng) for _ in range(rng.randint(1, 40)))
        position = 0
        while position < len(stream):
            step = rng.randint(1, 300)
            sock.sendall(stream[position : position + step])
            position += step
            if rng.random() < 0.05:
                break  # leave in the middle of a line
        if rng.random() < 0.5:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
        sock.close()


def test_chaos_does_not_disturb_a_control_conversation(backend: str) -> None:
    with running_server(backend, flood_rate=0) as server:
        alice, bob = server.client("control1"), server.client("control2")
        for client in (alice, bob):
            client.send("JOIN #control")
            client.until("366")
        rng = random.Random(1234)
        threads = [
            threading.Thread(target=chaos_connection, args=(server.address, rng.randrange(1 << 30))) for _ in range(60)
        ]
        for thread in threads:
            thread.start()
        expected = []
        for i in range(100):
            text = f"control message {i}"
            alice.send(f"PRIVMSG #control :{text}")
            expected.append(text)
        for thread in threads:
            thread.join(timeout=30)
        received = []
        while len(received) < len(expected):
            message = bob.expect("PRIVMSG")
            if message.source.startswith("control1!"):
                received.append(message.params[1])
        assert received == expected
        bob.send("PRIVMSG control1 :and the server still answers")
        alice.wait_for_line(
            lambda line: (
                line.startswith(":control2!") and line.endswith(" PRIVMSG control1 :and the server still answers")
            )
        )
        late = server.client("latecomer")
        late.send("JOIN #control")
        names = [m for m in late.until("366") if m.command == "353"]
        assert "control1" in names[0].params[3] and "control2" in names[0].params[3]
