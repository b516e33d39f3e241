"""IRCv3 draft/account-registration: REGISTER before and after connection, and every refusal.

Socket tests run over both backends (hashing runs on the worker pool there); the
refusals, which never reach the store or do so synchronously, use the hub harness.
"""

from __future__ import annotations

from chatd.core.accounts import make_record
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.message import Message
from tests.harness import HubClient, HubHarness
from tests.helpers import IrcConversation, running_server


def register_reply(client: IrcConversation, line: str) -> Message:
    """Send a REGISTER (or VERIFY) and return its answer: REGISTER SUCCESS or a FAIL."""
    client.send(line)
    return client.expect("REGISTER", "FAIL")


def test_register_after_connection_logs_in(backend: str) -> None:
    with running_server(backend) as server:
        alice = server.client("alice")
        reply = register_reply(alice, "REGISTER * alice@example.org hunter22")
        assert reply.command == "REGISTER" and list(reply.params[:2]) == ["SUCCESS", "alice"]
        logged_in = alice.expect("900")
        assert list(logged_in.params[1:3]) == ["alice!~u@127.0.0.1", "alice"]
        assert not any("hunter22" in line for line in alice.lines)
        # the account exists: nobody else can register it
        alice.send("QUIT")
        alice.wait_closed()
        other = server.client("alice")
        assert list(register_reply(other, "REGISTER * * hunter22").params[:2]) == ["REGISTER", "ACCOUNT_EXISTS"]


def test_register_before_connection(backend: str) -> None:
    with running_server(backend) as server:
        bar = server.client()
        bar.send("CAP LS 302")
        ls = " ".join(message.params[-1] for message in bar.until("CAP"))
        assert "draft/account-registration=before-connect" in ls
        bar.send("NICK bar")
        reply = register_reply(bar, "REGISTER * * shivarampassphrase")
        assert reply.command == "REGISTER" and list(reply.params) == [
            "SUCCESS",
            "bar",
            "Account successfully registered",
        ]
        assert bar.expect("900").params[2] == "bar"
        bar.send("USER u 0 * :Bar")
        bar.send("CAP END")
        assert bar.expect("001").params[0] == "bar"


def test_register_needs_a_nick_first() -> None:
    harness = HubHarness()
    client = harness.client()
    reply = register_reply(client, "REGISTER * * hunter22")
    assert list(reply.params[:3]) == ["REGISTER", "NEED_NICK", "*"]


def test_duplicate_name_is_refused() -> None:
    harness = HubHarness()
    first = harness.client("alice")
    assert register_reply(first, "REGISTER alice * hunter22").command == "REGISTER"
    first.send("QUIT")
    second = harness.client("alice")
    reply = register_reply(second, "REGISTER * * other-password")
    assert reply.command == "FAIL" and list(reply.params[:3]) == ["REGISTER", "ACCOUNT_EXISTS", "alice"]


def test_the_store_decides_a_name_taken_elsewhere() -> None:
    """A name another node registered a moment ago (not yet in this hub's names) is refused by the store."""
    store = MemoryAccountStore()
    harness = HubHarness(accounts=store)
    store.create_account("carol", make_record("carol", "elsewhere"))
    assert "carol" not in harness.hub.accounts.names
    carol = harness.client("carol")
    reply = register_reply(carol, "REGISTER * * hunter22")
    assert list(reply.params[:3]) == ["REGISTER", "ACCOUNT_EXISTS", "carol"]
    assert carol.connection.account is None


def test_account_must_be_the_current_nick() -> None:
    harness = HubHarness()
    client = harness.client("dave")
    reply = register_reply(client, "REGISTER somebody * hunter22")
    assert list(reply.params[:3]) == ["REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", "somebody"]
    assert list(register_reply(client, "REGISTER DAVE * hunter22").params[:2]) == ["SUCCESS", "dave"]


def test_guest_names_are_bad_account_names() -> None:
    harness = HubHarness()
    client = harness.client("Guest12345")
    reply = register_reply(client, "REGISTER * * hunter22")
    assert list(reply.params[:3]) == ["REGISTER", "BAD_ACCOUNT_NAME", "Guest12345"]


def test_weak_and_unacceptable_passwords_and_bad_email() -> None:
    harness = HubHarness()
    client = harness.client("erin")
    assert list(register_reply(client, "REGISTER * * abc").params[:3]) == ["REGISTER", "WEAK_PASSWORD", "erin"]
    assert list(register_reply(client, "REGISTER * * ERIN").params[:2]) == ["REGISTER", "UNACCEPTABLE_PASSWORD"]
    assert list(register_reply(client, "REGISTER * not-an-email hunter22").params[:2]) == ["REGISTER", "INVALID_EMAIL"]
    assert client.connection.account is None
    assert list(register_reply(client, "REGISTER * erin@example.org hunter22").params[:2]) == ["SUCCESS", "erin"]


