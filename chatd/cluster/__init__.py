"""Several chatd nodes as one chat network over Redis (``chatd --cluster redis://...``).

- ``resp``: the Redis wire protocol, sans I/O.
- ``link``: the Redis connections, in a bridge thread, with reconnect and backoff.
- ``node``: the hub-side logic: replicas of other nodes' users, events in and out.
- ``config``: settings and the Redis URL.

A backend calls ``Cluster(hub, settings, post).start()`` once it serves, and
``stop()`` (not while holding the hub lock) when it stops.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.cluster.config import ClusterSettings, default_node_id, parse_redis_url
from chatd.cluster.link import RedisLink
from chatd.cluster.node import ClusterNode
from chatd.core.hub import Hub

__all__ = ["Cluster", "ClusterSettings", "default_node_id", "parse_redis_url"]


class Cluster:
    """A hub joined to the network: its ``ClusterNode`` and the ``RedisLink`` that carries it."""

    def __init__(self, hub: Hub, settings: ClusterSettings, post: Callable[[Callable[[], None]], None]) -> None:
        self.node = ClusterNode(hub, settings)
        self.link = RedisLink(
            settings, [self.node.events_channel, self.node.own_channel], self.node, post, self.node.own_suffix
        )
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
