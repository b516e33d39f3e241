"""Liveness: this node's heartbeat in Redis, and noticing nodes that died.

Invariants:
- ``{<prefix>}:node:<node>`` is a node's liveness key, refreshed every heartbeat with an
  expiry of ``node_timeout_s``; ``{<prefix>}:nodes`` is every node that has lived (one
  hash tag: one slot of a Redis Cluster, as the nick keys the sweep also removes). A node
  whose key expired is dead: the sweep script removes its keys (any node may run it).
- A node silent on the bus for ``node_timeout_s`` is dropped from the replica even
  before the sweep says so (its users QUIT with ``<node> left the network``).
- A node that finds its own liveness key gone was presumed dead: it resynchronises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chatd.cluster.claims import Command
from chatd.cluster.config import ClusterSettings
from chatd.cluster.link import LINK_DOWN, Reply, ReplyError
from chatd.cluster.replica import Replica

log = logging.getLogger("chatd")

# KEYS[1] the set of nodes (declared, so a Redis Cluster runs the script on the master of the
# prefix's slot); ARGV key prefix, our node id. Removes the keys of every node whose liveness key expired;
# returns their ids. Idempotent: any node may run it any time.
SWEEP_SCRIPT = """
local dead = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 0 then
    for _, k in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':nicks:' .. node)) do
      local nk = ARGV[1] .. ':nick:' .. k
      if redis.call('GET', nk) == node then
        redis.call('DEL', nk)
        redis.call('HDEL', ARGV[1] .. ':nickat', k)
      end
    end
    redis.call('DEL', ARGV[1] .. ':nicks:' .. node)
    redis.call('SREM', KEYS[1], node)
    table.insert(dead, node)
  end
end
return dead
"""


class Liveness:
    """Heartbeats out, silence and expiry in; runs on the hub's thread."""

    def __init__(
        self,
        settings: ClusterSettings,
        instance: str,
        replica: Replica,
        command: Command,
        *,
        clock: Callable[[], float],
        drop: Callable[[str], None],
        resync: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.prefix = settings.key_tag
        self.instance = instance
        self.replica = replica
        self.command = command
        self.clock = clock
        self.drop = drop
        """Forget a node we take for dead."""
        self.resync = resync
        """Start over with the network (we were taken for dead)."""
        self.alive_seen = False
        self.warned_twin = False

    def link_up(self) -> None:
        """The link is (back) up: everyone gets a fresh timeout, as we heard nothing while down."""
        self.alive_seen = False
        now = self.clock()
        for node in self.replica.nodes.values():
            node.last_heard = now
        self.heartbeat()

    def heartbeat(self) -> None:
        ttl_ms = max(1, int(self.settings.node_timeout_s * 1000))
        self.command(
            "SET", f"{self.prefix}:node:{self.node_id}", self.instance, "PX", ttl_ms, "GET", callback=self._alive
        )
        self.command("SADD", f"{self.prefix}:nodes", self.node_id)

    def check(self) -> None:
        """Drop nodes silent too long, and sweep the keys of those whose liveness key expired."""
        now = self.clock()
        for node_id, node in list(self.replica.nodes.items()):
            if now - node.last_heard > self.settings.node_timeout_s:
                log.info("cluster: node %s silent for %.1fs; dropping its users", node_id, now - node.last_heard)
                self.drop(node_id)
        self.command("EVAL", SWEEP_SCRIPT, 1, f"{self.prefix}:nodes", self.prefix, self.node_id, callback=self._swept)

    def forget_self(self) -> None:
        """Remove our liveness key and our name from the living (a clean stop)."""
        self.command("DEL", f"{self.prefix}:node:{self.node_id}")
        self.command("SREM", f"{self.prefix}:nodes", self.node_id)

    def _alive(self, reply: Reply) -> None:
        if reply is LINK_DOWN or isinstance(reply, ReplyError):
            return
        if reply is None and self.alive_seen:
            log.warning("cluster: our liveness key had expired (were we stalled?); resynchronising")
            self.resync()
        elif isinstance(reply, bytes) and reply.decode() != self.instance and not self.warned_twin:
            self.warned_twin = True
            log.warning("cluster: another process also uses node id %s; give each node its own", self.node_id)
        self.alive_seen = True

    def _swept(self, reply: Reply) -> None:
        if isinstance(reply, list):
            for item in reply:
                if isinstance(item, bytes) and item.decode() in self.replica.nodes:
                    self.drop(item.decode())