def test_already_authenticated() -> None:
    harness = HubHarness()
    client = harness.client("fay")
    assert register_reply(client, "REGISTER * * hunter22").command == "REGISTER"
    reply = register_reply(client, "REGISTER * * hunter22")
    assert list(reply.params[:3]) == ["REGISTER", "ALREADY_AUTHENTICATED", "fay"]


def test_verify_is_rejected_no_email_verification() -> None:
    harness = HubHarness()
    client = harness.client("gus")
    reply = register_reply(client, "VERIFY gus 39gvcdg4myvnmdcfhvd6exsv4n")
    assert reply.command == "FAIL" and list(reply.params[:3]) == ["VERIFY", "INVALID_CODE", "gus"]
    assert "does not verify" in reply.params[-1]
    register_reply(client, "REGISTER * * hunter22")
    assert list(register_reply(client, "VERIFY gus code").params[:2]) == ["VERIFY", "ALREADY_AUTHENTICATED"]


def test_registrations_are_throttled_per_address() -> None:
    harness = HubHarness(per_ip_exempt=frozenset())
    replies = []
    for index in range(4):
        client = harness.client(f"user{index}")
        replies.append(register_reply(client, "REGISTER * * hunter22"))
    assert [reply.command for reply in replies[:3]] == ["REGISTER"] * 3
    assert list(replies[3].params[:2]) == ["REGISTER", "TEMPORARILY_UNAVAILABLE"]
    assert "try again" in replies[3].params[-1]
    later = harness.client("user9")
    harness.clock.advance_to(harness.clock.now + 61)
    assert register_reply(later, "REGISTER * * hunter22").command == "REGISTER"


def test_register_before_connection_needs_the_server_password() -> None:
    harness = HubHarness(password="letmein")
    client = harness.client()
    client.send("NICK hal")
    assert list(register_reply(client, "REGISTER * * hunter22").params[:2]) == ["REGISTER", "TEMPORARILY_UNAVAILABLE"]
    client.send("PASS letmein")
    assert list(register_reply(client, "REGISTER * * hunter22").params[:2]) == ["SUCCESS", "hal"]


def test_register_needs_its_parameters() -> None:
    harness = HubHarness()
    client: HubClient = harness.client("ivy")
    client.send("REGISTER * hunter22")
    assert client.expect("461").params[1] == "REGISTER"


def test_after_connect_registration_waits_for_001_and_says_so_in_cap_ls() -> None:
    harness = HubHarness(account_registration="after-connect")
    early = harness.client()
    early.send("CAP LS 302")
    ls = " ".join(message.params[-1] for message in early.until("CAP"))
    assert "draft/account-registration" in ls.split() and "before-connect" not in ls
    early.send("NICK early")
    reply = register_reply(early, "REGISTER * * hunter22")
    assert list(reply.params[:3]) == ["REGISTER", "COMPLETE_CONNECTION_REQUIRED", "*"]
    late = harness.client("late")
    assert list(register_reply(late, "REGISTER * * hunter22").params[:2]) == ["SUCCESS", "late"]


def test_closed_registration_offers_no_cap_and_refuses_every_way_in() -> None:
    harness = HubHarness(account_registration="closed")
    client = harness.client()
    client.send("CAP LS 302")
    ls = " ".join(message.params[-1] for message in client.until("CAP"))
    assert "account-registration" not in ls and "sasl=" in ls  # logging in still works
    client.send("CAP REQ draft/account-registration")
    assert client.expect("CAP").params[1] == "NAK"
    client.send("CAP END")
    client.register("closed")
    reply = register_reply(client, "REGISTER * * hunter22")
    assert list(reply.params[:2]) == ["REGISTER", "TEMPORARILY_UNAVAILABLE"]
    client.send("PRIVMSG NickServ :REGISTER hunter22")
    assert "closed" in client.expect("NOTICE").params[-1]
    assert harness.hub.accounts.names == {}


def test_the_shortest_password_is_the_servers_choice() -> None:
    harness = HubHarness(password_min_length=10)
    client = harness.client("shorty")
    reply = register_reply(client, "REGISTER * * ninechars")
    assert list(reply.params[:2]) == ["REGISTER", "WEAK_PASSWORD"] and "10 characters" in reply.params[-1]
    assert list(register_reply(client, "REGISTER * * tencharsok").params[:2]) == ["SUCCESS", "shorty"]


def test_a_nick_in_use_cannot_be_registered_from_under_its_holder() -> None:
    """ergo's "no land grabs": a client refused a nick before registering cannot REGISTER it."""
    harness = HubHarness()
    harness.client("root")  # an anonymous user holds the nick
    grabber = harness.client()
    grabber.send("NICK root")
    grabber.expect("433")
    reply = register_reply(grabber, "REGISTER * * shivarampassphrase")
    assert list(reply.params[:3]) == ["REGISTER", "ACCOUNT_EXISTS", "root"]
    assert harness.hub.accounts.names == {}
