"""ChanServ and registered channels: who may register, what a registration keeps, who gets op.

The rules within one run are checked on the hub harness (accounts in memory, logged in
through ``chatd.core.accounts.log_in``, the call every login path ends in); what must
survive a restart runs over both backends on SQLite, stopping and starting servers on
one data directory, the users logged in through the server's own ``post``.
"""

from __future__ import annotations

import functools
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chatd.core.accounts import log_in, make_record
from chatd.core.config import PermanentChannel
from chatd.core.ports import AccountRecord, AccountStore
from chatd.history import History
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcClient, RunningServer, running_server, wait_until
from tests.postgres import Database

PASSWORD = "correct horse"


@functools.cache
def _record(name: str) -> AccountRecord:
    """One account's record (scrypt is slow on purpose: made once per name for the whole run)."""
    return make_record(name, PASSWORD)


def _store_with(*names: str, store: AccountStore | None = None) -> AccountStore:
    store = MemoryAccountStore() if store is None else store
    for name in names:
        store.create_account(irc_lower(name), _record(name))
    return store


def _said(messages: list[Message]) -> list[str]:
    """What ChanServ told the client, in order."""
    return [m.params[-1] for m in messages if m.command == "NOTICE" and (m.source or "").startswith("ChanServ!")]


def _cs(client: IrcClient | HubClient, text: str) -> list[str]:
    """Send ``/msg ChanServ text``; ChanServ's answer, up to the sync point after it."""
    client.send(f"PRIVMSG ChanServ :{text}")
    return _said(client.sync())


def _names(client: IrcClient | HubClient, channel: str) -> list[str]:
    client.send(f"NAMES {channel}")
    return [entry for m in client.until("366") if m.command == "353" for entry in m.params[-1].split()]


def _modes(client: IrcClient | HubClient, channel: str) -> tuple[str, ...]:
    client.send(f"MODE {channel}")
    return tuple(client.expect(n.RPL_CHANNELMODEIS).params[2:])


# ---- within one run: the harness ----------------------------------------------------------


@contextmanager
def harness(*accounts: str) -> Iterator[HubHarness]:
    with HubHarness(accounts=_store_with(*accounts)) as hub:
        yield hub


def _logged_in(hub: HubHarness, nick: str, account: str | None = None) -> HubClient:
    client = hub.client(nick)
    log_in(hub.hub, client.connection, _record(account or nick))
    client.expect(n.RPL_LOGGEDIN)
    return client


def _registered(hub: HubHarness, founder: HubClient, channel: str = "#reg") -> None:
    founder.send(f"JOIN {channel}")
    founder.until("366")
    assert _cs(founder, f"REGISTER {channel}") == [f"Channel {channel} successfully registered to {founder.nick}"]


def test_a_logged_in_operator_registers_a_channel_and_it_shows_r() -> None:
    with harness("alice") as hub:
        alice = _logged_in(hub, "alice")
        watcher = hub.client("watcher")
        alice.send("JOIN #reg")
        alice.until("366")
        watcher.send("JOIN #reg")
        watcher.until("366")
        alice.send("PRIVMSG ChanServ :REGISTER #reg")
        mode = watcher.expect("MODE")
        assert mode.source is not None and mode.source.startswith("ChanServ!")
        assert mode.params == ("#reg", "+r")
        assert _said(alice.sync()) == ["Channel #reg successfully registered to alice"]
        assert _modes(alice, "#reg") == ("+nrt",)
        info = _cs(watcher, "INFO #reg")
        assert info[:2] == ["Channel #reg is registered", "Founder: alice"]
        assert _cs(watcher, "INFO #elsewhere") == ["No such channel: #elsewhere"]
        assert _cs(alice, "REGISTER #reg") == ["Channel #reg is already registered to alice"]


def test_only_a_logged_in_operator_may_register() -> None:
    with harness("bob") as hub:
        carol = hub.client("carol")  # an operator, but not logged in
        carol.send("JOIN #c")
        carol.until("366")
        assert _cs(carol, "REGISTER #c") == [
            "You must be logged in to an account to register a channel (see /msg NickServ HELP)"
        ]
        bob = _logged_in(hub, "bob")  # logged in, but not an operator
        bob.send("JOIN #c")
        bob.until("366")
        assert _cs(bob, "REGISTER #c") == ["You must be an operator of #c to register it"]
        assert _cs(bob, "REGISTER") == ["Syntax: REGISTER <#channel>"]
        assert _cs(bob, "REGISTER #nowhere") == ["No such channel: #nowhere"]
        assert _cs(bob, "FROB #c")[0].startswith("Unknown command FROB")
        assert _cs(bob, "DROP #c") == ["Channel #c is not registered"]
        assert _modes(bob, "#c") == ("+nt",)
        bob.send("CS HELP")  # the alias reaches the same service
        assert any(line.strip().startswith("REGISTER <#channel>") for line in _said(bob.sync()))


