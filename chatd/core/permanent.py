"""Which channels outlive their members: the one place that decides.

Invariants:
- A channel is *permanent* exactly while some owner declares it here. The config file is
  one owner (``"config"``, which also declares the plain-mode channel); ChanServ is the
  other (``"chanserv"``: a channel registered by an account, declared at startup from the
  account store and on REGISTER, withdrawn on DROP), and nothing else in the core changes.
- A channel is registered (``Channel.registration``, ``+r``) exactly while ChanServ
  declares it; both are set together at startup here and by ChanServ afterwards.
- Only a permanent channel keeps state beyond its current life: it exists from startup,
  keeps its topic, modes, key, limit, bans and history while empty and across restarts. Every other channel
  is forgotten (in memory and on disk) when its last member leaves, and its history is
  read back only as far as the moment its current life began.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.core.channel import Channel, ChannelState
from chatd.core.config import PermanentChannel
from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.hub import Hub

CONFIG_OWNER = "config"
CHANSERV_OWNER = "chanserv"


@dataclass(frozen=True, slots=True)
class Declaration:
    """One owner's claim that a channel is permanent, with the state it is founded with."""

    owner: str
    channel: PermanentChannel


class PermanentChannels:
    """The declared permanent channels, by case-mapped name; several owners may declare one."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[str, list[Declaration]] = {}

    def declare(self, channel: PermanentChannel, owner: str = CONFIG_OWNER) -> None:
        """Make ``channel`` permanent on behalf of ``owner``; declaring it again replaces that owner's claim."""
        claims = self._by_key.setdefault(irc_lower(channel.name), [])
        claims[:] = [claim for claim in claims if claim.owner != owner]
        claims.append(Declaration(owner, channel))

    def withdraw(self, name: str, owner: str) -> bool:
        """Drop ``owner``'s claim; True when the channel is no longer permanent at all."""
        key = irc_lower(name)
        claims = [claim for claim in self._by_key.get(key, []) if claim.owner != owner]
        if claims:
            self._by_key[key] = claims
            return False
        self._by_key.pop(key, None)
        return True

    def __contains__(self, key: object) -> bool:
        """Whether the channel with this case-mapped name is permanent."""
        return key in self._by_key

    def founding(self, key: str) -> PermanentChannel | None:
        """The state a permanent channel is founded with (the first claim's), or None."""
        claims = self._by_key.get(key)
        return claims[0].channel if claims else None

    def __iter__(self) -> Iterator[str]:
        """The case-mapped names, as a snapshot (a channel may be withdrawn while they are walked)."""
        return iter(list(self._by_key))


def history_floor(hub: Hub, channel: Channel) -> float:
    """How far back a channel's history may be read: its whole past when it is permanent,
    else only its current life, from its creation (329) on."""
    return -math.inf if channel.name_key in hub.permanent else channel.created


def new_channel(hub: Hub, name: str, key: str) -> Channel:
    """A channel coming into being: fresh, or, if it is permanent, as it was saved before the
    server restarted (or as its declaration founds it)."""
    founding = hub.permanent.founding(key)
    if founding is None:
        return Channel(name, key, hub.wall_clock())
    saved = hub.history.saved_channel(key) if hub.history is not None else None
    if saved is None:
        now = hub.wall_clock()
        topic_by, topic_at = (hub.config.name, now) if founding.topic else ("", 0.0)
        saved = ChannelState(founding.name, now, founding.topic, topic_by, topic_at, founding.modes)
    channel = Channel(saved.name, key, saved.created)
    channel.restore(saved)
    return channel


def found_permanent_channels(hub: Hub) -> None:
    """Permanent channels exist from startup; every other channel's saved state is dropped
    (a restart ends every other channel's life, and earlier versions kept them all).

    The channels registered with ChanServ are read from the account store here, at once:
    this runs while the hub is made, before any loop, so nothing waits on the disk.
    """
    hub.permanent.declare(PermanentChannel(hub.config.plain_channel))
    for declared in hub.config.permanent_channels:
        hub.permanent.declare(declared)
    store = hub.accounts.store
    registered = {}
    for registration in store.channel_registrations() if store is not None else ():
        key = irc_lower(registration.name)
        registered[key] = registration
        hub.permanent.declare(PermanentChannel(registration.name), CHANSERV_OWNER)
    for key in hub.permanent:
        founding = hub.permanent.founding(key)
        assert founding is not None
        channel = hub.channels[key] = new_channel(hub, founding.name, key)
        channel.set_registration(registered.get(key))
    if hub.history is not None:
        hub.history.keep_only_channels(hub.permanent)


def keep_channel(hub: Hub, declared: PermanentChannel, owner: str) -> Channel:
    """Make a channel permanent on behalf of ``owner`` (the config, an account that registers
    it), creating it if it does not exist; its state is saved from now on."""
    hub.permanent.declare(declared, owner)
    key = irc_lower(declared.name)
    channel = hub.channels.get(key)
    if channel is None:
        channel = hub.channels[key] = new_channel(hub, declared.name, key)
    hub.save_channel(channel)
    return channel


def release_channel(hub: Hub, name: str, owner: str) -> None:
    """``owner`` keeps the channel no longer; once nobody does, it lives only while it has members."""
    key = irc_lower(name)
    channel = hub.channels.get(key)
    if hub.permanent.withdraw(name, owner) and channel is not None and not channel.members:
        del hub.channels[key]
        if hub.history is not None:
            hub.history.end_life(key, saved=True)
