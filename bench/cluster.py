"""The cluster scenario's servers: one ``redis-server`` and N chatd nodes, all started here.

Each node is its own ``chatd --cluster redis://127.0.0.1:P/0 --node-id bench-<i>`` process
on its own free port, so the generator can place every client on a chosen node and the
bench can tell a delivery that stayed on one node from one that crossed Redis. Redis runs
with persistence off (``--save '' --appendonly no``): the bench measures the pub/sub hop,
not the disk. Its CPU time is reported apart from the nodes'.

Every case gets a fresh Redis and fresh nodes, as every other case gets a fresh server.

Redis's own counters (``INFO commandstats``, ``INFO stats``) are read over a plain socket
at the start and end of a measured window, so the bench needs no Redis client library and
measures whatever network code the installed chatd has: an *event* is one stream entry
(``XADD``: one channel message or event for one node, batched or not) where the nodes use
streams, else one call of a publishing command (``PUSH_COMMANDS``: the PUBLISH design makes
one per event). Redis counts the commands a Lua script calls as calls of those commands.
The pushes (one per batch with streams) are counted apart.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.contenders import HOST, START_TIMEOUT_S, Contender, RunningServer, ScratchProcess
from bench.procstat import free_port

CLUSTER_BACKENDS = ("selectors", "threads")
"""The chatd backends that have a Redis link (the issue asks for these two)."""
PUSH_COMMANDS = ("publish", "spublish")
"""The commands that push to Redis's subscribers."""
ROUND_TRIPS = 2000
"""Round trips that measure one's CPU (``RedisServer.round_trip_cpu_us``): about 60 ms here."""


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if Path(p).exists()), None
    )


def cluster_missing(contender: Contender) -> str | None:
    """Why the cluster scenario cannot run with this contender, or None when it can. ngircd runs
    it as a network of its own, joined by server links (``bench.linked``), not over Redis."""
    if contender.kind == "ngircd":
        return None
    if not contender.is_chatd or contender.history:
        return "the cluster scenario runs chatd without history only"
    if contender.backend not in CLUSTER_BACKENDS:
        return f"chatd's {contender.backend} backend has no --cluster"
    if redis_server_path() is None:
        return "redis-server not installed (apt-get install redis-server)"
    try:
        from chatd.cli import build_parser
    except ImportError:
        return "chatd not importable"
    options = {flag for action in build_parser()._actions for flag in action.option_strings}
    if "--cluster" not in options or "--node-id" not in options:
        return "this chatd has no --cluster/--node-id options yet"
    return None


class RedisServer(ScratchProcess):
    """A throwaway ``redis-server`` on a free loopback port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port(HOST)
        self.tmp = tempfile.TemporaryDirectory(prefix="chatd-bench-redis-")
        self.log_path = Path(self.tmp.name) / "redis.log"
        self.log = self.log_path.open("wb")
        command = [
            redis_server_path() or "redis-server", "--port", str(self.port), "--bind", HOST,
            "--save", "", "--appendonly", "no", "--dir", self.tmp.name, "--protected-mode", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def wait_ready(self) -> None:
        """Return once Redis answers PING; raise RuntimeError if it exited or never answered."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S:.0f}s")

    def warnings(self) -> list[str]:
        """Redis's log lines about clients it closed (a subscriber past its output buffer limit
        loses every event published until it is back): why a cluster row lost messages."""
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return [re.split(r" [*#.-] ", line, maxsplit=1)[-1] for line in lines if "closed" in line.lower()][:3]
        return []

    def round_trip_cpu_us(self, count: int = ROUND_TRIPS) -> float:
        """CPU µs this thread spends per Redis round trip, one in flight: an ``XADD`` of a
        message-sized entry sent, the socket waited on with ``selectors`` as chatd's loop does,
        the reply read. It is what a publish's round trip costs a Python process on this machine
        at the least, beside ``--cluster``'s cost per message (a node publishes each turn's
        messages in one script call: the row's ``redis_calls`` say how many). Measured before the
        load, with the nodes idle; the scratch stream is deleted afterwards."""
        entry = b"x" * 200
        command = b"*5\r\n$4\r\nXADD\r\n$11\r\nbench:floor\r\n$1\r\n*\r\n$1\r\nm\r\n"
        command += b"$%d\r\n%s\r\n" % (len(entry), entry)
        with socket.create_connection((HOST, self.port), timeout=START_TIMEOUT_S) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            with selectors.DefaultSelector() as selector:
                selector.register(sock, selectors.EVENT_READ)
                started = time.thread_time()
                for _ in range(count):
                    sock.send(command)
                    reply = b""
                    while reply.count(b"\r\n") < 2:  # a bulk string: its length, then the entry's id
                        if not selector.select(START_TIMEOUT_S):
                            raise RuntimeError("redis did not answer an XADD in time")
                        data = sock.recv(65536)
                        if not data:
                            raise RuntimeError("redis closed the connection during XADD")
                        reply += data
                spent = time.thread_time() - started
            sock.setblocking(True)
            sock.sendall(b"DEL bench:floor\r\n")
            sock.recv(64)
        return spent / count * 1e6

    def counts(self) -> dict[str, int]:
        """Calls so far of every command Redis has run (``publish``, ``evalsha``, …) and, as
        ``total``, every command it processed. One short connection: its own INFO is counted
        in ``total`` (one per read), never in an event command."""
        text = self._info("commandstats") + self._info("stats")
        counts: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line.removeprefix("cmdstat_").partition(":")
                calls = next((f for f in fields.split(",") if f.startswith("calls=")), "calls=0")
                counts[name.lower()] = int(calls.removeprefix("calls="))
            elif line.startswith("total_commands_processed:"):
                counts["total"] = int(line.partition(":")[2])
        return counts

    def _info(self, section: str) -> str:
        """One ``INFO section`` reply (a RESP bulk string), read to its end within the start timeout."""
        with socket.create_connection((HOST, self.port), timeout=START_TIMEOUT_S) as sock:
            sock.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                data += _recv(sock)
            header, _, body = data.partition(b"\r\n")
            if not header.startswith(b"$"):
                raise RuntimeError(f"redis INFO {section}: {header.decode(errors='replace')}")
            length = int(header[1:])
            while len(body) < length:
                body += _recv(sock)
            return body[:length].decode(errors="replace")


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise RuntimeError("redis closed the connection during INFO")
    return data


