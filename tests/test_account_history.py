"""History that follows the account: private messages between logged-in users are kept by
account, read back from any connection logged in to either account, listed by TARGETS,
and carry the sender's account tag; users not logged in keep the nick rules.
"""

from __future__ import annotations

from pathlib import Path

from chatd.history import History
from chatd.history.account_store import SqliteAccountStore
from chatd.history.store import SqliteStore
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.test_account_ircv3 import connect, logged_in, record

HISTORY_CAPS = ("draft/chathistory", "batch", "server-time", "message-tags")
WINDOW = "timestamp=2020-01-01T00:00:00.000Z timestamp=2040-01-01T00:00:00.000Z"


def batch(client: HubClient) -> list[Message]:
    """The messages of the next batch the client gets."""
    start = client.expect("BATCH")
    inside = client.until("BATCH")
    assert inside[-1].params == (f"-{start.params[0][1:]}",)
    return inside[:-1]


def texts(client: HubClient, target: str) -> list[str]:
    client.send(f"CHATHISTORY LATEST {target} * 50")
    return [message.params[-1] for message in batch(client)]


def targets(client: HubClient) -> list[str]:
    client.send(f"CHATHISTORY TARGETS {WINDOW} 50")
    return [message.params[1] for message in batch(client)]


def converse(harness: HubHarness) -> tuple[HubClient, HubClient]:
    """alice (account AliceAcct) and bob (account BobAcct) exchange two private messages."""
    alice = connect(harness, "alice", *HISTORY_CAPS)
    bob = connect(harness, "bob", *HISTORY_CAPS)
    logged_in(harness, alice, "AliceAcct")
    logged_in(harness, bob, "BobAcct")
    alice.send("PRIVMSG bob :hi bob")
    bob.expect("PRIVMSG")
    bob.send("PRIVMSG alice :hi alice")
    alice.expect("PRIVMSG")
    return alice, bob


def test_dm_history_survives_a_reconnect_of_one_side_without_history_private() -> None:
    with HubHarness(history=History(None)) as harness:
        alice, bob = converse(harness)
        bob.close()
        again = connect(harness, "bobby", *HISTORY_CAPS)  # another nick, the same account
        again.send("CHATHISTORY LATEST alice * 10")
        assert again.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_TARGET")  # not logged in yet
        logged_in(harness, again, "BobAcct")
        assert texts(again, "alice") == ["hi bob", "hi alice"]  # alice online: her nick names her account
        alice.close()
        assert texts(again, "AliceAcct") == ["hi bob", "hi alice"]  # offline: by her account's name
        # no such nick now and no account of that name: the (empty) conversation with the nick
        assert texts(again, "alice") == []


def test_a_second_connection_of_the_account_reads_the_conversation() -> None:
    with HubHarness(history=History(None)) as harness:
        alice, _bob = converse(harness)
        phone = connect(harness, "bobphone", *HISTORY_CAPS)
        logged_in(harness, phone, "bobacct")  # case-mapped: the same account
        assert texts(phone, "alice") == ["hi bob", "hi alice"]
        stranger = connect(harness, "carol", *HISTORY_CAPS)
        logged_in(harness, stranger, "CarolAcct")
        assert texts(stranger, "alice") == []  # carol's own conversation with AliceAcct: empty
        assert texts(alice, "bobphone") == ["hi bob", "hi alice"]  # any nick of the account


def test_history_of_an_account_carries_the_account_tag_only_when_asked() -> None:
    with HubHarness(history=History(None)) as harness:
        _alice, bob = converse(harness)
        tagged = connect(harness, "tagged", *HISTORY_CAPS, "account-tag")
        logged_in(harness, tagged, "BobAcct")
        tagged.send("CHATHISTORY LATEST alice * 10")
        assert [(m.params[-1], m.tags.get("account")) for m in batch(tagged)] == [
            ("hi bob", "AliceAcct"),
            ("hi alice", "BobAcct"),
        ]
        bob.send("CHATHISTORY LATEST alice * 10")
        assert ["account" in m.tags for m in batch(bob)] == [False, False]


def test_targets_lists_the_accounts_conversations_and_channels() -> None:
    with HubHarness(history=History(None)) as harness:
        alice, bob = converse(harness)
        bob.send("JOIN #room")
        bob.until("366")
        bob.send("PRIVMSG #room :in the room")
        carol = connect(harness, "carol", *HISTORY_CAPS)
        logged_in(harness, carol, "CarolAcct")
        carol.send("PRIVMSG bob :hello from carol")
        bob.expect("PRIVMSG")
        assert targets(bob) == ["AliceAcct", "#room", "CarolAcct"]  # oldest newest message first
        assert targets(alice) == ["BobAcct"]
        anonymous = connect(harness, "anon", *HISTORY_CAPS)
        assert targets(anonymous) == []


