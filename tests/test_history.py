"""History: replay on join, and history and channel state surviving a restart — both backends."""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatd.core import Hub, ServerConfig
from chatd.history import History, HistoryStoreError, SqliteStore
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.helpers import DEADLINE_S, IrcClient, LineClient, running_server
from tests.postgres import Database


def test_replay_on_join_in_every_form(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=3) as server:
        talker = server.client("talker")
        talker.send("JOIN #h")
        talker.until("366")
        for i in range(5):
            talker.send(f"PRIVMSG #h :message {i}")
        talker.sync()

        bare = server.client("bare")
        bare.send("JOIN #h")
        replayed = [m for m in bare.until("366", "PRIVMSG") if m.command == "PRIVMSG"]
        replayed += [bare.expect("PRIVMSG") for _ in range(3 - len(replayed))]
        assert [re.sub(r"^\[\d\d:\d\d\] ", "", m.params[1]) for m in replayed] == [f"message {i}" for i in (2, 3, 4)]
        assert all(re.match(r"\[\d\d:\d\d\] ", m.params[1]) for m in replayed)

        modern = IrcClient(server.address)
        modern.send("CAP REQ :server-time batch message-tags")
        modern.expect("CAP")
        modern.send("CAP END")
        modern.register("modern")
        modern.send("JOIN #h")
        start = modern.expect("BATCH")
        assert start.params[1:] == ("chathistory", "#h")
        inside = modern.until("BATCH")
        assert [m.params[1] for m in inside[:-1]] == ["message 2", "message 3", "message 4"]
        assert all(m.tags["batch"] == start.params[0][1:] and m.tags["msgid"] and m.tags["time"] for m in inside[:-1])

        plain = LineClient(server.address)
        plain.send_raw(b"plainer\n")
        plain.wait_for_line(lambda line: line.startswith("* Welcome"))
        server_side = server.client("lobbyist")
        server_side.send("JOIN #lobby")
        server_side.until("366")
        server_side.send("PRIVMSG #lobby :for the record")
        server_side.sync()
        late_plain = LineClient(server.address)
        late_plain.send_raw(b"late\n")
        line = late_plain.wait_for_line(lambda text: "for the record" in text)
        assert re.fullmatch(r"\[\d\d:\d\d\] lobbyist: for the record", line)


def test_replay_without_server_time_stamps_actions_inside_and_skips_other_ctcp(backend: str) -> None:
    """weechat showed ``[09:31] AACTION wavesA`` when the stamp went in front of the CTCP mark."""
    with running_server(backend, history=History(None), history_on_join=10) as server:
        talker = server.client("talker")
        talker.send("JOIN #h")
        talker.until("366")
        talker.send("PRIVMSG #h :\x01ACTION waves\x01")
        talker.send("PRIVMSG #h :\x01VERSION\x01")
        talker.send("PRIVMSG #h :plain words")
        talker.sync()
        bare = server.client("bare")
        bare.send("JOIN #h")
        bare.until("366")
        replayed = [m.params[1] for m in bare.sync() if m.command == "PRIVMSG"]
        assert len(replayed) == 2, replayed  # the VERSION request is not replayed
        assert re.fullmatch(r"\x01ACTION \[\d\d:\d\d\] waves\x01", replayed[0])
        assert re.fullmatch(r"\[\d\d:\d\d\] plain words", replayed[1])


def test_a_crash_loses_at_most_the_last_commit_interval(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chatd", "--port", "0", "--data-dir", str(tmp_path), "--flood-rate", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    port = next(int(line.rsplit(":", 1)[1].split()[0]) for line in process.stderr if "listening on" in line)
    talker = IrcClient(("127.0.0.1", port), "talker")
    talker.send("JOIN #crash")
    talker.until("366")
    for i in range(200):
        talker.send(f"PRIVMSG #crash :line {i}")
    talker.sync()
    # Within a commit interval of being accepted, every message is on disk: poll the file, then kill -9.
    database = tmp_path / "chatd.sqlite3"
    rows = 0
    deadline = time.monotonic() + DEADLINE_S
    while rows < 200 and time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(database)) as reader:
            rows = reader.execute("SELECT count(*) FROM messages WHERE kind = 'message'").fetchone()[0]
        time.sleep(0.02)  # polling a file under a deadline
    process.send_signal(signal.SIGKILL)
    process.wait(DEADLINE_S)
    assert rows == 200
    reopened = History(SqliteStore(str(tmp_path)))
    assert [entry.line.rsplit(":", 1)[1] for entry in reopened.recent("#crash", 3)] == [
        "line 197",
        "line 198",
        "line 199",
    ]
    reopened.close()


