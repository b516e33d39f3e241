"""SQLite storage for history and channel state, written off the event loop.

Every SQL statement of history and channel state is in this module (those of accounts
in ``chatd.history.account_store``, which shares the file and its schema version);
``chatd.history.History`` calls its named methods and never writes SQL.

Writes are queued by the loop (never blocking it) and committed by a writer
thread in one transaction per batch: at most ``COMMIT_INTERVAL_S`` of accepted
messages can be lost by a crash. Reads (startup, CHATHISTORY) use their own
connection; WAL mode lets them run beside the writer.

The schema carries a version in ``PRAGMA user_version``; ``MIGRATIONS`` takes
any older database to the current one, and a newer or foreign database is
refused with a clear error rather than touched.

Text holding bytes that were not UTF-8 (lone surrogates, see ``chatd.protocol.framing``),
which SQLite's TEXT cannot take, is stored as a BLOB of exactly those bytes in the same
column and read back as the same string: CHATHISTORY replays what was relayed.
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatd.core.stats import Histogram
from chatd.protocol.framing import WIRE

log = logging.getLogger("chatd")

SCHEMA_VERSION = 6
COMMIT_INTERVAL_S = 0.05
MAX_BATCH = 20_000
PRUNE_INTERVAL_S = 60.0
DATABASE_NAME = "chatd.sqlite3"

MIGRATIONS: dict[int, Sequence[str]] = {
    # version reached → statements that take the previous version there
    1: (
        """CREATE TABLE messages (
               id INTEGER PRIMARY KEY,
               target TEXT NOT NULL,
               msgid TEXT NOT NULL,
               time REAL NOT NULL,
               line TEXT NOT NULL,
               plain TEXT
           )""",
        "CREATE INDEX messages_by_target ON messages (target, time)",
        "CREATE UNIQUE INDEX messages_by_msgid ON messages (msgid)",
        """CREATE TABLE channels (
               key TEXT PRIMARY KEY,
               name TEXT NOT NULL,
               created REAL NOT NULL,
               topic TEXT NOT NULL,
               topic_by TEXT NOT NULL,
               topic_at REAL NOT NULL,
               modes TEXT NOT NULL,
               mode_key TEXT,
               mode_limit INTEGER
           )""",
    ),
    # 2: channel events (JOIN, PART, KICK, TOPIC, QUIT) are kept beside messages.
    2: ("ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message'",),
    # 3: msgids name their time, so one index on (target, time, msgid) finds a message by id
    # and keeps a message stored once (cluster nodes sharing a database each record it)
    # where two indexes cost a third more on every insert.
    3: (
        "DROP INDEX IF EXISTS messages_by_msgid",
        "DROP INDEX IF EXISTS messages_by_target",
        "CREATE UNIQUE INDEX messages_by_target_time_msgid ON messages (target, time, msgid)",
    ),
    # 4: accounts, their certificate fingerprints, and registered channels (ChanServ); their
    # statements are in chatd.history.account_store. Permanent channels keep their bans
    # (JSON: [[mask, set_by, set_at], ...]).
    4: (
        "ALTER TABLE channels ADD COLUMN bans TEXT NOT NULL DEFAULT '[]'",
        """CREATE TABLE accounts (
               key TEXT PRIMARY KEY,
               name TEXT NOT NULL,
               password_hash TEXT NOT NULL,
               scram_salt BLOB NOT NULL,
               scram_stored_key BLOB NOT NULL,
               scram_server_key BLOB NOT NULL,
               scram_iterations INTEGER NOT NULL,
               email TEXT NOT NULL,
               registered_at REAL NOT NULL
           )""",
        """CREATE TABLE account_certfps (
               certfp TEXT PRIMARY KEY,
               account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE
           )""",
        """CREATE TABLE channel_registrations (
               key TEXT PRIMARY KEY,
               name TEXT NOT NULL,
               founder TEXT NOT NULL,
               registered_at REAL NOT NULL,
               data TEXT NOT NULL
           )""",
    ),
    # 5: the sender's account beside each entry (the account tag in replays and CHATHISTORY),
    # and who has a private conversation by account with whom (CHATHISTORY TARGETS): a row per
    # side, so one account's partners are one range of the primary key.
    5: (
        "ALTER TABLE messages ADD COLUMN account TEXT",
        """CREATE TABLE correspondents (
               account TEXT NOT NULL,
               other TEXT NOT NULL,
               PRIMARY KEY (account, other)
           ) WITHOUT ROWID""",
    ),
    # 6: the client-only tags of an entry (JSON object), replayed as a live message has them;
    # TAGMSGs history keeps (kind "tagmsg") are nothing else.
    6: ("ALTER TABLE messages ADD COLUMN tags TEXT",),
}


INSERT_MESSAGE = (
    "INSERT OR IGNORE INTO messages (target, msgid, time, line, plain, kind, account, tags)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CORRESPONDENT = "INSERT OR IGNORE INTO correspondents (account, other) VALUES (?, ?)"
SAVE_CHANNEL = (
    "INSERT OR REPLACE INTO channels (key, name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

ROWS_PER_INSERT = 64
"""Rows per INSERT statement for a burst of writes. The sqlite3 module lets go of the GIL
for every statement it steps; row by row, that is a hand-off with the event loop thread per
message, which costs both threads more than the insert itself."""


def _storable(params: tuple[Any, ...]) -> tuple[Any, ...]:
    """``params`` with each string that holds lone surrogates as the bytes they stand for."""
    if all(type(value) is not str or value.isascii() for value in params):
        return params
    return tuple(_blob_if_escaped(value) if type(value) is str else value for value in params)


def _blob_if_escaped(text: str) -> str | bytes:
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode(errors=WIRE)  # the bytes decode_line escaped
    return text


def _as_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as written: the BLOBs ``_storable`` made are strings again."""
    if not any(type(value) is bytes for value in row):
        return row
    return tuple(value.decode("utf-8", "surrogateescape") if type(value) is bytes else value for value in row)


