"""``--metrics-port``/``--metrics-host``: /metrics and /healthz on a listener of their own.

There /metrics is open to every peer (forwarded or not), nothing but /metrics and /healthz
is served and no WebSocket opens; the WebSocket port then answers /metrics with 404 and
keeps /healthz. Over both backends, through real sockets, as a scraper and a load balancer
would ask.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from chatd.cli import parse_settings
from chatd.metrics import CONTENT_TYPE, Metrics
from tests.helpers import DEADLINE_S, RunningServer, free_port
from tests.test_cli import chatd_process
from tests.wsclient import WsClient, ws_server, ws_url


def http(address: tuple[str, int], path: str, method: str = "GET", **headers: str) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of one request (an error status is an answer too)."""
    host, port = address
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def families(body: bytes) -> set[str]:
    return {family.name for family in text_string_to_metric_families(body.decode())}


def install(server: RunningServer) -> None:
    """As chatd's CLI does."""
    inner = server.server
    Metrics(inner.hub).install(inner.http_routes, inner.metrics_routes)  # type: ignore[attr-defined]


def test_metrics_on_their_own_listener_open_to_forwarded_requests_too(backend: str) -> None:
    with ws_server(backend, metrics_port=0) as server:
        install(server)
        metrics = server.server.addresses["metrics"]
        assert metrics[0] == "127.0.0.1"  # the default: this machine only
        status, content_type, body = http(metrics, "/metrics")
        assert (status, content_type) == (200, CONTENT_TYPE)
        assert {"chatd_connections", "chatd_users", "chatd_messages"} <= families(body)
        status, _, body = http(metrics, "/metrics", **{"X-Forwarded-For": "192.0.2.7"})
        assert status == 200 and "chatd_users" in families(body)
        status, _, body = http(metrics, "/metrics", "HEAD")
        assert (status, body) == (200, b"")


def test_the_websocket_port_keeps_healthz_and_answers_metrics_with_404(backend: str) -> None:
    with ws_server(backend, metrics_port=0) as server:
        install(server)
        public, metrics = server.server.addresses["ws"], server.server.addresses["metrics"]
        assert http(public, "/metrics")[0] == 404  # from loopback, unforwarded: still not here
        assert http(public, "/healthz")[:1] == (200,)
        assert http(metrics, "/healthz")[0] == 200
        assert http(public, "/")[0] == 200  # the web client stays where it was


@pytest.mark.parametrize("path", ["/", "/index.html", "/app.js", "/metricsx", "/healthz/", "/../metrics"])
def test_nothing_else_is_served_on_the_metrics_listener(backend: str, path: str) -> None:
    with ws_server(backend, metrics_port=0) as server:
        install(server)
        assert http(server.server.addresses["metrics"], path)[0] == 404
        assert http(server.server.addresses["metrics"], "/metrics", "POST")[0] == 405


def test_no_websocket_opens_on_the_metrics_listener(backend: str) -> None:
    with ws_server(backend, metrics_port=0) as server:
        install(server)
        host, port = server.server.addresses["metrics"]
        for path in ("", "/metrics"):
            with pytest.raises(InvalidStatus) as refused:
                WsClient(f"ws://{host}:{port}{path}")
            assert refused.value.response.status_code == 404
        WsClient(ws_url(server), "web").sync()  # the WebSocket port is unaffected
        assert http((host, port), "/healthz")[0] == 200


def test_a_stalled_request_on_the_metrics_listener_blocks_nobody(backend: str) -> None:
    with ws_server(backend, metrics_port=0) as server:
        install(server)
        metrics = server.server.addresses["metrics"]
        with socket.create_connection(metrics, timeout=DEADLINE_S) as stalled:
            stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            assert http(metrics, "/metrics")[0] == 200
            assert http(server.server.addresses["ws"], "/healthz")[0] == 200
            server.client("still").sync()


def test_without_a_websocket_port_the_metrics_listener_serves_alone(backend: str) -> None:
    with ws_server(backend, ws_port=None, metrics_port=0) as server:
        install(server)
        assert set(server.server.addresses) == {"tcp", "metrics"}
        status, _, body = http(server.server.addresses["metrics"], "/metrics")
        assert status == 200 and "chatd_users" in families(body)


def test_without_metrics_port_the_websocket_port_serves_metrics_to_this_machine(backend: str) -> None:
    with ws_server(backend) as server:
        install(server)
        assert "metrics" not in server.server.addresses
        assert server.server.metrics_routes is None  # type: ignore[attr-defined]
        assert http(server.server.addresses["ws"], "/metrics")[0] == 200
        assert http(server.server.addresses["ws"], "/metrics", **{"X-Forwarded-For": "192.0.2.7"})[0] == 403


@pytest.mark.parametrize(
    ("args", "env", "complaint"),
    [
        (["--metrics-port", "99999"], {}, "--metrics-port: '99999' is not a port number"),
        ([], {"CHATD_METRICS_PORT": "prom"}, "CHATD_METRICS_PORT: 'prom' is not a port number"),
        (["--metrics-host", "10.0.0.5"], {}, "--metrics-host: needs --metrics-port"),
        (["--metrics-port", "9105", "--metrics-host", "metrics.local"], {}, "'metrics.local' is not an IP address"),
        (["--metrics-port", "9105"], {"CHATD_METRICS_HOST": "10.0.0.300"}, "CHATD_METRICS_HOST: '10.0.0.300' is not"),
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
    _, settings = parse_settings(["--no-persist", "--metrics-port", "9105", "--metrics-host", "[::1]"], {})
    assert (settings.metrics_host, settings.metrics_port) == ("::1", 9105)
    _, settings = parse_settings(["--no-persist"], {"CHATD_METRICS_PORT": "9105", "CHATD_METRICS_HOST": "10.0.0.5"})
    assert (settings.metrics_host, settings.metrics_port) == ("10.0.0.5", 9105)
    _, defaults = parse_settings(["--no-persist"], {})
    assert defaults.metrics_port is None and defaults.metrics_host == "127.0.0.1"


def test_chatd_with_metrics_port_and_no_websocket_port_is_scraped(backend: str) -> None:
    port = free_port()
    with chatd_process("--backend", backend, "--no-persist", "--metrics-port", str(port)) as (process, _):
        status, content_type, body = http(("127.0.0.1", port), "/metrics")
        assert (status, content_type) == (200, CONTENT_TYPE)
        assert "chatd_serving" in families(body)
        assert http(("127.0.0.1", port), "/healthz")[0] == 200
        process.terminate()
        assert process.wait(DEADLINE_S) == 0
