"""Channel history and channel state that survive restarts.

``History`` is what the hub sees: it records relayed channel events, keeps the
recent ones of each channel in memory for replay on join, and remembers topics
and modes. Durable storage sits behind it: ``SqliteStore`` (one file, WAL mode,
written by a thread of its own in one transaction per batch) or nothing at all
(``--no-persist``). The hub never waits on the disk per message.
"""

from chatd.history.history import History, HistoryEntry
from chatd.history.store import HistoryStoreError, SqliteStore

__all__ = ["History", "HistoryEntry", "HistoryStoreError", "SqliteStore"]
