"""IRCv3 bot-mode: a user marks itself a bot with ``MODE <nick> +B``; WHOIS says so (335), WHO
flags it, and what it sends carries the valueless ``bot`` tag to message-tags clients. The hub
harness covers the rules; a two-node network (both backends) shows other nodes see the same."""

from __future__ import annotations

from chatd.history import History
from chatd.protocol import numerics as n
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcClient, RedisServer, wait_until
from tests.test_cluster import cluster_node, expect_from, joined, linked, sees_member
from tests.test_ircv3 import capable


def made_bot(client: IrcClient | HubClient) -> None:
    client.send(f"MODE {client.nick} +B")
    assert client.expect("MODE").params == (client.nick, "+B")


def welcomed(harness: HubHarness, nick: str) -> tuple[HubClient, Message, list[str]]:
    """A client registered as ``nick``, with the 004 user modes and the ISUPPORT tokens it was told."""
    client = harness.client()
    client.send(f"NICK {nick}")
    client.send("USER u 0 * :Real")
    welcome = client.until("376", "422")
    client.nick = nick
    myinfo = next(m for m in welcome if m.command == n.RPL_MYINFO)
    return client, myinfo, [token for m in welcome if m.command == n.RPL_ISUPPORT for token in m.params]


def test_the_bot_mode_is_advertised_and_only_a_user_sets_it_on_itself() -> None:
    harness = HubHarness()
    bot, myinfo, tokens = welcomed(harness, "botty")
    assert "B" in myinfo.params[3] and "BOT=B" in tokens
    human = harness.client("human")
    human.send("MODE botty +B")
    assert human.expect(n.ERR_USERSDONTMATCH)
    made_bot(bot)
    bot.send("MODE botty")
    assert bot.expect(n.RPL_UMODEIS).params[1] == "+B"
    bot.send("MODE botty -B")
    assert bot.expect("MODE").params == ("botty", "-B")
    human.send("WHOIS botty")
    assert n.RPL_WHOISBOT not in [m.command for m in human.until(n.RPL_ENDOFWHOIS)]


def test_whois_and_who_show_a_bot_and_not_a_human() -> None:
    harness = HubHarness()
    bot, human = harness.client("botty"), harness.client("human")
    made_bot(bot)
    for client in (bot, human):
        client.send("JOIN #c")
        client.until("366")
    human.send("WHOIS botty")
    whois = {m.command: m.params for m in human.until(n.RPL_ENDOFWHOIS)}
    assert whois[n.RPL_WHOISBOT][:2] == ("human", "botty")
    human.send("WHOIS human")
    assert n.RPL_WHOISBOT not in [m.command for m in human.until(n.RPL_ENDOFWHOIS)]
    human.send("WHO #c")
    flags = {m.params[5]: m.params[6] for m in human.until(n.RPL_ENDOFWHO) if m.command == n.RPL_WHOREPLY}
    assert flags == {"botty": "HB@", "human": "H"}
    human.send("WHO #c %nf")
    whox = {m.params[1]: m.params[2] for m in human.until(n.RPL_ENDOFWHO) if m.command == n.RPL_WHOSPCRPL}
    assert whox == {"botty": "HB@", "human": "H"}


def bot_tag(message: Message) -> str | None:
    """The bot tag's value as received ("" for the bare tag), None when absent."""
    return message.tags.get("bot")


def test_what_a_bot_sends_carries_the_bot_tag_to_message_tags_clients_only() -> None:
    harness = HubHarness(history=History(None))
    bot = capable(harness, "botty", "message-tags", "echo-message")
    tagged = capable(harness, "tagged", "message-tags")
    plain_irc = harness.client("untagged")
    made_bot(bot)
    for client in (bot, tagged, plain_irc):
        client.send("JOIN #c")
        client.until("366")
    for client in (bot, tagged, plain_irc):
        client.sync()
    bot.send("PRIVMSG #c :beep")  # the fast path's shape
    bot.send("@+draft/reply=x NOTICE #c :boop")  # the general path, with a client tag kept beside it
    bot.send("PRIVMSG tagged :psst")
    bot.send("@+typing=active TAGMSG #c")
    for received in (tagged.expect("PRIVMSG"), tagged.expect("NOTICE"), tagged.expect("PRIVMSG")):
        assert bot_tag(received) == "" and "msgid" in received.tags
    assert tagged.expect("TAGMSG").tags.get("+typing") == "active"
    echo = bot.expect("PRIVMSG")
    assert echo.params == ("#c", "beep") and bot_tag(echo) == ""
    got = [(m.tags, m.params) for m in plain_irc.sync() if m.command in ("PRIVMSG", "NOTICE")]
    assert got == [({}, ("#c", "beep")), ({}, ("#c", "boop"))]
    late = capable(harness, "late", "message-tags", "batch", "draft/chathistory")
    late.send("JOIN #c")
    late.until("366")
    late.sync()
    late.send("CHATHISTORY LATEST #c * 10")
    late.expect("BATCH")
    replayed = [m for m in late.until("BATCH") if m.command in ("PRIVMSG", "NOTICE")]
    assert [(bot_tag(m), m.params[1]) for m in replayed] == [("", "beep"), ("", "boop")]


def test_a_human_cannot_send_the_bot_tag() -> None:
    harness = HubHarness()
    human = capable(harness, "human", "message-tags")
    tagged = capable(harness, "tagged", "message-tags")
    for client in (human, tagged):
        client.send("JOIN #c")
        client.until("366")
    tagged.sync()
    human.send("@bot;+bot PRIVMSG #c :not a bot")
    received = tagged.expect("PRIVMSG")
    assert "bot" not in received.tags and received.tags.get("+bot") == ""


def test_a_bot_on_one_node_is_a_bot_on_the_other(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        bot = capable(a, "botty", "message-tags")
        made_bot(bot)
        joined(bot, "#x")
        human = capable(b, "human", "message-tags")
        sees_member(human, "#x", "botty")
        joined(human, "#x")
        expect_from(bot, "JOIN", "human")

        def flagged() -> bool:
            human.send("WHO botty")
            return [m.params[6] for m in human.until(n.RPL_ENDOFWHO) if m.command == n.RPL_WHOREPLY] == ["HB@"]

        wait_until(flagged, "node b to see botty's +B")
        human.send("WHOIS botty")
        assert n.RPL_WHOISBOT in [m.command for m in human.until(n.RPL_ENDOFWHOIS)]
        bot.send("PRIVMSG #x :beep")
        bot.send("PRIVMSG human :boop")
        assert [(bot_tag(m), m.params) for m in (human.expect("PRIVMSG"), human.expect("PRIVMSG"))] == [
            ("", ("#x", "beep")),
            ("", ("human", "boop")),
        ]