def test_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "chatd.sqlite3").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(HistoryStoreError, match="not a usable database"):
        SqliteStore(str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "chatd", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"chatd: {tmp_path / 'chatd.sqlite3'} is not a usable database: file is not a database"
    ]


def _chathistory_client(server: object, nick: str) -> IrcClient:
    client = IrcClient(server.address)  # type: ignore[attr-defined]
    client.send("CAP REQ :draft/chathistory batch server-time message-tags")
    client.expect("CAP")
    client.send("CAP END")
    client.register(nick)
    return client


def _batch(client: IrcClient) -> list[str]:
    start = client.expect("BATCH")
    inside = client.until("BATCH")
    assert inside[-1].params == (f"-{start.params[0][1:]}",)
    return [m.params[-1] for m in inside[:-1]]


def test_chathistory_queries(backend: str, stored: Database | None) -> None:
    store = stored.store() if stored else None
    with running_server(backend, history=History(store), history_on_join=0) as server:
        client = _chathistory_client(server, "reader")
        client.send("JOIN #past")
        client.until("366")
        writer = server.client("writer")
        writer.send("JOIN #past")
        writer.until("366")
        for i in range(10):
            writer.send(f"PRIVMSG #past :m{i}")
        writer.sync()
        seen = [client.expect("PRIVMSG") for _ in range(10)]
        msgids = [m.tags["msgid"] for m in seen]
        client.send("CHATHISTORY LATEST #past * 3")
        assert _batch(client) == ["m7", "m8", "m9"]
        client.send(f"CHATHISTORY BEFORE #past msgid={msgids[5]} 2")
        assert _batch(client) == ["m3", "m4"]
        client.send(f"CHATHISTORY AFTER #past msgid={msgids[5]} 2")
        assert _batch(client) == ["m6", "m7"]
        client.send(f"CHATHISTORY BETWEEN #past msgid={msgids[1]} msgid={msgids[5]} 10")
        assert _batch(client) == ["m2", "m3", "m4"]
        client.send(f"CHATHISTORY AROUND #past msgid={msgids[5]} 4")
        assert _batch(client) == ["m3", "m4", "m5", "m6"]
        client.send(f"CHATHISTORY BEFORE #past timestamp={seen[1].tags['time']} 5")
        assert _batch(client) == ["m0"]
        client.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 5")
        start = client.expect("BATCH")
        assert start.params[1] == "draft/chathistory-targets"
        targets = client.until("BATCH")
        assert [m.params[:2] for m in targets[:-1]] == [("TARGETS", "#past")]
        client.send("CHATHISTORY LATEST #elsewhere * 3")
        assert client.expect("FAIL").params[:3] == ("CHATHISTORY", "INVALID_TARGET", "LATEST")
        client.send("CHATHISTORY BEFORE #past msgid=nope 3")
        assert client.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_PARAMS")
        client.send("CHATHISTORY LATEST #past * many")
        assert client.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_PARAMS")
        client.send("CHATHISTORY SIDEWAYS #past")
        assert client.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_PARAMS")


def test_retention_prunes_old_and_excess_rows(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path))
    for i in range(5):
        store.submit(
            "INSERT INTO messages (target, msgid, time, line, plain) VALUES (?, ?, ?, ?, ?)",
            ("#r", f"id{i}", 1000.0 + i, f":n!u@h PRIVMSG #r :{i}", None),
        )
    store.close()
    reopened = SqliteStore(str(tmp_path), max_age_s=1.0)  # everything from 1970 is older than a second
    assert [row[0] for row in reopened.query("SELECT msgid FROM messages ORDER BY id")] == [f"id{i}" for i in range(5)]
    reopened.close()  # the writer prunes once at start and once on close's last pass
    pruned = SqliteStore(str(tmp_path))
    assert pruned.query("SELECT count(*) FROM messages") == [(0,)]
    pruned.close()
    capped = SqliteStore(str(tmp_path), max_rows=2)
    for i in range(5):
        capped.submit(
            "INSERT INTO messages (target, msgid, time, line, plain) VALUES (?, ?, ?, ?, ?)",
            ("#r", f"new{i}", 5e9 + i, f":n!u@h PRIVMSG #r :{i}", None),
        )
    capped.close()
    final = SqliteStore(str(tmp_path))
    assert [row[0] for row in final.query("SELECT msgid FROM messages ORDER BY id")] == ["new3", "new4"]
    final.close()


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    from chatd.history.store import MIGRATIONS, SCHEMA_VERSION

    with contextlib.closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as old:
        for statement in MIGRATIONS[1]:
            old.execute(statement)
        old.execute(
            "INSERT INTO messages (target, msgid, time, line, plain)"
            " VALUES ('#old', 'm1', 1.0, ':a!b@c PRIVMSG #old :hi', NULL)"
        )
        old.execute("PRAGMA user_version = 1")
        old.commit()
    store = SqliteStore(str(tmp_path))
    assert store.query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert store.query("SELECT msgid, kind FROM messages") == [("m1", "message")]
    store.close()