def _multi_row(sql: str, rows: int) -> str:
    """``INSERT ... VALUES (?, ?)`` made into one statement for ``rows`` rows."""
    head, values = sql.rsplit("VALUES", 1)
    return f"{head}VALUES {', '.join([values.strip()] * rows)}"


def write_batches(
    writes: queue.SimpleQueue[Any],
    commit: Callable[[list[Any]], None],
    prune: Callable[[], None] | None,
    commit_seconds: Histogram,
) -> None:
    """A store's writer thread until ``None`` is queued: commit queued writes in batches, each
    closing COMMIT_INTERVAL_S after its first write, and ``prune`` every PRUNE_INTERVAL_S.

    After the first write of a batch the thread sleeps through the interval and then drains
    the queue at once, rather than waking for every message: a wake-up per message would hand
    the GIL back and forth with the event loop thousands of times a second. (SQLite's and
    PostgreSQL's stores both run this.)
    """
    next_prune = time.monotonic()
    stop = False
    while not stop:
        item = writes.get()
        stop = item is None
        batch = [] if item is None else [item]
        if not stop:
            time.sleep(COMMIT_INTERVAL_S)
        while not stop and len(batch) < MAX_BATCH:
            try:
                item = writes.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
            else:
                batch.append(item)
        if batch:
            started = time.monotonic()
            commit(batch)
            commit_seconds.observe(time.monotonic() - started)
        if prune is not None and time.monotonic() >= next_prune:
            prune()
            next_prune = time.monotonic() + PRUNE_INTERVAL_S


