"""Cutting one node off Redis while the other keeps its link: the cut node's users leave the
network after the timeout, and it rejoins (resynchronised) when it can reach Redis again.

Two ways to cut: a TCP proxy in front of one Redis (what a network partition does), and the
node's own Redis ACL user switched off, which works on a Redis Cluster too (a proxy in front of
one of its nodes is bypassed: clients go where CLUSTER SLOTS says).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Protocol

import pytest

from tests.helpers import RedisServer, wait_until
from tests.redis_cluster import RedisClusterServers
from tests.test_cluster import NODE_TIMEOUT_S, across, cluster_node, expect_from


class CuttableProxy:
    """A TCP relay to Redis for one node; ``cut`` drops its connections and refuses new ones
    until ``restore``: that node alone loses Redis, the others keep it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_node_cut_off_alone_is_dropped_then_rejoins(backend: str, redis: RedisServer) -> None:
    if isinstance(redis, RedisClusterServers):
        pytest.skip("a proxy in front of one node of a Redis Cluster is bypassed: clients go where CLUSTER SLOTS says")
    proxy = CuttableProxy(redis.port)
    behind_proxy = RedisServer.__new__(RedisServer)  # only its port is used: node a reaches Redis through the proxy
    behind_proxy.port = proxy.port
    try:
        dropped_then_rejoins(backend, redis, behind_proxy, proxy)
    finally:
        proxy.close()


class SwitchableUser:
    """A Redis ACL user of node a's own, which the test switches off and on (on every master of a
    Redis Cluster): a cut of one node that works where a proxy would be bypassed."""

    def __init__(self, redis: RedisServer | RedisClusterServers, name: str = "node-a") -> None:
        self.redis, self.port = redis, redis.port
        self.username, self.password = name, f"pw-{name}"
        redis.command_on_each("ACL", "SETUSER", name, "on", f">{self.password}", "~*", "&*", "+@all")

    def cut(self) -> None:
        self.redis.command_on_each("ACL", "SETUSER", self.username, "off")
        self.redis.command_on_each("CLIENT", "KILL", "USER", self.username)

    def restore(self) -> None:
        self.redis.command_on_each("ACL", "SETUSER", self.username, "on")


def test_a_node_whose_redis_user_is_switched_off_is_dropped_then_rejoins(
    backend: str, redis: RedisServer | RedisClusterServers
) -> None:
    user = SwitchableUser(redis)
    dropped_then_rejoins(backend, redis, user, user)  # type: ignore[arg-type]


class Cut(Protocol):
    def cut(self) -> None: ...

    def restore(self) -> None: ...


def dropped_then_rejoins(
    backend: str, redis: RedisServer | RedisClusterServers, a_reaches: RedisServer, cut: Cut
) -> None:
    """Node a (through ``a_reaches``) and node b share a channel; ``cut`` cuts a off: its users
    leave the network and its nicks are swept; a goes on alone; restored, it rejoins."""
    with (
        cluster_node(backend, a_reaches, "a", NODE_TIMEOUT_S) as a,
        cluster_node(backend, redis, "b", NODE_TIMEOUT_S) as b,  # type: ignore[arg-type]
    ):
        alice, bob = across(a, b)
        cut.cut()
        quit_message = expect_from(bob, "QUIT", "alice", timeout=3 * NODE_TIMEOUT_S + 2)
        assert quit_message.params == ("a left the network",)
        wait_until(lambda: redis.command("EXISTS", "{chatd}:nick:alice") == 0, "a's nicks to be swept")
        alice.send("PRIVMSG #x :anyone?")  # node a goes on alone meanwhile
        alice.sync()
        cut.restore()
        assert expect_from(bob, "JOIN", "alice").params == ("#x",)  # a resynchronised
        wait_until(lambda: redis.command("GET", "{chatd}:nick:alice") == b"a", "alice's nick re-claimed")
        bob.send("PRIVMSG #x :welcome back")
        assert alice.expect("PRIVMSG").params == ("#x", "welcome back")
