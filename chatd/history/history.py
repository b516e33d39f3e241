"""What the hub asks of history: record channel events, recall recent ones, keep channel state.

The last ``keep`` entries of each channel live in memory (loaded from the store
the first time a channel is touched), so replay on join never reads the disk
in the common case. Every record is also queued for the store, if there is one.

An entry keeps its sender's account (the account tag when it is replayed), the client-only
tags it was sent with (replayed to clients with message-tags), and a JOIN its extended-join
form (``chatd.core.attribution`` renders them per client). Who has a
private conversation by account with whom (``correspondents``) is kept beside, for
CHATHISTORY TARGETS: in memory, and in the store's ``correspondents`` table.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from chatd.core.channel import Ban, ChannelState
from chatd.history.store import SqliteStore

if TYPE_CHECKING:
    from chatd.core.event import Delivery
    from chatd.history.postgres import PostgresStore

MESSAGE = "message"
"""The kind of PRIVMSG and NOTICE entries; events (JOIN, PART, KICK, TOPIC, QUIT) are kind "event",
and the TAGMSGs history keeps (``chatd.core.kept_tagmsg``) kind "tagmsg": both are read only
with ``events``."""


class HistoryEntry(NamedTuple):
    """One recorded entry: its IRC line (with source), the plain rendering, id, time and kind.

    A tuple rather than a frozen dataclass: one is made for every message relayed, and a
    tuple costs a third of the time to build.
    """

    msgid: str
    time: float
    line: str
    plain: str | None
    kind: str = MESSAGE
    account: str | None = None
    """The sender's account when it was a logged-in user."""
    tags: str | None = None
    """The client-only tags it was sent with, as a JSON object (None when there were none)."""


def msgid_time(msgid: str) -> float | None:
    """The time (to the millisecond) a msgid of the form ``<start>-<counter>-<ms>`` names.

    None for ids of the older ``<start>-<counter>`` form, or anything a client made up.
    """
    parts = msgid.split("-")
    if len(parts) != 3:
        return None
    try:
        return int(parts[2], 16) / 1000
    except ValueError:
        return None


def _mode_lists(state: ChannelState) -> str:
    """A channel's list modes as the one JSON text the ``bans`` column keeps: a ban is
    ``[mask, by, at]`` (as before exceptions existed), an exception ``[mask, by, at, "e"]``
    or ``[mask, by, at, "I"]``, so no schema change was needed and older rows read the same."""
    entries: list[list[object]] = [[ban.mask, ban.set_by, ban.set_at] for ban in state.bans]
    for char, kept in (("e", state.excepts), ("I", state.invexes)):
        entries += [[entry.mask, entry.set_by, entry.set_at, char] for entry in kept]
    return json.dumps(entries)


def _read_mode_lists(stored: str) -> dict[str, tuple[Ban, ...]]:
    """Saved list modes back as ``Ban``s by mode (``b``, ``e``, ``I``); an unreadable entry is
    skipped, never a reason not to start."""
    lists: dict[str, list[Ban]] = {"b": [], "e": [], "I": []}
    try:
        entries = json.loads(stored)
    except ValueError:
        entries = []
    for entry in entries if isinstance(entries, list) else ():
        try:
            mask, set_by, set_at, *char = entry
            lists[char[0] if char else "b"].append(Ban(str(mask), str(set_by), float(set_at)))
        except (TypeError, ValueError, KeyError):
            continue
    return {char: tuple(kept) for char, kept in lists.items()}


