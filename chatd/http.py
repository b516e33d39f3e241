"""What the WebSocket and metrics listeners answer to a plain HTTP request: the web client, /healthz, /metrics.

``HttpRoutes.respond(method, path)`` is the whole interface: it takes a request the
transport has already parsed (websockets' HTTP parser, the only one chatd has) and
returns an ``HttpAnswer`` the transport serialises. No sockets, no threads here.

Invariants:
- Only files directly inside the web root (``chatd/web/`` by default) are ever read: a
  path is looked up by name among the files found there, never joined onto the file
  system, so ``..``, encoded slashes and symlinks out of it cannot reach anything else.
- Every answer has a Content-Length and ``Connection: close`` (one request per
  connection: the listener is a WebSocket port first, not a web server), and the
  ``CONTENT_SECURITY_POLICY`` below, which forbids inline script and every other origin.
- ``HEAD`` gets the headers ``GET`` would, without a body; any other method but GET gets 405.
- /healthz and /metrics come from providers (``health``, ``metrics``) another module may
  set; until a metrics provider is set, /metrics is 404.
- With ``web_root`` None (the metrics listener's router) no file is served: /healthz and
  /metrics are all there is, anything else is 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

WEB_ROOT = Path(__file__).resolve().parent / "web"
"""The web client's files, shipped as package data."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Scripts, styles and images from this origin only (no inline script or style attribute
blocks, no eval); WebSocket connections back to the page's host (``'self'`` does not cover
ws: in every browser, hence ws: and wss:); nothing may frame the page."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}

MAX_STATIC_BYTES = 4 << 20
"""Larger files in the web root are not served (it holds a small client, nothing else)."""

HealthProvider = Callable[[], tuple[int, str]]
"""``health() -> (status, body)``: 200 while serving, 503 while shutting down."""
MetricsProvider = Callable[[], tuple[str, bytes]]
"""``metrics() -> (content_type, body)``: the Prometheus exposition (chatd.metrics)."""

ScrapeGuard = Callable[[str, Iterable[str]], bool]
"""``allowed(peer, header_names)``: whether this request may read /metrics (chatd.metrics.scrape_allowed)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A response to send: status, reason, headers (without Content-Length) and body."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    head: bool = False
    """A HEAD request's answer: Content-Length as for GET, the body left out on the wire."""

    def header_list(self) -> list[tuple[str, str]]:
        """Every header to send, Content-Length and Connection included."""
        return [*self.headers, ("Content-Length", str(len(self.body))), ("Connection", "close")]


REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass(slots=True)
class HttpRoutes:
    """The router of one server; ``set_metrics``/``set_health`` plug providers in at any time.

    Called from the backend's loop (selectors) or a reader thread (threads): the providers
    must be safe to call from there and must not block for long.
    """

    web_root: Path | None = WEB_ROOT
    """None: no web client here (the metrics listener)."""
    shutting_down: bool = False
    """Set by the server once it stops: the default /healthz says 503 from then on."""
    _health: HealthProvider | None = None
    _metrics: MetricsProvider | None = None
    _scrape_allowed: ScrapeGuard | None = None
    _files: dict[str, Path] | None = field(default=None, repr=False)

    def set_metrics(self, provider: MetricsProvider | None, allowed: ScrapeGuard | None = None) -> None:
        """Serve /metrics from ``provider``, to the requests ``allowed`` lets through (all without one)."""
        self._metrics = provider
        self._scrape_allowed = allowed

    def set_health(self, provider: HealthProvider | None) -> None:
        self._health = provider

    def health(self) -> tuple[int, str]:
        if self._health is not None:
            return self._health()
        return (503, "shutting down\n") if self.shutting_down else (200, "ok\n")

    def respond(self, method: str, target: str, peer: str = "", header_names: Iterable[str] = ()) -> HttpAnswer:
        """The answer to ``method target`` (target as in the request line, query included), from
        the socket's ``peer`` (never an address a header names) with these request headers."""
        if method not in ("GET", "HEAD"):
            return _text(405, "method not allowed\n", (("Allow", "GET, HEAD"),))
        answer = self._route(unquote(target.split("?", 1)[0].split("#", 1)[0]), peer, header_names)
        if method == "HEAD":
            return HttpAnswer(answer.status, answer.reason, answer.headers, answer.body, head=True)
        return answer

    def _route(self, path: str, peer: str, header_names: Iterable[str]) -> HttpAnswer:
        if path == "/healthz":
            status, body = self.health()
            return _text(status, body)
        if path == "/metrics":
            if self._metrics is None:
                return _text(404, "not found\n")
            if self._scrape_allowed is not None and not self._scrape_allowed(peer, header_names):
                return _text(403, "metrics are served to this machine only\n")
            content_type, data = self._metrics()
            return _answer(200, data, content_type, (("Cache-Control", "no-store"),))
        name = "index.html" if path == "/" else path.removeprefix("/")
        file = self._static_files().get(name)
        if file is None:
            return _text(404, "not found\n")
        try:
            data = file.read_bytes()
        except OSError:
            return _text(404, "not found\n")
        content_type = CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
        return _answer(200, data, content_type, (("Cache-Control", "no-cache"),))

    def _static_files(self) -> dict[str, Path]:
        """Name to file, for the regular files directly in the web root (read once)."""
        if self._files is None:
            files: dict[str, Path] = {}
            try:
                entries = [] if self.web_root is None else list(self.web_root.iterdir())
            except OSError:
                entries = []
            for entry in entries:
                try:
                    if entry.is_file() and not entry.is_symlink() and entry.stat().st_size <= MAX_STATIC_BYTES:
                        files[entry.name] = entry
                except OSError:
                    continue
            self._files = files
        return self._files


def _answer(status: int, body: bytes, content_type: str, extra: tuple[tuple[str, str], ...] = ()) -> HttpAnswer:
    headers = (
        ("Content-Type", content_type),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        *extra,
    )
    return HttpAnswer(status, REASONS.get(status, "Error"), headers, body)


def _text(status: int, text: str, extra: tuple[tuple[str, str], ...] = ()) -> HttpAnswer:
    return _answer(status, text.encode(), "text/plain; charset=utf-8", extra)
