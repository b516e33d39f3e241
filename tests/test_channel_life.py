"""A channel's life: an emptied channel forgets everything; permanent channels keep it.

What happens within one run of a server is checked on the hub harness; what must
survive (or not) a restart runs over both backends, stopping and starting servers.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from chatd.core.config import PermanentChannel
from chatd.history import History, SqliteStore
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcClient, LineClient, RunningServer, running_server

KEEP = PermanentChannel("#keep", topic="Welcome", modes="nt")


@contextmanager
def stored_server(backend: str, data_dir: Path, **config: object) -> Iterator[RunningServer]:
    with running_server(backend, history=History(SqliteStore(str(data_dir))), **config) as server:
        yield server


def _found_secret(owner: IrcClient | HubClient) -> None:
    """The issue's reproduction: an invite-only, keyed channel with something said in it."""
    owner.send("JOIN #secret")
    owner.until("366")
    owner.send("MODE #secret +i")
    owner.send("MODE #secret +k hunter2")
    owner.send("TOPIC #secret :owners only")
    owner.send("PRIVMSG #secret :the plan is on the wiki")
    owner.sync()


def _assert_founds_a_new_channel(stranger: IrcClient | HubClient) -> None:
    stranger.send("CAP REQ :server-time batch message-tags draft/chathistory")
    stranger.expect("CAP")
    stranger.send("JOIN #secret")
    burst = stranger.until("366")
    assert not [m for m in burst if m.command in ("473", "475", "332")], burst
    names = next(m for m in burst if m.command == "353")
    assert names.params[-1] == f"@{stranger.nick}"  # the next joiner founds it and is its operator
    seen = stranger.sync()
    assert not [m for m in seen if m.command in ("PRIVMSG", "BATCH")], seen  # no replay of its past
    stranger.send("MODE #secret")
    assert stranger.expect("324").params[2:] == ("+nt",)
    stranger.send("CHATHISTORY LATEST #secret * 50")
    batch = stranger.until("BATCH")
    batch += stranger.until("BATCH")
    assert not [m for m in batch if m.command == "PRIVMSG"], batch
    stranger.send("TOPIC #secret")
    assert stranger.expect("331", "332").command == "331"


@pytest.mark.parametrize("persist", [False, True], ids=["memory", "sqlite"])
def test_an_emptied_channel_forgets_its_key_modes_topic_and_history(tmp_path: Path, persist: bool) -> None:
    history = History(SqliteStore(str(tmp_path))) if persist else History(None)
    with HubHarness(history=history) as hub:
        owner = hub.client("owner")
        _found_secret(owner)
        owner.send("PART #secret")
        owner.expect("PART")
        stranger = hub.client()
        stranger.register("stranger")
        _assert_founds_a_new_channel(stranger)
    if persist:
        with closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as database:
            assert database.execute("SELECT key FROM channels WHERE key = '#secret'").fetchall() == []


def test_a_restart_ends_a_channel_that_is_not_permanent(backend: str, tmp_path: Path) -> None:
    with stored_server(backend, tmp_path) as server:
        _found_secret(server.client("owner"))  # still a member when the server stops
    with stored_server(backend, tmp_path) as server:
        stranger = IrcClient(server.address)
        stranger.register("stranger")
        _assert_founds_a_new_channel(stranger)
    with closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as database:
        keys = [row[0] for row in database.execute("SELECT key, mode_key FROM channels")]
        assert "#secret" not in keys
        assert "hunter2" not in str(database.execute("SELECT * FROM channels").fetchall())


def test_saved_state_of_an_earlier_version_is_dropped_at_startup(tmp_path: Path) -> None:
    """Databases of earlier versions kept every channel's state, key included."""
    SqliteStore(str(tmp_path)).close()
    with closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as database:
        database.execute(
            "INSERT INTO channels (key, name, created, topic, topic_by, topic_at, modes, mode_key, mode_limit)"
            " VALUES ('#secret', '#secret', 1, 'old topic', 'owner', 1, 'int', 'hunter2', NULL)"
        )
        database.commit()
    with HubHarness(history=History(SqliteStore(str(tmp_path)))) as hub:
        stranger = hub.client()
        stranger.register("stranger")
        _assert_founds_a_new_channel(stranger)
        stranger.sync()
    with closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as database:
        assert [row[0] for row in database.execute("SELECT key FROM channels")] == []


def test_a_permanent_channel_exists_from_startup_with_its_topic() -> None:
    with HubHarness(history=History(None), permanent_channels=(KEEP,)) as hub:
        looker = hub.client("looker")
        looker.send("TOPIC #keep")
        assert looker.expect("332", "331", "403").params[1:] == ("#keep", "Welcome")
        looker.send("MODE #keep")
        assert looker.expect("324", "403").params[2:] == ("+nt",)
        looker.send("LIST")  # LIST shows where people are, as ergo does: not an empty channel
        assert [m for m in looker.until("323") if m.command == "322"] == []
        looker.send("JOIN #KEEP")
        burst = looker.until("366")
        assert [m.params[2] for m in burst if m.command == "332"] == ["Welcome"]
        assert next(m for m in burst if m.command == "353").params[-1] == "@looker"
        assert next(m for m in burst if m.command == "JOIN").params[0] == "#keep"  # its declared name


