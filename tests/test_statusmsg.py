"""STATUSMSG (``STATUSMSG=@+``): ``PRIVMSG @#chan`` reaches the channel's operators only, ``+#chan``
its voiced members and operators, and neither is kept in the history every member may read. The
hub harness covers the rules; a two-node network (both backends) shows remote members are held to
the same."""

from __future__ import annotations

from chatd.history import History
from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcClient, RedisServer
from tests.test_cluster import across, cluster_node, expect_from, joined
from tests.test_ircv3 import capable


def texts(client: IrcClient | HubClient) -> list[tuple[str, ...]]:
    """The PRIVMSG and NOTICE params the client got until now."""
    return [m.params for m in client.sync() if m.command in ("PRIVMSG", "NOTICE")]


def test_status_messages_reach_only_the_members_with_that_status() -> None:
    harness = HubHarness(history=History(None))
    chanop = harness.client("chanop")
    voice = harness.client("voice")
    joe = harness.client("joe")
    schmoe = capable(harness, "schmoe", "echo-message")
    for client in (chanop, voice, joe, schmoe):
        client.send("JOIN #c")
        client.until("366")
    chanop.send("MODE #c +v voice")
    chanop.expect("MODE")
    for client in (chanop, voice, joe, schmoe):
        client.sync()
    schmoe.send("PRIVMSG @#c :for the operators")
    assert schmoe.expect("PRIVMSG").params == ("@#c", "for the operators")  # the echo, with its target
    schmoe.send("NOTICE +#c :for the voiced")
    chanop.send("PRIVMSG +#c :from the op")
    assert texts(chanop) == [("@#c", "for the operators"), ("+#c", "for the voiced")]
    assert texts(voice) == [("+#c", "for the voiced"), ("+#c", "from the op")]
    assert texts(joe) == []
    chanop.send("CAP REQ :batch draft/chathistory")
    chanop.expect("CAP")
    chanop.send("CHATHISTORY LATEST #c * 10")
    chanop.expect("BATCH")
    assert [m for m in chanop.until("BATCH") if m.command in ("PRIVMSG", "NOTICE")] == []


def test_a_status_message_is_held_to_the_channel_rules() -> None:
    harness = HubHarness()
    chanop, quiet = harness.client("chanop"), harness.client("quiet")
    for client in (chanop, quiet):
        client.send("JOIN #c")
        client.until("366")
    chanop.send("MODE #c +m")
    chanop.expect("MODE")
    quiet.sync()
    quiet.send("PRIVMSG @#c :let me speak")
    assert quiet.expect(n.ERR_CANNOTSENDTOCHAN).params[1] == "@#c"
    quiet.send("PRIVMSG @#nowhere :hello")
    assert quiet.expect(n.ERR_NOSUCHCHANNEL).params[1] == "@#nowhere"
    assert texts(chanop) == []
    quiet.send("VERSION")
    assert "STATUSMSG=@+" in [token for m in quiet.sync() if m.command == n.RPL_ISUPPORT for token in m.params]


def test_status_messages_across_nodes(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        alice, bob = across(a, b)
        dave = b.client("dave")
        joined(dave, "#x")
        expect_from(alice, "JOIN", "dave")
        alice.send("MODE #x +o bob")
        expect_from(bob, "MODE", "alice")
        expect_from(dave, "MODE", "alice")
        alice.send("PRIVMSG @#x :ops only")
        alice.send("PRIVMSG #x :everyone")
        assert bob.expect("PRIVMSG").params == ("@#x", "ops only")
        assert dave.expect("PRIVMSG").params == ("#x", "everyone")  # the one before never came
        dave.send("PRIVMSG @#x :to the ops")
        assert expect_from(alice, "PRIVMSG", "dave").params == ("@#x", "to the ops")
        assert expect_from(bob, "PRIVMSG", "dave").params == ("@#x", "to the ops")
