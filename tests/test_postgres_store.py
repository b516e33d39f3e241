"""The stores over both databases: what ``History`` and the account core call, SQLite and PostgreSQL
alike, then what only a shared PostgreSQL shows (two nodes, schema versions, an unreachable server),
and a real server restarted on each database."""

from __future__ import annotations

import base64
import contextlib
import signal
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from chatd.core.accounts import make_record
from chatd.core.config import PermanentChannel
from chatd.core.ports import ChannelRegistration
from chatd.history import History, HistoryStoreError, SqliteStore
from chatd.history.postgres import SCHEMA_VERSION, PostgresAccountStore, PostgresStore
from chatd.history.store import redacted
from chatd.protocol.framing import decode_line
from tests.helpers import DEADLINE_S, IrcClient, RedisServer, RunningServer, free_port, running_server
from tests.postgres import POSTGRES_MISSING, Database, PostgresCluster
from tests.test_cli import one_line_error, run_chatd, start_chatd

PASSWORD = "hunter22"


def _entry(target: str, msgid: str, when: float, text: str, kind: str = "message") -> tuple:
    return (target, msgid, when, f":a!b@c PRIVMSG {target} :{text}", None, kind, "alice", None)


def _committed(store: SqliteStore | PostgresStore) -> None:
    """Wait until the writer has taken every queued write and committed it."""
    deadline = time.monotonic() + 5
    while store.queue_depth and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the batch it took is committed within COMMIT_INTERVAL_S


def test_entries_are_read_back_newest_between_and_by_msgid(database: Database) -> None:
    store = database.store()
    for i in range(6):
        store.insert_message(_entry("#c", f"id{i}", 100.0 + i, f"m{i}", "event" if i == 2 else "message"))
    store.insert_message(_entry("#other", "x", 103.0, "elsewhere"))
    store.close()
    store = database.store()
    try:
        assert [row[0] for row in store.newest_entries("#c", 3)] == ["id5", "id4", "id3"]
        first = store.newest_entries("#c", 1)[0]
        assert first == ("id5", 105.0, ":a!b@c PRIVMSG #c :m5", None, "message", "alice", None)
        between = store.entries_between("#c", 100.0, 105.0, 10, newest=False, events=False)
        assert [row[0] for row in between] == ["id1", "id3", "id4"]  # strictly between, no event
        assert [row[0] for row in store.entries_between("#c", 100.0, 105.0, 2, newest=True, events=True)] == [
            "id4",
            "id3",
        ]
        found = store.message_entry("#c", "id3", 103.0)
        assert found is not None and found[:2] == ("id3", 103.0)
        assert store.message_entry("#c", "id3", None) == found
        assert store.message_entry("#c", "id3", 110.0) is None  # not at the time it names
        assert store.message_entry("#other", "id3", 103.0) is None
        store.delete_message("#c", "id3")
        _committed(store)
        assert store.message_entry("#c", "id3", None) is None
        assert [row[0] for row in store.entries_between("#c", 100.0, 105.0, 10, newest=False, events=False)] == [
            "id1",
            "id4",
        ]
    finally:
        store.close()


def test_a_message_recorded_twice_is_stored_once(database: Database) -> None:
    """Two nodes on one database each record what they deliver: one row."""
    first, second = database.store(), database.store()
    for store in (first, second, first):
        store.insert_message(_entry("#c", "same", 100.0, "hello"))
    second.insert_message(_entry("#c", "other", 100.0, "same time, another id"))
    first.close()
    second.close()
    store = database.store()
    try:
        assert sorted(row[0] for row in store.newest_entries("#c", 10)) == ["other", "same"]
    finally:
        store.close()


def test_channel_state_with_bans_is_saved_replaced_and_deleted(database: Database) -> None:
    store = database.store()
    bans = '[["*!*@bad.example", "op!u@h", 5.0]]'
    store.save_channel(("#keep", "#Keep", 1.0, "old", "op", 2.0, "nt", None, None, "[]"))
    store.save_channel(("#keep", "#Keep", 1.0, "topic", "op!u@h", 3.0, "ntk", "sesame", 10, bans))
    store.save_channel(("#gone", "#gone", 1.0, "", "", 0.0, "nt", None, None, "[]"))
    store.save_channel(("#also", "#also", 1.0, "", "", 0.0, "nt", None, None, "[]"))
    store.delete_channel("#gone")
    store.delete_channels_except(("#keep",))
    store.close()
    store = database.store()
    try:
        assert store.saved_channel("#keep") == ("#Keep", 1.0, "topic", "op!u@h", 3.0, "ntk", "sesame", 10, bans)
        assert store.saved_channel("#gone") is None and store.saved_channel("#also") is None
        store.delete_channels_except(())
        _committed(store)
        assert store.saved_channel("#keep") is None
    finally:
        store.close()


