"""Which channels outlive their members: the one place that decides.

Invariants:
- A channel is *permanent* exactly while some owner declares it here. The config file is
  one owner (``"config"``, which also declares the plain-mode channel); a later kind of
  owned channel (registered by an account) declares and withdraws its own under another
  owner name, and nothing else in the core changes.
- Only a permanent channel keeps state beyond its current life: it exists from startup,
  keeps its topic, modes and history while empty and across restarts. Every other channel
  is forgotten (in memory and on disk) when its last member leaves, and its history is
  read back only as far as the moment its current life began.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chatd.core.config import PermanentChannel
from chatd.protocol.casemap import irc_lower

CONFIG_OWNER = "config"


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