class History:
    """In-memory recent history per channel, backed by an optional durable store."""

    def __init__(self, store: SqliteStore | PostgresStore | None, keep: int = 100) -> None:
        self.store = store
        self.keep = keep
        self._recent: dict[str, deque[HistoryEntry]] = {}
        self._correspondents: dict[str, set[str]] = {}

    def record(self, channel_key: str, event: Delivery, kind: str = MESSAGE) -> None:
        msgid, when, plain, account = event.msgid, event.when, event.plain_line, event.account
        line = event.extended_line or event.line
        tags = json.dumps(event.client_tags) if event.client_tags else None
        self._entries(channel_key).append(HistoryEntry(msgid, when, line, plain, kind, account, tags))
        if self.store is not None:
            self.store.insert_message((channel_key, msgid, when, line, plain, kind, account, tags))

    def correspond(self, first: str, second: str) -> None:
        """The accounts ``first`` and ``second`` (case-mapped) have a private conversation."""
        for account, other in ((first, second), (second, first)):
            partners = self.correspondents(account)
            if other not in partners:
                partners.add(other)
                if self.store is not None:
                    self.store.insert_correspondent(account, other)

    def correspondents(self, account: str) -> set[str]:
        """The case-mapped accounts ``account`` has a private conversation with (read from the
        store the first time an account is asked about)."""
        partners = self._correspondents.get(account)
        if partners is None:
            partners = self._correspondents[account] = set()
            if self.store is not None:
                partners.update(self.store.correspondents(account))
        return partners

    def recent(
        self, channel_key: str, count: int, *, events: bool = False, since: float = -math.inf
    ) -> list[HistoryEntry]:
        """The last ``count`` entries of a channel from ``since`` on, oldest first; messages only
        unless ``events``. ``since`` is where the channel's current life began (see
        chatd.core.permanent): nothing older is ever returned to a later life."""
        if count <= 0:
            return []
        entries = [
            entry
            for entry in self._entries(channel_key)
            if (events or entry.kind == MESSAGE) and entry.time >= since
        ]
        return entries[-count:]

    def _entries(self, channel_key: str) -> deque[HistoryEntry]:
        entries = self._recent.get(channel_key)
        if entries is None:
            entries = self._recent[channel_key] = deque(maxlen=self.keep)
            if self.store is not None:
                rows = self.store.newest_entries(channel_key, self.keep)
                entries.extend(HistoryEntry(*row) for row in reversed(rows))
        return entries

    def find_time(self, channel_key: str, msgid: str) -> float | None:
        """When the message ``msgid`` of this channel was sent, or None if it is unknown."""
        entry = self.entry(channel_key, msgid)
        return None if entry is None else entry.time

    def entry(self, channel_key: str, msgid: str) -> HistoryEntry | None:
        """The entry ``msgid`` of this channel (or conversation), or None if it is unknown."""
        for entry in self._entries(channel_key):
            if entry.msgid == msgid:
                return entry
        if self.store is None:
            return None
        row = self.store.message_entry(channel_key, msgid, msgid_time(msgid))
        return None if row is None else HistoryEntry(*row)

    def redact(self, channel_key: str, msgid: str) -> None:
        """Forget the message ``msgid`` (REDACT): CHATHISTORY and replays leave it out from now on."""
        entries = self._recent.get(channel_key)
        if entries is not None:
            kept = [entry for entry in entries if entry.msgid != msgid]
            if len(kept) < len(entries):
                entries.clear()
                entries.extend(kept)
        if self.store is not None:
            self.store.delete_message(channel_key, msgid)

    def between(
        self, channel_key: str, after: float, before: float, limit: int, *, newest: bool, events: bool = False
    ) -> list[HistoryEntry]:
        """Up to ``limit`` entries strictly between two times, oldest first in the result.

        ``newest`` picks the ones closest to ``before`` (else those closest to ``after``);
        messages only unless ``events``.
        """
        if limit <= 0:
            return []
        if self.store is None:
            window = [
                entry
                for entry in self._entries(channel_key)
                if after < entry.time < before and (events or entry.kind == MESSAGE)
            ]
            return window[-limit:] if newest else window[:limit]
        rows = self.store.entries_between(channel_key, after, before, limit, newest=newest, events=events)
        entries = [HistoryEntry(*row) for row in rows]
        if newest:
            entries.reverse()
        # What the writer thread has not committed yet is only in memory: read your own writes.
        stored = {entry.msgid for entry in entries}
        pending = [
            entry
            for entry in self._recent.get(channel_key, ())
            if after < entry.time < before and (events or entry.kind == MESSAGE) and entry.msgid not in stored
        ]
        if not pending:
            return entries
        merged = sorted([*entries, *pending], key=lambda entry: entry.time)
        return merged[-limit:] if newest else merged[:limit]

    def latest_time(self, channel_key: str, after: float, before: float) -> float | None:
        """The time of the newest entry between two times, for CHATHISTORY TARGETS."""
        found = self.between(channel_key, after, before, 1, newest=True)
        return found[0].time if found else None

    def save_channel(self, channel_key: str, state: ChannelState) -> None:
        """Keep a permanent channel's state, bans and exceptions included."""
        if self.store is None:
            return
        self.store.save_channel(
            (
                channel_key,
                state.name,
                state.created,
                state.topic,
                state.topic_by,
                state.topic_at,
                state.modes,
                state.mode_key,
                state.limit,
                _mode_lists(state),
            ),
        )

    def end_life(self, channel_key: str, *, saved: bool = False) -> None:
        """A channel's life ended: drop the recent entries held in memory and, when it had
        any (it was permanent), its saved state.

        Its messages stay on disk under retention; ``since`` keeps them from a later life.
        """
        self._recent.pop(channel_key, None)
        if saved and self.store is not None:
            self.store.delete_channel(channel_key)

    def keep_only_channels(self, channel_keys: Iterable[str]) -> None:
        """Drop the saved state of every channel but these (the permanent ones), at startup:
        a restart ends every other channel's life, and databases of earlier versions kept
        the state, key included, of every channel that ever existed."""
        if self.store is None:
            return
        self.store.delete_channels_except(tuple(channel_keys))

    def saved_channel(self, channel_key: str) -> ChannelState | None:
        if self.store is None:
            return None
        row = self.store.saved_channel(channel_key)
        if row is None:
            return None
        *fields, stored = row
        lists = _read_mode_lists(stored)
        return ChannelState(*fields, bans=lists["b"], excepts=lists["e"], invexes=lists["I"])

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
