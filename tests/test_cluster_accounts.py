"""Accounts across a network: two nodes on one real redis-server, sharing one SQLite file
(as ``--workers`` nodes do), over both backends.

What crosses: a login or logout on one node reaches the other node's peers with
account-notify (``ACCOUNT name`` / ``ACCOUNT *``); a user logged in before it registered
arrives on the other node already logged in; an account registered or dropped on one node
is (or is no longer) protected on the other (``hub.accounts.names``), and a drop logs out
that account's users everywhere.

Logins before registration use SASL PLAIN. Until the NickServ commands are in, logging in
after registration, registering and dropping go through the core's own calls on the node's
thread (``on_hub``), the way those commands end: the password is checked by
``check_password`` against the shared file, the account created by ``create_account`` in
it, then ``log_in`` / ``account_registered`` / ``account_dropped``.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from chatd.core.accounts import Outcome, check_password, log_in, log_out, make_record
from chatd.core.client import Client
from chatd.core.hub import Hub
from chatd.core.network import account_dropped, account_registered
from chatd.history.account_store import SqliteAccountStore
from chatd.history.store import SqliteStore
from chatd.protocol.casemap import irc_lower
from tests.helpers import DEADLINE_S, REDIS_SERVER, IrcClient, RedisServer, RunningServer, wait_until
from tests.test_cluster import cluster_node, expect_from, joined, linked, node_of, sees, sees_member

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason="redis-server is not installed (apt-get install redis-server)"
)

T = TypeVar("T")


@pytest.fixture
def data_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield directory


def shared_store(data_dir: str) -> SqliteAccountStore:
    """One node's view of the accounts in ``data_dir``: each node opens the file itself."""
    return SqliteAccountStore(SqliteStore(data_dir))


def on_hub(server: RunningServer, work: Callable[[Hub], T]) -> T:
    """``work(hub)`` run as the backend runs the network's callbacks (its ``post``), and its result."""
    done = threading.Event()
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work(server.server.hub))  # type: ignore[attr-defined]
        except BaseException as error:  # handed back to the test's thread
            errors.append(error)
        finally:
            done.set()

    server.server.post(run)  # type: ignore[attr-defined]
    assert done.wait(DEADLINE_S), "the hub did not run the work"
    if errors:
        raise errors[0]
    return box[0]


def local(hub: Hub, nick: str) -> Client:
    client = hub.clients_by_key[irc_lower(nick)]
    assert client.node is None
    return client


def finish(server: RunningServer, start: Callable[[Hub, Callable[[T], None]], None]) -> T:
    """Start work on the hub that ends in a callback (an offload), and wait for what it gave."""
    done = threading.Event()
    box: list[T] = []

    def then(result: T) -> None:
        box.append(result)
        done.set()

    on_hub(server, lambda hub: start(hub, then))
    assert done.wait(DEADLINE_S), "the hub's work did not finish"
    return box[0]


def register(server: RunningServer, name: str, password: str) -> bool:
    """What REGISTER does on ``server``: create the account in the store, off the loop, then tell
    the network."""

    def start(hub: Hub, then: Callable[[bool], None]) -> None:
        store = hub.accounts.store
        assert store is not None

        def created(ok: bool) -> None:
            if ok:
                account_registered(hub, name)
            then(ok)

        hub.offload(lambda: store.create_account(irc_lower(name), make_record(name, password)), created)

    return finish(server, start)


def identify(server: RunningServer, nick: str, account: str, password: str) -> str:
    """What NickServ IDENTIFY (or SASL PLAIN) does for ``nick`` on ``server``: the password checked
    against the store off the loop, then ``log_in``; returns why it failed, or ""."""

    def start(hub: Hub, then: Callable[[str], None]) -> None:
        client = local(hub, nick)

        def checked(outcome: Outcome) -> None:
            if outcome.record is not None:
                log_in(hub, client, outcome.record)
            then(outcome.reason)

        check_password(hub, client, account, password, checked)

    return finish(server, start)


def drop(server: RunningServer, name: str) -> None:
    """What NickServ DROP does: the account leaves the store, then the network hears of it."""

    def start(hub: Hub, then: Callable[[None], None]) -> None:
        store = hub.accounts.store
        assert store is not None

        def dropped(_: None) -> None:
            account_dropped(hub, name)
            then(None)

        hub.offload(lambda: store.drop_account(irc_lower(name)), dropped)

    finish(server, start)


def protected(server: RunningServer, name: str) -> bool:
    return on_hub(server, lambda hub: irc_lower(name) in hub.accounts.names)


