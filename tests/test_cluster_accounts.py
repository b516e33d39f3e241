"""Accounts across a network: two nodes on one real redis-server, sharing one SQLite file
(as ``--workers`` nodes do), over both backends, through the real commands (REGISTER,
SASL PLAIN, NickServ IDENTIFY/GHOST/REGAIN/DROP, ChanServ).

What crosses: a login on one node reaches the other node's peers with account-notify
(``ACCOUNT name``), and a logout (a DROP) ``ACCOUNT *``, extended-monitor watchers too; a
user logged in before it registered arrives on the other node logged in (extended-join,
WHOIS 330, WHO %a); an account made through one node logs in on the other; an account
registered or dropped on one node is (or is no longer) protected on the other
(``hub.accounts.names``, read on the node's own thread), and a drop logs out that
account's sessions everywhere; GHOST/REGAIN reach a session on the other node; a channel
registered with ChanServ on one node is registered on every node; and what was
registered while Redis was down is known once it is back.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from chatd.core.hub import Hub
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


@contextmanager
def two_nodes(backend: str, redis: RedisServer, data_dir: str, **config: Any) -> Iterator[tuple[RunningServer, ...]]:
    """Nodes a and b on one Redis and one database file, linked; no enforcement unless asked
    (its NOTICEs would be in the way)."""
    config.setdefault("nick_enforcement", "optional")
    with (
        cluster_node(backend, redis, "a", accounts=shared_store(data_dir), flood_rate=0, **config) as a,
        cluster_node(backend, redis, "b", accounts=shared_store(data_dir), flood_rate=0, **config) as b,
    ):
        linked(a, b)
        yield a, b


@pytest.fixture
def nodes(backend: str, redis: RedisServer, data_dir: str) -> Iterator[tuple[RunningServer, ...]]:
    with two_nodes(backend, redis, data_dir) as pair:
        yield pair


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


def protected(server: RunningServer, name: str) -> bool:
    return on_hub(server, lambda hub: irc_lower(name) in hub.accounts.names)


def capable(server: RunningServer, nick: str, *caps: str) -> IrcClient:
    client = server.client()
    client.send(f"CAP REQ :{' '.join(caps)}")
    assert client.expect("CAP").params[1] == "ACK"
    client.send("CAP END")
    client.register(nick)
    return client


def registered(server: RunningServer, nick: str, password: str) -> IrcClient:
    """``nick`` connected to ``server`` and registered (so logged in to) the account of its nick."""
    client = server.client(nick)
    client.send(f"REGISTER {nick} * {password}")
    assert client.expect("REGISTER").params[0] == "SUCCESS"
    assert client.expect("900").params[2] == nick
    return client


def sasl_client(server: RunningServer, nick: str, account: str, password: str, *caps: str) -> IrcClient:
    """A client that has sent NICK, USER and SASL PLAIN for ``account``, and not CAP END yet."""
    client = server.client()
    client.send(f"CAP REQ :{' '.join(('sasl', *caps))}")
    assert client.expect("CAP").params[1] == "ACK"
    client.send(f"NICK {nick}")
    client.send("USER u 0 * :u")
    client.send("AUTHENTICATE PLAIN")
    assert client.expect("AUTHENTICATE").params == ("+",)
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{password}".encode()).decode())
    return client


def sasl_user(server: RunningServer, nick: str, account: str, password: str, *caps: str) -> IrcClient:
    """A client logged in with SASL before it registered, then registered."""
    client = sasl_client(server, nick, account, password, *caps)
    client.expect("903")
    client.send("CAP END")
    client.until("376", "422")
    client.nick = nick
    return client


def drop(client: IrcClient, password: str) -> None:
    """NickServ DROP of the account ``client`` is logged in to: 901, then NickServ says so."""
    client.send(f"PRIVMSG NickServ :DROP {password}")
    client.expect("901")
    assert "has been dropped" in expect_from(client, "NOTICE", "NickServ").params[-1]


def names_of(client: IrcClient, channel: str) -> list[str]:
    client.send(f"NAMES {channel}")
    return " ".join(m.params[-1] for m in client.until("366") if m.command == "353").split()


def registration_on(server: RunningServer, channel: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    def look(hub: Hub) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        found = hub.find_channel(channel)
        registration = found.registration if found is not None else None
        return None if registration is None else (registration.founder, registration.access)

    return on_hub(server, look)


def chanserv(client: IrcClient, text: str) -> str:
    client.send(f"PRIVMSG ChanServ :{text}")
    return expect_from(client, "NOTICE", "ChanServ").params[-1]


def test_login_and_drop_reach_account_notify_peers_on_another_node(nodes: tuple[RunningServer, ...]) -> None:
    a, b = nodes
    alice, dave = a.client("alice"), b.client("dave")
    bob = capable(b, "bob", "account-notify", "extended-join")
    for client in (bob, dave, alice):
        joined(client, "#x")
    assert expect_from(bob, "JOIN", "alice").params == ("#x", "*", "Real alice")  # not logged in
    sees_member(alice, "#x", "dave")
    alice.send("REGISTER alice * sesame")
    assert alice.expect("900").params[2] == "alice"
    account = expect_from(bob, "ACCOUNT", "alice")
    assert account.params == ("alice",)
    assert account.source.startswith("alice!")
    drop(alice, "sesame")
    assert expect_from(bob, "ACCOUNT", "alice").params == ("*",)
    # dave did not ask for account-notify: nothing of it reaches him.
    assert not [m for m in dave.sync() if m.command == "ACCOUNT"]


def test_an_account_made_through_one_node_logs_in_on_the_other(nodes: tuple[RunningServer, ...]) -> None:
    a, b = nodes
    registered(a, "carol", "hunter2").send("QUIT")
    erin = capable(a, "erin", "account-notify")
    sees(erin, "carol", present=False)
    twin = b.client("carol")
    twin.send("REGISTER carol * other-pw")  # one name, one account, whichever node asks
    assert twin.expect("FAIL").params[:2] == ("REGISTER", "ACCOUNT_EXISTS")
    twin.send("QUIT")
    sees(erin, "carol", present=False)
    wrong = sasl_client(b, "mallory", "carol", "guess")
    assert wrong.expect("904").params[-1] == "SASL authentication failed: Invalid account name or password"
    sasl_user(b, "carol", "carol", "hunter2")
    other = b.client("carol2")
    joined(other, "#y")
    joined(erin, "#y")
    sees_member(erin, "#y", "carol2")
    other.send("PRIVMSG NickServ :IDENTIFY carol hunter2")
    assert other.expect("900").params[2] == "carol"
    assert expect_from(erin, "ACCOUNT", "carol2").params == ("carol",)


def test_a_user_logged_in_before_registering_arrives_logged_in(nodes: tuple[RunningServer, ...]) -> None:
    a, b = nodes
    registered(a, "frank", "pw-frank").send("QUIT")
    grace = capable(b, "grace", "account-notify", "extended-join", "extended-monitor")
    grace.send("MONITOR + frank")
    grace.expect("731")
    frank = sasl_user(a, "frank", "frank", "pw-frank")
    assert grace.expect("730").params[-1].startswith("frank!")
    # grace heard no ACCOUNT: frank arrived on node b already logged in.
    grace.send("WHOIS frank")
    whois = {m.command: m.params for m in grace.until("318")}
    assert whois["330"][1:3] == ("frank", "frank")
    grace.send("WHO frank %na")
    assert [m.params[1:] for m in grace.until("315") if m.command == "354"] == [("frank", "frank")]
    joined(grace, "#z")
    joined(frank, "#z")
    assert expect_from(grace, "JOIN", "frank").params[:2] == ("#z", "frank")
    drop(frank, "pw-frank")
    assert expect_from(grace, "ACCOUNT", "frank").params == ("*",)
    assert not [m for m in grace.sync() if m.command == "ACCOUNT"]  # once, not once per channel and watch


def test_registration_and_drop_cross_nodes(nodes: tuple[RunningServer, ...]) -> None:
    a, b = nodes
    assert not protected(b, "heidi")
    heidi = registered(a, "Heidi", "pw-heidi")
    wait_until(lambda: protected(b, "HEIDI"), "node b to protect heidi")
    # Two sessions of one account, one per node, and a watcher on each node.
    heidi_b = b.client("heidi2")
    heidi_b.send("PRIVMSG NickServ :IDENTIFY Heidi pw-heidi")
    assert heidi_b.expect("900").params[2] == "Heidi"
    ivan, judy = capable(a, "ivan", "account-notify"), capable(b, "judy", "account-notify")
    for client in (heidi, heidi_b, ivan, judy):
        joined(client, "#w")
    sees_member(ivan, "#w", "heidi2")
    sees_member(judy, "#w", "Heidi")
    drop(heidi, "pw-heidi")
    heidi_b.expect("901")  # node b logged out its own session on hearing of the drop
    for watcher in (ivan, judy):
        for nick in ("Heidi", "heidi2"):
            assert expect_from(watcher, "ACCOUNT", nick).params == ("*",)
    wait_until(lambda: not protected(b, "heidi"), "node b to free heidi")
    assert not protected(a, "heidi")


def test_strict_enforcement_on_one_node_protects_a_nick_registered_on_another(
    backend: str, redis: RedisServer, data_dir: str
) -> None:
    with two_nodes(backend, redis, data_dir, nick_enforcement="strict") as (a, b):
        owner = registered(a, "kim", "pw-kim")
        wait_until(lambda: protected(b, "kim"), "node b to protect kim")
        owner.send("NICK kim_away")
        owner.expect("NICK")
        sees(b.client("lee"), "kim", present=False)
        squatter = b.client()
        squatter.send("NICK kim")
        squatter.send("USER u 0 * :u")
        assert squatter.expect("433").params[1] == "kim"
        kim = sasl_user(b, "kim", "kim", "pw-kim")  # the owner may have it on any node
        assert kim.nick == "kim"


def test_regain_of_a_stale_session_on_another_node(nodes: tuple[RunningServer, ...]) -> None:
    """The case of ``--workers``: a reconnection lands on another node than the stale session."""
    a, b = nodes
    stale = registered(a, "lena", "pw-lena")
    watcher = b.client("mo")
    fresh = sasl_user(b, "lena_", "lena", "pw-lena")
    fresh.send("PRIVMSG NickServ :REGAIN lena")
    assert "ghosted" in expect_from(fresh, "NOTICE", "NickServ").params[-1]
    assert stale.expect("ERROR").params[-1].endswith("(GHOSTed by lena_)")
    assert fresh.expect("NICK").params == ("lena",)  # taken once the stale session was gone
    sees(watcher, "lena")
    sees(watcher, "lena_", present=False)
    other = sasl_user(a, "lena2", "lena", "pw-lena")
    other.send("PRIVMSG NickServ :GHOST lena")
    assert "ghosted" in expect_from(other, "NOTICE", "NickServ").params[-1]
    assert fresh.expect("ERROR").params[-1].endswith("(GHOSTed by lena2)")
    sees(watcher, "lena", present=False)


def test_what_was_registered_while_the_link_was_down_is_known_after(
    redis: RedisServer, nodes: tuple[RunningServer, ...]
) -> None:
    a, b = nodes
    olivia = registered(a, "olivia", "pw-olivia")
    wait_until(lambda: protected(b, "olivia"), "node b to protect olivia")
    hellos = {server: node_of(server).hello_at for server in (a, b)}
    redis.kill()
    wait_until(lambda: not node_of(a).up and not node_of(b).up, "both nodes to notice the outage")
    registered(b, "niaj", "pw-niaj")  # its news is lost: no Redis to carry it
    joined(olivia, "#late")
    assert "registered" in chanserv(olivia, "REGISTER #late")
    drop(olivia, "pw-olivia")
    assert protected(b, "olivia") and not protected(a, "niaj")
    redis.start()
    for server in (a, b):
        node = node_of(server)
        wait_until(lambda node=node, server=server: node.hello_at > hellos[server], "a HELLO after the restart")
    wait_until(lambda: protected(a, "niaj") and not protected(b, "olivia"), "the nodes to re-read the names")
    wait_until(lambda: registration_on(b, "#late") == ("olivia", ()), "node b to re-read the registrations")


def test_a_channel_registered_on_one_node_is_registered_on_every_node(nodes: tuple[RunningServer, ...]) -> None:
    a, b = nodes
    fiona = registered(a, "Fiona", "pw-fiona")
    registered(b, "jack", "pw-jack").send("QUIT")
    hal = b.client("hal")
    joined(fiona, "#reg")
    joined(hal, "#reg")
    sees_member(fiona, "#reg", "hal")
    assert "registered" in chanserv(fiona, "REGISTER #reg")
    mode = expect_from(hal, "MODE", "ChanServ")  # node b registered it too, and says so
    assert mode.params == ("#reg", "+r")
    assert registration_on(b, "#reg") == ("Fiona", ())
    # The founder's privileges by account, on the node she joins on.
    fiona_b = sasl_user(b, "fiona_b", "Fiona", "pw-fiona")
    joined(fiona_b, "#reg")
    assert "@fiona_b" in names_of(fiona_b, "#reg")
    assert "now receives" in chanserv(fiona, "AMODE #reg +v jack")  # jack's account was made on node b
    wait_until(lambda: registration_on(b, "#reg") == ("Fiona", (("jack", "v"),)), "node b to take the AMODE")
    jack = sasl_user(b, "jack", "jack", "pw-jack")
    joined(jack, "#reg")
    stranger = b.client("ivan")
    joined(stranger, "#reg")
    names = names_of(stranger, "#reg")
    assert "+jack" in names and "ivan" in names and "@fiona_b" in names
    assert "no longer registered" in chanserv(fiona, "DROP #reg")
    assert expect_from(hal, "MODE", "ChanServ").params == ("#reg", "-r")
    assert registration_on(b, "#reg") is None


def test_messages_from_another_node_carry_the_senders_account_tag(nodes: tuple[RunningServer, ...]) -> None:
    a, b = nodes
    henry = registered(a, "henry", "pw-henry")
    ivy = capable(b, "ivy", "account-tag", "message-tags")
    plain = capable(b, "june", "message-tags")
    for client in (henry, ivy, plain):
        joined(client, "#tags")
    sees_member(ivy, "#tags", "henry")
    henry.send("PRIVMSG #tags :tagged")
    henry.send("PRIVMSG ivy :private and tagged")
    assert expect_from(ivy, "PRIVMSG", "henry").tags.get("account") == "henry"
    assert expect_from(ivy, "PRIVMSG", "henry").tags.get("account") == "henry"
    assert "account" not in expect_from(plain, "PRIVMSG", "henry").tags  # only with the cap
