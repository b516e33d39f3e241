"""NickServ: every command, over the hub harness, and the login paths over both backends."""

from __future__ import annotations

from chatd.core.accounts import make_record
from chatd.history.account_store import MemoryAccountStore
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcConversation, running_server

PASSWORD = "hunter22"
CERT = "ab" * 32


def store_with(*names: str) -> MemoryAccountStore:
    store = MemoryAccountStore()
    for name in names:
        store.create_account(name.lower(), make_record(name, PASSWORD))
    return store


def harness_with(*names: str) -> HubHarness:
    """A hub where ``names`` are registered; no nick enforcement, whose NOTICEs would be in the way."""
    return HubHarness(accounts=store_with(*names), nick_enforcement="optional")


def ns(client: IrcConversation, text: str) -> list[str]:
    """Say ``text`` to NickServ; its NOTICEs in answer (everything before a PING's PONG)."""
    client.send(f"PRIVMSG NickServ :{text}")
    return [m.params[-1] for m in client.sync() if m.command == "NOTICE" and (m.source or "").startswith("NickServ!")]


def test_register_and_identify_over_sockets(backend: str) -> None:
    with running_server(backend) as server:
        alice = server.client("alice")
        alice.send(f"PRIVMSG NickServ :REGISTER {PASSWORD} alice@example.org")
        assert "registered" in alice.expect("NOTICE").params[-1]
        assert alice.expect("900").params[2] == "alice"
        again = server.client("alice2")
        again.send(f"NS IDENTIFY alice {PASSWORD}")
        assert again.expect("900").params[2] == "alice"
        wrong = server.client("mallory")
        answer = ns(wrong, "IDENTIFY alice wrong-password")
        assert answer == ["Authentication failed: Invalid account name or password"]
        assert not any(PASSWORD in line or "wrong-password" in line for line in alice.lines + wrong.lines)


def test_identify_with_the_nick_as_account() -> None:
    harness = harness_with("bob")
    bob = harness.client("bob")
    answer = ns(bob, f"IDENTIFY {PASSWORD}")
    assert answer[-1] == "You are now logged in as bob" and bob.connection.account == "bob"
    assert ns(bob, f"IDENTIFY {PASSWORD}") == ["You are already logged in as bob"]


def test_identify_is_throttled() -> None:
    harness = harness_with("bob")
    user = harness.client("someone")
    for _ in range(3):
        assert ns(user, "IDENTIFY bob nope") == ["Authentication failed: Invalid account name or password"]
    assert "Too many failed" in ns(user, f"IDENTIFY bob {PASSWORD}")[0]
    assert user.connection.account is None


def test_register_refusals_are_told() -> None:
    harness = harness_with("taken")
    user = harness.client("taken")
    assert ns(user, f"REGISTER {PASSWORD}") == ["Registration failed: That account name is already registered"]
    short = harness.client("short")
    assert "at least" in ns(short, "REGISTER abc")[0]
    assert ns(short, "REGISTER") == ["Syntax: REGISTER <password> [email]"]


def ghost_setup() -> tuple[HubHarness, HubClient, HubClient]:
    """``carol`` held by a session not logged in to it, and the owner connected as ``carol_``."""
    harness = harness_with("carol")
    squatter = harness.client("carol")
    owner = harness.client("carol_")
    return harness, squatter, owner


def test_ghost_needs_the_account() -> None:
    harness, squatter, owner = ghost_setup()
    assert "You don't own carol" in ns(owner, "GHOST carol")[0]
    assert "No one is using" in ns(owner, "GHOST nobody")[0]
    assert "yourself" in ns(squatter, "GHOST carol")[0]
    ns(owner, f"IDENTIFY carol {PASSWORD}")
    assert ns(owner, "GHOST carol")[-1] == "carol has been ghosted"
    squatter.wait_closed()
    assert harness.hub.find_client("carol") is None


def test_ghost_with_a_password_logs_in_first() -> None:
    _, squatter, owner = ghost_setup()
    answer = ns(owner, f"GHOST carol {PASSWORD}")
    assert answer == ["You are now logged in as carol", "carol has been ghosted"]
    assert any("GHOSTed by carol_" in line for line in squatter.wait_closed())


def test_regain_takes_the_nick() -> None:
    _, squatter, owner = ghost_setup()
    owner.send(f"NS REGAIN carol {PASSWORD}")
    renamed = owner.expect("NICK")
    assert renamed.params[0] == "carol" and owner.connection.nick == "carol"
    squatter.wait_closed()