def test_users_cannot_set_or_clear_r() -> None:
    with harness("alice") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        alice.send("MODE #reg -r")
        assert alice.expect(n.ERR_ONLYSERVERSCANCHANGE).params[1] == "#reg"
        alice.send("JOIN #plain")
        alice.until("366")
        alice.send("MODE #plain +r")
        alice.expect(n.ERR_ONLYSERVERSCANCHANGE)
        assert _modes(alice, "#reg") == ("+nrt",)
        assert _modes(alice, "#plain") == ("+nt",)
        welcome = hub.client().register("late")
        assert any("CHANMODES=beI,k,l,Cimnrst" in m.params for m in welcome if m.command == n.RPL_ISUPPORT)
        assert "CbeIiklmnorstv" in next(m for m in welcome if m.command == n.RPL_MYINFO).params


def test_reforming_a_registered_channel_gives_no_op_and_the_founder_gets_it_on_join() -> None:
    with harness("alice") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        alice.send("PART #reg")
        alice.expect("PART")
        assert hub.hub.find_channel("#reg") is not None  # kept while empty
        stranger = hub.client("stranger")
        stranger.send("JOIN #reg")
        burst = stranger.until("366")
        assert "stranger" in burst[-2].params[-1].split() and "@stranger" not in burst[-2].params[-1].split()
        stranger.send("MODE #reg +i")
        stranger.expect(n.ERR_CHANOPRIVSNEEDED)
        alice.send("JOIN #reg")
        assert "@alice" in [e for m in alice.until("366") if m.command == "353" for e in m.params[-1].split()]
        told = stranger.expect("MODE")
        assert (told.source, told.params) == ("chatd", ("#reg", "+o", "alice"))


def test_amode_gives_voice_and_op_by_account_on_join() -> None:
    with harness("alice", "bob", "dave") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        bob = _logged_in(hub, "bob")
        bob.send("JOIN #reg")
        bob.until("366")
        assert _cs(alice, "AMODE #reg +v bob") == ["Account bob now receives mode +v on #reg"]
        assert bob.expect("MODE").params == ("#reg", "+v", "bob")  # given at once to a member
        assert _cs(alice, "AMODE #reg +v nobody") == ["Account nobody does not exist"]
        assert _cs(alice, "AMODE #reg +v bob") == ["No changes were made"]
        assert _cs(alice, "AMODE #reg +x bob") == ["Syntax: AMODE <#channel> [+o|-o|+v|-v <account>]"]
        assert _cs(alice, "AMODE #reg") == [
            "Channel #reg has 2 persistent modes set",
            "Account alice receives mode +o (founder)",
            "Account bob receives mode +v",
        ]
        bob.send("PART #reg")
        bob.expect("PART")
        bob.send("JOIN #reg")
        assert "+bob" in [e for m in bob.until("366") if m.command == "353" for e in m.params[-1].split()]
        assert "+bob" in _names(alice, "#reg")
        assert _cs(bob, "AMODE #reg +v dave") == ["You have no operator access to #reg"]
        assert _cs(alice, "AMODE #reg +o dave") == ["Account dave now receives mode +o on #reg"]
        dave = _logged_in(hub, "dave")
        dave.send("JOIN #reg")
        assert "@dave" in [e for m in dave.until("366") if m.command == "353" for e in m.params[-1].split()]
        assert _cs(dave, "AMODE #reg -v bob") == ["Account bob no longer receives mode +v on #reg"]
        assert _cs(dave, "AMODE #reg -o alice")[0].startswith("alice founded #reg")
        assert _cs(dave, "AMODE #reg +o bob") == ["Only the founder can change who gets operator status"]


def test_op_and_deop_by_founder_and_op_access() -> None:
    with harness("alice", "dave") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        plain = hub.client("plainuser")
        plain.send("JOIN #reg")
        plain.until("366")
        assert _cs(plain, "OP #reg")[0].startswith("You must be logged in")
        assert _cs(alice, "OP #reg plainuser") == ["Gave operator status to plainuser on #reg"]
        mode = plain.expect("MODE")
        assert (mode.source or "").startswith("ChanServ!") and mode.params == ("#reg", "+o", "plainuser")
        assert _cs(alice, "OP #reg plainuser") == ["plainuser already has operator status on #reg"]
        assert _cs(alice, "DEOP #reg plainuser") == ["Took operator status from plainuser on #reg"]
        assert _cs(alice, "OP #reg ghost") == ["ghost is not on #reg"]
        dave = _logged_in(hub, "dave")
        dave.send("JOIN #reg")
        dave.until("366")
        assert _cs(dave, "OP #reg") == ["You have no operator access to #reg"]
        _cs(alice, "AMODE #reg +o dave")
        assert _cs(dave, "DEOP #reg") == ["Took operator status from dave on #reg"]
        assert _cs(dave, "OP #reg") == ["Gave operator status to dave on #reg"]
        assert _cs(dave, "DEOP #reg alice") == ["Only the founder can take operator status from the founder of #reg"]


