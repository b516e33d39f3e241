"""chatc and accounts, sans I/O: the SASL login (PLAIN, SCRAM-SHA-256 against scramp's server side), its
chunking, what a failure says and does, 900/901/ACCOUNT, /register, /identify, standard replies, and that no
password is ever shown. Over real sockets: ``test_chatc_accounts_live.py``."""

from __future__ import annotations

import base64

import pytest
from scramp import ScramMechanism

from chatc.commands import CommandError, interpret
from chatc.events import AccountStatus, LoginFailed
from chatc.sasl import CHUNK_BYTES, Credentials, SaslError, SaslLogin, authenticate_lines, choose_mechanism
from chatc.state import ClientState, SendLine
from tests.test_chatc_ircv3 import negotiated, texts_of

SCRAM_OFFER = "sasl=PLAIN,SCRAM-SHA-256,EXTERNAL"


def login_state(offer: str = SCRAM_OFFER, sasl_fail: str = "disconnect", password: str = "hunter2") -> ClientState:
    """A state that asked for ``sasl`` (and server-time) in answer to ``offer`` and got both."""
    state = ClientState("me", sasl=Credentials("alice", password), sasl_fail=sasl_fail)
    state.registration_lines()
    assert state.feed(f":srv CAP * LS :server-time {offer}") == [SendLine("CAP REQ :sasl server-time")]
    return state


def sent(events: list[object]) -> list[str]:
    return [event.line for event in events if isinstance(event, SendLine)]


def payload_of(lines: list[str]) -> bytes:
    chunks = [line.split(" ", 1)[1] for line in lines]
    return base64.b64decode("".join(chunk for chunk in chunks if chunk != "+"))


def challenge_lines(payload: bytes) -> list[str]:
    return [":srv " + line for line in authenticate_lines(payload)]


def feed_all(state: ClientState, lines: list[str]) -> list[object]:
    events: list[object] = []
    for line in lines:
        events += state.feed(line)
    return events


# ---- the exchange ---------------------------------------------------------------------------------------------


def test_scram_sha_256_logs_in_against_scramps_server_and_checks_the_server_too() -> None:
    mechanism = ScramMechanism("SCRAM-SHA-256")
    keys = mechanism.make_auth_info("hunter2", iteration_count=4096)
    server = mechanism.make_server(lambda username: keys)
    state = login_state()
    assert state.feed(":srv CAP * ACK :sasl server-time") == [SendLine("AUTHENTICATE SCRAM-SHA-256")]
    assert state.cap_negotiating  # CAP END waits for the login
    first = sent(state.feed("AUTHENTICATE +"))
    server.set_client_first(payload_of(first).decode())
    final = sent(feed_all(state, challenge_lines(server.get_server_first().encode())))
    server.set_client_final(payload_of(final).decode())  # raises if the proof is wrong
    assert sent(feed_all(state, challenge_lines(server.get_server_final().encode()))) == ["AUTHENTICATE +"]
    assert state.login is not None and state.login.verified
    events = state.feed(":srv 900 me me!chatc@host alice :You are now logged in as alice")
    assert events == [AccountStatus("You are now logged in as alice", "alice")]
    assert state.account == "alice"
    assert state.feed(":srv 903 me :SASL authentication successful") == [SendLine("CAP END")]
    assert state.login is None and "hunter2" not in " ".join(texts_of(state, "server"))


def test_a_scram_server_that_does_not_know_the_keys_is_not_believed() -> None:
    state = login_state()
    state.feed(":srv CAP * ACK :sasl server-time")
    client_first = payload_of(sent(state.feed("AUTHENTICATE +"))).decode()
    nonce = client_first.split("r=", 1)[1]
    salt = base64.b64encode(b"sixteen byte salt").decode()
    state.feed(":srv AUTHENTICATE " + base64.b64encode(f"r={nonce}xyz,s={salt},i=4096".encode()).decode())
    forged = base64.b64encode(b"v=" + base64.b64encode(b"x" * 32)).decode()
    assert sent(state.feed(f":srv AUTHENTICATE {forged}")) == ["AUTHENTICATE *"]
    events = state.feed(":srv 906 me :SASL authentication aborted")
    failure = next(event for event in events if isinstance(event, LoginFailed))
    assert failure.fatal and "signature" in failure.reason