def test_events_are_replayed_only_with_event_playback(backend: str) -> None:
    with running_server(backend, history=History(None), history_on_join=10) as server:
        talker = server.client("talker")
        talker.send("JOIN #ev")
        talker.until("366")
        talker.send("TOPIC #ev :a topic")
        talker.send("PRIVMSG #ev :a message")
        talker.sync()
        player = IrcClient(server.address)
        player.send("CAP REQ :server-time batch draft/event-playback")
        player.expect("CAP")
        player.send("CAP END")
        player.register("player")
        player.send("JOIN #ev")
        player.expect("BATCH")
        assert [m.command for m in player.until("BATCH")[:-1]] == ["JOIN", "TOPIC", "PRIVMSG"]
        plain = IrcClient(server.address)
        plain.send("CAP REQ :server-time batch")
        plain.expect("CAP")
        plain.send("CAP END")
        plain.register("plainer")
        plain.send("JOIN #ev")
        plain.expect("BATCH")
        assert [m.command for m in plain.until("BATCH")[:-1]] == ["PRIVMSG"]


@pytest.mark.parametrize("private", [False, True])
def test_private_history_only_when_enabled(backend: str, private: bool) -> None:
    with running_server(backend, history=History(None), history_private=private) as server:
        alice = _chathistory_client(server, "alice")
        bob = server.client("bob")
        bob.send("PRIVMSG alice :just between us")
        alice.expect("PRIVMSG")
        alice.send("CHATHISTORY LATEST bob * 10")
        if private:
            assert _batch(alice) == ["just between us"]
        else:
            assert alice.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_TARGET")
        eve = _chathistory_client(server, "eve")
        eve.send("CHATHISTORY LATEST bob * 10")
        if private:
            assert _batch(eve) == []  # eve's conversation with bob is empty: she cannot read alice's
        else:
            assert eve.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_TARGET")


def test_messages_past_the_memory_window_are_found_by_msgid_on_disk(database: Database) -> None:
    """Ids name their time to the millisecond, so the (channel, time) index finds them."""
    hub = Hub(ServerConfig(), time.monotonic, time.time)
    events = [hub.event(f":a!b@c PRIVMSG #far :m{i}", None) for i in range(10)]
    history = History(database.store(), keep=3)
    for event in events:
        history.record("#far", event)
    history.store.insert_message(  # type: ignore[union-attr]
        ("#far", "5f00-1", 1.5, ":a!b@c PRIVMSG #far :from schema 2", None, "message", None, None)
    )
    history.close()
    reopened = History(database.store(), keep=3)
    assert reopened.find_time("#far", events[0].msgid) == events[0].when  # not among the 3 in memory
    assert reopened.find_time("#far", "5f00-1") == 1.5  # an id from before ids named their time
    start, _, millis = events[0].msgid.split("-")
    assert reopened.find_time("#far", f"{start}-fffff-{millis}") is None  # the right time, no such message
    assert reopened.find_time("#far", "made-up-zz") is None
    reopened.record("#far", events[1])  # as a second cluster node sharing the database would
    reopened.close()
    store = database.store()
    assert [row[0] for row in store.newest_entries("#far", 100)].count(events[1].msgid) == 1
    store.close()