def test_correspondents_are_kept_once_a_pair(database: Database) -> None:
    store = database.store()
    for _ in range(2):
        store.insert_correspondent("erin", "frank")
    store.insert_correspondent("erin", "gina")
    store.close()
    store = database.store()
    try:
        assert sorted(store.correspondents("erin")) == ["frank", "gina"]
        assert store.correspondents("frank") == []
    finally:
        store.close()


@pytest.mark.parametrize(
    "data",
    [b"caf\xe9 latin-1", b"\xff\xfe\x00 nul and junk", b"half \xe2\x82", "plain UTF-8 \u00e9\U0001f600".encode()],
)
def test_bytes_that_are_not_utf8_come_back_as_they_came(database: Database, data: bytes) -> None:
    text = decode_line(data)
    channel = decode_line(b"#caf\xe9")
    store = database.store()
    store.insert_message((channel, "m1", 1.0, text, text, "message", None, None))
    store.save_channel((channel, channel, 1.0, text, text, 2.0, "nt", text, None, "[]"))
    store.close()
    store = database.store()
    try:
        assert store.newest_entries(channel, 1) == [("m1", 1.0, text, text, "message", None, None)]
        assert store.message_entry(channel, "m1", 1.0) == ("m1", 1.0, text, text, "message", None, None)
        assert store.saved_channel(channel) == (channel, 1.0, text, text, 2.0, "nt", text, None, "[]")
    finally:
        store.close()


def test_accounts_are_created_once_updated_found_by_certfp_and_dropped(database: Database) -> None:
    store = database.store()
    accounts = database.accounts(store)
    try:
        alice = make_record("Alice", PASSWORD)
        assert accounts.create_account("alice", alice)
        assert not accounts.create_account("alice", make_record("ALICE", "other-password"))  # the key is taken
        assert accounts.account("alice") == alice
        assert accounts.account("nobody") is None
        accounts.create_account("bob", make_record("bob", PASSWORD))
        accounts.update_account("bob", replace(make_record("bob", PASSWORD), certfps=("bb",)))
        changed = replace(make_record("Alice", "new-password", email="a@example.org"), certfps=("aa", "bb"))
        accounts.update_account("alice", changed)
        stored = accounts.account("alice")
        assert stored is not None and stored.email == "a@example.org" and stored.certfps == ("aa",)  # bb is bob's
        assert stored.scram_salt == changed.scram_salt and stored.password_hash == changed.password_hash
        found = accounts.account_by_certfp("AA")
        assert found is not None and found.name == "Alice"
        assert sorted(accounts.account_names()) == ["Alice", "bob"]
        accounts.drop_account("alice")
        assert accounts.account("alice") is None and accounts.account_by_certfp("aa") is None
        assert accounts.account_names() == ["bob"]
    finally:
        store.close()


def test_channel_registrations_are_created_once_replaced_and_dropped(database: Database) -> None:
    store = database.store()
    accounts = database.accounts(store)
    try:
        first = ChannelRegistration("#Reg", "alice", 5.0, (("bob", "o"),), True)
        assert accounts.save_channel_registration("#reg", first, create=True)
        assert not accounts.save_channel_registration("#reg", ChannelRegistration("#reg", "eve", 6.0), create=True)
        assert accounts.channel_registrations() == [first]
        moved = ChannelRegistration("#Reg", "bob", 5.0, (), False)
        assert accounts.save_channel_registration("#reg", moved)
        assert accounts.channel_registrations() == [moved]
        accounts.drop_channel_registration("#reg")
        assert accounts.channel_registrations() == []
    finally:
        store.close()


def test_accounts_created_from_many_threads_have_each_name_once(database: Database) -> None:
    """Uniqueness is the database's: of eight threads registering one name, one wins."""
    from concurrent.futures import ThreadPoolExecutor

    store = database.store()
    accounts = database.accounts(store)
    try:
        record = make_record("dup", PASSWORD)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: accounts.create_account("dup", record), range(8)))
        assert results.count(True) == 1
    finally:
        store.close()


