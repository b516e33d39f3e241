"""Abuse and faults: flood control, registration timeout, per-address limits, resets — both backends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import DEADLINE_S, IrcClient, LineClient, running_server


def test_flooder_is_slowed_not_cut_and_loses_nothing(backend: str) -> None:
    with running_server(backend, flood_burst=5, flood_rate=20.0, flood_excess_limit=100) as server:
        flooder, watcher = server.client("flooder"), server.client("watcher")
        for client in (flooder, watcher):
            client.send("JOIN #f")
            client.until("366")
        count = 40
        flooder.send_raw(b"".join(f"PRIVMSG #f :{i}\r\n".encode() for i in range(count)))
        # The server is not slowed: the watcher's own PING is answered while the flood is still queued.
        watcher.send("PING :control")
        before_pong = watcher.until("PONG")
        relayed_before_pong = [m for m in before_pong if m.command == "PRIVMSG"]
        assert len(relayed_before_pong) < count
        numbers = [int(m.params[1]) for m in relayed_before_pong]
        while len(numbers) < count:
            numbers.append(int(watcher.expect("PRIVMSG").params[1]))
        assert numbers == list(range(count))
        flooder.sync()  # still connected


def test_persistent_flooder_is_cut_with_excess_flood(backend: str) -> None:
    with running_server(backend, flood_burst=5, flood_rate=50.0, flood_excess_limit=20) as server:
        flooder, watcher = server.client("flooder"), server.client("watcher")
        for client in (flooder, watcher):
            client.send("JOIN #f")
            client.until("366")
        with contextlib.suppress(OSError):  # the server may close on us mid-flood
            flooder.send_raw(b"".join(f"PRIVMSG #f :{i}\r\n".encode() for i in range(2000)))
        assert any("Excess Flood" in line for line in flooder.wait_closed())
        quit_message = watcher.expect("QUIT")
        assert quit_message.source.startswith("flooder!") and quit_message.params == ("Excess Flood",)
        watcher.sync()


def test_registration_timeout_closes_silent_connections(backend: str) -> None:
    with running_server(backend, register_timeout_s=0.3) as server:
        silent = LineClient(server.address)
        half = IrcClient(server.address)
        half.send("NICK halfway")
        registered = server.client("done")
        assert any("Registration timed out" in line for line in silent.wait_closed())
        assert any("Registration timed out" in line for line in half.wait_closed())
        registered.sync()
        again = IrcClient(server.address)
        assert again.register("halfway")[-1].command in ("376", "422")  # the nick was released


def test_max_per_ip(backend: str) -> None:
    with running_server(backend, max_per_ip=2, per_ip_exempt=frozenset()) as server:
        first, second = server.client("one"), server.client("two")
        third = IrcClient(server.address)
        closing = third.wait_closed()
        assert closing and closing[0].startswith("ERROR") and "Too many connections" in closing[0]
        second.close()
        first.sync()
        # A slot frees up once the server has seen a connection from the address go.
        fourth = None
        for _ in range(50):
            candidate = IrcClient(server.address)
            try:
                candidate.register("four")
                fourth = candidate
                break
            except (EOFError, OSError):  # refused while the slot is still taken: closed, or reset mid-write
                candidate.close()
        assert fourth is not None


def test_reset_in_the_middle_of_writes_is_harmless(backend: str) -> None:
    with running_server(backend, flood_rate=0) as server:
        talker, listener = server.client("talker"), server.client("listener")
        victim = IrcClient(server.address, "victim", receive_buffer=4096)
        for client in (talker, listener, victim):
            client.send("JOIN #r")
            client.until("366")
        for i in range(300):
            talker.send(f"PRIVMSG #r :{i} " + "z" * 300)
        # Abort with RST while the server still has data queued for us.
        victim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        victim.close()
        numbers = []
        quits = []
        while len(numbers) < 300 or not quits:
            message = listener.expect("PRIVMSG", "QUIT")
            if message.command == "PRIVMSG":
                numbers.append(int(message.params[1].split()[0]))
            else:
                quits.append(message.source.split("!")[0])
        assert numbers == list(range(300))
        assert quits == ["victim"]
        talker.send("PRIVMSG #r :after")
        assert listener.expect("PRIVMSG").params == ("#r", "after")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_backs_off_and_recovers(backend: str) -> None:
    limit = 64
    code = (
        "import resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
        "from chatd.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--backend", backend, "--max-per-ip", "0", "--no-persist"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        port = 0
        for line in process.stderr:
            if "listening on" in line:
                port = int(line.rsplit(":", 1)[1].split()[0])
                break
        address = ("127.0.0.1", port)
        # More connections than descriptors: the kernel queues the rest in the listen backlog.
        crowd = [LineClient(address) for _ in range(limit + 20)]
        for line in process.stderr:
            if "accept failed" in line:
                break
        # While out of descriptors the server must idle, not spin on the readable listener.
        start_cpu, start = _cpu_seconds(process.pid), time.monotonic()
        watch_until = start + 1.0
        while time.monotonic() < watch_until:
            time.sleep(0.1)  # measuring a window, not waiting for an event
        cpu_share = (_cpu_seconds(process.pid) - start_cpu) / (time.monotonic() - start)
        assert cpu_share < 0.3, f"server used {cpu_share:.0%} of a CPU while out of descriptors"
        for client in crowd[:40]:
            client.close()
        # Descriptors are free again: a new client (queued behind the backlog) gets served.
        late = IrcClient(address)
        assert late.register("late")[-1].command in ("376", "422")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE_S) == 0


def test_departed_clients_are_not_retained(backend: str) -> None:
    """No leak per connection: once clients leave, nothing of theirs stays reachable."""
    import gc

    from chatd.core.client import Client

    def live_clients() -> int:
        gc.collect()
        return sum(1 for obj in gc.get_objects() if type(obj) is Client)

    with running_server(backend, flood_rate=0, max_per_ip=0) as server:
        keeper = server.client("keeper")
        keeper.send("JOIN #churn")
        keeper.until("366")
        before = live_clients()
        for round_number in range(3):
            batch = [server.client(f"c{round_number}x{i}") for i in range(100)]
            for client in batch:
                client.send("JOIN #churn")
                client.send("PRIVMSG #churn :hello")
            for client in batch:
                client.send("QUIT :done")
                client.wait_closed()
        keeper.sync()
        # Departed clients may wait in the timer heap until it is half stale: a bound, not a leak.
        assert live_clients() - before <= 20
