"""Several chatd nodes as one chat network over Redis (``chatd --cluster redis://...``).

- ``link``: the Redis connections (redis-py with hiredis; one Redis or a Redis Cluster),
  in a bridge thread, with reconnect and backoff (the threads backend); its whole interface
  to the node is ``link.Commands`` and ``link.LinkHandler``; ``subscriber``: one of its shard
  pub/sub connections.
- ``loop_link``: the same interface with the I/O on the selectors loop itself (hiredis packs
  and parses; no thread on the data path); ``opener``: its blocking connect, on a thread.
- ``streams``: lossless delivery of channel messages and per-node events through Redis
  Streams, read from the last id after a drop; the outbox while Redis is away.
- ``node``: the hub's side of the network (``ClusterNode``, the core's ``Network``):
  publishes what local users do, dispatches what other nodes publish, (re)syncs.
- ``claims``: nick ownership in Redis and its Lua scripts.
- ``replica``: the users of the other nodes, as ``Client`` objects in the hub.
- ``handlers``: what each event from another node does here (through the core's owners
  of channel and user state, ``chatd.core.channel`` and ``chatd.core.users``).
- ``liveness``: the heartbeat, silent and expired nodes (with the sweep script).
- ``wire``: the JSON form of events, users and channel state on the bus.
- ``config``: settings and the Redis URL.

A backend calls ``Cluster(hub, settings, post).start()`` once it serves, and
``stop()`` (not while holding the hub lock) when it stops.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.cluster.config import ClusterSettings, default_node_id, parse_redis_url
from chatd.cluster.link import RedisLink
from chatd.cluster.loop_link import LoopLink, Reactor
from chatd.cluster.node import ClusterNode
from chatd.core.hub import Hub

__all__ = ["Cluster", "ClusterSettings", "default_node_id", "parse_redis_url"]


class Cluster:
    """A hub joined to the network: its ``ClusterNode`` and the ``RedisLink`` that carries it."""

    def __init__(
        self, hub: Hub, settings: ClusterSettings, post: Callable[[Callable[[], None]], None], *,
        defer: Callable[[Callable[[], None]], None] | None = None, reactor: Reactor | None = None,
    ) -> None:  # fmt: skip
        """``defer(f)``, called on the hub's thread (or under its lock), runs ``f`` there once the
        current turn is over, so what a turn publishes goes out as one batch per stream.
        With a ``reactor`` (the selectors loop) the link's I/O runs on the loop itself; without,
        on a bridge thread that ``post``s to the hub."""
        self.node = ClusterNode(hub, settings, defer=defer)
        self.link: RedisLink | LoopLink
        if reactor is not None:
            self.link = LoopLink(settings, self.node.subscriptions, self.node, reactor)
        else:
            self.link = RedisLink(settings, self.node.subscriptions, self.node, post)
        self.node.link = self.link
        hub.cluster = self.node

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        """Say goodbye (others QUIT our users at once, our nicks are freed) and close the link.

        The goodbye commands are queued from the caller's thread: they read no hub state.
        """
        self.node.farewell()
        self.link.stop()