class HistoryStoreError(Exception):
    """The database cannot be used; the message is one line for the operator."""


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""How a ``--database`` URL begins (``chatd.history.postgres``)."""


def redacted(url: str) -> str:
    """A database URL without its password, to name the database in logs and errors."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:
        password = None
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class SqliteStore:
    """One database file; ``submit`` queues a write, a thread commits them in batches."""

    def __init__(self, data_dir: str, *, max_age_s: float = 0.0, max_rows: int = 0) -> None:
        """Open (or create) the database; ``max_age_s``/``max_rows`` (0: no limit) bound retention."""
        self.max_age_s = max_age_s
        self.max_rows = max_rows
        directory = Path(data_dir)
        try:
            # Messages (private ones with --history-private) and permanent channels' keys are
            # in here: only the server's own user may read them.
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise HistoryStoreError(f"cannot create data directory {data_dir}: {error.strerror}") from error
        self.path = directory / DATABASE_NAME
        self._make_private()
        # The hub reads from the loop thread, or under its lock from reader threads.
        self._reader = self._connect(check_same_thread=False)
        self._migrate(self._reader)
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.commit_seconds = Histogram()
        """Time per batch commit on the writer thread (read by /metrics)."""
        self._writer = threading.Thread(target=self._write_loop, name="chatd-history-writer", daemon=True)
        self._writer_conn = self._connect(check_same_thread=False)
        self._writer.start()

    def _make_private(self) -> None:
        """Create the database file ``0600`` before SQLite opens it (SQLite gives its ``-wal``
        and ``-shm`` files the database's mode), and close up files an earlier version left
        readable to everyone."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for suffix in ("", "-wal", "-shm"):
                path = Path(f"{self.path}{suffix}")
                if path.exists() and path.stat().st_mode & 0o077:
                    path.chmod(0o600)
        except OSError as error:
            raise HistoryStoreError(f"cannot open {self.path}: {error.strerror}") from error

    def _connect(self, *, check_same_thread: bool) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.path, check_same_thread=check_same_thread, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=5000")
        except sqlite3.OperationalError as error:
            raise HistoryStoreError(f"cannot open {self.path}: {error}") from error
        except sqlite3.DatabaseError as error:
            raise HistoryStoreError(f"{self.path} is not a usable database: {error}") from error
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryStoreError(
                    f"{self.path} has schema version {version}, newer than this chatd understands ({SCHEMA_VERSION})"
                )
            if version == 0 and connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise HistoryStoreError(f"{self.path} is not a chatd database (it has tables but no version)")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                connection.execute("BEGIN")
                for statement in MIGRATIONS[target]:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {target}")
                connection.execute("COMMIT")
                log.debug("history database migrated to schema version %d", target)
        except sqlite3.DatabaseError as error:
            raise HistoryStoreError(f"{self.path} is not a usable database: {error}") from error

    # ---- called by the event loop: queue only ---------------------------------------

    def submit(self, sql: str, params: tuple[Any, ...]) -> None:
        self._queue.put((sql, _storable(params)))

    @property
    def queue_depth(self) -> int:
        """Writes queued and not yet taken by the writer (approximate; never blocks)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the database."""
        self._queue.put(None)
        self._writer.join(timeout=10)
        self._reader.close()

    # ---- writes: queued, committed by the writer thread -----------------------------

    def insert_message(self, row: tuple[str, str, float, str, str | None, str, str | None, str | None]) -> None:
        """(target, msgid, time, line, plain, kind, account, tags as JSON); a message already stored is
        kept once."""
        self.submit(INSERT_MESSAGE, row)

    def insert_correspondent(self, account: str, other: str) -> None:
        """``account`` (a case-mapped account name) has a private conversation with ``other``."""
        self.submit(INSERT_CORRESPONDENT, (account, other))

    def save_channel(self, row: tuple[Any, ...]) -> None:
        """(key, name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans as JSON)."""
        self.submit(SAVE_CHANNEL, row)

    def delete_channel(self, key: str) -> None:
        self.submit("DELETE FROM channels WHERE key = ?", (key,))

    def delete_channels_except(self, keys: tuple[str, ...]) -> None:
        marks = ", ".join("?" * len(keys))
        self.submit(f"DELETE FROM channels WHERE key NOT IN ({marks})", keys)

    # ---- reads (startup and queries) ---------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [_as_text(row) for row in self._reader.execute(sql, _storable(params)).fetchall()]

    def newest_entries(self, target: str, limit: int) -> list[tuple[Any, ...]]:
        """The newest ``limit`` rows (msgid, time, line, plain, kind, account, tags) of a target, newest
        first."""
        return self.query(
            "SELECT msgid, time, line, plain, kind, account, tags FROM messages"
            " WHERE target = ? ORDER BY time DESC, id DESC LIMIT ?",
            (target, limit),
        )

    def entries_between(
        self, target: str, after: float, before: float, limit: int, *, newest: bool, events: bool
    ) -> list[tuple[Any, ...]]:
        """Rows strictly between two times, nearest ``before`` first when ``newest`` (else nearest
        ``after`` first); messages only unless ``events``."""
        order = "DESC" if newest else "ASC"
        return self.query(
            "SELECT msgid, time, line, plain, kind, account, tags FROM messages"
            " WHERE target = ? AND time > ? AND time < ?"
            f" AND (kind = 'message' OR ?) ORDER BY time {order}, id {order} LIMIT ?",
            (target, after, before, events, limit),
        )

    def message_entry(self, target: str, msgid: str, named_time: float | None) -> tuple[Any, ...] | None:
        """The row (msgid, time, line, plain, kind, account, tags) of ``msgid``. ``named_time``, the
        time the id names, lets the (target, time, msgid) index find it; ids from before schema 3
        name none."""
        columns = "msgid, time, line, plain, kind, account, tags"
        if named_time is None:
            rows = self.query(f"SELECT {columns} FROM messages WHERE target = ? AND msgid = ?", (target, msgid))
        else:
            rows = self.query(
                f"SELECT {columns} FROM messages WHERE target = ? AND time > ? AND time < ? AND msgid = ?",
                (target, named_time - 0.002, named_time + 0.002, msgid),
            )
        return rows[0] if rows else None

    def delete_message(self, target: str, msgid: str) -> None:
        """A redacted message leaves the history (REDACT)."""
        self.submit("DELETE FROM messages WHERE target = ? AND msgid = ?", (target, msgid))

    def correspondents(self, account: str) -> list[str]:
        """The case-mapped accounts ``account`` has a stored private conversation with."""
        return [row[0] for row in self.query("SELECT other FROM correspondents WHERE account = ?", (account,))]

    def saved_channel(self, key: str) -> tuple[Any, ...] | None:
        """(name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans as JSON) or None."""
        rows = self.query(
            "SELECT name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans"
            " FROM channels WHERE key = ?",
            (key,),
        )
        return rows[0] if rows else None

    # ---- the writer thread -----------------------------------------------------------

    def _write_loop(self) -> None:
        connection = self._writer_conn
        retention = self.max_age_s or self.max_rows
        write_batches(
            self._queue,
            lambda batch: self._commit(connection, batch),
            (lambda: self.prune(connection)) if retention else None,
            self.commit_seconds,
        )
        connection.close()

    def prune(self, connection: sqlite3.Connection) -> None:
        """Drop messages past the retention limits (runs on the writer thread, off the loop)."""
        try:
            if self.max_age_s:
                connection.execute("DELETE FROM messages WHERE time < ?", (time.time() - self.max_age_s,))
            if self.max_rows:
                connection.execute(
                    "DELETE FROM messages WHERE id <= (SELECT max(id) FROM messages) - ?", (self.max_rows,)
                )
        except sqlite3.Error:
            log.exception("history: pruning failed")

    @staticmethod
    def _commit(connection: sqlite3.Connection, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            connection.execute("BEGIN")
            # Runs of the same statement (a burst of messages) go in blocks of ROWS_PER_INSERT
            # rows per statement, the rest through one executemany.
            for sql, rows in itertools.groupby(batch, key=operator.itemgetter(0)):
                params = [row for _, row in rows]
                full = len(params) - len(params) % ROWS_PER_INSERT if sql.startswith("INSERT") else 0
                if full:
                    block_sql = _multi_row(sql, ROWS_PER_INSERT)
                    for start in range(0, full, ROWS_PER_INSERT):
                        connection.execute(
                            block_sql, list(itertools.chain.from_iterable(params[start : start + ROWS_PER_INSERT]))
                        )
                if full < len(params):
                    connection.executemany(sql, params[full:])
            connection.execute("COMMIT")
        except sqlite3.Error:
            log.exception("history: a batch of %d writes failed and was dropped", len(batch))
            if connection.in_transaction:
                connection.execute("ROLLBACK")
