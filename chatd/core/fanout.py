"""The seam between a channel's fan-out and a backend that can deliver to many at once.

A channel message goes to most members as the very same bytes (the plain IRC
form, ``codec`` 0). A backend that can append one buffer to many connections
faster than one ``Transport.write`` each registers a ``GroupFactory`` as
``Hub.fanout_groups``; the core then asks it once per channel state for a group
of those members' transports and hands the group ready bytes per message. The
backend sees transports and bytes only — never a client, a codec or an event.

Invariants:
- An ``Audience`` is cached on its channel (``Channel.fanout_cache``) and dropped by
  the core on any change to the channel's members or to a member's codec or
  transport (``Hub.codec_changed``), so it never names a departed member.
- Every local member is either in ``group`` (its transport taken by the backend) or
  in ``others``; users of other nodes are in neither (their own node delivers).
- A group may let a connection's queue pass its send queue bound by one loop turn's
  deliveries; the backend checks the bound when it flushes and reports the overflow
  to the hub then (``Hub.overflowed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatd.core.channel import Channel
    from chatd.core.client import Client, Transport
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub


class FanoutGroup(Protocol):
    """Connections of one backend that take the same bytes for each message of a channel."""

    @property
    def transports(self) -> Sequence[Transport]:
        """The transports the backend took, of those it was offered (its own connections)."""
        ...

    def send(self, data: bytes, skip: Transport | None) -> None:
        """Queue ``data`` on every transport of the group but ``skip``; never blocks."""
        ...


GroupFactory = Callable[[Sequence["Transport"]], FanoutGroup]
"""A backend's maker of groups: offered transports, it keeps those it can serve."""


class Audience:
    """A channel's members split by how a message reaches them: the group, or one by one."""

    __slots__ = ("group", "others")

    def __init__(self, members: Iterable[Client], make_group: GroupFactory) -> None:
        members = list(members)
        offered = [member.transport for member in members if member.codec == 0 and member.node is None]
        group = make_group(offered)
        taken = {id(transport) for transport in group.transports}
        self.group: FanoutGroup | None = group if taken else None
        self.others: list[Client] = [
            member
            for member in members
            if member.node is None and not (member.codec == 0 and id(member.transport) in taken)
        ]
        """Local members the group does not serve (tagged or plain forms, a labeled-response
        capture): the core delivers to each through its transport."""

    @staticmethod
    def of(channel: Channel, make_group: GroupFactory) -> Audience:
        """The channel's audience, made and cached on it when it has none (see the invariants)."""
        audience = channel.fanout_cache
        if audience is None:
            audience = channel.fanout_cache = Audience(channel.members, make_group)
        assert isinstance(audience, Audience)
        return audience


def fanout_run(hub: Hub, channel: Channel, events: list[Delivery]) -> None:
    """Deliver messages to a channel in a row, none of them skipping a member (another node's
    batch of a busy channel): the group takes the whole run's bytes as one append per
    connection, where ``Hub.fanout`` would append once per message. Each member still gets
    every message in order: nothing else reaches it between them."""
    make_group = hub.fanout_groups
    if make_group is None or len(events) == 1:
        for event in events:
            hub.fanout(channel.members, event, None, channel)
        return
    hub.stats.deliveries += len(channel.members) * len(events)
    audience = Audience.of(channel, make_group)
    if audience.group is not None:
        data = b"".join([chunk for event in events if (chunk := event.cache[0]) is not None])
        if data:
            audience.group.send(data, None)
    if audience.others:
        for event in events:
            hub.generic_fanout(audience.others, event, None)