def test_users_not_logged_in_keep_the_nick_rules() -> None:
    with HubHarness(history=History(None)) as harness:
        alice = connect(harness, "alice", *HISTORY_CAPS)
        bob = connect(harness, "bob", *HISTORY_CAPS)
        logged_in(harness, alice, "AliceAcct")  # only one side is logged in: kept for that side alone
        alice.send("PRIVMSG bob :kept for alice")
        bob.expect("PRIVMSG")
        bob.send("PRIVMSG alice :and her answer")
        alice.expect("PRIVMSG")
        bob.send("CHATHISTORY LATEST alice * 10")
        assert bob.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_TARGET")
        assert texts(alice, "bob") == ["kept for alice", "and her answer"]
        bob.close()  # whoever registers "bob" later reads nothing of it
        newbob = connect(harness, "bob", *HISTORY_CAPS)
        logged_in(harness, newbob, "bob")
        assert texts(newbob, "alice") == []
        assert texts(alice, "bob") == []  # bob is an account now: their (new) conversation
    with HubHarness(history=History(None), history_private=True) as harness:
        alice = connect(harness, "alice", *HISTORY_CAPS)
        bob = connect(harness, "bob", *HISTORY_CAPS)
        alice.send("PRIVMSG bob :kept by nick")
        bob.expect("PRIVMSG")
        assert texts(bob, "alice") == ["kept by nick"]
        assert texts(alice, "bob") == ["kept by nick"]
        logged_in(harness, alice, "AliceAcct")  # logged in, she reads what her account keeps
        assert texts(alice, "bob") == []


def test_replay_on_join_shows_extended_joins_and_account_tags_by_caps() -> None:
    with HubHarness(history=History(None), history_on_join=10) as harness:
        speaker = connect(harness, "speaker")
        logged_in(harness, speaker, "SpeakerAcct")
        speaker.send("JOIN #room")
        speaker.until("366")
        speaker.send("PRIVMSG #room :said before")
        rich = connect(harness, "rich", "server-time", "batch", "draft/event-playback", "extended-join", "account-tag")
        rich.send("JOIN #room")
        rich.until("366")
        replayed = batch(rich)
        assert [(m.command, m.params, m.tags.get("account")) for m in replayed] == [
            ("JOIN", ("#room", "SpeakerAcct", "Real speaker"), "SpeakerAcct"),
            ("PRIVMSG", ("#room", "said before"), "SpeakerAcct"),
        ]
        lean = connect(harness, "lean", "server-time", "batch", "draft/event-playback")
        lean.send("JOIN #room")
        lean.until("366")
        replayed = batch(lean)
        assert [(m.command, m.params, "account" in m.tags) for m in replayed[:2]] == [
            ("JOIN", ("#room",), False),
            ("PRIVMSG", ("#room", "said before"), False),
        ]


def test_account_conversations_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    def harness() -> HubHarness:
        store = SqliteStore(str(tmp_path))
        return HubHarness(history=History(store), accounts=SqliteAccountStore(store))

    with harness() as first:
        for name in ("AliceAcct", "BobAcct"):
            assert first.hub.accounts.store is not None
            first.hub.accounts.store.create_account(name.lower(), record(name))
        converse(first)
    with harness() as second:
        bob = connect(second, "bob", *HISTORY_CAPS, "account-tag")
        logged_in(second, bob, "BobAcct")
        bob.send("CHATHISTORY LATEST AliceAcct * 10")  # alice is not connected: her account's name
        assert [(m.params[-1], m.tags.get("account")) for m in batch(bob)] == [
            ("hi bob", "AliceAcct"),
            ("hi alice", "BobAcct"),
        ]
        assert targets(bob) == ["AliceAcct"]


def test_a_kept_private_tagmsg_is_read_back_with_event_playback_only() -> None:
    with HubHarness(history=History(None)) as harness:
        alice = connect(harness, "alice", *HISTORY_CAPS, "draft/event-playback", "echo-message")
        bob = connect(harness, "bob", *HISTORY_CAPS)
        logged_in(harness, alice, "AliceAcct")
        logged_in(harness, bob, "BobAcct")
        alice.send("@+draft/persist;+client-only-tag-test=success TAGMSG bob")
        msgid = alice.expect("TAGMSG").tags["msgid"]
        assert bob.expect("TAGMSG").tags["msgid"] == msgid
        alice.send("@+typing=active TAGMSG bob")  # not kept
        bob.expect("TAGMSG")
        alice.send("CHATHISTORY LATEST bob * 10")
        kept = batch(alice)
        assert [(m.command, m.params, m.tags["msgid"], m.tags.get("+client-only-tag-test")) for m in kept] == [
            ("TAGMSG", ("bob",), msgid, "success")
        ]
        assert texts(bob, "alice") == []  # bob has no event-playback: nothing to show
        assert targets(alice) == []  # a TAGMSG is no message: it names no target