class ServerNodes:
    """Several server processes that look to the scenarios like one RunningServer: ``pids``
    are the nodes (the server's CPU and memory), and ``addresses`` lists them in order (node
    ``i`` of a setup group)."""

    nodes: list[RunningServer]

    @property
    def address(self) -> tuple[str, int]:
        return self.nodes[0].address

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def wait_ready(self) -> None:
        """Every node accepts connections, and every node's users are visible from node 0
        (``wait_visible``): load sent before would stay on its node and look like losses."""
        for node in self.nodes:
            node.wait_ready()
        wait_visible(self.addresses)


class ClusterServers(ServerNodes):
    """Redis and ``nodes`` chatd nodes, looking to the scenarios like one RunningServer.

    ``pids`` are the nodes (the server's CPU and memory); ``side_pids`` is Redis, reported
    beside them. ``addresses`` lists the nodes in order: node ``i`` of a setup group.
    """

    def __init__(self, contender: Contender, sendq_bytes: int, nodes: int) -> None:
        self.contender = contender
        self.redis = RedisServer()
        self.nodes: list[RunningServer] = []
        try:
            self.redis.wait_ready()
            for index in range(nodes):
                extra = ["--cluster", self.redis.url, "--node-id", f"bench-{index}"]
                self.nodes.append(RunningServer(contender, sendq_bytes, extra))
        except BaseException:
            self.stop()
            raise

    @property
    def side_pids(self) -> list[int]:
        return [self.redis.pid]

    def redis_counts(self) -> dict[str, int]:
        """Redis's command counters now (see ``RedisServer.counts``)."""
        return self.redis.counts()

    def alive(self) -> bool:
        return self.redis.process.poll() is None and all(node.alive() for node in self.nodes)

    def log_tail(self) -> str:
        parts = [f"node {i}: {node.log_tail()}" for i, node in enumerate(self.nodes) if not node.alive()]
        if self.redis.process.poll() is not None:
            parts.append(f"redis: {self.redis.log_tail()}")
        return "; ".join(parts)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()


def wait_visible(addresses: list[tuple[str, int]]) -> None:
    """Return once a user on each of these nodes is visible from the first: a probe user
    registers on each, and a probe on the first asks WHOIS for each of them until the network
    answers (311) for all. Raise RuntimeError past the start timeout."""
    if len(addresses) < 2:
        return
    deadline = time.monotonic() + START_TIMEOUT_S
    probes = [_Probe(address, f"probe{index}", deadline) for index, address in enumerate(addresses)]
    try:
        for index in range(1, len(probes)):
            while not probes[0].sees(f"probe{index}"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {index}'s users not visible from node 0 within {START_TIMEOUT_S:.0f}s")
                time.sleep(0.05)
    finally:
        for probe in probes:
            probe.close()


class _Probe:
    """A minimal blocking IRC client for the readiness check; every read has the deadline."""

    def __init__(self, address: tuple[str, int], nick: str, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection(address, timeout=max(0.1, deadline - time.monotonic()))
        self.buffer = b""
        self.sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :bench probe\r\n".encode())
        self._until({b"001"})

    def _until(self, replies: set[bytes]) -> bytes:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                parts = line.split()
                if parts[:1] == [b"PING"]:
                    self.sock.sendall(b"PONG " + b" ".join(parts[1:]) + b"\r\n")
                elif len(parts) > 1 and parts[1] in replies:
                    return parts[1]
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("bench probe: no answer from a node in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("bench probe: a node closed the connection")
            self.buffer += data

    def sees(self, nick: str) -> bool:
        """Whether WHOIS finds ``nick`` (on whichever node it is)."""
        self.sock.sendall(f"WHOIS {nick}\r\n".encode())
        found = self._until({b"311", b"401"}) == b"311"
        self._until({b"318"})  # chatd ends a WHOIS with 318 either way
        return found

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
        self.sock.close()