def test_a_burst_of_writes_is_stored_whole_and_in_order(database: Database) -> None:
    """Bursts go in multi-row INSERTs (64 rows a statement) plus a remainder row by row."""
    hub = Hub(ServerConfig(), time.monotonic, time.time)
    history = History(database.store())
    events = [hub.event(f":a!b@c PRIVMSG #burst :m{i}", f"a: m{i}") for i in range(150)]
    for event in events:
        history.record("#burst", event)
    history.close()
    store = database.store()
    rows = [(row[0], row[3]) for row in reversed(store.newest_entries("#burst", 1000))]
    store.close()
    assert rows == [(event.msgid, event.plain_line) for event in events]


def test_chathistory_reads_its_own_writes_before_the_commit(backend: str, database: Database) -> None:
    """The writer thread commits every 50 ms; a CHATHISTORY right after a message must still
    find it (what is not on disk yet is in memory)."""
    store = database.store()
    with running_server(backend, history=History(store)) as server:
        alice = server.client()
        alice.send("CAP REQ :batch draft/chathistory message-tags server-time")
        alice.send("CAP END")
        alice.register("alice")
        alice.send("JOIN #now")
        alice.until("366")
        alice.send("PRIVMSG #now :one")
        alice.send("PRIVMSG #now :two")
        alice.send("CHATHISTORY LATEST #now * 10")  # in the same write: nothing can be committed yet
        alice.until("BATCH")
        texts = [message.params[-1] for message in alice.until("BATCH") if message.command == "PRIVMSG"]
        assert texts == ["one", "two"]


def test_a_timestamp_bound_excludes_the_message_shown_with_that_time(backend: str) -> None:
    """Times are shown to the millisecond and kept finer: AFTER the time tag of a message
    must not return that message again."""
    with running_server(backend, history=History(None)) as server:
        alice = server.client()
        alice.send("CAP REQ :batch draft/chathistory message-tags server-time echo-message")
        alice.send("CAP END")
        alice.register("alice")
        alice.send("JOIN #t")
        alice.until("366")
        alice.send("PRIVMSG #t :first")
        stamp = alice.expect("PRIVMSG").tags["time"]
        later: list[str] = []  # messages shown with a later millisecond than the first
        same = 0
        while not later:  # two messages may share a millisecond: send until one does not
            alice.send("PRIVMSG #t :next")
            if alice.expect("PRIVMSG").tags["time"] == stamp:
                same += 1
                assert same < 1000, "the clock does not move"
            else:
                later.append("next")
        for sub in ("AFTER", "LATEST"):
            alice.send(f"CHATHISTORY {sub} #t timestamp={stamp} 10")
            alice.until("BATCH")
            texts = [message.params[-1] for message in alice.until("BATCH") if message.command == "PRIVMSG"]
            assert texts == later, sub  # neither "first" nor anything shown as its millisecond


# ---- CHATHISTORY bounds, TARGETS and kept TAGMSGs (the irctest chathistory cases) --------------

READER_CAPS = "CAP REQ :batch draft/chathistory message-tags server-time echo-message"


def _reader(harness: HubHarness, nick: str, caps: str = READER_CAPS) -> HubClient:
    client = harness.client()
    client.send(caps)
    client.send("CAP END")
    client.register(nick)
    return client


def _batch_messages(client: HubClient) -> list[Message]:
    """The messages inside the next batch the client gets."""
    client.expect("BATCH")
    return client.until("BATCH")[:-1]


def _said(harness: HubHarness, count: int) -> tuple[HubClient, list[Message]]:
    """alice says ``m0``..``m<count-1>`` in #t, each kept 0.4 ms past the millisecond it is
    shown with (the harness's clock moves 1 ms a line): a bound must not be taken as exact."""
    alice = _reader(harness, "alice")
    alice.send("JOIN #t")
    alice.until("366")
    harness.clock.advance_to(harness.clock.now + 0.0004)
    echoes = []
    for i in range(count):
        alice.send(f"PRIVMSG #t :m{i}")
        echoes.append(alice.expect("PRIVMSG"))
    return alice, echoes


def _texts(client: HubClient, command: str) -> list[str]:
    client.send(command)
    return [message.params[-1] for message in _batch_messages(client) if message.command == "PRIVMSG"]


