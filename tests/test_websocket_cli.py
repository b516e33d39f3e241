"""The WebSocket and proxy options as a user gives them: bad values are one line and exit 2, and
``chatd --ws-port P`` starts as irctest's controller would start it."""

from __future__ import annotations

import ipaddress
import tempfile

import pytest

from chatd.cli import parse_settings
from tests.helpers import free_port
from tests.test_cli import chatd_process, run_chatd
from tests.wsclient import WsClient


@pytest.mark.parametrize(
    ("args", "env", "complaint"),
    [
        (["--ws-port", "99999"], {}, "--ws-port: '99999' is not a port number"),
        ([], {"CHATD_WS_PORT": "web"}, "CHATD_WS_PORT: 'web' is not a port number"),
        (["--wss-port", "6698"], {}, "--wss-port: needs --tls-cert"),
        (["--ws-origins", "chat.example.org"], {}, "--ws-origins: 'chat.example.org' is not an origin"),
        (["--ws-origins", ","], {}, "--ws-origins: no origin given"),
        (["--trusted-proxy", "10.0.0.0/33"], {}, "--trusted-proxy: '10.0.0.0/33' is not an address or CIDR"),
        (["--trusted-proxy", "proxy.local"], {}, "--trusted-proxy: 'proxy.local' is not an address or CIDR"),
        (["--proxy-protocol"], {}, "--proxy-protocol: needs --trusted-proxy"),
        ([], {"CHATD_PROXY_PROTOCOL": "maybe"}, "CHATD_PROXY_PROTOCOL: 'maybe' is not on or off"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    args: list[str], env: dict[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(["--no-persist", *args], env)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and complaint in lines[0], lines


def test_good_values_reach_the_settings() -> None:
    _, settings = parse_settings(
        [
            "--no-persist",
            "--ws-port",
            "8097",
            "--ws-origins",
            "https://Chat.Example.org, http://localhost:8097",
            "--trusted-proxy",
            "10.0.0.0/8,::1",
            "--proxy-protocol",
        ],
        {},
    )
    assert settings.ws_port == 8097 and settings.wss_port is None
    assert settings.ws_origins == ("https://chat.example.org:443", "http://localhost:8097")
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1"))
    assert settings.proxy_protocol
    _, defaults = parse_settings(["--no-persist"], {})
    assert defaults.ws_port is None and defaults.ws_origins is None and defaults.trusted_proxies == ()


def test_help_lists_the_new_options() -> None:
    result = run_chatd("--help")
    for option in ("--ws-port", "--wss-port", "--ws-origins", "--trusted-proxy", "--proxy-protocol"):
        assert option in result.stdout


def test_chatd_with_ws_port_serves_websocket_beside_tcp() -> None:
    ws_port = free_port()
    data_dir = tempfile.mkdtemp(prefix="chatd-test-")
    with chatd_process("--ws-port", str(ws_port), "--data-dir", data_dir, "--flood-rate", "0") as (_, port):
        from tests.helpers import IrcClient

        tcp = IrcClient(("127.0.0.1", port), "nonweb")
        web = WsClient(f"ws://127.0.0.1:{ws_port}", "web", subprotocols=["binary.ircv3.net"])
        web.send("PRIVMSG nonweb :hello")
        assert tcp.expect("PRIVMSG").params == ("nonweb", "hello")