def test_regain_of_a_stale_session_of_the_same_account() -> None:
    harness = harness_with("dan")
    stale = harness.client("dan")
    ns(stale, f"IDENTIFY {PASSWORD}")
    fresh = harness.client("dan_")
    ns(fresh, f"IDENTIFY dan {PASSWORD}")
    fresh.send("NS REGAIN dan")
    assert fresh.expect("NICK").params[0] == "dan"
    stale.wait_closed()


def test_drop_needs_the_password_and_logs_out() -> None:
    harness = harness_with("erin")
    erin = harness.client("erin")
    ns(erin, f"IDENTIFY {PASSWORD}")
    other = harness.client("erin_")
    ns(other, f"IDENTIFY erin {PASSWORD}")
    assert ns(erin, "DROP wrong")[0].startswith("Not dropped")
    erin.send(f"NS DROP {PASSWORD}")
    assert erin.expect("901")
    assert other.expect("901")
    erin.sync()
    assert "erin" not in harness.hub.accounts.names
    assert harness.hub.accounts.store is not None and harness.hub.accounts.store.account("erin") is None
    assert "not registered" in ns(erin, "INFO erin")[0]


def test_info() -> None:
    harness = harness_with("fay")
    fay = harness.client("fay")
    stranger = harness.client("stranger")
    public = ns(stranger, "INFO fay")
    assert public[0] == "Account: fay" and public[1].startswith("Registered: ")
    assert not any(line.startswith("Email") for line in public)
    assert ns(stranger, "INFO") == ["stranger is not registered"]
    ns(fay, f"IDENTIFY {PASSWORD}")
    assert "Email: (none)" in ns(fay, "INFO")


def test_set_password() -> None:
    harness = harness_with("gus")
    gus = harness.client("gus")
    assert ns(gus, "SET PASSWORD newpassword") == ["You are not logged in"]
    ns(gus, f"IDENTIFY {PASSWORD}")
    assert "at least" in ns(gus, "SET PASSWORD ab")[0]
    assert ns(gus, "SET PASSWORD newpassword") == ["Password changed"]
    assert ns(gus, "SET EMAIL x") == ["Syntax: SET PASSWORD <new password>"]
    later = harness.client("later")
    assert "failed" in ns(later, f"IDENTIFY gus {PASSWORD}")[0]
    assert ns(later, "IDENTIFY gus newpassword")[-1] == "You are now logged in as gus"


def test_cert_add_list_del() -> None:
    harness = harness_with("hal", "ivy")
    hal = harness.client("hal")
    assert ns(hal, f"CERT ADD {CERT}") == ["You are not logged in"]
    ns(hal, f"IDENTIFY {PASSWORD}")
    assert "no TLS client certificate" in ns(hal, "CERT ADD")[0]
    assert "64 digits" in ns(hal, "CERT ADD xyz")[0]
    assert ns(hal, f"CERT ADD {CERT.upper()}") == [f"Certificate added to hal: {CERT}"]
    assert ns(hal, "CERT LIST") == ["1 certificate(s) on hal", f"  {CERT}"]
    store = harness.hub.accounts.store
    assert store is not None
    record = store.account_by_certfp(CERT)
    assert record is not None and record.name == "hal"
    # the current connection's certificate (the TLS backend sets certfp)
    hal.connection.certfp = "cd" * 32
    assert ns(hal, "CERT ADD") == [f"Certificate added to hal: {'cd' * 32}"]
    ivy = harness.client("ivy")
    ns(ivy, f"IDENTIFY {PASSWORD}")
    assert ns(ivy, f"CERT ADD {CERT}") == ["That certificate is already on another account"]
    assert ns(hal, f"CERT DEL {CERT}") == [f"Certificate removed from hal: {CERT}"]
    assert ns(hal, f"CERT DEL {CERT}") == ["That certificate is not on your account"]
    assert ns(hal, "CERT LIST")[0] == "1 certificate(s) on hal"


def test_help_and_unknown_commands() -> None:
    harness = HubHarness()
    user = harness.client("someone")
    help_lines = ns(user, "HELP")
    for command in ("REGISTER", "IDENTIFY", "GHOST", "REGAIN", "DROP", "INFO", "SET PASSWORD", "CERT", "HELP"):
        assert any(line.strip().startswith(command) for line in help_lines), command
    assert ns(user, "help ghost")[0] == "Syntax: GHOST <nick> [password]"
    assert ns(user, "FROBNICATE x") == ["Unknown command FROBNICATE. Say HELP for the list of commands"]
    assert ns(user, "HELP FROBNICATE")[0].startswith("No help for FROBNICATE")


def test_without_an_account_store() -> None:
    harness = HubHarness()
    harness.hub.accounts.store = None
    user = harness.client("someone")
    assert ns(user, f"IDENTIFY {PASSWORD}") == ["Accounts are not enabled on this server"]
