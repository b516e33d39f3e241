"""Soak: hold thousands of connections with churn and watch the server's memory.

``python -m bench soak --seconds N`` starts chatd, then runs cycles: connect
``--connections`` clients (registered, in a few channels, chatting a little),
churn a tenth of them every second, then disconnect everyone and let the server
settle. It samples RSS throughout. A leak shows as memory after each cycle's
teardown creeping upward from cycle to cycle; the report prints baseline, peak,
per-connection cost and the settled RSS after every cycle.

Everything runs on 127.0.0.1, bounded by ``--seconds`` and ``--connections``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.contenders import checkout_environment
from bench.procstat import free_port, rss_bytes

CHANNELS = ("#soak0", "#soak1", "#soak2", "#soak3")
SETTLE_S = 3.0


@dataclass
class SoakReport:
    baseline_bytes: int = 0
    peak_bytes: int = 0
    peak_connections: int = 0
    settled_after_cycle: list[int] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    connections_made: int = 0

    def lines(self) -> list[str]:
        mib = 1 / (1 << 20)
        per_connection = (self.peak_bytes - self.baseline_bytes) / max(1, self.peak_connections)
        out = [
            f"connections opened in all: {self.connections_made}",
            f"baseline RSS: {self.baseline_bytes * mib:.1f} MiB",
            f"peak RSS: {self.peak_bytes * mib:.1f} MiB with {self.peak_connections} connections "
            f"({per_connection / 1024:.1f} KiB per connection)",
        ]
        for index, settled in enumerate(self.settled_after_cycle, 1):
            out.append(f"after cycle {index}, everyone gone: {settled * mib:.1f} MiB")
        if len(self.settled_after_cycle) >= 2:
            growth = self.settled_after_cycle[-1] - self.settled_after_cycle[0]
            out.append(f"growth from first to last teardown: {growth / 1024:.0f} KiB")
        return out


class Swarm:
    """Many client sockets in one selector; whatever the server sends is read and dropped."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.selector = selectors.DefaultSelector()
        self.sockets: list[socket.socket] = []
        self.serial = 0

    def open(self, count: int) -> None:
        for _ in range(count):
            self.serial += 1
            sock = socket.create_connection(self.address, timeout=5)
            sock.setblocking(False)
            channels = ",".join(random.sample(CHANNELS, 2))
            sock.send(f"NICK s{self.serial}\r\nUSER s 0 * :soak\r\nJOIN {channels}\r\n".encode())
            self.selector.register(sock, selectors.EVENT_READ)
            self.sockets.append(sock)

    def close(self, count: int) -> None:
        for _ in range(min(count, len(self.sockets))):
            sock = self.sockets.pop(random.randrange(len(self.sockets)))
            self.selector.unregister(sock)
            sock.close()

    def chat(self, messages: int) -> None:
        for sock in random.sample(self.sockets, min(messages, len(self.sockets))):
            with contextlib.suppress(OSError):
                sock.send(f"PRIVMSG {random.choice(CHANNELS)} :soak message {self.serial}\r\n".encode())

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(remaining):
                try:
                    if not key.fileobj.recv(65536):  # type: ignore[union-attr]
                        self.selector.unregister(key.fileobj)
                except BlockingIOError:
                    pass
                except OSError:
                    self.selector.unregister(key.fileobj)


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_soak(seconds: float, connections: int, backend: str, cycles: int = 3) -> SoakReport:
    raise_nofile(connections * 2 + 256)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatd",
            "--port",
            str(port),
            "--backend",
            backend,
            "--flood-rate",
            "0",
            "--no-persist",
            "--max-per-ip",
            "0",
            "--max-clients",
            str(connections * 2),
            "--log-level",
            "warning",
        ],
        env=checkout_environment(),
    )
    report = SoakReport()
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("chatd did not start")
            time.sleep(0.05)
        report.baseline_bytes = rss_bytes(server.pid)
        start = time.monotonic()
        per_cycle = seconds / cycles
        for _ in range(cycles):
            swarm = Swarm(("127.0.0.1", port))
            for _ in range(10):  # ramp up in tenths, reading as we go
                swarm.open(connections // 10)
                swarm.drain(0.05)
            cycle_end = time.monotonic() + max(1.0, per_cycle - SETTLE_S)
            while time.monotonic() < cycle_end:
                churn = max(1, connections // 10)
                swarm.close(churn)
                swarm.open(churn)
                swarm.chat(50)
                swarm.drain(1.0)
                rss = rss_bytes(server.pid)
                report.samples.append((time.monotonic() - start, len(swarm.sockets), rss))
                if rss > report.peak_bytes:
                    report.peak_bytes, report.peak_connections = rss, len(swarm.sockets)
            report.connections_made += swarm.serial
            swarm.close(len(swarm.sockets))
            settle_until = time.monotonic() + SETTLE_S
            while time.monotonic() < settle_until:
                time.sleep(0.2)
                rss = rss_bytes(server.pid)
            report.samples.append((time.monotonic() - start, 0, rss))
            report.peak_bytes = max(report.peak_bytes, rss)
            report.settled_after_cycle.append(rss_bytes(server.pid))
    finally:
        server.terminate()
        server.wait(10)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total soak time (default: 60)")
    parser.add_argument("--connections", type=int, default=2000, help="connections held at once (default: 2000)")
    parser.add_argument("--backend", default="selectors", choices=("selectors", "threads"))
    parser.add_argument("--cycles", type=int, default=3, help="connect/teardown cycles (default: 3)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.connections < 10 or args.cycles < 1:
        parser.error("--seconds must be > 0, --connections at least 10, --cycles at least 1")
    report = run_soak(args.seconds, args.connections, args.backend, args.cycles)
    for line in report.lines():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