def test_plain_is_used_when_the_server_has_no_scram() -> None:
    state = login_state("sasl=PLAIN,EXTERNAL")
    assert state.feed(":srv CAP * ACK :sasl server-time") == [SendLine("AUTHENTICATE PLAIN")]
    assert payload_of(sent(state.feed("AUTHENTICATE +"))) == b"alice\0alice\0hunter2"


def test_a_long_plain_payload_leaves_in_400_byte_chunks() -> None:
    state = login_state("sasl=PLAIN", password="p" * 600)
    state.feed(":srv CAP * ACK :sasl server-time")
    lines = sent(state.feed("AUTHENTICATE +"))
    chunks = [line.split(" ", 1)[1] for line in lines]
    assert [len(chunk) for chunk in chunks[:-1]] == [CHUNK_BYTES] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) < CHUNK_BYTES
    assert payload_of(lines) == b"alice\0alice\0" + b"p" * 600


@pytest.mark.parametrize(
    ("payload_bytes", "lines"), [(0, ["+"]), (300, [400, "+"]), (297, [396]), (301, [400, 4]), (600, [400, 400, "+"])]
)
def test_chunking_ends_a_payload_of_whole_chunks_with_a_plus(payload_bytes: int, lines: list[object]) -> None:
    out = [line.split(" ", 1)[1] for line in authenticate_lines(b"x" * payload_bytes)]
    assert [chunk if chunk == "+" else len(chunk) for chunk in out] == lines


def test_a_chunked_challenge_is_put_together_and_bounded() -> None:
    login = SaslLogin(Credentials("alice", "pw"), "PLAIN")
    lines = authenticate_lines(b"y" * 300)  # 400 characters, then "+"
    assert login.feed(lines[0].split(" ", 1)[1]) == []
    assert login.feed("+") != []
    with pytest.raises(SaslError, match="too long"):
        for _ in range(100):
            login.feed("A" * CHUNK_BYTES)


def test_mechanism_choice_prefers_scram_and_tries_plain_without_a_value() -> None:
    assert choose_mechanism("PLAIN,SCRAM-SHA-256,EXTERNAL") == "SCRAM-SHA-256"
    assert choose_mechanism("EXTERNAL,PLAIN") == "PLAIN"
    assert choose_mechanism(None) == "PLAIN"
    assert choose_mechanism("EXTERNAL") is None
    assert "hunter2" not in repr(Credentials("alice", "hunter2"))


def test_a_908_list_makes_the_904_a_retry_with_a_mechanism_the_server_has() -> None:
    state = login_state("sasl")
    assert state.feed(":srv CAP * ACK :sasl server-time") == [SendLine("AUTHENTICATE PLAIN")]
    state.feed(":srv 908 me SCRAM-SHA-256 :are available SASL mechanisms")
    assert state.feed(":srv 904 me :SASL authentication failed") == [SendLine("AUTHENTICATE SCRAM-SHA-256")]


# ---- failures -------------------------------------------------------------------------------------------------


def test_a_failed_login_says_why_and_disconnects_by_default() -> None:
    state = login_state()
    state.feed(":srv CAP * ACK :sasl server-time")
    state.feed("AUTHENTICATE +")
    events = state.feed(":srv 904 me :SASL authentication failed: Invalid account credentials")
    assert sent(events) == ["QUIT :SASL login failed"]  # no CAP END: registration never completes
    assert LoginFailed("SASL authentication failed: Invalid account credentials", True) in events
    assert "SASL login failed: SASL authentication failed: Invalid account credentials" in texts_of(state, "")[-1]


