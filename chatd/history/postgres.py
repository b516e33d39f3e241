"""PostgreSQL storage for history, channel state and accounts: one database several nodes share.

The same contracts as ``chatd.history.store`` (history and channel state) and
``chatd.history.account_store`` (accounts, certificates, registered channels), over psycopg 3:

- Writes of history and channel state are queued by the loop (never blocking it) and committed
  by a writer thread in one transaction per batch; reads (startup, CHATHISTORY) use a connection
  of their own. A batch the database refuses is logged and dropped; one lost to a broken
  connection is tried once more on a new connection.
- A message is stored once however many nodes record it: a unique (target, time, msgid) index and
  ``ON CONFLICT DO NOTHING``.
- Text that may hold bytes that were not UTF-8 (lone surrogates, see ``chatd.protocol.framing``)
  — targets, lines, channel names, topics, keys — is kept in ``BYTEA`` columns as exactly the
  bytes that came, and read back as the same string; PostgreSQL's ``TEXT`` takes neither lone
  surrogates nor NUL. Names chatd validates (accounts, msgids, kinds, JSON) stay ``TEXT``.
- The schema's version is the one row of ``chatd_schema``; ``MIGRATIONS`` takes an older schema to
  the current one under an advisory lock (nodes starting together migrate once), and a newer or
  foreign schema is refused with one line rather than touched.
- Accounts are read and written from ``Hub.offload``'s worker threads, each with its own
  connection; uniqueness of names is the database's (primary keys).

Every SQL statement for PostgreSQL is in this module.
"""

from __future__ import annotations

import itertools
import logging
import operator
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from chatd.core.ports import AccountRecord, ChannelRegistration
from chatd.core.stats import Histogram
from chatd.history.account_store import _columns, _registration, _registration_data
from chatd.history.store import HistoryStoreError, redacted, write_batches
from chatd.protocol.framing import WIRE

log = logging.getLogger("chatd")

SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK = 0x63686174  # "chat": the advisory lock nodes take to migrate one at a time

MIGRATIONS: dict[int, Sequence[str]] = {
    # version reached → statements that take the previous version there
    1: (
        """CREATE TABLE messages (
               id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               target BYTEA NOT NULL,
               msgid TEXT NOT NULL,
               time DOUBLE PRECISION NOT NULL,
               line BYTEA NOT NULL,
               plain BYTEA,
               kind TEXT NOT NULL DEFAULT 'message',
               account TEXT,
               tags TEXT
           )""",
        # Finds a message by id (msgids name their time) and keeps a message stored once.
        "CREATE UNIQUE INDEX messages_by_target_time_msgid ON messages (target, time, msgid)",
        """CREATE TABLE channels (
               key BYTEA PRIMARY KEY,
               name BYTEA NOT NULL,
               created DOUBLE PRECISION NOT NULL,
               topic BYTEA NOT NULL,
               topic_by BYTEA NOT NULL,
               topic_at DOUBLE PRECISION NOT NULL,
               modes BYTEA NOT NULL,
               mode_key BYTEA,
               mode_limit INTEGER,
               bans TEXT NOT NULL DEFAULT '[]'
           )""",
        """CREATE TABLE correspondents (
               account BYTEA NOT NULL,
               other BYTEA NOT NULL,
               PRIMARY KEY (account, other)
           )""",
        """CREATE TABLE accounts (
               key TEXT PRIMARY KEY,
               name TEXT NOT NULL,
               password_hash TEXT NOT NULL,
               scram_salt BYTEA NOT NULL,
               scram_stored_key BYTEA NOT NULL,
               scram_server_key BYTEA NOT NULL,
               scram_iterations INTEGER NOT NULL,
               email TEXT NOT NULL,
               registered_at DOUBLE PRECISION NOT NULL
           )""",
        """CREATE TABLE account_certfps (
               certfp TEXT PRIMARY KEY,
               account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE
           )""",
        """CREATE TABLE channel_registrations (
               key BYTEA PRIMARY KEY,
               name BYTEA NOT NULL,
               founder TEXT NOT NULL,
               registered_at DOUBLE PRECISION NOT NULL,
               data TEXT NOT NULL
           )""",
    ),
}