def test_topiclock_leaves_the_topic_to_the_founder_and_op_access() -> None:
    with harness("alice") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        helper = hub.client("helper")
        helper.send("JOIN #reg")
        helper.until("366")
        alice.send("MODE #reg +o helper")  # an operator by hand, with no access
        helper.expect("MODE")
        assert _cs(helper, "SET #reg TOPICLOCK ON") == ["Only the founder of #reg (alice) can change its settings"]
        assert _cs(alice, "SET #reg TOPICLOCK ON") == ["Topic lock of #reg is now on"]
        assert _cs(alice, "SET #reg TOPICLOCK maybe") == ["Syntax: SET <#channel> TOPICLOCK ON|OFF"]
        helper.send("TOPIC #reg :mine now")
        assert helper.expect(n.ERR_CHANOPRIVSNEEDED, "TOPIC").command == n.ERR_CHANOPRIVSNEEDED
        alice.send("TOPIC #reg :the founder's")
        assert helper.expect("TOPIC").params == ("#reg", "the founder's")
        assert "Topic lock: on" in _cs(helper, "INFO #reg")
        _cs(alice, "SET #reg TOPICLOCK OFF")
        helper.send("TOPIC #reg :mine now")
        assert helper.expect("TOPIC").params == ("#reg", "mine now")


def test_transfer_then_drop_makes_it_ordinary_again() -> None:
    with harness("alice", "bob") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        bob = _logged_in(hub, "bob")
        assert _cs(bob, "TRANSFER #reg bob") == ["Only the founder of #reg (alice) can transfer it"]
        assert _cs(bob, "DROP #reg") == ["Only the founder of #reg (alice) can drop it"]
        assert _cs(alice, "TRANSFER #reg nobody") == ["Account nobody does not exist"]
        assert _cs(alice, "TRANSFER #reg bob") == ["#reg now belongs to bob; alice keeps +o access"]
        assert "Founder: bob" in _cs(alice, "INFO #reg")
        assert _cs(alice, "DROP #reg") == ["Only the founder of #reg (bob) can drop it"]
        bob.send("JOIN #reg")
        assert "@bob" in [e for m in bob.until("366") if m.command == "353" for e in m.params[-1].split()]
        assert alice.expect("MODE").params == ("#reg", "+o", "bob")
        assert _cs(bob, "DROP #reg") == ["Channel #reg is no longer registered"]
        assert alice.expect("MODE").params == ("#reg", "-r")
        assert _modes(alice, "#reg") == ("+nt",)
        assert _cs(alice, "INFO #reg") == ["Channel #reg is not registered"]
        for member in (alice, bob):
            member.send("PART #reg")
            member.expect("PART")
        assert hub.hub.find_channel("#reg") is None  # gone when empty, as any channel
        stranger = hub.client("stranger")
        stranger.send("JOIN #reg")
        assert "@stranger" in [e for m in stranger.until("366") if m.command == "353" for e in m.params[-1].split()]


def test_the_founder_passes_key_ban_and_invite_only() -> None:
    with harness("alice") as hub:
        alice = _logged_in(hub, "alice")
        _registered(hub, alice)
        alice.send("MODE #reg +ik sesame")
        alice.send(f"MODE #reg +b alice!*@{alice.connection.host}")
        alice.sync()
        alice.send("PART #reg")
        alice.expect("PART")
        alice.send("JOIN #reg")
        assert "@alice" in [e for m in alice.until("366") if m.command == "353" for e in m.params[-1].split()]


# ---- across restarts: both backends, SQLite and PostgreSQL -------------------------------------------------


@contextmanager
def stored_server(backend: str, database: Database) -> Iterator[RunningServer]:
    store = database.store()
    with running_server(backend, history=History(store), accounts=database.accounts(store)) as server:
        yield server


def _log_in_over(server: RunningServer, client: IrcClient) -> None:
    """Log ``client`` in to the account of its nick, on the server's own thread."""
    hub = server.server.hub
    connection = wait_until(lambda: hub.find_client(client.nick or ""), "the client's connection")
    record = _record(client.nick or "")
    server.server.post(lambda: log_in(hub, connection, record))  # type: ignore[arg-type]
    client.expect(n.RPL_LOGGEDIN)


