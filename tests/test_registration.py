"""Registration, CAP negotiation, PASS, nick rules, PING — on the hub harness.

The welcome burst and the drop of a client that does not answer PING (the backend's
timers and its close after ERROR) also run over both backends, as the smoke test of
the socket wiring.
"""

from __future__ import annotations

from tests.harness import HubHarness
from tests.helpers import IrcClient, RunningServer, running_server


def test_welcome_burst(server: RunningServer) -> None:
    client = IrcClient(server.address)
    messages = client.register("alice")
    commands = [m.command for m in messages]
    for numeric in ("001", "002", "003", "004", "005", "251", "254", "255", "422"):
        assert numeric in commands
    assert commands.index("001") < commands.index("005") < commands.index("251") < commands.index("422")
    welcome = messages[commands.index("001")]
    assert welcome.params[0] == "alice" and "alice!~u@127.0.0.1" in welcome.params[1]
    isupport = " ".join(" ".join(m.params[1:-1]) for m in messages if m.command == "005")
    for token in (
        "CASEMAPPING=rfc1459",
        "CHANTYPES=#",
        "NICKLEN=32",
        "PREFIX=(ov)@+",
        "NETWORK=chatd",
        "CHANMODES=",
        "TOPICLEN=",
        "CHANNELLEN=",
    ):
        assert token in isupport


def test_motd_file_lines() -> None:
    hub = HubHarness(motd_lines=("Be nice.", "Second line"))
    messages = hub.client().register("m")
    motd = [m.params[1] for m in messages if m.command == "372"]
    assert motd == ["- Be nice.", "- Second line"]
    assert messages[-1].command == "376"


def test_cap_negotiation_waits_for_cap_end() -> None:
    hub = HubHarness()
    client = hub.client()
    client.send("CAP LS 302")
    client.send("NICK capper")
    client.send("USER u 0 * :R")
    ls = client.expect("CAP")
    assert ls.params[:2] == ("*", "LS")
    client.send("CAP REQ :multi-prefix bogus-cap")
    assert client.expect("CAP").params[1:] == ("NAK", "multi-prefix bogus-cap")
    client.send("CAP REQ :multi-prefix")
    assert client.expect("CAP").params[1:] == ("ACK", "multi-prefix")
    before_end = client.sync()
    assert "001" not in [m.command for m in before_end]
    client.send("CAP END")
    assert client.expect("001").params[0] == "capper"


def test_password_required() -> None:
    hub = HubHarness(password="sesame")
    wrong = hub.client()
    wrong.send("PASS nope")
    wrong.send("NICK w")
    wrong.send("USER u 0 * :R")
    assert wrong.expect("464").command == "464"
    assert any(line.startswith("ERROR") for line in wrong.wait_closed())
    right = hub.client()
    right.send("PASS sesame")
    assert right.register("r")[-1].command in ("376", "422")


def test_nick_errors() -> None:
    hub = HubHarness()
    holder = hub.client("taken")
    client = hub.client()
    client.send("NICK")
    assert client.expect("431").params[0] == "*"
    client.send("NICK 9lives")
    assert client.expect("432").params[1] == "9lives"
    client.send("NICK " + "x" * 33)
    assert client.expect("432")
    client.send("NICK TAKEN")
    assert client.expect("433").params[1] == "TAKEN"
    assert client.register("x" * 32)[-1].command in ("376", "422")
    holder.close()


def test_nick_uniqueness_uses_rfc1459_casemapping() -> None:
    hub = HubHarness()
    holder = hub.client("nick[1]")
    other = hub.client()
    other.send("NICK NICK{1}")
    assert other.expect("433")
    holder.close()


def test_commands_before_registration_get_451() -> None:
    client = HubHarness().client()
    client.send("NICK early")
    client.send("JOIN #x")
    assert client.expect("451").params[0] == "early"


def test_second_user_gets_462_and_missing_params_461() -> None:
    client = HubHarness().client("twice")
    client.send("USER again 0 * :Again")
    assert client.expect("462")
    client.send("JOIN")
    assert client.expect("461").params[1] == "JOIN"
    client.send("FROBNICATE now")
    assert client.expect("421").params[1] == "FROBNICATE"


def test_ping_pong() -> None:
    client = HubHarness().client("pinger")
    client.send("PING :are you there")
    pong = client.expect("PONG")
    assert pong.params == ("chatd", "are you there")
    client.send("PING")
    assert client.expect("409")


def test_server_pings_idle_clients_and_keeps_those_that_answer() -> None:
    hub = HubHarness(ping_interval_s=0.3, ping_timeout_s=0.5)
    client = hub.client("lively")
    for _ in range(2):
        ping = client.expect("PING")
        assert ping.params == ("chatd",)
        client.send(f"PONG :{ping.param(0)}")
    assert client.sync() is not None  # still connected after two ping cycles


def test_server_drops_clients_that_do_not_answer_pings(backend: str) -> None:
    with running_server(backend, ping_interval_s=0.3, ping_timeout_s=0.5) as server:
        quiet, watcher = server.client("quiet"), server.client("watcher")
        for client in (quiet, watcher):
            client.send("JOIN #w")
            client.expect("366")
        watcher_ping = watcher.expect("PING")
        watcher.send(f"PONG :{watcher_ping.param(0)}")
        error = quiet.wait_for_line(lambda line: line.startswith("ERROR"))
        assert "Ping timeout" in error
        assert quiet.wait_closed() == []
        quit_message = watcher.expect("QUIT")
        assert quit_message.source is not None and quit_message.source.startswith("quiet!")
        assert "Ping timeout" in quit_message.params[0]
