"""REDACT (IRCv3 draft/message-redaction): who may take a message back, who is told, and that it
leaves the history — on the hub harness, over both databases, and across two nodes (both
backends)."""

from __future__ import annotations

from chatd.core.accounts import log_in
from chatd.core.event import Delivery
from chatd.history import History
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcClient, RedisServer
from tests.postgres import Database
from tests.test_account_ircv3 import record
from tests.test_cluster import across, cluster_node, expect_from
from tests.test_ircv3 import capable

CAPS = ("message-tags", "echo-message", "draft/message-redaction")


def sent(client: IrcClient | HubClient, line: str) -> str:
    """Send ``line`` (the client has echo-message) and return the msgid of its echo."""
    client.send(line)
    echo = client.expect("PRIVMSG", "NOTICE", "TAGMSG")
    return echo.tags["msgid"]


def fail(client: IrcClient | HubClient) -> tuple[str, ...]:
    message: Message = client.expect("FAIL")
    assert message.params[0] == "REDACT"
    return message.params[1:-1]


def history_texts(client: IrcClient | HubClient, target: str) -> list[str]:
    client.send(f"CHATHISTORY LATEST {target} * 10")
    client.expect("BATCH")
    return [m.params[1] for m in client.until("BATCH") if m.command == "PRIVMSG"]


def test_a_sender_takes_a_message_back_and_it_leaves_the_history() -> None:
    harness = HubHarness(history=History(None))
    alice = capable(harness, "alice", *CAPS, "batch", "draft/chathistory")
    bob = capable(harness, "bob", *CAPS)
    carol = harness.client("carol")  # without the capability: told nothing
    for client in (alice, bob, carol):
        client.send("JOIN #c")
        client.until("366")
    for client in (alice, bob, carol):
        client.sync()
    kept = sent(alice, "PRIVMSG #c :keep this")
    oops = sent(alice, "PRIVMSG #c :oops")
    alice.send(f"REDACT #c {oops} :typo")
    echo = alice.expect("REDACT")
    assert echo.params == ("#c", oops, "typo") and echo.source.startswith("alice!") and "msgid" in echo.tags
    told = bob.expect("REDACT")
    assert told.params == ("#c", oops, "typo") and told.tags["msgid"] == echo.tags["msgid"]
    assert [m.command for m in carol.sync()] == ["PRIVMSG", "PRIVMSG"]
    assert history_texts(alice, "#c") == ["keep this"]
    bob.send(f"REDACT #c {kept}")  # not his, and he is no operator
    assert fail(bob) == ("REDACT_FORBIDDEN", "#c", kept)
    assert history_texts(alice, "#c") == ["keep this"]


def test_an_operator_removes_anyone_s_message_and_errors_name_the_problem() -> None:
    harness = HubHarness(history=History(None))
    chanop = capable(harness, "chanop", *CAPS)
    spammer = capable(harness, "spammer", *CAPS)
    for client in (chanop, spammer):
        client.send("JOIN #c")
        client.until("366")
    chanop.sync()
    spam = sent(spammer, "PRIVMSG #c :buy now")
    chanop.expect("PRIVMSG")
    chanop.send(f"REDACT #c {spam} :spam")
    assert chanop.expect("REDACT").params == ("#c", spam, "spam")
    assert spammer.expect("REDACT").params == ("#c", spam, "spam")
    chanop.send("REDACT #c made-up-id")
    assert fail(chanop) == ("UNKNOWN_MSGID", "#c", "made-up-id")
    chanop.send(f"REDACT #c {spam}")  # gone already
    assert fail(chanop) == ("UNKNOWN_MSGID", "#c", spam)
    chanop.send(f"REDACT #elsewhere {spam}")
    assert fail(chanop) == ("INVALID_TARGET", "#elsewhere")
    chanop.send(f"REDACT nobody {spam}")
    assert fail(chanop) == ("INVALID_TARGET", "nobody")


def test_a_private_message_is_taken_back_by_its_sender_only() -> None:
    harness = HubHarness(history=History(None))
    alice = capable(harness, "alice", *CAPS, "batch", "draft/chathistory")
    bob = capable(harness, "bob", *CAPS)
    for client, account in ((alice, "alice"), (bob, "bob")):
        log_in(harness.hub, client.connection, record(account))
        client.until("900")
    psst = sent(alice, "PRIVMSG bob :psst")
    bob.expect("PRIVMSG")
    bob.send(f"REDACT alice {psst}")
    assert fail(bob) == ("REDACT_FORBIDDEN", "alice", psst)
    alice.send(f"REDACT bob {psst}")
    assert alice.expect("REDACT").params == ("bob", psst)
    assert bob.expect("REDACT").params == ("bob", psst)
    assert history_texts(alice, "bob") == []


def test_without_history_nothing_can_be_redacted() -> None:
    harness = HubHarness()
    alice = capable(harness, "alice", *CAPS)
    alice.send("JOIN #c")
    alice.until("366")
    msgid = sent(alice, "PRIVMSG #c :said")
    alice.send(f"REDACT #c {msgid}")
    assert fail(alice) == ("UNKNOWN_MSGID", "#c", msgid)


def test_a_redacted_message_is_gone_from_the_database(database: Database) -> None:
    history = History(database.store())
    for text, msgid, when in (("kept", "id-kept", 10.0), ("x", "id-x", 11.0)):
        history.record("#c", Delivery(f":a!u@h PRIVMSG #c :{text}", None, msgid, when))
    history.redact("#c", "id-x")
    history.close()
    history = History(database.store())
    try:
        assert history.entry("#c", "id-x") is None and history.entry("#c", "id-kept") is not None
        assert [entry.msgid for entry in history.recent("#c", 10)] == ["id-kept"]
    finally:
        history.close()


def test_a_redaction_reaches_the_other_node_and_its_history(backend: str, redis: RedisServer) -> None:
    with (
        cluster_node(backend, redis, "a", history=History(None), history_private=True) as a,
        cluster_node(backend, redis, "b", history=History(None), history_private=True) as b,
    ):
        alice, bob = across(a, b)
        for client in (alice, bob):
            client.send(f"CAP REQ :{' '.join((*CAPS, 'batch', 'draft/chathistory'))}")
            client.expect("CAP")
        oops = sent(alice, "PRIVMSG #x :oops")
        expect_from(bob, "PRIVMSG", "alice")
        alice.send(f"REDACT #x {oops}")
        assert expect_from(bob, "REDACT", "alice").params == ("#x", oops)
        assert history_texts(bob, "#x") == []  # node b forgot it too
        psst = sent(alice, "PRIVMSG bob :psst")
        expect_from(bob, "PRIVMSG", "alice")
        alice.send(f"REDACT bob {psst} :sorry")
        assert expect_from(bob, "REDACT", "alice").params == ("bob", psst, "sorry")
        assert history_texts(bob, "alice") == []