def test_a_registered_channel_survives_a_restart_and_only_its_founder_gets_op(
    backend: str, database: Database, tmp_path: Path
) -> None:
    store = database.store()
    _store_with("alice", store=database.accounts(store))
    store.close()
    with stored_server(backend, database) as server:
        alice = server.client("alice")
        _log_in_over(server, alice)
        alice.send("JOIN #reg")
        alice.until("366")
        alice.send("MODE #reg +k sesame")
        alice.send("MODE #reg +b *!*@banned.example")
        alice.send("TOPIC #reg :kept across restarts")
        alice.send("PRIVMSG #reg :remember me")
        assert _cs(alice, "REGISTER #reg") == ["Channel #reg successfully registered to alice"]
        assert _cs(alice, "SET #reg TOPICLOCK ON") == ["Topic lock of #reg is now on"]
        alice.send("QUIT")  # nobody is in it when the server stops
        alice.wait_closed()
    if not database.postgres:
        assert stat.S_IMODE((tmp_path / "chatd.sqlite3").stat().st_mode) == 0o600
    with stored_server(backend, database) as server:
        stranger = server.client("stranger")
        stranger.send("JOIN #reg")
        assert stranger.expect(n.ERR_BADCHANNELKEY, "366").command == n.ERR_BADCHANNELKEY
        stranger.send("JOIN #reg sesame")
        burst = stranger.until("366")
        assert [m.params[-1] for m in burst if m.command == "332"] == ["kept across restarts"]
        assert [e for m in burst if m.command == "353" for e in m.params[-1].split()] == ["stranger"]
        assert _modes(stranger, "#reg") == ("+nrtk", "sesame")
        stranger.send("MODE #reg b")
        assert [m.params[2] for m in stranger.until("368") if m.command == "367"] == ["*!*@banned.example"]
        stranger.send("TOPIC #reg :squatting")
        stranger.expect(n.ERR_CHANOPRIVSNEEDED)
        assert "Founder: alice" in _cs(stranger, "INFO #reg")
        alice = server.client("alice")
        _log_in_over(server, alice)
        alice.send("JOIN #reg")  # no key: the founder passes it
        assert "@alice" in [e for m in alice.until("366") if m.command == "353" for e in m.params[-1].split()]
        assert stranger.expect("MODE").params == ("#reg", "+o", "alice")
        alice.send("PRIVMSG ChanServ :DROP #reg")
        assert stranger.expect("MODE").params == ("#reg", "-r")
        alice.send("QUIT")
        stranger.send("QUIT")
        alice.wait_closed()
        stranger.wait_closed()
    with stored_server(backend, database) as server:
        newcomer = server.client("newcomer")
        newcomer.send("JOIN #reg")
        burst = newcomer.until("366")
        assert [e for m in burst if m.command == "353" for e in m.params[-1].split()] == ["@newcomer"]
        assert not [m for m in burst if m.command == "332"]


def test_registrations_are_kept_by_the_store(stored: Database | None) -> None:
    sqlite = stored.store() if stored else None
    store = _store_with("alice", store=stored.accounts(sqlite) if stored and sqlite is not None else None)
    try:
        with HubHarness(accounts=store) as hub:
            alice = _logged_in(hub, "alice")
            _registered(hub, alice)
            _cs(alice, "SET #reg TOPICLOCK ON")
        [registration] = store.channel_registrations()
        assert (registration.name, registration.founder, registration.topic_lock) == ("#reg", "alice", True)
        with HubHarness(accounts=store) as hub:
            channel = hub.hub.find_channel("#reg")
            assert channel is not None and channel.registration == registration and "r" in channel.modes
            stranger = hub.client("stranger")
            stranger.send("JOIN #reg")
            assert [e for m in stranger.until("366") if m.command == "353" for e in m.params[-1].split()] == [
                "stranger"
            ]
    finally:
        if sqlite is not None:
            sqlite.close()


def test_a_config_permanent_channel_keeps_its_bans_across_a_restart(database: Database) -> None:
    keep = PermanentChannel("#keep")
    with HubHarness(history=History(database.store()), permanent_channels=(keep,)) as hub:
        owner = hub.client("owner")
        owner.send("JOIN #keep")
        owner.until("366")
        owner.send("MODE #keep +b *!*@banned.example")
        owner.expect("MODE")
    with HubHarness(history=History(database.store()), permanent_channels=(keep,)) as hub:
        channel = hub.hub.find_channel("#keep")
        assert channel is not None
        assert [(ban.mask, ban.set_by.split("!")[0]) for ban in channel.bans] == [("*!*@banned.example", "owner")]
