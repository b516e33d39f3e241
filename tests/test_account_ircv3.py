"""IRCv3 around accounts: account-tag, account-notify (and extended-monitor), extended-join,
WHOIS 330 and the WHOX ``a`` field.

Users are logged in with ``chatd.core.accounts.log_in``, the call every login path (SASL,
PASS, NickServ) ends in, so these tests hold whichever path a user took.
"""

from __future__ import annotations

from chatd.core.accounts import log_in, log_out
from chatd.core.ports import AccountRecord
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.helpers import RunningServer, running_server


def record(name: str) -> AccountRecord:
    """An account record as the store would give it (log_in reads only its name)."""
    return AccountRecord(name, "unused", b"", b"", b"", 0)


def connect(harness: HubHarness, nick: str, *caps: str) -> HubClient:
    """A registered client that negotiated ``caps``."""
    client = harness.client()
    if caps:
        client.send(f"CAP REQ :{' '.join(caps)}")
    client.nick = nick
    client.send(f"NICK {nick}")
    client.send(f"USER u 0 * :Real {nick}")
    if caps:
        client.send("CAP END")
    client.until("376", "422")
    return client


def logged_in(harness: HubHarness, client: HubClient, account: str) -> None:
    log_in(harness.hub, client.connection, record(account))
    client.until("900")


def next_of(client: HubClient, command: str) -> Message:
    """The next ``command`` the client got, all else before it skipped."""
    return client.expect(command)


def test_account_tag_on_messages_only_for_clients_that_asked() -> None:
    with HubHarness() as harness:
        tagged = connect(harness, "tagged", "account-tag")
        untagged = connect(harness, "untagged")
        both = connect(harness, "both", "account-tag", "server-time", "message-tags")
        sender = connect(harness, "sender")
        for client in (tagged, untagged, both, sender):
            client.send("JOIN #room")
            client.until("366")
        sender.send("PRIVMSG #room :anonymous")
        assert "account" not in next_of(tagged, "PRIVMSG").tags
        logged_in(harness, sender, "Alice")
        sender.send("PRIVMSG #room :hello")
        sender.send("NOTICE #room :note")
        sender.send("PRIVMSG tagged :private")
        for command, text in (("PRIVMSG", "hello"), ("NOTICE", "note"), ("PRIVMSG", "private")):
            message = next_of(tagged, command)
            assert (message.params[-1], message.tags) == (text, {"account": "Alice"})
        assert next_of(both, "PRIVMSG").tags.keys() == {"time", "msgid"}  # "anonymous"
        hello = next_of(both, "PRIVMSG")
        assert (hello.params[-1], hello.tags["account"]) == ("hello", "Alice")
        assert hello.tags.keys() == {"account", "time", "msgid"}
        untagged.expect("PRIVMSG")
        untagged.expect("PRIVMSG")
        assert untagged.lines[-1] == ":sender!~u@127.0.0.1 PRIVMSG #room :hello"  # the very bytes as untagged


def test_account_tag_on_tagmsg_invite_part_and_nick() -> None:
    with HubHarness() as harness:
        watcher = connect(harness, "watcher", "account-tag", "message-tags")
        sender = connect(harness, "sender")
        logged_in(harness, sender, "alice")
        for client in (watcher, sender):
            client.send("JOIN #room")
            client.until("366")
        sender.send("@+typing=active TAGMSG #room")
        tags = next_of(watcher, "TAGMSG").tags
        assert (tags["account"], tags["+typing"]) == ("alice", "active")
        sender.send("JOIN #other")
        sender.until("366")
        sender.send("INVITE watcher #other")
        assert next_of(watcher, "INVITE").tags["account"] == "alice"
        sender.send("NICK renamed")
        assert next_of(watcher, "NICK").tags["account"] == "alice"
        sender.send("PART #room :bye")
        assert next_of(watcher, "PART").tags["account"] == "alice"


def test_account_notify_on_login_and_logout_to_peers_only_with_the_cap() -> None:
    with HubHarness() as harness:
        notified = connect(harness, "notified", "account-notify", "account-tag")
        plain = connect(harness, "plainirc")
        user = connect(harness, "user")
        for client in (notified, plain, user):
            client.send("JOIN #room")
            client.until("366")
        logged_in(harness, user, "bob")
        account = next_of(notified, "ACCOUNT")
        assert (account.source, account.params, account.tags) == ("user!~u@127.0.0.1", ("bob",), {})
        log_out(harness.hub, user.connection)
        user.until("901")
        account = next_of(notified, "ACCOUNT")
        # The account tag names the account the user was logged in to (the spec's example).
        assert (account.params, account.tags) == (("*",), {"account": "bob"})
        assert not [m for m in plain.sync() if m.command == "ACCOUNT"]