def capable(server: RunningServer, nick: str, *caps: str) -> IrcClient:
    client = server.client()
    client.send(f"CAP REQ :{' '.join(caps)}")
    assert client.expect("CAP").params[1] == "ACK"
    client.send("CAP END")
    client.register(nick)
    return client


def sasl_client(server: RunningServer, nick: str, account: str, password: str) -> IrcClient:
    """A client that has sent NICK, USER and SASL PLAIN for ``account``, and not CAP END yet."""
    client = server.client()
    client.send("CAP REQ :sasl")
    assert client.expect("CAP").params[1] == "ACK"
    client.send(f"NICK {nick}")
    client.send("USER u 0 * :u")
    client.send("AUTHENTICATE PLAIN")
    assert client.expect("AUTHENTICATE").params == ("+",)
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{password}".encode()).decode())
    return client


def test_login_and_logout_reach_account_notify_peers_on_another_node(
    backend: str, redis: RedisServer, data_dir: str
) -> None:
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir)) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir)) as b,
    ):
        linked(a, b)
        assert register(a, "Alice", "sesame")
        alice = a.client("alice")
        bob, dave = capable(b, "bob", "account-notify"), b.client("dave")
        for client in (alice, bob, dave):
            joined(client, "#x")
        sees_member(bob, "#x", "alice")
        sees_member(alice, "#x", "bob")
        # The account was created through node a's handle on the file; node b reads it there.
        assert identify(a, "alice", "alice", "wrong") == "Invalid account name or password"
        assert identify(a, "alice", "alice", "sesame") == ""
        assert alice.expect("900").params[2] == "Alice"
        account = expect_from(bob, "ACCOUNT", "alice")
        assert account.params == ("Alice",)
        assert account.source.startswith("alice!")
        log_out_alice = on_hub(a, lambda hub: log_out(hub, local(hub, "alice")))
        assert log_out_alice is None
        alice.expect("901")
        assert expect_from(bob, "ACCOUNT", "alice").params == ("*",)
        # dave did not ask for account-notify: nothing of it reaches him.
        assert not [m for m in dave.sync() if m.command == "ACCOUNT"]


def test_sasl_on_one_node_to_an_account_made_on_another(backend: str, redis: RedisServer, data_dir: str) -> None:
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir)) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir)) as b,
    ):
        linked(a, b)
        assert register(a, "carol", "hunter2")
        assert not register(b, "CAROL", "other")  # one name, one account, whichever node asks
        wrong = sasl_client(b, "mallory", "carol", "guess")
        assert wrong.expect("904").params[-1] == "SASL authentication failed: Invalid account name or password"
        carol = sasl_client(b, "carol", "carol", "hunter2")
        assert carol.expect("900").params[2] == "carol"
        carol.expect("903")


def test_a_user_logged_in_before_registering_arrives_logged_in(backend: str, redis: RedisServer, data_dir: str) -> None:
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir)) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir)) as b,
    ):
        linked(a, b)
        assert register(a, "frank", "pw-frank")
        grace = capable(b, "grace", "account-notify")
        frank = sasl_client(a, "frank", "frank", "pw-frank")
        frank.expect("903")
        frank.send("CAP END")
        frank.until("376", "422")
        sees(grace, "frank")
        # grace heard no ACCOUNT (she had no channel with frank), but node b knows frank's
        # account: his logout reaches her once they share a channel.
        joined(frank, "#z")
        joined(grace, "#z")
        sees_member(frank, "#z", "grace")
        assert not [m for m in grace.sync() if m.command == "ACCOUNT"]
        on_hub(a, lambda hub: log_out(hub, local(hub, "frank")))
        assert expect_from(grace, "ACCOUNT", "frank").params == ("*",)


def test_registration_and_drop_cross_nodes(backend: str, redis: RedisServer, data_dir: str) -> None:
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir)) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir)) as b,
    ):
        linked(a, b)
        assert not protected(b, "heidi")
        assert register(a, "Heidi", "pw-heidi")
        wait_until(lambda: protected(b, "HEIDI"), "node b to protect heidi")
        # Two sessions of one account, one per node, and a watcher on each node.
        heidi_a, heidi_b = a.client("heidi"), b.client("heidi2")
        ivan, judy = capable(a, "ivan", "account-notify"), capable(b, "judy", "account-notify")
        for client in (heidi_a, heidi_b, ivan, judy):
            joined(client, "#w")
        sees_member(ivan, "#w", "heidi2")
        sees_member(judy, "#w", "heidi")
        assert identify(a, "heidi", "heidi", "pw-heidi") == ""
        assert identify(b, "heidi2", "Heidi", "pw-heidi") == ""
        for watcher in (ivan, judy):
            seen = {expect_from(watcher, "ACCOUNT", nick).params for nick in ("heidi", "heidi2")}
            assert seen == {("Heidi",)}
        drop(a, "heidi")
        heidi_a.expect("901")
        heidi_b.expect("901")  # node b logged out its own session on hearing of the drop
        for watcher in (ivan, judy):
            for nick in ("heidi", "heidi2"):
                assert expect_from(watcher, "ACCOUNT", nick).params == ("*",)
        wait_until(lambda: not protected(b, "heidi"), "node b to free heidi")
        assert not protected(a, "heidi")