def test_with_sasl_fail_continue_a_failed_login_registers_without_an_account() -> None:
    state = login_state(sasl_fail="continue")
    state.feed(":srv CAP * ACK :sasl server-time")
    events = state.feed(":srv 904 me :Too many failed attempts, try again later")
    assert sent(events) == ["CAP END"]
    assert LoginFailed("Too many failed attempts, try again later", False) in events
    assert "continuing without an account" in texts_of(state, "")[-1]
    state.feed(":srv 001 me :Welcome")
    assert state.registered and state.account is None


@pytest.mark.parametrize("policy", ["disconnect", "continue"])
def test_a_server_without_sasl_is_said_clearly(policy: str) -> None:
    state = ClientState("me", sasl=Credentials("alice", "pw"), sasl_fail=policy)
    state.registration_lines()
    events = state.feed(":srv CAP * LS :server-time")
    failure = next(event for event in events if isinstance(event, LoginFailed))
    assert failure.reason == "the server does not offer SASL (no sasl capability)"
    assert sent(events) == (["QUIT :SASL login failed"] if policy == "disconnect" else ["CAP REQ server-time"])


def test_a_login_the_server_never_finishes_times_out_into_a_failure() -> None:
    state = login_state(sasl_fail="continue")
    state.feed(":srv CAP * ACK :sasl server-time")
    assert state.cap_timeout() == [] and state.end_cap_negotiation() == []  # the first deadline waits
    events = state.cap_timeout(force=True)
    assert sent(events) == ["AUTHENTICATE *", "CAP END"]
    assert any(isinstance(event, LoginFailed) for event in events)


def test_a_new_connection_logs_in_again_and_forgets_the_account() -> None:
    state = login_state()
    state.feed(":srv CAP * ACK :sasl server-time")
    state.feed(":srv 900 me me!u@h alice :You are now logged in as alice")
    state.connection_lost("gone")
    assert state.account is None
    state.registration_lines()
    assert state.feed(f":srv CAP * LS :{SCRAM_OFFER}") == [SendLine("CAP REQ sasl")]


# ---- being logged in ------------------------------------------------------------------------------------------


def test_901_and_account_notify_about_us_change_the_account() -> None:
    state = negotiated()
    state.feed(":srv 900 me me!u@h alice :You are now logged in as alice")
    assert state.account == "alice"
    assert state.feed(":srv 901 me me!u@h :You are now logged out") == [AccountStatus("You are now logged out", None)]
    assert state.account is None
    state.feed(":me!u@h ACCOUNT alice")
    assert state.account == "alice"
    state.feed(":me!u@h ACCOUNT *")
    assert state.account is None


def test_account_notify_about_others_shows_in_their_query() -> None:
    state = negotiated()
    state.open_buffer("bob")
    state.feed(":bob!u@h ACCOUNT bobby")
    assert texts_of(state, "bob")[-1] == "bob is now logged in as bobby"


# ---- /register, /identify, and passwords --------------------------------------------------------------------


def test_register_uses_the_register_command_where_the_server_offers_it() -> None:
    state = negotiated("server-time draft/account-registration=before-connect,custom-account-name")
    assert interpret(state, "/register s3cret").lines == ["REGISTER * * s3cret"]
    assert interpret(state, "/register s3cret me@example.org").lines == ["REGISTER * me@example.org s3cret"]
    outcome = interpret(state, "/register alice s3cret a@b.c")
    assert outcome.lines == ["REGISTER alice a@b.c s3cret"] and outcome.secret
    assert not any("s3cret" in text for text in texts_of(state, ""))


def test_register_respects_what_the_registration_cap_says() -> None:
    state = negotiated("server-time draft/account-registration=email-required")
    with pytest.raises(CommandError, match="needs an email"):
        interpret(state, "/register s3cret")
    with pytest.raises(CommandError, match="/nick alice first"):
        interpret(state, "/register alice s3cret a@b.c")