INSERT_MESSAGE = (
    "INSERT INTO messages (target, msgid, time, line, plain, kind, account, tags)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
INSERT_CORRESPONDENT = "INSERT INTO correspondents (account, other) VALUES (%s, %s) ON CONFLICT DO NOTHING"
SAVE_CHANNEL = (
    "INSERT INTO channels (key, name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
    " name = EXCLUDED.name, created = EXCLUDED.created, topic = EXCLUDED.topic, topic_by = EXCLUDED.topic_by,"
    " topic_at = EXCLUDED.topic_at, modes = EXCLUDED.modes, mode_key = EXCLUDED.mode_key,"
    " mode_limit = EXCLUDED.mode_limit, bans = EXCLUDED.bans"
)
ENTRY_COLUMNS = "msgid, time, line, plain, kind, account, tags"
ACCOUNT_COLUMNS = (
    "name, password_hash, scram_salt, scram_stored_key, scram_server_key, scram_iterations, email, registered_at"
)


def _bytes(value: Any) -> Any:
    """A string as the bytes it stands for (escaped bytes put back as they came); others unchanged."""
    return value.encode(errors=WIRE) if type(value) is str else value


def _wire(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_bytes(value) for value in params)


def _text(value: Any) -> Any:
    """What ``_bytes`` stored, a string again."""
    return value.decode("utf-8", "surrogateescape") if type(value) is bytes else value


def _as_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_text(value) for value in row)


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A connection to ``url``; raises HistoryStoreError (one line) when there is none."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except (psycopg.Error, ValueError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise HistoryStoreError(f"cannot connect to PostgreSQL at {redacted(url)}: {reason}") from error