# ---- schema versions ----------------------------------------------------------------------------


def test_a_newer_schema_is_refused_in_one_line(database: Database, tmp_path: Path) -> None:
    database.store().close()
    if database.postgres:
        with psycopg.connect(database.where, autocommit=True) as connection:
            connection.execute("UPDATE chatd_schema SET version = %s", (SCHEMA_VERSION + 1,))
    else:
        with contextlib.closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as connection:
            connection.execute("PRAGMA user_version = 99")
    with pytest.raises(HistoryStoreError, match="newer than this chatd understands") as raised:
        database.store()
    assert "\n" not in str(raised.value)


def test_a_foreign_postgres_database_is_refused_and_left_alone(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(HistoryStoreError, match="is not a chatd database"):
        PostgresStore(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        tables = connection.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert [name for (name,) in tables] == ["invoices"]


def test_two_nodes_starting_together_create_the_schema_once(postgres_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: PostgresStore(postgres_url), range(4)))
    for store in stores:
        store.close()
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT version FROM chatd_schema").fetchall() == [(SCHEMA_VERSION,)]


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    url = f"postgresql://chatd:secret@127.0.0.1:{free_port()}/chatd"
    with pytest.raises(HistoryStoreError, match="cannot connect to PostgreSQL at") as raised:
        PostgresStore(url)
    assert "\n" not in str(raised.value) and "secret" not in str(raised.value)
    assert redacted(url) == url.replace("secret", "***")


def test_writes_reads_and_accounts_carry_on_after_postgres_restarts() -> None:
    """The connections a restart cut are replaced: the next batch, query and login go through."""
    if POSTGRES_MISSING:
        pytest.skip(POSTGRES_MISSING)
    cluster = PostgresCluster()  # its own: restarting the shared one would cut other tests
    try:
        cluster.start()
        url = cluster.new_database()
        store = PostgresStore(url)
        accounts = PostgresAccountStore(store)
        accounts.create_account("alice", make_record("alice", PASSWORD))
        store.insert_message(_entry("#c", "before", 1.0, "before"))
        _committed(store)
        assert [row[0] for row in store.newest_entries("#c", 10)] == ["before"]
        cluster.halt()
        cluster.run()
        store.insert_message(_entry("#c", "after", 2.0, "after"))
        _committed(store)
        assert [row[0] for row in store.newest_entries("#c", 10)] == ["after", "before"]
        found = accounts.account("alice")
        assert found is not None and found.name == "alice"
        store.close()
    finally:
        cluster.stop()


def test_retention_prunes_old_rows_in_postgres(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    for i in range(3):
        store.insert_message(_entry("#r", f"old{i}", 1000.0 + i, "old"))
    store.close()
    PostgresStore(postgres_url, max_age_s=1.0).close()  # everything from 1970 is older than a second
    capped = PostgresStore(postgres_url, max_rows=2)
    for i in range(5):
        capped.insert_message(_entry("#r", f"new{i}", 5e9 + i, "new"))
    capped.close()
    store = PostgresStore(postgres_url)
    try:
        assert [row[0] for row in store.newest_entries("#r", 10)] == ["new4", "new3"]
    finally:
        store.close()


# ---- a real server, restarted on the same database ----------------------------------------------


def _server(backend: str, database: Database) -> contextlib.AbstractContextManager[RunningServer]:
    store = database.store()
    return running_server(
        backend,
        history=History(store),
        accounts=database.accounts(store),
        nick_enforcement="optional",
        permanent_channels=(PermanentChannel("#talk"),),  # its history is still its after a restart
    )


def _sasl(server: RunningServer, nick: str) -> IrcClient:
    client = server.client()
    client.send("CAP REQ :sasl batch draft/chathistory message-tags server-time account-tag")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"{nick}\0{nick}\0{PASSWORD}".encode()).decode())
    client.expect("903")
    client.send("CAP END")
    client.register(nick)
    return client