def test_extended_monitor_tells_watchers_of_account_changes() -> None:
    with HubHarness() as harness:
        extended = connect(harness, "extended", "account-notify", "extended-monitor")
        monitor_only = connect(harness, "monitoronly", "account-notify")
        user = connect(harness, "user")
        for client in (extended, monitor_only):
            client.send("MONITOR + user")
            client.until("730")
        logged_in(harness, user, "carol")
        assert next_of(extended, "ACCOUNT").params == ("carol",)
        log_out(harness.hub, user.connection)
        assert next_of(extended, "ACCOUNT").params == ("*",)
        assert not [m for m in monitor_only.sync() if m.command == "ACCOUNT"]


def test_extended_join_with_and_without_an_account() -> None:
    with HubHarness() as harness:
        extended = connect(harness, "extended", "extended-join")
        short = connect(harness, "short")
        for client in (extended, short):
            client.send("JOIN #room")
            client.until("366")
        assert next_of(extended, "JOIN").params == ("#room", "*", "Real short")
        anonymous = connect(harness, "anon")
        anonymous.send("JOIN #room")
        assert next_of(extended, "JOIN").params == ("#room", "*", "Real anon")
        assert next_of(short, "JOIN").params == ("#room",)
        member = connect(harness, "member")
        logged_in(harness, member, "Dave")
        member.send("JOIN #room")
        assert next_of(extended, "JOIN").params == ("#room", "Dave", "Real member")
        assert next_of(short, "JOIN").params == ("#room",)
        extended.send("JOIN #own")
        assert next_of(extended, "JOIN").params == ("#own", "*", "Real extended")  # its own JOIN too


def test_whois_330_and_whox_account_field() -> None:
    with HubHarness() as harness:
        asker = connect(harness, "asker")
        user = connect(harness, "user")
        asker.send("WHOIS user")
        assert "330" not in [m.command for m in asker.until("318")]
        logged_in(harness, user, "Erin")
        asker.send("WHOIS user")
        replies = {m.command: m.params for m in asker.until("318")}
        assert replies["330"] == ("asker", "user", "Erin", "is logged in as")
        asker.send("WHO user %nat,7")
        assert asker.expect("354").params == ("asker", "7", "user", "Erin")
        asker.send("WHO asker %na")
        assert asker.expect("354").params == ("asker", "asker", "0")


def log_in_on_server(server: RunningServer, nick: str, account: str) -> None:
    """Log ``nick`` in on the server's own thread (as a login path's answer runs there)."""
    hub = server.server.hub  # type: ignore[attr-defined]
    hub.offload(lambda: None, lambda _: log_in(hub, hub.find_client(nick), record(account)))


def test_tags_and_extended_join_beside_the_backends_group_fanout(backend: str) -> None:
    """Members without the caps take the backend's group path (selectors); those with them get
    their own forms, and the group's bytes stay the plain ones."""
    with running_server(backend) as server:
        plain = [server.client(f"plain{i}") for i in range(4)]
        tagged = server.client()
        for line in ("CAP REQ :account-tag extended-join", "NICK tagged", "USER u 0 * :Real tagged", "CAP END"):
            tagged.send(line)
        tagged.until("376", "422")
        for client in (*plain, tagged):
            client.send("JOIN #group")
            client.until("366")
        sender = server.client("sender")
        log_in_on_server(server, "sender", "Frank")
        sender.expect("900")
        sender.send("JOIN #group")
        sender.until("366")
        assert tagged.expect("JOIN").params == ("#group", "Frank", "Real sender")
        sender.send("PRIVMSG #group :to all")
        message = tagged.expect("PRIVMSG")
        assert (message.params, message.tags) == (("#group", "to all"), {"account": "Frank"})
        for client in plain:
            assert client.expect("JOIN").params == ("#group",)
            client.expect("PRIVMSG")
            assert client.lines[-1] == ":sender!~u@127.0.0.1 PRIVMSG #group :to all"