def migrate(connection: psycopg.Connection[Any], where: str) -> None:
    """Create or update the schema to ``SCHEMA_VERSION``; HistoryStoreError if it is newer or not chatd's."""
    try:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                )
            }
            if "chatd_schema" in tables:
                row = connection.execute("SELECT max(version) FROM chatd_schema").fetchone()
                version = row[0] if row and row[0] is not None else 0
            elif tables:
                raise HistoryStoreError(f"{where} is not a chatd database (it has tables but no chatd_schema)")
            else:
                connection.execute("CREATE TABLE chatd_schema (version INTEGER NOT NULL)")
                connection.execute("INSERT INTO chatd_schema (version) VALUES (0)")
                version = 0
            if version > SCHEMA_VERSION:
                raise HistoryStoreError(
                    f"{where} has schema version {version}, newer than this chatd understands ({SCHEMA_VERSION})"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    connection.execute(statement)  # type: ignore[arg-type]
                connection.execute("UPDATE chatd_schema SET version = %s", (target,))
                log.debug("history database migrated to schema version %d", target)
    except psycopg.Error as error:
        raise HistoryStoreError(f"{where} is not a usable database: {error}".splitlines()[0]) from error


class PostgresStore:
    """History and channel state in PostgreSQL; ``submit`` queues a write, a thread commits them in batches.

    The same methods as ``SqliteStore``, for ``History``; ``url`` is a libpq URI
    (``postgresql://user:password@host:port/database``)."""

    def __init__(self, url: str, *, max_age_s: float = 0.0, max_rows: int = 0) -> None:
        """Connect and create or migrate the schema; raises HistoryStoreError (one line) if the database
        cannot be reached or used."""
        self.url = url
        self.path = redacted(url)
        """Where the data is, for the log (no password)."""
        self.max_age_s = max_age_s
        self.max_rows = max_rows
        self._reader = connect(url)
        try:
            migrate(self._reader, self.path)
        except HistoryStoreError:
            self._reader.close()
            raise
        self._reader_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.commit_seconds = Histogram()
        """Time per batch commit on the writer thread (read by /metrics)."""
        self._writer_conn: psycopg.Connection[Any] | None = connect(url, autocommit=False)
        self._writer = threading.Thread(target=self._write_loop, name="chatd-history-writer", daemon=True)
        self._writer.start()

    # ---- called by the event loop: queue only ---------------------------------------

    def submit(self, sql: str, params: tuple[Any, ...]) -> None:
        self._queue.put((sql, params))

    @property
    def queue_depth(self) -> int:
        """Writes queued and not yet taken by the writer (approximate; never blocks)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the connections."""
        self._queue.put(None)
        self._writer.join(timeout=10)
        self._reader.close()

    # ---- writes: queued, committed by the writer thread -----------------------------

    def insert_message(self, row: tuple[str, str, float, str, str | None, str, str | None, str | None]) -> None:
        """(target, msgid, time, line, plain, kind, account, tags as JSON); a message already stored (by
        this node or another) is kept once."""
        target, msgid, when, line, plain, kind, account, tags = row
        self.submit(INSERT_MESSAGE, (_bytes(target), msgid, when, _bytes(line), _bytes(plain), kind, account, tags))

    def insert_correspondent(self, account: str, other: str) -> None:
        """``account`` (a case-mapped account name) has a private conversation with ``other``."""
        self.submit(INSERT_CORRESPONDENT, (_bytes(account), _bytes(other)))

    def save_channel(self, row: tuple[Any, ...]) -> None:
        """(key, name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans as JSON)."""
        self.submit(SAVE_CHANNEL, (*_wire(row[:-1]), row[-1]))

    def delete_channel(self, key: str) -> None:
        self.submit("DELETE FROM channels WHERE key = %s", (_bytes(key),))

    def delete_channels_except(self, keys: tuple[str, ...]) -> None:
        self.submit("DELETE FROM channels WHERE NOT (key = ANY(%s::bytea[]))", ([_bytes(key) for key in keys],))

    # ---- reads (startup and queries) ---------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one statement on the reader connection, BYTEA columns as strings; may be called
        from any thread."""
        with self._reader_lock:
            try:
                rows = self._reader.execute(sql, params).fetchall()  # type: ignore[arg-type]
            except psycopg.OperationalError:
                # The connection broke (the server restarted?): once more on a new one.
                self._reader.close()
                self._reader = connect(self.url)
                rows = self._reader.execute(sql, params).fetchall()  # type: ignore[arg-type]
        return [_as_text(row) for row in rows]

    def newest_entries(self, target: str, limit: int) -> list[tuple[Any, ...]]:
        """The newest ``limit`` rows (msgid, time, line, plain, kind, account, tags) of a target, newest
        first."""
        return self.query(
            f"SELECT {ENTRY_COLUMNS} FROM messages WHERE target = %s ORDER BY time DESC, id DESC LIMIT %s",
            (_bytes(target), limit),
        )

    def entries_between(
        self, target: str, after: float, before: float, limit: int, *, newest: bool, events: bool
    ) -> list[tuple[Any, ...]]:
        """Rows strictly between two times, nearest ``before`` first when ``newest`` (else nearest
        ``after`` first); messages only unless ``events``."""
        order = "DESC" if newest else "ASC"
        return self.query(
            f"SELECT {ENTRY_COLUMNS} FROM messages WHERE target = %s AND time > %s AND time < %s"
            f" AND (kind = 'message' OR %s) ORDER BY time {order}, id {order} LIMIT %s",
            (_bytes(target), after, before, events, limit),
        )

    def message_entry(self, target: str, msgid: str, named_time: float | None) -> tuple[Any, ...] | None:
        """The row (msgid, time, line, plain, kind, account, tags) of ``msgid``; ``named_time``, the
        time the id names, lets the index find it."""
        if named_time is None:
            rows = self.query(
                f"SELECT {ENTRY_COLUMNS} FROM messages WHERE target = %s AND msgid = %s", (_bytes(target), msgid)
            )
        else:
            rows = self.query(
                f"SELECT {ENTRY_COLUMNS} FROM messages WHERE target = %s AND time > %s AND time < %s AND msgid = %s",
                (_bytes(target), named_time - 0.002, named_time + 0.002, msgid),
            )
        return rows[0] if rows else None

    def delete_message(self, target: str, msgid: str) -> None:
        """A redacted message leaves the history (REDACT), on every node at once."""
        self.submit("DELETE FROM messages WHERE target = %s AND msgid = %s", (_bytes(target), msgid))

    def correspondents(self, account: str) -> list[str]:
        """The case-mapped accounts ``account`` has a stored private conversation with."""
        return [row[0] for row in self.query("SELECT other FROM correspondents WHERE account = %s", (_bytes(account),))]

    def saved_channel(self, key: str) -> tuple[Any, ...] | None:
        """(name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans as JSON) or None."""
        rows = self.query(
            "SELECT name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit, bans"
            " FROM channels WHERE key = %s",
            (_bytes(key),),
        )
        return rows[0] if rows else None

    # ---- the writer thread -----------------------------------------------------------

    def _write_loop(self) -> None:
        retention = self.max_age_s or self.max_rows
        write_batches(self._queue, self._commit, self.prune if retention else None, self.commit_seconds)
        if self._writer_conn is not None:
            self._writer_conn.close()

    def _writer_connection(self) -> psycopg.Connection[Any]:
        if self._writer_conn is None or self._writer_conn.closed:
            self._writer_conn = connect(self.url, autocommit=False)
        return self._writer_conn

    def _commit(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        for attempt in (1, 2):
            try:
                connection = self._writer_connection()
                with connection.transaction():
                    for sql, rows in itertools.groupby(batch, key=operator.itemgetter(0)):
                        with connection.cursor() as cursor:
                            cursor.executemany(sql, [params for _, params in rows])  # type: ignore[arg-type]
                return
            except (psycopg.OperationalError, HistoryStoreError) as error:
                # The connection broke: close it, and try the batch once more on a new one.
                if self._writer_conn is not None:
                    self._writer_conn.close()
                self._writer_conn = None
                if attempt == 2:
                    log.error("history: a batch of %d writes was lost: %s", len(batch), str(error).splitlines()[0])
            except psycopg.Error:
                log.exception("history: a batch of %d writes failed and was dropped", len(batch))
                return

    def prune(self) -> None:
        """Drop messages past the retention limits (runs on the writer thread, off the loop)."""
        try:
            connection = self._writer_connection()
            with connection.transaction():
                if self.max_age_s:
                    connection.execute("DELETE FROM messages WHERE time < %s", (time.time() - self.max_age_s,))
                if self.max_rows:
                    connection.execute(
                        "DELETE FROM messages WHERE id <= (SELECT max(id) FROM messages) - %s", (self.max_rows,)
                    )
        except (psycopg.Error, HistoryStoreError):
            log.exception("history: pruning failed")


class PostgresAccountStore:
    """``chatd.core.ports.AccountStore`` and channel registrations in the database of a
    ``PostgresStore`` (which created the schema); a connection per worker thread."""

    def __init__(self, history_store: PostgresStore) -> None:
        self._url = history_store.url
        self._local = threading.local()

    def _connection(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = connect(self._url)
            self._local.connection = connection
        return connection

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        """One statement (autocommit); a connection found broken (the server restarted) is
        replaced and the statement tried once more on the new one."""
        try:
            return self._connection().execute(sql, params)  # type: ignore[arg-type]
        except psycopg.OperationalError:
            self._local.connection = None
        return self._connection().execute(sql, params)  # type: ignore[arg-type]

    def _record(self, row: tuple[Any, ...], key: str) -> AccountRecord:
        rows = self._execute("SELECT certfp FROM account_certfps WHERE account = %s", (key,))
        return AccountRecord(*row, certfps=tuple(fp for (fp,) in rows))

    def create_account(self, key: str, record: AccountRecord) -> bool:
        cursor = self._execute(
            f"INSERT INTO accounts (key, {ACCOUNT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (key) DO NOTHING",
            (key, *_columns(record)),
        )
        return cursor.rowcount == 1

    def account(self, key: str) -> AccountRecord | None:
        row = self._execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE key = %s", (key,)).fetchone()
        return None if row is None else self._record(row, key)

    def update_account(self, key: str, record: AccountRecord) -> None:
        try:
            self._update_account(key, record)
        except psycopg.OperationalError:
            self._local.connection = None  # broken: the transaction did not commit; once more
            self._update_account(key, record)

    def _update_account(self, key: str, record: AccountRecord) -> None:
        connection = self._connection()
        with connection.transaction():
            connection.execute(
                "UPDATE accounts SET name = %s, password_hash = %s, scram_salt = %s, scram_stored_key = %s,"
                " scram_server_key = %s, scram_iterations = %s, email = %s, registered_at = %s WHERE key = %s",
                (*_columns(record), key),
            )
            connection.execute("DELETE FROM account_certfps WHERE account = %s", (key,))
            with connection.cursor() as cursor:
                # A fingerprint another account holds stays that account's.
                cursor.executemany(
                    "INSERT INTO account_certfps (certfp, account) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(fp, key) for fp in record.certfps],
                )

    def drop_account(self, key: str) -> None:
        self._execute("DELETE FROM accounts WHERE key = %s", (key,))

    def account_by_certfp(self, certfp: str) -> AccountRecord | None:
        row = self._execute("SELECT account FROM account_certfps WHERE certfp = %s", (certfp.lower(),)).fetchone()
        return None if row is None else self.account(row[0])

    def account_names(self) -> list[str]:
        return [name for (name,) in self._execute("SELECT name FROM accounts")]

    def channel_registrations(self) -> list[ChannelRegistration]:
        rows = self._execute("SELECT name, founder, registered_at, data FROM channel_registrations")
        return [_registration(*_as_text(row)) for row in rows]

    def save_channel_registration(self, key: str, registration: ChannelRegistration, *, create: bool = False) -> bool:
        conflict = (
            "DO NOTHING"
            if create
            else "DO UPDATE SET name = EXCLUDED.name, founder = EXCLUDED.founder,"
            " registered_at = EXCLUDED.registered_at, data = EXCLUDED.data"
        )
        cursor = self._execute(
            "INSERT INTO channel_registrations (key, name, founder, registered_at, data)"
            f" VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) {conflict}",
            (
                _bytes(key),
                _bytes(registration.name),
                registration.founder,
                registration.registered_at,
                _registration_data(registration),
            ),
        )
        return cursor.rowcount == 1

    def drop_channel_registration(self, key: str) -> None:
        self._execute("DELETE FROM channel_registrations WHERE key = %s", (_bytes(key),))
