"""Accounts, their certificates and registered channels, in the history database or in memory.

Both classes implement ``chatd.core.ports.AccountStore``. The core calls them only
through ``Hub.offload``, from worker threads, so a statement may wait on the disk
without stalling anyone; each worker thread gets its own SQLite connection.
Uniqueness of names is the database's (a primary key), so several nodes sharing one
file (``--workers``) can never register one name twice.

Every SQL statement about accounts is in this module; the tables are created by the
schema migrations of ``chatd.history.store`` (version 4).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import replace
from typing import Any

from chatd.core.ports import AccountRecord, ChannelRegistration
from chatd.history.store import SqliteStore

ACCOUNT_COLUMNS = (
    "name, password_hash, scram_salt, scram_stored_key, scram_server_key, scram_iterations, email, registered_at"
)


class SqliteAccountStore:
    """Accounts in the same file as history (``SqliteStore`` created and migrated it)."""

    def __init__(self, history_store: SqliteStore) -> None:
        self._history_store = history_store
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._history_store._connect(check_same_thread=True)
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
        return connection

    def _record(self, row: tuple[Any, ...], key: str) -> AccountRecord:
        certfps = tuple(
            fp for (fp,) in self._connection().execute("SELECT certfp FROM account_certfps WHERE account = ?", (key,))
        )
        return AccountRecord(*row, certfps=certfps)

    def create_account(self, key: str, record: AccountRecord) -> bool:
        connection = self._connection()
        try:
            connection.execute(
                f"INSERT INTO accounts (key, {ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, *_columns(record)),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def account(self, key: str) -> AccountRecord | None:
        row = self._connection().execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._record(row, key)

    def update_account(self, key: str, record: AccountRecord) -> None:
        connection = self._connection()
        connection.execute("BEGIN")
        try:
            connection.execute(
                "UPDATE accounts SET name = ?, password_hash = ?, scram_salt = ?, scram_stored_key = ?,"
                " scram_server_key = ?, scram_iterations = ?, email = ?, registered_at = ? WHERE key = ?",
                (*_columns(record), key),
            )
            connection.execute("DELETE FROM account_certfps WHERE account = ?", (key,))
            connection.executemany(
                "INSERT OR IGNORE INTO account_certfps (certfp, account) VALUES (?, ?)",
                [(fp, key) for fp in record.certfps],
            )
            connection.execute("COMMIT")
        except sqlite3.Error:
            connection.execute("ROLLBACK")
            raise

    def drop_account(self, key: str) -> None:
        self._connection().execute("DELETE FROM accounts WHERE key = ?", (key,))

    def account_by_certfp(self, certfp: str) -> AccountRecord | None:
        row = (
            self._connection()
            .execute("SELECT account FROM account_certfps WHERE certfp = ?", (certfp.lower(),))
            .fetchone()
        )
        return None if row is None else self.account(row[0])

    def account_names(self) -> list[str]:
        return [name for (name,) in self._connection().execute("SELECT name FROM accounts")]

    def channel_registrations(self) -> list[ChannelRegistration]:
        rows = self._connection().execute("SELECT name, founder, registered_at, data FROM channel_registrations")
        return [_registration(*row) for row in rows]

    def save_channel_registration(self, key: str, registration: ChannelRegistration, *, create: bool = False) -> bool:
        verb = "INSERT" if create else "INSERT OR REPLACE"
        try:
            self._connection().execute(
                f"{verb} INTO channel_registrations (key, name, founder, registered_at, data) VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    registration.name,
                    registration.founder,
                    registration.registered_at,
                    _registration_data(registration),
                ),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def drop_channel_registration(self, key: str) -> None:
        self._connection().execute("DELETE FROM channel_registrations WHERE key = ?", (key,))


class MemoryAccountStore:
    """Accounts for ``--no-persist`` and for tests: forgotten when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountRecord] = {}
        self._channels: dict[str, ChannelRegistration] = {}

    def create_account(self, key: str, record: AccountRecord) -> bool:
        with self._lock:
            if key in self._accounts:
                return False
            self._accounts[key] = record
            return True

    def account(self, key: str) -> AccountRecord | None:
        with self._lock:
            return self._accounts.get(key)

    def update_account(self, key: str, record: AccountRecord) -> None:
        with self._lock:
            if key in self._accounts:
                others = {fp for other, held in self._accounts.items() if other != key for fp in held.certfps}
                self._accounts[key] = replace(record, certfps=tuple(fp for fp in record.certfps if fp not in others))

    def drop_account(self, key: str) -> None:
        with self._lock:
            self._accounts.pop(key, None)

    def account_by_certfp(self, certfp: str) -> AccountRecord | None:
        wanted = certfp.lower()
        with self._lock:
            return next((record for record in self._accounts.values() if wanted in record.certfps), None)

    def account_names(self) -> list[str]:
        with self._lock:
            return [record.name for record in self._accounts.values()]

    def channel_registrations(self) -> list[ChannelRegistration]:
        with self._lock:
            return list(self._channels.values())

    def save_channel_registration(self, key: str, registration: ChannelRegistration, *, create: bool = False) -> bool:
        with self._lock:
            if create and key in self._channels:
                return False
            self._channels[key] = registration
            return True

    def drop_channel_registration(self, key: str) -> None:
        with self._lock:
            self._channels.pop(key, None)


def _columns(record: AccountRecord) -> tuple[Any, ...]:
    return (
        record.name,
        record.password_hash,
        record.scram_salt,
        record.scram_stored_key,
        record.scram_server_key,
        record.scram_iterations,
        record.email,
        record.registered_at,
    )


def _registration_data(registration: ChannelRegistration) -> str:
    """The ``data`` column: what a registration holds beyond founder and time, as JSON."""
    return json.dumps({"access": [list(entry) for entry in registration.access], "topic_lock": registration.topic_lock})


def _registration(name: str, founder: str, registered_at: float, data: str) -> ChannelRegistration:
    """A stored row back as a registration; settings a later version added and this one does
    not know are ignored, and a damaged ``data`` leaves only founder and time."""
    try:
        fields = json.loads(data)
        access = tuple((str(account), str(mode)) for account, mode in fields.get("access", ()) if mode in ("o", "v"))
        topic_lock = bool(fields.get("topic_lock", False))
    except (ValueError, TypeError, AttributeError):
        access, topic_lock = (), False
    return ChannelRegistration(name, founder, registered_at, access, topic_lock)