def test_registrations_made_while_the_link_was_down_are_protected_after(
    backend: str, redis: RedisServer, data_dir: str
) -> None:
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir)) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir)) as b,
    ):
        linked(a, b)
        assert register(a, "olivia", "pw-olivia")
        wait_until(lambda: protected(b, "olivia"), "node b to protect olivia")
        hellos = {server: node_of(server).hello_at for server in (a, b)}
        redis.kill()
        wait_until(lambda: not node_of(a).up and not node_of(b).up, "both nodes to notice the outage")
        assert register(b, "niaj", "pw-niaj")  # its event is lost: no Redis to carry it
        drop(b, "olivia")
        assert protected(a, "olivia") and not protected(a, "niaj")
        redis.start()
        for server in (a, b):
            node = node_of(server)
            wait_until(lambda node=node, server=server: node.hello_at > hellos[server], "a HELLO after the restart")
        wait_until(lambda: protected(a, "niaj") and not protected(a, "olivia"), "node a to re-read the names")


def names_of(client: IrcClient, channel: str) -> list[str]:
    client.send(f"NAMES {channel}")
    return " ".join(m.params[-1] for m in client.until("366") if m.command == "353").split()


def registration_on(server: RunningServer, channel: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    def look(hub: Hub) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        found = hub.find_channel(channel)
        registration = found.registration if found is not None else None
        return None if registration is None else (registration.founder, registration.access)

    return on_hub(server, look)


def test_a_channel_registered_on_one_node_is_registered_on_every_node(
    backend: str, redis: RedisServer, data_dir: str
) -> None:
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir)) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir)) as b,
    ):
        linked(a, b)
        assert register(a, "Fiona", "pw-fiona")
        assert register(b, "jack", "pw-jack")
        fiona = sasl_client(a, "fiona", "fiona", "pw-fiona")
        fiona.expect("903")
        fiona.send("CAP END")
        fiona.until("376", "422")
        hal = b.client("hal")
        joined(fiona, "#reg")
        joined(hal, "#reg")
        sees_member(fiona, "#reg", "hal")
        fiona.send("PRIVMSG ChanServ :REGISTER #reg")
        assert "registered" in fiona.expect("NOTICE").params[-1]
        mode = expect_from(hal, "MODE", "ChanServ")  # node b registered it too, and says so
        assert mode.params == ("#reg", "+r")
        assert registration_on(b, "#reg") == ("Fiona", ())
        # The founder's privileges by account, on the node she joins on.
        fiona_b = sasl_client(b, "fiona_b", "Fiona", "pw-fiona")
        fiona_b.expect("903")
        fiona_b.send("CAP END")
        fiona_b.until("376", "422")
        joined(fiona_b, "#reg")
        assert "@fiona_b" in names_of(fiona_b, "#reg")
        fiona.send("PRIVMSG ChanServ :AMODE #reg +v jack")  # jack's account was made on node b
        assert "now receives" in fiona.expect("NOTICE").params[-1]
        wait_until(lambda: registration_on(b, "#reg") == ("Fiona", (("jack", "v"),)), "node b to take the AMODE")
        jack = sasl_client(b, "jack", "jack", "pw-jack")
        jack.expect("903")
        jack.send("CAP END")
        jack.until("376", "422")
        joined(jack, "#reg")
        stranger = b.client("ivan")
        joined(stranger, "#reg")
        names = names_of(stranger, "#reg")
        assert "+jack" in names and "ivan" in names and "@fiona_b" in names
        fiona.send("PRIVMSG ChanServ :DROP #reg")
        assert "no longer registered" in fiona.expect("NOTICE").params[-1]
        assert expect_from(hal, "MODE", "ChanServ").params == ("#reg", "-r")
        assert registration_on(b, "#reg") is None
