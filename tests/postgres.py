"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a free port.

PostgreSQL refuses to run as root, so when the tests do, the cluster is made and run as the
``nobody`` user (``setpriv``), its directory handed to that user. Each test gets a database of
its own in the one cluster of its test process (``PostgresCluster.new_database``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chatd.core.ports import AccountStore
from chatd.history.account_store import SqliteAccountStore
from chatd.history.store import SqliteStore
from tests.helpers import DEADLINE_S, free_port

if TYPE_CHECKING:
    from chatd.history.postgres import PostgresStore

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
if not (POSTGRES_BIN / "postgres").exists():  # another Debian major version
    POSTGRES_BIN = next(
        (
            path
            for path in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
            if (path / "postgres").exists()
        ),
        POSTGRES_BIN,
    )
POSTGRES_MISSING = (
    None
    if (POSTGRES_BIN / "postgres").exists() and (POSTGRES_BIN / "initdb").exists()
    else "PostgreSQL is not installed (apt-get install postgresql)"
)
USER = "chatd"


class PostgresCluster:
    """``initdb`` + ``postgres`` on 127.0.0.1:<free port>, trust authentication, no fsync."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="chatd-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def _as_owner(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        # setpriv executes the command itself (no parent left between), so signals reach postgres.
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]

    def start(self) -> None:
        data, sockets = self.directory / "data", self.directory / "sockets"
        sockets.mkdir()
        if os.geteuid() == 0:
            for path in (self.directory, sockets):
                shutil.chown(path, "nobody")
        subprocess.run(
            self._as_owner(
                [str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=DEADLINE_S * 6,
        )
        self.run()

    def run(self) -> None:
        """Start the server on the cluster made by ``start`` and wait until it answers."""
        data, sockets = self.directory / "data", self.directory / "sockets"
        self.process = subprocess.Popen(
            self._as_owner(
                [
                    str(POSTGRES_BIN / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "log", "ab"),  # noqa: SIM115 - the server's log, closed with it
        )
        deadline = time.monotonic() + DEADLINE_S * 6
        while not self._answers():
            if self.process.poll() is not None:
                raise AssertionError(f"postgres exited with {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"postgres did not answer on port {self.port}: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return (self.directory / "log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.url(name)

    def halt(self) -> None:
        """Stop the server (fast shutdown: its clients' connections are cut), keeping its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: SIGTERM would wait for clients
            try:
                self.process.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(DEADLINE_S)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)


class Database:
    """Where a test keeps its data: an SQLite data directory, or a ``postgresql://`` URL; ``store()``
    opens it again (a restart) each time it is called."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.postgres = where.startswith("postgresql://")

    def store(self, **limits: float) -> SqliteStore | PostgresStore:
        if self.postgres:
            from chatd.history.postgres import PostgresStore

            return PostgresStore(self.where, **limits)  # type: ignore[arg-type]
        return SqliteStore(self.where, **limits)  # type: ignore[arg-type]

    def accounts(self, store: SqliteStore | PostgresStore) -> AccountStore:
        if isinstance(store, SqliteStore):
            return SqliteAccountStore(store)
        from chatd.history.postgres import PostgresAccountStore

        return PostgresAccountStore(store)