def test_an_account_and_its_channel_history_survive_a_restart(backend: str, database: Database) -> None:
    with _server(backend, database) as server:
        alice = server.client("alice")
        alice.send(f"REGISTER * alice@example.org {PASSWORD}")
        assert alice.expect("REGISTER", "FAIL").params[:2] == ("SUCCESS", "alice")
        alice.expect("900")
        alice.send("JOIN #talk")
        alice.until("366")
        alice.send("PRIVMSG #talk :first")
        alice.send_raw(b"PRIVMSG #talk :second \xff bytes\r\n")
        alice.sync()
        alice.send("QUIT")
        alice.wait_closed()
    with _server(backend, database) as server:
        again = _sasl(server, "alice")
        again.send("JOIN #talk")
        again.until("366")
        again.raw_lines.clear()
        again.send("CHATHISTORY LATEST #talk * 10")
        again.until("BATCH")
        said = [m for m in again.until("BATCH") if m.command == "PRIVMSG"]
        assert {m.tags.get("account") for m in said} == {"alice"}
        relayed = [line.rsplit(b" :", 1)[1] for line in again.raw_lines if b" PRIVMSG #talk " in line]
        assert relayed == [b"first", b"second \xff bytes"]  # from the database, as they came


# ---- chatd --database ------------------------------------------------------------------------------


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    result = run_chatd("--port", "0", "--database", f"postgresql://chatd:secret@127.0.0.1:{free_port()}/chatd")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("chatd: cannot connect to PostgreSQL at postgresql://chatd:***@127.0.0.1:")
    assert "secret" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database", "mysql://h/db"], "chatd: --database: 'mysql://h/db' is not a postgresql://… URL"),
        (["--database", "postgresql://h/db", "--no-persist"], "chatd: --database: cannot be used with --no-persist"),
    ],
)
def test_bad_database_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    assert one_line_error(run_chatd(*args)).startswith(message)


def test_chatd_keeps_its_accounts_and_history_in_the_database_from_the_environment(postgres_url: str) -> None:
    process, port = start_chatd(env={"CHATD_DATABASE": postgres_url})
    try:
        alice = IrcClient(("127.0.0.1", port))
        alice.register("alice")
        alice.send(f"REGISTER * * {PASSWORD}")
        assert alice.expect("REGISTER", "FAIL").params[:2] == ("SUCCESS", "alice")
        alice.send("JOIN #cli")
        alice.until("366")
        alice.send("PRIVMSG #cli :into postgres")
        alice.sync()
        process.send_signal(signal.SIGTERM)
        process.wait(DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(DEADLINE_S)
    assert process.returncode == 0
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT name FROM accounts").fetchall() == [("alice",)]
        lines = [bytes(line) for (line,) in connection.execute("SELECT line FROM messages WHERE kind = 'message'")]
        assert len(lines) == 1 and lines[0].endswith(b" PRIVMSG #cli :into postgres")


# ---- a network on one PostgreSQL --------------------------------------------------------------------


def test_two_nodes_on_one_postgres_store_a_message_once_and_a_late_node_has_no_holes(
    backend: str, redis: RedisServer, postgres_url: str
) -> None:
    from tests.test_cluster import cluster_node, expect_from, joined, linked, sees_member

    stores = [PostgresStore(postgres_url) for _ in range(3)]
    with (
        cluster_node(backend, redis, "a", history=History(stores[0])) as a,
        cluster_node(backend, redis, "b", history=History(stores[1])) as b,
    ):
        linked(a, b)
        alice, bob = a.client("alice"), b.client("bob")
        joined(alice, "#net")
        sees_member(bob, "#net", "alice")
        joined(bob, "#net")
        expect_from(alice, "JOIN", "bob")
        for i in range(5):
            alice.send(f"PRIVMSG #net :line {i}")
        assert [bob.expect("PRIVMSG").params[1] for _ in range(5)] == [f"line {i}" for i in range(5)]
        for store in stores[:2]:
            _committed(store)
        rows = stores[2].newest_entries("#net", 100)
        said = [row[0] for row in rows if row[4] == "message"]
        assert len(said) == 5 and len(set(said)) == 5  # recorded by both nodes, stored once
        # A node that was not there when they were said (down, or new) finds them in the database.
        with cluster_node(backend, redis, "c", history=History(stores[2])) as c:
            linked(a, b, c)
            carol = c.client()
            carol.send("CAP REQ :batch draft/chathistory message-tags server-time")
            carol.send("CAP END")
            carol.register("carol")
            sees_member(carol, "#net", "alice")
            joined(carol, "#net")
            carol.send("CHATHISTORY LATEST #net * 10")
            carol.until("BATCH")
            texts = [m.params[-1] for m in carol.until("BATCH") if m.command == "PRIVMSG"]
            assert texts == [f"line {i}" for i in range(5)]
