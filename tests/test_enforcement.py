"""Nick protection in each --nick-enforcement mode: timeout renames after the grace time unless
the user logs in, strict refuses at once, optional lets be; service nicks are nobody's."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatd.core.accounts import make_record
from chatd.core.enforcement import SERVICE_NICKS
from chatd.core.services import SERVICES
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.message import Message
from tests.harness import HubHarness
from tests.helpers import IrcConversation, running_server

PASSWORD = "hunter22"


def store_with(*names: str) -> MemoryAccountStore:
    """A store where ``names`` are registered (password PASSWORD), as at a restart."""
    store = MemoryAccountStore()
    for name in names:
        store.create_account(name.lower(), make_record(name, PASSWORD))
    return store


def notices_from_nickserv(messages: list[Message]) -> list[str]:
    return [m.params[-1] for m in messages if m.command == "NOTICE" and (m.source or "").startswith("NickServ!")]


def register_as(client: IrcConversation, nick: str) -> list[Message]:
    """Register with ``nick`` and return everything up to the end of the MOTD, and what came next."""
    return client.register(nick) + client.sync()


def test_timeout_renames_a_user_who_does_not_log_in(backend: str) -> None:
    with running_server(backend, accounts=store_with("alice"), nick_grace_s=0.5) as server:
        squatter = server.client()
        seen = register_as(squatter, "alice")
        warning = notices_from_nickserv(seen)
        assert len(warning) == 1 and "registered" in warning[0] and "0.5 seconds" in warning[0]
        renamed = squatter.expect("NICK")
        assert renamed.source is not None and renamed.source.startswith("alice!")
        assert renamed.params[0].startswith("Guest") and renamed.params[0][5:].isdigit()
        # the nick is free again, for its owner
        owner = server.client()
        owner.send("NICK alice")
        owner.send("USER u 0 * :Owner")
        assert owner.expect("001").params[0] == "alice"


def test_logging_in_within_the_grace_time_keeps_the_nick() -> None:
    harness = HubHarness(accounts=store_with("alice"), nick_grace_s=30.0)
    alice = harness.client()
    assert notices_from_nickserv(register_as(alice, "alice"))
    alice.send("PRIVMSG NickServ :IDENTIFY hunter22")
    alice.expect("900")
    harness.clock.advance_to(harness.clock.now + 60)
    harness.hub.run_timers()
    later = alice.sync()
    assert not [m for m in later if m.command == "NICK"]
    assert alice.connection.nick == "alice"


def test_timeout_on_the_hand_clock_and_a_nick_change_cancels() -> None:
    harness = HubHarness(accounts=store_with("alice", "bob"), nick_grace_s=30.0)
    user = harness.client("someone")
    user.send("NICK alice")
    assert user.expect("NICK").params[0] == "alice"
    assert notices_from_nickserv(user.sync())
    user.send("NICK elsewhere")  # left the nick in time
    assert user.expect("NICK").params[0] == "elsewhere"
    harness.clock.advance_to(harness.clock.now + 31)
    harness.hub.run_timers()
    assert not [m for m in user.sync() if m.command == "NICK"]
    user.send("NICK bob")
    user.expect("NICK")
    renamed = user.expect("NICK", timeout=60)  # the harness moves its clock to the deadline
    assert renamed.params[0].startswith("Guest")
    assert harness.clock.now >= 1000.0 + 31 + 30


def test_a_logged_in_user_owns_its_account_name() -> None:
    harness = HubHarness(accounts=store_with("carol"), nick_enforcement="strict")
    carol = harness.client("temp")
    carol.send("PRIVMSG NickServ :IDENTIFY carol hunter22")
    carol.expect("900")
    carol.send("NICK carol")
    assert carol.expect("NICK", "433").command == "NICK"


def test_strict_refuses_at_once(backend: str) -> None:
    with running_server(backend, accounts=store_with("alice"), nick_enforcement="strict") as server:
        user = server.client("someone")
        user.send("NICK alice")
        refused = user.expect("433", "NICK")
        assert refused.command == "433" and refused.params[1:] == (
            "alice",
            "Nickname is reserved by a different account",
        )
        assert list(user.expect("FAIL").params[:3]) == ["NICK", "NICKNAME_RESERVED", "alice"]
        # before registration too, at once without CAP
        early = server.client()
        early.send("NICK alice")
        assert early.expect("433").params[0] == "*"
        early.send("NICK other")
        early.send("USER u 0 * :Other")
        assert early.expect("001").params[0] == "other"


def test_strict_lets_cap_negotiation_log_in_first() -> None:
    """A client negotiating caps may still log in (SASL, REGISTER) before CAP END: checked then."""
    harness = HubHarness(accounts=store_with("dora"), nick_enforcement="strict")
    client = harness.client()
    client.send("CAP LS 302")
    client.send("NICK dora")
    client.send("USER u 0 * :Dora")
    client.send("CAP END")
    refused = client.expect("433", "001")
    assert refused.command == "433" and refused.params[:2] == ("*", "dora")
    client.send("NICK dora2")
    assert client.expect("001").params[0] == "dora2"


def test_optional_lets_be() -> None:
    harness = HubHarness(accounts=store_with("erin"), nick_enforcement="optional")
    user = harness.client()
    assert not notices_from_nickserv(register_as(user, "erin"))
    harness.clock.advance_to(harness.clock.now + 100)
    harness.hub.run_timers()
    assert not [m for m in user.sync() if m.command == "NICK"]


def test_service_nicks_are_refused_in_every_mode() -> None:
    assert set(SERVICES) == set(SERVICE_NICKS)
    for mode in ("strict", "timeout", "optional"):
        harness = HubHarness(nick_enforcement=mode)
        user = harness.client("someone")
        for nick in ("NickServ", "chanserv"):
            user.send(f"NICK {nick}")
            assert user.expect("432", "NICK").command == "432"
        early = harness.client()
        early.send("NICK NickServ")
        assert early.expect("432").params[1] == "NickServ"


def test_whois_of_a_service() -> None:
    harness = HubHarness()
    user = harness.client("someone")
    user.send("WHOIS NickServ")
    whois = user.until("318")
    assert [m.command for m in whois] == ["311", "312", "318"]
    assert whois[0].params[1:4] == ("NickServ", "NickServ", "chatd")


def test_cli_options_set_the_mode_and_grace(tmp_path: Path) -> None:
    from chatd.cli import parse_settings

    data = ["--data-dir", str(tmp_path / "data")]
    _, settings = parse_settings(data, {})
    assert (settings.config.nick_enforcement, settings.config.nick_grace_s) == ("timeout", 30.0)
    _, settings = parse_settings([*data, "--nick-enforcement", "strict"], {"CHATD_NICK_GRACE": "5"})
    assert (settings.config.nick_enforcement, settings.config.nick_grace_s) == ("strict", 5.0)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            [],
            {"CHATD_NICK_ENFORCEMENT": "lax"},
            "CHATD_NICK_ENFORCEMENT: 'lax' is not one of strict, timeout, optional",
        ),
        (["--nick-grace", "0"], {}, "--nick-grace: '0' is not a number of seconds greater than 0"),
    ],
)
def test_cli_bad_enforcement_values_are_one_line(
    argv: list[str], env: dict[str, str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatd.cli import parse_settings

    with pytest.raises(SystemExit) as stopped:
        parse_settings(["--data-dir", str(tmp_path / "data"), *argv], env)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == f"chatd: {message}"
