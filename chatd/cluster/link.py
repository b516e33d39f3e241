"""The Redis I/O of a node: one bridge thread, two blocking sockets, reconnect with backoff.

Why a thread and not a socket in the selectors loop: the same code then serves both
backends, and connecting, handshaking and backing off are plain blocking code with
timeouts. The hub never waits for Redis: it queues commands (``command`` only appends
to a list and nudges the thread) and gets everything back — replies, pub/sub
messages, ticks, link up/down — as callables handed to the backend's ``post``, which
runs them on the hub's thread (selectors) or under the hub's lock (threads).

The thread owns a *command* connection (requests and replies, matched in order) and a
*subscriber* connection (SUBSCRIBE; pub/sub messages arrive in publish order per
publisher). Either one failing drops both; every command still waiting for a reply
is answered with ``LINK_DOWN``, and the hub hears ``link_down`` once. An outage is
logged as one warning when it starts and one when the link is back, never a
traceback per retry.

Invariants:
- ``command`` never blocks and never calls back on the caller's stack: it returns
  False, queuing nothing, while the link is down (or its queue is past its bound).
- A callback given to ``command`` is called exactly once, through ``post``.
- Commands leave in the order ``command`` was called.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from chatd.cluster.config import ClusterSettings
from chatd.cluster.resp import NEED_MORE, ProtocolError, RespError, RespParser, RespValue, encode_command

log = logging.getLogger("chatd")

RECV_BYTES = 256 * 1024
MAX_QUEUED_BYTES = 32 << 20
"""Commands queued while Redis is slow; past this the link is reset and the node resynchronises
instead of growing without bound."""
BACKOFF_MIN_S = 0.1
STABLE_LINK_S = 10.0
"""A link up this long counts as healthy again: its next failure reconnects without waiting."""
STOP_FLUSH_S = 1.0
"""How long a stopping link waits for the replies of its last commands (the goodbye)."""


class _LinkDown:
    """The reply a command gets when the connection failed before its answer came."""

    def __repr__(self) -> str:
        return "LINK_DOWN"


LINK_DOWN = _LinkDown()
ReplyError = RespError

Reply = RespValue | _LinkDown
Callback = Callable[[Reply], None]
Post = Callable[[Callable[[], None]], None]


class LinkError(Exception):
    """The link is unusable (no answer in time, a handshake refused, queue overflow)."""


FAILURES = (OSError, LinkError, ProtocolError, ValueError)
"""What a broken, refused or garbled connection raises; each is an outage, never a crash."""


class Commands(Protocol):
    """What the node asks of the link: the whole of it (a fake in tests)."""

    def command(self, *args: bytes | str | int | float, callback: Callback | None = None) -> bool:
        """Queue one Redis command; False (nothing queued) while the link is down. ``callback``
        gets the reply, or ``LINK_DOWN``, exactly once, through ``post``."""
        ...


class LinkHandler(Protocol):
    """What the link calls, always through ``post`` (so on the hub's thread or under its lock).

    With ``Commands``, the whole interface between the node and the link: pub/sub
    messages arrive as (channel, payload) pairs in publish order; ``link_tick`` comes every
    heartbeat while the link is up; ``link_up`` after every (re)connection and
    subscription, ``link_down`` once per outage.
    """

    def link_up(self) -> None: ...

    def link_down(self) -> None: ...

    def link_tick(self) -> None: ...

    def link_messages(self, messages: list[tuple[bytes, bytes]]) -> None: ...


class RedisLink:
    """Connects to Redis, keeps the subscription, carries commands; ``start``/``stop`` from the owner."""

    def __init__(
        self,
        settings: ClusterSettings,
        channels: list[str],
        handler: LinkHandler,
        post: Post,
        own_suffix: bytes | None = None,
    ) -> None:
        """``own_suffix`` ends every message this node publishes; those come back and are dropped here."""
        self.settings = settings
        self.own_suffix = own_suffix
        self.channels = channels
        self.handler = handler
        self.post = post
        self._lock = threading.Lock()
        self._queue: list[tuple[bytes, Callback | None]] = []
        self._queued_bytes = 0
        self._overflow = False
        self._up = False
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._thread = threading.Thread(target=self._run, name="chatd-redis", daemon=True)
        self._cmd: socket.socket | None = None
        self._sub: socket.socket | None = None
        self._inflight: deque[tuple[Callback | None, float]] = deque()
        self._tick_pending = False

    # ---- the hub's side --------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Send what is queued (best effort, briefly), close, and join the thread. Not from ``post``."""
        self._stopping.set()
        self._wake()
        self._thread.join(timeout=STOP_FLUSH_S + self.settings.redis_timeout_s + 1)
        self._wake_r.close()
        self._wake_w.close()

    def command(self, *args: bytes | str | int | float, callback: Callback | None = None) -> bool:
        """Queue one command; False (nothing queued, no callback) while the link is down."""
        data = encode_command(*args)
        with self._lock:
            if not self._up or self._overflow:
                return False
            if self._queued_bytes + len(data) > MAX_QUEUED_BYTES:
                self._overflow = True
                wake = True
            else:
                self._queue.append((data, callback))
                self._queued_bytes += len(data)
                wake = not self._woken
                self._woken = True
        if wake:
            self._wake()
        return not self._overflow

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # ---- the thread ------------------------------------------------------------

    def _run(self) -> None:
        settings = self.settings
        address = f"{settings.redis.host}:{settings.redis.port}"
        down_since: float | None = None
        attempt = 0
        while not self._stopping.is_set():
            if attempt:
                ceiling = min(settings.backoff_max_s, BACKOFF_MIN_S * 2**attempt)
                if self._stopping.wait(ceiling * random.uniform(0.5, 1.0)):
                    break
            try:
                self._connect()
            except FAILURES as error:
                self._close_sockets()
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("cluster: Redis at %s unreachable (%s); local chat goes on, retrying", address, error)
                attempt += 1
                continue
            if down_since is not None:
                log.warning("cluster: Redis at %s reachable again after %.1fs", address, time.monotonic() - down_since)
            else:
                log.info("cluster: connected to Redis at %s", address)
            down_since = None
            connected_at = time.monotonic()
            with self._lock:
                self._up = True
                self._overflow = False
            self.post(self.handler.link_up)
            try:
                self._serve()
            except FAILURES as error:
                if not self._stopping.is_set():
                    down_since = time.monotonic()
                    log.warning(
                        "cluster: lost the Redis link to %s (%s); local chat goes on, reconnecting", address, error
                    )
            except Exception:  # a bug: say so loudly, then carry on as after any failure
                log.exception("cluster: the Redis link failed")
                down_since = time.monotonic()
            finally:
                self._go_down()
            # A link that failed soon after coming up (Redis accepting, then dropping us) keeps
            # backing off; one that served a while reconnects at once.
            attempt = attempt + 1 if time.monotonic() - connected_at < STABLE_LINK_S else 0
        self._close_sockets()

    def _go_down(self) -> None:
        """Fail every command not answered yet, exactly once each, and tell the hub."""
        with self._lock:
            self._up = False
            queued = [callback for _, callback in self._queue]
            self._queue.clear()
            self._queued_bytes = 0
        waiting = [callback for callback, _ in self._inflight] + queued
        self._inflight.clear()
        self._close_sockets()
        callbacks = [callback for callback in waiting if callback is not None]

        def deliver() -> None:
            for callback in callbacks:
                callback(LINK_DOWN)
            self.handler.link_down()

        if not self._stopping.is_set():
            self.post(deliver)

    def _open(self) -> tuple[socket.socket, RespParser]:
        settings = self.settings
        redis = settings.redis
        sock = socket.create_connection((redis.host, redis.port), timeout=settings.redis_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parser = RespParser()
        handshake: list[tuple[bytes | str | int, ...]] = []
        if redis.password is not None:
            handshake.append(("AUTH", redis.username, redis.password) if redis.username else ("AUTH", redis.password))
        if redis.db:
            handshake.append(("SELECT", redis.db))
        for args in handshake:
            sock.sendall(encode_command(*args))  # type: ignore[arg-type]
            reply = self._read_one(sock, parser)
            if isinstance(reply, RespError):
                sock.close()
                raise LinkError(f"{args[0]} refused: {reply}")
        return sock, parser

    def _read_one(self, sock: socket.socket, parser: RespParser) -> RespValue:
        while True:
            value = parser.get()
            if value is not NEED_MORE:
                return value  # type: ignore[return-value]
            data = sock.recv(RECV_BYTES)
            if not data:
                raise LinkError("connection closed by Redis")
            parser.feed(data)

    def _connect(self) -> None:
        self._cmd, self._cmd_parser = self._open()
        self._sub, self._sub_parser = self._open()
        self._sub.sendall(encode_command("SUBSCRIBE", *self.channels))
        for _ in self.channels:
            reply = self._read_one(self._sub, self._sub_parser)
            if isinstance(reply, RespError) or not isinstance(reply, list) or reply[:1] != [b"subscribe"]:
                raise LinkError(f"SUBSCRIBE refused: {reply!r}")

    def _close_sockets(self) -> None:
        for sock in (self._cmd, self._sub):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._cmd = self._sub = None

    def _serve(self) -> None:
        """Move commands out and replies and messages in until the link fails or we stop."""
        cmd, sub = self._cmd, self._sub
        assert cmd is not None and sub is not None
        settings = self.settings
        tick_s = settings.heartbeat_s
        next_tick = time.monotonic()
        last_sub_rx = time.monotonic()
        sub_ping_sent: float | None = None
        stop_deadline: float | None = None
        # poll, not select: a busy server's Redis sockets get descriptors past select's 1024.
        poller = select.poll()
        for sock in (cmd, sub, self._wake_r):
            poller.register(sock, select.POLLIN)
        while True:
            now = time.monotonic()
            if self._stopping.is_set():
                if stop_deadline is None:
                    stop_deadline = now + STOP_FLUSH_S
                self._send_queued(cmd)
                if not self._inflight or now >= stop_deadline:
                    return
            if now >= next_tick:
                next_tick = now + tick_s
                self._post_tick()
            if self._inflight and now - self._inflight[0][1] > settings.redis_timeout_s:
                raise LinkError(f"no reply within {settings.redis_timeout_s:g}s")
            if now - last_sub_rx > tick_s and sub_ping_sent is None:
                sub.sendall(encode_command("PING"))  # in subscribed mode Redis answers ["pong", ""]
                sub_ping_sent = now
            if sub_ping_sent is not None and now - sub_ping_sent > settings.redis_timeout_s:
                raise LinkError(f"subscription silent for {settings.redis_timeout_s:g}s")
            timeout = max(0.0, min(next_tick - now, 0.05 if stop_deadline is not None else tick_s))
            readable = {fd for fd, _ in poller.poll(timeout * 1000)}
            if self._wake_r.fileno() in readable:
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
            self._send_queued(cmd)
            replies: list[tuple[Callback, Reply]] = []
            messages: list[tuple[bytes, bytes]] = []
            if cmd.fileno() in readable:
                data = cmd.recv(RECV_BYTES)
                if not data:
                    raise LinkError("connection closed by Redis")
                self._cmd_parser.feed(data)
                for reply in self._cmd_parser.replies():
                    if not self._inflight:
                        raise LinkError("a reply nobody asked for")
                    callback, _ = self._inflight.popleft()
                    if callback is not None:
                        replies.append((callback, reply))
                    elif isinstance(reply, RespError):
                        log.warning("cluster: Redis refused a command: %s", reply)
            if sub.fileno() in readable:
                data = sub.recv(RECV_BYTES)
                if not data:
                    raise LinkError("connection closed by Redis")
                last_sub_rx = time.monotonic()
                sub_ping_sent = None
                self._sub_parser.feed(data)
                own = self.own_suffix
                for value in self._sub_parser.replies():
                    if isinstance(value, list) and len(value) == 3 and value[0] == b"message":
                        channel, payload = value[1], value[2]
                        # Our own events, echoed by Redis, are not worth a wake-up of the loop.
                        if (
                            isinstance(channel, bytes)
                            and isinstance(payload, bytes)
                            and (own is None or not payload.endswith(own))
                        ):
                            messages.append((channel, payload))
            if replies or messages:
                self._post_inbound(replies, messages)

    def _send_queued(self, cmd: socket.socket) -> None:
        with self._lock:
            if self._overflow:
                raise LinkError("too many commands queued for a slow Redis")
            queue, self._queue = self._queue, []
            self._queued_bytes = 0
            self._woken = False
        if not queue:
            return
        now = time.monotonic()
        for _, callback in queue:
            self._inflight.append((callback, now))
        cmd.sendall(b"".join(data for data, _ in queue))

    def _post_tick(self) -> None:
        """At most one tick waits in the hub's queue: a slow hub gets no pile of them."""
        if self._tick_pending:
            return
        self._tick_pending = True

        def tick() -> None:
            self._tick_pending = False
            self.handler.link_tick()

        self.post(tick)

    def _post_inbound(self, replies: list[tuple[Callback, Reply]], messages: list[tuple[bytes, bytes]]) -> None:
        handler = self.handler

        def deliver() -> None:
            for callback, reply in replies:
                callback(reply)
            if messages:
                handler.link_messages(messages)

        self.post(deliver)
