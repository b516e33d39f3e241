"""A throwaway Redis Cluster for tests: three masters on loopback ports, no replicas, no persistence.

It offers what ``tests.helpers.RedisServer`` offers (``url``, ``port``, ``start``, ``kill``,
``answers``, ``command``), so a test written for one Redis runs against a cluster too.
``kill`` stops all three masters; ``start`` again brings them back with the slots they
had (their ``nodes-<port>.conf`` stays in the temporary directory), empty as a
restarted Redis without persistence is.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import redis
import redis.cluster

from tests.helpers import DEADLINE_S, REDIS_SERVER, free_port, wait_until

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
MASTERS = 3
NODE_TIMEOUT_MS = 5000
RESPAWNS = 10
CREATE_TIMEOUT_S = 60.0
"""``redis-cli --cluster create`` polls once a second until the nodes agree; on a loaded machine
that has taken more than ten seconds."""


class RedisClusterServers:
    """Three redis-server processes joined as one Redis Cluster; ``port`` and ``url`` name the first."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chatd-redis-cluster-"))
        # Each node has a client port and a cluster bus port; both are picked free (the bus port
        # is given explicitly: the default, port + 10000, may be past 65535 or taken).
        self.ports = [free_port() for _ in range(MASTERS)]
        self.bus_ports = [free_port() for _ in range(MASTERS)]
        self.port = self.ports[0]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.respawns = 0
        self.created = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self, port: int, bus_port: int) -> subprocess.Popen[bytes]:
        command = [
            REDIS_SERVER, "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.dir / f"nodes-{port}.conf"),
            "--cluster-port", str(bus_port), "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self.processes = [self._spawn(port, bus) for port, bus in zip(self.ports, self.bus_ports, strict=True)]
        self.respawns = 0
        wait_until(self._all_answer, "the cluster's redis-servers to answer PING")
        if not self.created:
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=CREATE_TIMEOUT_S,
            )
            self.created = True
        wait_until(self._cluster_ok, "CLUSTER INFO to say cluster_state:ok on every master", timeout=3 * DEADLINE_S)

    def _all_answer(self) -> bool:
        """Whether all three answer PING. A port free when it was picked can be taken before the
        server binds it (by another test process, or on a restart by a node's reconnect from an
        ephemeral port): a server that exited is started again, a few times, on fresh ports if
        the cluster is not made yet."""
        for index, process in enumerate(self.processes):
            if process.poll() is None:
                continue
            if self.respawns >= RESPAWNS:
                raise AssertionError(f"a redis-server of the cluster exited with {process.returncode}")
            self.respawns += 1
            if not self.created:
                self.ports[index], self.bus_ports[index] = free_port(), free_port()
                self.port = self.ports[0]
            self.processes[index] = self._spawn(self.ports[index], self.bus_ports[index])
        return all(self._ask(port, b"*1\r\n$4\r\nPING\r\n").startswith(b"+PONG") for port in self.ports)

    def _cluster_ok(self) -> bool:
        info = b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n"
        return all(b"cluster_state:ok" in self._ask(port, info) for port in self.ports)

    def _ask(self, port: int, request: bytes) -> bytes:
        """A raw request on a fresh connection (PING and CLUSTER INFO fit one read); b"" if refused."""
        for process in self.processes:
            if process.poll() is not None and self.created and self.respawns >= RESPAWNS:
                raise AssertionError(f"a redis-server of the cluster exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(request)
                return sock.recv(65536)
        except OSError:
            return b""

    def answers(self) -> bool:
        return self._all_answer()

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(DEADLINE_S)
        self.processes = []

    def close(self) -> None:
        """Kill the servers and remove their directory (the fixture's last step)."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pid_of(self, port: int) -> int:
        return self.processes[self.ports.index(port)].pid

    def command_on_each(self, *args: str) -> list[object]:
        """One command on every master (CLIENT KILL, CLIENT LIST: what each server says of itself)."""
        replies = []
        for port in self.ports:
            with redis.Redis(port=port, socket_timeout=DEADLINE_S, protocol=2) as client:
                client.response_callbacks.clear()
                replies.append(client.execute_command(*args))
        return replies

    def command(self, *args: str) -> object:
        """One command, routed by its key's slot, on fresh connections; the reply as Redis sent it."""
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=self.port, protocol=2, socket_timeout=DEADLINE_S)
        try:
            for node in client.get_nodes():
                client.get_redis_connection(node).response_callbacks.clear()
            return client.execute_command(*args)
        finally:
            client.close()