def test_register_falls_back_to_nickserv() -> None:
    state = negotiated("server-time")
    assert interpret(state, "/register s3cret").lines == ["PRIVMSG NickServ :REGISTER s3cret"]
    assert interpret(state, "/register s3cret a@b.c").lines == ["PRIVMSG NickServ :REGISTER s3cret a@b.c"]
    with pytest.raises(CommandError, match="current nick"):
        interpret(state, "/register alice s3cret")


def test_identify_goes_to_nickserv_and_shows_no_password() -> None:
    state = negotiated("server-time")
    outcome = interpret(state, "/identify alice s3cret")
    assert outcome.lines == ["PRIVMSG NickServ :IDENTIFY alice s3cret"] and outcome.secret
    assert interpret(state, "/identify s3cret").lines == ["PRIVMSG NickServ :IDENTIFY s3cret"]
    outcome = interpret(state, "/msg NickServ IDENTIFY s3cret")
    assert outcome.secret
    interpret(state, "/ns SET PASSWORD n3w")
    interpret(state, "/msg nickserv register s3cret a@b.c")
    shown = [line.text for buf in state.buffer_list for line in buf.lines]
    assert not any("s3cret" in text or "n3w" in text for text in shown), shown
    assert "IDENTIFY ********" in shown and "SET PASSWORD ********" in shown
    assert not interpret(state, "/ns INFO alice").secret


def test_an_echoed_identify_is_shown_masked() -> None:
    state = negotiated()
    state.feed(":me!u@h PRIVMSG NickServ :IDENTIFY alice s3cret")
    shown = [line.text for buf in state.buffer_list for line in buf.lines]
    assert "IDENTIFY alice ********" in shown and not any("s3cret" in text for text in shown)


def test_quote_with_a_password_is_secret() -> None:
    state = negotiated()
    assert interpret(state, "/quote PASS x").secret
    assert interpret(state, "/quote NS IDENTIFY x").secret
    assert interpret(state, "/quote PRIVMSG NickServ :IDENTIFY x").secret
    assert not interpret(state, "/quote WHOIS x").secret


def test_register_replies_and_standard_replies_read_as_sentences() -> None:
    state = negotiated()
    events = state.feed(":srv REGISTER SUCCESS alice :Account created")
    assert events == [AccountStatus("Account alice registered: Account created", None)]
    state.feed(":srv REGISTER VERIFICATION_REQUIRED alice :Check your email")
    assert texts_of(state, "")[-1] == "Account alice registered; verify it: Check your email (/verify alice CODE)"
    state.feed(":srv FAIL REGISTER ACCOUNT_EXISTS alice :Account already exists")
    assert texts_of(state, "")[-1] == "REGISTER failed: Account already exists (ACCOUNT_EXISTS alice)"
    state.feed(":srv WARN REHASH CERTS_EXPIRED :Certificate [xxx] has expired")
    assert texts_of(state, "")[-1] == "REHASH warning: Certificate [xxx] has expired (CERTS_EXPIRED)"
    state.feed(":srv NOTE * OPER_MESSAGE :The message")
    assert texts_of(state, "")[-1] == "Note: The message (OPER_MESSAGE)"


def test_a_chosen_mechanism_is_the_only_one_tried() -> None:
    state = ClientState("me", sasl=Credentials("alice", "pw", "PLAIN"))
    state.registration_lines()
    state.feed(f":srv CAP * LS :{SCRAM_OFFER}")
    assert state.feed(":srv CAP * ACK :sasl") == [SendLine("AUTHENTICATE PLAIN")]
    state = ClientState("me", sasl=Credentials("alice", "pw", "SCRAM-SHA-256"), sasl_fail="continue")
    state.registration_lines()
    state.feed(":srv CAP * LS :sasl=PLAIN")
    failure = [event for event in state.feed(":srv CAP * ACK :sasl") if isinstance(event, LoginFailed)]
    assert failure and "no mechanism chatc knows" in failure[0].reason
