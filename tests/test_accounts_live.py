"""Accounts over real sockets on both backends: what the harness tests of NickServ,
ChanServ, enforcement and private history show without sockets, through the worker pool
and the backends' held input here (logins are answered from another thread).
"""

from __future__ import annotations

import base64

from chatd.core.accounts import make_record
from chatd.history import History
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.casemap import irc_lower
from tests.helpers import IrcClient, RunningServer, running_server
from tests.postgres import Database

PASSWORD = "hunter22"


def store_with(*names: str) -> MemoryAccountStore:
    store = MemoryAccountStore()
    for name in names:
        store.create_account(irc_lower(name), make_record(name, PASSWORD))
    return store


def identified(server: RunningServer, nick: str, account: str | None = None, *caps: str) -> IrcClient:
    """A client on ``nick``, logged in to ``account`` (default: the nick) through NickServ."""
    client = server.client()
    if caps:
        client.send(f"CAP REQ :{' '.join(caps)}")
        client.send("CAP END")
    client.register(nick)
    client.send(f"NS IDENTIFY {account or nick} {PASSWORD}")
    assert client.expect("900").params[2] == (account or nick)
    return client


def sasl_login(server: RunningServer, nick: str, *caps: str, account: str | None = None) -> IrcClient:
    """A client logged in with SASL PLAIN (to ``account``, default the nick) before it registered."""
    account = account or nick
    client = server.client()
    client.send(f"CAP REQ :{' '.join(('sasl', *caps))}")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"{account}\0{account}\0{PASSWORD}".encode()).decode())
    client.expect("903")
    client.send("CAP END")
    client.register(nick)
    return client


def test_ghost_and_regain_free_a_nick_from_a_squatter_and_a_stale_session(backend: str) -> None:
    with running_server(backend, accounts=store_with("carol"), nick_enforcement="optional") as server:
        squatter = server.client("carol")
        owner = identified(server, "carol_", "carol")
        owner.send("NS GHOST carol")
        squatter.wait_closed()
        owner.send("NICK carol")
        assert owner.expect("NICK").params[0] == "carol"
        # A second device: the first session is stale; REGAIN disconnects it and takes the nick.
        phone = identified(server, "carol_phone", "carol")
        phone.send("NS REGAIN carol")
        assert phone.expect("NICK").params[0] == "carol"
        owner.wait_closed()


def test_amode_gives_voice_by_account_on_join(backend: str) -> None:
    with running_server(backend, accounts=store_with("founder", "friend"), nick_enforcement="optional") as server:
        founder = identified(server, "founder")
        founder.send("JOIN #club")
        founder.until("366")
        founder.send("CS REGISTER #club")
        assert "registered" in founder.expect("NOTICE").params[-1]
        founder.send("CS AMODE #club +v friend")
        assert "friend" in founder.expect("NOTICE").params[-1]
        stranger = server.client("stranger")
        stranger.send("JOIN #club")
        names = [m for m in stranger.until("366") if m.command == "353"]
        assert "stranger" in names[0].params[-1].split()  # no voice, no op
        friend = identified(server, "friend")
        friend.send("JOIN #club")
        names = [m for m in friend.until("366") if m.command == "353"]
        assert "+friend" in names[0].params[-1].split()


def test_optional_enforcement_leaves_a_user_on_a_registered_nick(backend: str) -> None:
    with running_server(backend, accounts=store_with("dora"), nick_enforcement="optional") as server:
        squatter = server.client("dora")
        watcher = server.client("watcher")
        squatter.send("PRIVMSG watcher :still dora")
        assert watcher.expect("PRIVMSG").source.startswith("dora!")
        assert not [m for m in squatter.sync() if m.command in ("NOTICE", "NICK")]


def test_dm_history_follows_the_accounts_across_a_reconnect(backend: str, database: Database) -> None:
    store = database.store()
    accounts = database.accounts(store)
    for name in ("erin", "frank"):
        accounts.create_account(name, make_record(name, PASSWORD))
    caps = ("batch", "draft/chathistory", "server-time", "message-tags")
    with running_server(backend, history=History(store), accounts=accounts, nick_enforcement="optional") as server:
        erin = sasl_login(server, "erin", *caps)
        frank = sasl_login(server, "frank", *caps)
        erin.send("PRIVMSG frank :are you there?")
        frank.expect("PRIVMSG")
        frank.send("PRIVMSG erin :yes")
        erin.expect("PRIVMSG")
        frank.send("QUIT")
        frank.wait_closed()
        # frank again, under another nick, on another device: the conversation is his account's
        laptop = sasl_login(server, "frank_laptop", *caps, account="frank")
        laptop.send("CHATHISTORY LATEST erin * 10")
        laptop.until("BATCH")
        texts = [m.params[-1] for m in laptop.until("BATCH") if m.command == "PRIVMSG"]
        assert texts == ["are you there?", "yes"]
        stranger = server.client("mallory")  # not logged in: nothing of theirs
        stranger.send("CAP REQ :batch draft/chathistory")
        stranger.send("CHATHISTORY LATEST erin * 10")
        assert stranger.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_TARGET")