def test_a_permanent_channel_keeps_topic_modes_and_history_when_empty_and_across_a_restart(
    backend: str, tmp_path: Path
) -> None:
    with stored_server(backend, tmp_path, permanent_channels=(KEEP,)) as server:
        op = server.client("op")
        op.send("JOIN #keep")
        op.until("366")
        op.send("TOPIC #keep :Kept across restarts")
        op.send("MODE #keep +mk door")
        op.send("PRIVMSG #keep :before emptiness")
        op.send("PART #keep")
        op.expect("PART")
        back = server.client("back")
        back.send("JOIN #keep")
        assert back.expect("475", "366").command == "475"  # the key outlived its members
        back.send("JOIN #keep door")
        burst = back.until("366")
        assert [m.params[2] for m in burst if m.command == "332"] == ["Kept across restarts"]
        assert next(m for m in burst if m.command == "353").params[-1] == "@back"  # first joiner is operator
        assert back.expect("PRIVMSG").params[1].endswith("before emptiness")
        back.send("PRIVMSG #keep :second message")
        back.sync()
    with stored_server(backend, tmp_path, permanent_channels=(KEEP,)) as server:
        again = server.client("again")
        again.send("JOIN #keep door")
        burst = again.until("366")
        assert [m.params[2] for m in burst if m.command == "332"] == ["Kept across restarts"]
        replayed = [again.expect("PRIVMSG").params[1] for _ in range(2)]
        assert replayed[0].endswith("before emptiness") and replayed[1].endswith("second message")
        again.send("MODE #keep")
        assert again.expect("324").params[2:] == ("+mntk", "door")


def test_the_plain_channel_is_permanent_so_the_classroom_replay_survives_a_restart(
    backend: str, tmp_path: Path
) -> None:
    with stored_server(backend, tmp_path) as server:
        first = LineClient(server.address)
        first.send_raw(b"masha\n")
        first.wait_for_line(lambda line: line.startswith("* Welcome"))
        first.send_raw(b"see you tomorrow\n")
        watcher = server.client("watcher")
        watcher.send("JOIN #lobby")
        watcher.expect("PRIVMSG")
    with stored_server(backend, tmp_path) as server:
        late = LineClient(server.address)
        late.send_raw(b"petya\n")
        line = late.wait_for_line(lambda text: "see you tomorrow" in text)
        assert line.endswith("masha: see you tomorrow")


def test_only_members_see_a_channel_key() -> None:
    with HubHarness() as hub:
        owner = hub.client("owner")
        owner.send("JOIN #door")
        owner.until("366")
        owner.send("MODE #door +kl hunter2 5")
        owner.sync()
        owner.send("MODE #door")
        assert owner.expect("324").params[2:] == ("+ntkl", "hunter2", "5")
        outsider = hub.client("outsider")
        outsider.send("MODE #door")
        shown = outsider.expect("324")
        assert shown.params[2:] == ("+ntkl",)
        assert "hunter2" not in " ".join(outsider.lines)


def test_the_data_directory_and_database_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    with HubHarness(history=History(SqliteStore(str(data_dir)))) as hub:
        talker = hub.client("talker")
        talker.send("JOIN #x")
        talker.until("366")
        talker.send("PRIVMSG #x :written")
        talker.sync()
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data_dir.iterdir()}
        assert files["chatd.sqlite3"] == 0o600
        assert files["chatd.sqlite3-wal"] == 0o600 and files["chatd.sqlite3-shm"] == 0o600


def test_a_world_readable_database_of_an_earlier_version_is_closed_up(tmp_path: Path) -> None:
    SqliteStore(str(tmp_path)).close()
    database = tmp_path / "chatd.sqlite3"
    database.chmod(0o644)
    SqliteStore(str(tmp_path)).close()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_owners_declare_and_withdraw_permanent_channels(tmp_path: Path) -> None:
    """The place a later kind of owned channel (registered by an account) plugs into."""
    harness = HubHarness(history=History(SqliteStore(str(tmp_path))))
    hub = harness.hub
    owner = harness.client()
    for line in ("NICK owner", "USER u 0 * :Real", "JOIN #club", "MODE #club +k door"):
        owner.send(line)
    hub.keep_channel(PermanentChannel("#club"), "accounts")
    hub.keep_channel(PermanentChannel("#club"), "config")
    owner.send("PART #club")
    assert hub.find_channel("#club") is not None and hub.find_channel("#club").mode_key == "door"
    hub.release_channel("#CLUB", "accounts")
    assert hub.find_channel("#club") is not None  # the config still keeps it
    hub.release_channel("#club", "config")
    assert hub.find_channel("#club") is None  # nobody keeps it and it is empty: it is gone
    hub.keep_channel(PermanentChannel("#fresh", topic="Hello"), "accounts")
    assert hub.find_channel("#fresh").topic == "Hello"
    assert "#lobby" in hub.permanent and hub.find_channel("#lobby") is not None
    harness.close()
    with closing(sqlite3.connect(tmp_path / "chatd.sqlite3")) as database:
        saved = {row[0]: row[1] for row in database.execute("SELECT key, topic FROM channels")}
    assert saved == {"#fresh": "Hello"}  # #club's saved state went with its last keeper
