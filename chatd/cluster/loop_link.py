"""The Redis I/O of a node on the selectors loop itself: the data path has no thread.

Why, next to the bridge thread of ``chatd.cluster.link`` (which the threads backend keeps):
on the selectors backend every command went loop -> thread -> Redis and every reply and
message Redis -> thread -> loop, each hand-off a wake-up byte, a context switch and the
GIL changing hands, and redis-py's pipeline machinery on top. Measured, that was most of
what ``--cluster`` cost per message. Here a command is packed (hiredis) into its
connection's buffer and sent with the turn's client output, one ``send`` per connection
per turn; replies and shard messages are read when the selector says so and parsed by a
hiredis reader. Only opening the connections blocks (connect, AUTH, INFO, the slot map:
``chatd.cluster.opener``), and it runs on a short-lived thread of its own.

The interface and its invariants are the bridge link's (``link.Commands``,
``link.LinkHandler``): callbacks exactly once, with the reply or ``LINK_DOWN``, never on
the caller's stack; commands in order (per hash slot on a cluster); ``link_up`` once every
subscription is confirmed; every sign of another topology (MOVED, ASK, CLUSTERDOWN,
TRYAGAIN, a shard channel Redis dropped) is an outage, the link reconnects and the node
resynchronises. Everything here runs on the loop's thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import selectors
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Protocol

import hiredis
from redis.crc import key_slot

from chatd.cluster.config import ClusterSettings
from chatd.cluster.link import (
    BACKOFF_MIN_S,
    ENCODING_ERRORS,
    FAILURES,
    LINK_DOWN,
    MAX_QUEUED_BYTES,
    STABLE_LINK_S,
    STOP_FLUSH_S,
    Callback,
    LinkHandler,
    Reply,
    ReplyError,
    first_key,
)
from chatd.cluster.opener import Opened, open_connections
from chatd.cluster.subscriber import LinkError, absorb_push

log = logging.getLogger("chatd")

RECV_BYTES = 1 << 18
TOPOLOGY_ERRORS = ("MOVED ", "ASK ", "CLUSTERDOWN", "TRYAGAIN")
"""Error replies saying the cluster is not as we read it: an outage."""
DOWN, OPENING, SUBSCRIBING, UP = "down", "opening", "subscribing", "up"


class Reactor(Protocol):
    """What the loop gives the link (``SelectorsServer``): its selector, whose keys' data get
    ``on_readable()`` and, when writable, ``flush()``; the list flushed at the end of each
    turn; timers; and ``post`` from another thread."""

    selector: selectors.BaseSelector
    pending: list[Any]

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None: ...

    def post(self, callback: Callable[[], None]) -> None: ...


class RedisSocket:
    """One connection on the loop: a command connection (replies in order, to ``callbacks``) or
    a subscriber connection (pushes)."""

    __slots__ = (
        "callbacks", "closed", "interest", "last_rx", "link", "out", "pending", "ping_sent", "reader",
        "refused", "scripts", "sock", "subscriber", "unsubscribing", "waiting_since",
    )  # fmt: skip

    def __init__(self, link: LoopLink, sock: socket.socket, subscriber: bool) -> None:
        sock.setblocking(False)
        self.link = link
        self.sock = sock
        self.subscriber = subscriber
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.out = bytearray()
        self.callbacks: deque[Callback | None] = deque()
        self.scripts: set[bytes] = set()
        """The SHA1s of the scripts loaded on this connection (SCRIPT LOAD went out before their
        first EVALSHA)."""
        self.refused: ReplyError | None = None
        """What Redis said of the last script it would not compile here: a NOSCRIPT after it is
        that script's EVALSHA (anything else makes NOSCRIPT an outage: a flushed script cache)."""
        self.unsubscribing: Counter[bytes] = Counter()
        self.closed = False
        self.pending = False
        self.last_rx = time.monotonic()
        self.ping_sent: float | None = None
        self.waiting_since: float | None = None
        """Since when a command has gone unanswered (the oldest, or the last reply): a silent
        Redis is an outage after ``redis_timeout_s``."""
        self.interest = selectors.EVENT_READ
        link.reactor.selector.register(sock, self.interest, self)

    def write(self, data: bytes) -> None:
        self.out += data
        if not self.pending:
            self.pending = True
            self.link.reactor.pending.append(self)

    def flush(self) -> None:
        """Send what the kernel takes now; the rest when the socket is writable."""
        self.pending = False
        if self.closed:
            return
        out = self.out
        if out:
            try:
                sent = self.sock.send(out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                self.link.failed(f"writing to Redis failed: {error.strerror or error}")
                return
            del out[:sent]
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
        if wanted != self.interest:
            self.interest = wanted
            self.link.reactor.selector.modify(self.sock, wanted, self)

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self.link.failed(f"reading from Redis failed: {error.strerror or error}")
            return
        if not data:
            self.link.failed("Redis closed the connection")
            return
        self.reader.feed(data)
        self.last_rx = time.monotonic()
        self.ping_sent = None
        self.link.readable(self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.link.reactor.selector.unregister(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()


def guarded(call: Callable[..., None], *args: Any) -> None:
    """Run one of the node's callbacks: a bug in it is logged, and the loop and the link go on
    (as the bridge's ``post`` does)."""
    try:
        call(*args)
    except Exception:
        log.exception("cluster event failed")


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP. hiredis encodes text strictly; a relayed line may keep an invalid
    client byte as a lone surrogate (``ENCODING_ERRORS``), so such a command is encoded here."""
    try:
        return hiredis.pack_command(args)
    except UnicodeEncodeError:
        errors = ENCODING_ERRORS
        return hiredis.pack_command(tuple(a.encode("utf-8", errors) if isinstance(a, str) else a for a in args))


class LoopLink:
    """``link.Commands`` on the loop; ``start``/``stop`` from the owner, on the loop's thread."""

    def __init__(self, settings: ClusterSettings, channels: list[str], handler: LinkHandler, reactor: Reactor) -> None:
        self.settings = settings
        self.handler = handler
        self.reactor = reactor
        self.cluster = False
        """Whether the Redis of the URL turned out to be a Redis Cluster (known once connected)."""
        self._channels: set[str] = set(channels)
        """The subscription set, kept across reconnects."""
        self._state = DOWN
        self._generation = 0
        """Bumped at every attempt and failure: a timer or an opening of an older one finds it changed."""
        self._stopping = False
        self._commands: dict[str, RedisSocket] = {}
        self._subscribers: dict[str, RedisSocket] = {}
        self._slots: list[str] = []
        self._first = ""
        self._subscribed: dict[bytes, RedisSocket] = {}
        self._confirming: set[bytes] = set()
        self._early: list[tuple[bytes, bytes]] = []
        self._scripts: dict[str | bytes, bytes] = {}
        """Each script's SHA1 (hex), so the script itself crosses once per connection."""
        self._attempt = 0
        self._down_since: float | None = None
        self._up_since = 0.0
        self._subscribing_since = 0.0
        self._sent_since_tick = False
        self._next_tick = 0.0
        self._address = f"{settings.redis.host}:{settings.redis.port}"

    # ---- the owner's side --------------------------------------------------------

    def start(self) -> None:
        self._open()

    def stop(self) -> None:
        """Send what is queued and wait (briefly) for Redis to have answered it, then close."""
        self._stopping = True
        self._generation += 1
        if self._state == UP:
            deadline = time.monotonic() + STOP_FLUSH_S
            with contextlib.suppress(OSError):
                for connection in self._commands.values():
                    connection.sock.settimeout(STOP_FLUSH_S)
                    connection.sock.sendall(connection.out)
                    connection.out.clear()
                    while connection.callbacks and time.monotonic() < deadline:
                        data = connection.sock.recv(RECV_BYTES)
                        if not data:
                            break
                        connection.reader.feed(data)
                        while connection.reader.gets() is not False:
                            connection.callbacks.popleft()
        self._close()
        self._state = DOWN

    def command(self, *args: bytes | str | int | float, callback: Callback | None = None) -> bool:
        """Queue one command for this turn's flush; False (nothing queued) while the link is down,
        or when it would take the connection's buffer past its bound (the link is reset then)."""
        if self._state != UP:
            return False
        connection = self._route(args)
        load = None
        if args[0] == "EVAL":
            args, load = self._evalsha(connection, args)
        packed = pack(args)
        if len(connection.out) + len(packed) + (len(load) if load else 0) > MAX_QUEUED_BYTES:
            self.failed("too many commands queued for a slow Redis")
            return False
        if not connection.callbacks:
            connection.waiting_since = time.monotonic()
        if load is not None:
            sha = args[1]
            connection.write(load)
            connection.scripts.add(sha)
            connection.callbacks.append(lambda reply: self._loaded(connection, sha, reply))
        connection.write(packed)
        connection.callbacks.append(callback)
        self._sent_since_tick = True
        return True

    def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        if self._state in (SUBSCRIBING, UP):
            self._ssubscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        key = channel.encode()
        self._confirming.discard(key)
        connection = self._subscribed.pop(key, None)
        if connection is not None and not connection.closed:
            connection.write(pack(("SUNSUBSCRIBE", key)))
            connection.unsubscribing[key] += 1
        if self._state == SUBSCRIBING and not self._confirming:
            self._became_up()

    # ---- connecting ------------------------------------------------------------

    def _open(self) -> None:
        self._state = OPENING
        self._generation += 1
        generation = self._generation
        threading.Thread(target=self._open_on_thread, args=(generation,), name="chatd-redis-open", daemon=True).start()

    def _open_on_thread(self, generation: int) -> None:
        try:
            opened: Opened | Exception = open_connections(self.settings)
        except Exception as error:
            opened = error
        if self._stopping:
            if isinstance(opened, Opened):
                opened.close()
            return
        self.reactor.post(lambda: self._opened(generation, opened))

    def _opened(self, generation: int, opened: Opened | Exception) -> None:
        if generation != self._generation or self._stopping:
            if isinstance(opened, Opened):
                opened.close()
            return
        if isinstance(opened, Exception):
            if not isinstance(opened, FAILURES):  # a bug: say so loudly, then back off as after a failure
                log.error("cluster: connecting to Redis failed: %r", opened)
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning(
                    "cluster: Redis at %s unreachable (%s); local chat goes on, retrying", self._address, opened
                )
            self._attempt += 1
            self._retry_later()
            return
        self.cluster = opened.cluster
        self._slots = opened.slots
        for name, (command_sock, subscriber_sock) in opened.sockets.items():
            self._commands[name] = RedisSocket(self, command_sock, subscriber=False)
            self._subscribers[name] = RedisSocket(self, subscriber_sock, subscriber=True)
        self._first = next(iter(self._commands))
        self._state = SUBSCRIBING
        self._subscribing_since = time.monotonic()
        self._confirming = set()
        self._early = []
        for channel in sorted(self._channels):
            self._ssubscribe(channel)
        self._watch_later(generation)
        if not self._confirming:
            self._became_up()

    def _ssubscribe(self, channel: str) -> None:
        key = channel.encode()
        if key in self._subscribed:
            return
        connection = self._subscribers[self._slots[key_slot(key)] if self.cluster else ""]
        connection.write(pack(("SSUBSCRIBE", key)))  # one per channel: on a cluster, one call is one slot
        self._subscribed[key] = connection
        if self._state == SUBSCRIBING:
            self._confirming.add(key)

    def _became_up(self) -> None:
        kind = "Redis Cluster" if self.cluster else "Redis"
        if self._down_since is not None:
            log.warning("cluster: %s at %s reachable again after %.1fs", kind, self._address,
                        time.monotonic() - self._down_since)  # fmt: skip
        else:
            log.info("cluster: connected to %s at %s", kind, self._address)
        self._down_since = None
        self._state = UP
        self._up_since = time.monotonic()
        self._next_tick = self._up_since
        guarded(self.handler.link_up)
        early, self._early = self._early, []
        if early and self._state == UP:
            guarded(self.handler.link_messages, early)

    def _retry_later(self) -> None:
        ceiling = min(self.settings.backoff_max_s, BACKOFF_MIN_S * 2**self._attempt)
        generation = self._generation

        def retry() -> None:
            if generation == self._generation and not self._stopping:
                self._open()

        self.reactor.call_at(time.monotonic() + ceiling * random.uniform(0.5, 1.0), retry)

    # ---- failing -------------------------------------------------------------------

    def failed(self, reason: str) -> None:
        """An outage: fail every unanswered command (LINK_DOWN), tell the node, reconnect later."""
        if self._state in (DOWN, OPENING) or self._stopping:
            return
        was_up = self._state == UP
        now = time.monotonic()
        callbacks = [callback for connection in self._commands.values() for callback in connection.callbacks]
        self._close()
        self._state = DOWN
        self._generation += 1
        if was_up:
            log.warning("cluster: lost the Redis link to %s (%s); local chat goes on, reconnecting",
                        self._address, reason)  # fmt: skip
            # A link that failed soon after coming up (Redis accepting, then dropping us) keeps
            # backing off; one that served a while reconnects at once.
            self._attempt = self._attempt + 1 if now - self._up_since < STABLE_LINK_S else 0
            self._down_since = now
        else:
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "cluster: Redis at %s unreachable (%s); local chat goes on, retrying", self._address, reason
                )
            self._attempt += 1

        def deliver() -> None:  # not on the stack of whoever noticed (``command`` itself, maybe)
            for callback in callbacks:
                if callback is not None:
                    guarded(callback, LINK_DOWN)
            if was_up:
                guarded(self.handler.link_down)

        self.reactor.call_at(now, deliver)
        if self._attempt:
            self._retry_later()
        else:
            self.reactor.call_at(now, lambda: self._open() if self._state == DOWN and not self._stopping else None)

    def _close(self) -> None:
        for connection in (*self._commands.values(), *self._subscribers.values()):
            connection.close()
        self._commands.clear()
        self._subscribers.clear()
        self._subscribed.clear()
        self._confirming.clear()
        self._early = []

    # ---- reading -------------------------------------------------------------------

    def readable(self, connection: RedisSocket) -> None:
        """Everything the reader has whole now: replies to their callbacks, pushes to the node."""
        try:
            if connection.subscriber:
                self._pushes(connection)
            else:
                self._replies(connection)
        except (LinkError, hiredis.ProtocolError) as error:
            self.failed(str(error))

    def _replies(self, connection: RedisSocket) -> None:
        reader, callbacks = connection.reader, connection.callbacks
        while (reply := reader.gets()) is not False:
            if not callbacks:
                raise LinkError("a reply Redis was not asked for")
            callback = callbacks.popleft()
            if isinstance(reply, ReplyError):
                text = str(reply)
                if text.startswith("NOSCRIPT") and connection.refused is not None:
                    reply = connection.refused
                elif text.startswith(TOPOLOGY_ERRORS) or text.startswith("NOSCRIPT"):
                    # Not given to the callback: LINK_DOWN is, with the rest, and the node
                    # sends again once the link is back (on the right master, scripts loaded).
                    callbacks.appendleft(callback)
                    raise LinkError(f"the cluster changed under us ({text})")
                elif callback is None:
                    log.warning("cluster: Redis refused a command: %s", text)
            if callback is not None:
                guarded(callback, reply)
                if connection.closed:
                    return
        connection.waiting_since = time.monotonic() if callbacks else None

    def _pushes(self, connection: RedisSocket) -> None:
        reader = connection.reader
        messages: list[tuple[bytes, bytes]] = []
        subscribing = self._state == SUBSCRIBING
        pending = self._confirming if subscribing else None
        while (push := reader.gets()) is not False:
            absorb_push(push, messages, self._subscribed, pending, connection.unsubscribing)
        if subscribing:
            self._early.extend(messages)
            if not self._confirming:
                self._became_up()
        elif messages and self._state == UP:
            guarded(self.handler.link_messages, messages)

    # ---- time ----------------------------------------------------------------------

    def _watch_later(self, generation: int) -> None:
        """The next look: soon enough to see a silence in time, and at the next tick on the dot."""
        settings = self.settings
        now = time.monotonic()
        due = now + min(settings.heartbeat_s, settings.redis_timeout_s / 4)
        if self._state == UP:
            due = min(due, max(now, self._next_tick))
        self.reactor.call_at(due, lambda: self._watch(generation))

    def _watch(self, generation: int) -> None:
        """Ticks while up; a probe on an idle link and a PING on a quiet subscriber, so a dead
        Redis is noticed; an outage when an answer is ``redis_timeout_s`` late."""
        if generation != self._generation or self._stopping:
            return
        settings = self.settings
        now = time.monotonic()
        timeout_s = settings.redis_timeout_s
        if self._state == SUBSCRIBING and now - self._subscribing_since > timeout_s:
            self.failed(f"subscriptions not confirmed in {timeout_s:g}s")
            return
        for connection in self._commands.values():
            if connection.waiting_since is not None and now - connection.waiting_since > timeout_s:
                self.failed(f"no answer from Redis in {timeout_s:g}s")
                return
        for connection in self._subscribers.values():
            if connection.ping_sent is None and now - connection.last_rx > settings.heartbeat_s:
                connection.write(pack(("PING",)))  # subscribed, Redis answers ["pong", ""]
                connection.ping_sent = now
            elif connection.ping_sent is not None and now - connection.ping_sent > timeout_s:
                self.failed(f"subscriber connection silent for {timeout_s:g}s")
                return
        if self._state == UP and now >= self._next_tick:
            self._next_tick = now + settings.heartbeat_s
            if not self._sent_since_tick:  # an idle link asks, so a dead Redis is noticed
                self.command("EXISTS", settings.key_tag)
            self._sent_since_tick = False
            guarded(self.handler.link_tick)
        if generation == self._generation:
            self._watch_later(generation)

    # ---- routing -------------------------------------------------------------------

    def _route(self, args: tuple[Any, ...]) -> RedisSocket:
        """The command connection of the master of the command's first key (the one Redis)."""
        if not self.cluster:
            return self._commands[""]
        key = first_key(args)
        return self._commands[self._slots[key_slot(key)] if key is not None else self._first]

    def _evalsha(self, connection: RedisSocket, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], bytes | None]:
        """EVAL as EVALSHA, and the SCRIPT LOAD to send before it when the connection has not
        loaded the script yet (so it is loaded, in order, before its first use)."""
        script = args[1]
        sha = self._scripts.get(script)
        if sha is None:
            body = script if isinstance(script, bytes) else script.encode("utf-8", ENCODING_ERRORS)
            sha = self._scripts[script] = hashlib.sha1(body).hexdigest().encode()
        load = None if sha in connection.scripts else pack(("SCRIPT", "LOAD", script))
        return ("EVALSHA", sha, *args[2:]), load

    def _loaded(self, connection: RedisSocket, sha: bytes, reply: Reply) -> None:
        """A script Redis would not compile: the EVALSHAs after it get its error, not an outage."""
        if isinstance(reply, ReplyError):
            connection.scripts.discard(sha)
            connection.refused = reply