def test_between_timestamps_excludes_the_messages_shown_with_either_bound() -> None:
    with HubHarness(history=History(None)) as harness:
        alice, echoes = _said(harness, 5)
        first, last = (f"timestamp={echoes[index].tags['time']}" for index in (0, -1))
        assert _texts(alice, f"CHATHISTORY BETWEEN #t {first} {last} 10") == ["m1", "m2", "m3"]
        assert _texts(alice, f"CHATHISTORY BETWEEN #t {last} {first} 10") == ["m1", "m2", "m3"]
        assert _texts(alice, f"CHATHISTORY BETWEEN #t {first} {last} 2") == ["m1", "m2"]  # nearest the start
        assert _texts(alice, f"CHATHISTORY BETWEEN #t {last} {first} 2") == ["m2", "m3"]  # nearest the end
        first_id, last_id = (f"msgid={echoes[index].tags['msgid']}" for index in (0, -1))
        assert _texts(alice, f"CHATHISTORY BETWEEN #t {first_id} {last_id} 10") == ["m1", "m2", "m3"]


def test_around_gives_the_message_itself_and_its_neighbours(stored: Database | None) -> None:
    with HubHarness(history=History(stored.store() if stored else None)) as harness:
        alice, echoes = _said(harness, 5)
        around = f"msgid={echoes[2].tags['msgid']}"
        assert _texts(alice, f"CHATHISTORY AROUND #t {around} 1") == ["m2"]  # no half before it: none
        assert _texts(alice, f"CHATHISTORY AROUND #t {around} 3") == ["m1", "m2", "m3"]
        assert "m2" in _texts(alice, f"CHATHISTORY AROUND #t timestamp={echoes[2].tags['time']} 3")


def test_targets_lists_a_target_once_at_its_newest_message_when_that_is_in_the_window() -> None:
    with HubHarness(history=History(None)) as harness:
        alice, echoes = _said(harness, 3)
        times = [echo.tags["time"] for echo in echoes]
        before, after = "timestamp=2020-01-01T00:00:00.000Z", "timestamp=2262-01-01T00:00:00.000Z"

        def targets(start: str, end: str) -> list[tuple[str, ...]]:
            alice.send(f"CHATHISTORY TARGETS {start} {end} 10")
            return [message.params[1:] for message in _batch_messages(alice)]

        assert targets(before, after) == [("#t", times[2])]  # its newest message, the time bare
        assert targets(after, before) == [("#t", times[2])]  # the bounds in either order
        assert targets(before, f"timestamp={times[1]}") == []  # newest message past the window
        assert targets(f"timestamp={times[2]}", after) == []  # a lower bound excludes its shown time


def _joined_pair(harness: HubHarness) -> tuple[HubClient, HubClient]:
    """alice (draft/event-playback) and bob (message-tags only), both in #t."""
    alice = _reader(harness, "alice", READER_CAPS + " draft/event-playback")
    bob = _reader(harness, "bob")
    for client in (alice, bob):
        client.send("JOIN #t")
        client.until("366")
    return alice, bob


def _check_kept_tagmsg(alice: HubClient, bob: HubClient, msgid: str) -> None:
    alice.send("CHATHISTORY LATEST #t * 10")
    shown = [m for m in _batch_messages(alice) if m.command in ("TAGMSG", "PRIVMSG")]
    assert [(m.command, m.tags.get("+draft/react"), m.tags.get("+note")) for m in shown] == [
        ("TAGMSG", "yes", "a b"),
        ("PRIVMSG", None, "tagged"),
    ]
    assert shown[0].tags["msgid"] == msgid and shown[0].params == ("#t",)
    bob.send("CHATHISTORY LATEST #t * 10")  # no event-playback: no TAGMSG, the PRIVMSG's tags
    assert [(m.command, m.tags.get("+note")) for m in _batch_messages(bob)] == [("PRIVMSG", "tagged")]


def test_a_kept_tagmsg_is_replayed_with_its_tags_to_event_playback_clients_only(stored: Database | None) -> None:
    """TAGMSGs with a reaction or a persist tag are kept (ergo's tagmsg-storage); typing is not."""

    def harness() -> HubHarness:
        return HubHarness(history=History(stored.store() if stored else None))

    with harness() as first:
        alice, bob = _joined_pair(first)
        alice.send("@+draft/react=yes;+note=a\\sb TAGMSG #t")
        msgid = alice.expect("TAGMSG").tags["msgid"]
        alice.send("@+typing=active TAGMSG #t")  # a moment, not history
        alice.expect("TAGMSG")
        alice.send("@+note=tagged PRIVMSG #t :hello")
        alice.expect("PRIVMSG")
        _check_kept_tagmsg(alice, bob, msgid)
    if stored:  # from the database, after a restart
        with harness() as second:
            _check_kept_tagmsg(*_joined_pair(second), msgid)
