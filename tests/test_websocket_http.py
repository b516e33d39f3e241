"""Plain HTTP on the WebSocket port, over both backends: the web client's static files, /healthz,
/metrics through a provider, 404, no way out of the web root, HEAD, 405, and the headers."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from chatd.http import CONTENT_SECURITY_POLICY, WEB_ROOT, HttpRoutes
from tests.helpers import DEADLINE_S
from tests.wsclient import WsClient, ws_server, ws_url


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>chatd</title><script src=app.js></script>")
    (root / "app.js").write_text("console.log('hi');\n")
    (root / "style.css").write_text("body { margin: 0 }\n")
    (tmp_path / "secret.txt").write_text("not for the web")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    return root


def _request(address: tuple[str, int], method: str, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=DEADLINE_S)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_static_files_health_and_errors(backend: str, web_root: Path) -> None:
    with ws_server(backend, http_routes=HttpRoutes(web_root)) as server:
        address = server.server.addresses["ws"]
        response, body = _request(address, "GET", "/")
        assert response.status == 200 and body == (web_root / "index.html").read_bytes()
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert response.getheader("Content-Length") == str(len(body))
        assert response.getheader("Connection") == "close"
        assert response.getheader("Content-Security-Policy") == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
        response, body = _request(address, "GET", "/app.js?v=1")
        assert response.status == 200 and response.getheader("Content-Type") == "text/javascript; charset=utf-8"
        response, _ = _request(address, "GET", "/style.css")
        assert response.getheader("Content-Type") == "text/css; charset=utf-8"
        response, body = _request(address, "GET", "/healthz")
        assert (response.status, body) == (200, b"ok\n")
        for missing in ("/nothing.js", "/metrics", "/link.txt"):
            assert _request(address, "GET", missing)[0].status == 404, missing
        response, body = _request(address, "HEAD", "/app.js")
        assert response.status == 200 and body == b""
        assert response.getheader("Content-Length") == str(len((web_root / "app.js").read_bytes()))
        response, _ = _request(address, "DELETE", "/")
        assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
        # The server goes on: a WebSocket client on the same port still chats.
        WsClient(ws_url(server), "after").sync()


@pytest.mark.parametrize(
    "path", ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "//etc/passwd", "/%2fetc%2fpasswd"]
)
def test_no_way_out_of_the_web_root(backend: str, web_root: Path, path: str) -> None:
    with ws_server(backend, http_routes=HttpRoutes(web_root)) as server:
        sock = socket.create_connection(server.server.addresses["ws"], timeout=DEADLINE_S)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 404 ") and b"not for the web" not in answer


def test_metrics_come_from_the_provider_plugged_in(backend: str, web_root: Path) -> None:
    with ws_server(backend, http_routes=HttpRoutes(web_root)) as server:
        address = server.server.addresses["ws"]
        assert _request(address, "GET", "/metrics")[0].status == 404
        server.server.http_routes.set_metrics(lambda: ("text/plain; version=0.0.4; charset=utf-8", b"chatd_up 1\n"))
        response, body = _request(address, "GET", "/metrics")
        assert response.status == 200 and body == b"chatd_up 1\n"
        assert response.getheader("Content-Type").startswith("text/plain; version=0.0.4")
        server.server.http_routes.set_health(lambda: (503, "draining\n"))
        assert _request(address, "GET", "/healthz")[:2] and _request(address, "GET", "/healthz")[0].status == 503


def test_default_health_is_503_once_shutting_down() -> None:
    routes = HttpRoutes()
    assert routes.respond("GET", "/healthz").status == 200
    routes.shutting_down = True
    answer = routes.respond("GET", "/healthz")
    assert (answer.status, answer.body) == (503, b"shutting down\n")


def test_the_package_web_root_is_chatd_web() -> None:
    assert WEB_ROOT.parts[-2:] == ("chatd", "web")
