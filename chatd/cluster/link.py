"""The Redis I/O of a node: redis-py (+hiredis) in one bridge thread, reconnect with backoff.

Why a thread and not a socket in the selectors loop: the same code then serves both
backends, and redis-py is blocking (connecting, handshaking, a pipeline's round trip
and backing off are plain blocking code with timeouts). The hub never waits for
Redis: it queues commands (``command`` only appends to a list and nudges the thread)
and gets everything back — replies, pub/sub messages, ticks, link up/down — as
callables handed to the backend's ``post``, which runs them on the hub's thread
(selectors) or under the hub's lock (threads).

The thread owns a *command* client and *subscriber* connections:
- one Redis: a ``redis.Redis`` for commands and one subscriber connection;
- a Redis Cluster (found by ``INFO``: ``cluster_enabled:1`` on the one node of the URL): a
  ``redis.cluster.RedisCluster`` for commands, routed by hash slot, and one subscriber
  connection per master owning a subscribed shard channel.
Each loop turn sends what is queued as one pipeline (``transaction=False``), then reads
the subscriber connections poll found readable (hiredis parses; a wake socketpair
interrupts the poll when the hub queues something).

Pub/sub is sharded (SSUBSCRIBE, SUNSUBSCRIBE; the node SPUBLISHes), on one Redis too:
it needs Redis 7.0, and an older one is refused with one line saying so.

Invariants:
- ``command`` never blocks and never calls back on the caller's stack: it returns
  False, queuing nothing, while the link is down (or its queue is past its bound).
- A callback given to ``command`` is called exactly once, through ``post``: with the
  reply, or ``LINK_DOWN`` for every command queued or in flight when the link fails.
- Commands leave in the order ``command`` was called (on a cluster: per hash slot).
- ``link_up`` is posted after every (re)connection once every channel of the
  subscription set is confirmed; ``link_down`` once per outage; one post per loop turn
  carries the replies, then the messages, that arrived.
- Anything that may mean another topology — a connection lost or silent for
  ``redis_timeout_s``, a MOVED/ASK/CLUSTERDOWN reply, a shard channel Redis
  unsubscribed us from (its slot moved) — is an outage: the link reconnects and reads
  the topology afresh, and the node resynchronises at ``link_up``.
- An outage is logged as one warning when it starts and one when the link is back,
  never a traceback per retry.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis
import redis.cluster
import redis.connection
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterError, RedisClusterException, RedisError, ResponseError, TryAgainError
from redis.retry import Retry

from chatd.cluster.config import ClusterSettings
from chatd.cluster.subscriber import LinkError, Subscriber

log = logging.getLogger("chatd")

ReplyError = ResponseError
"""A command's error reply (``isinstance(reply, ReplyError)``)."""

MAX_QUEUED_BYTES = 32 << 20
"""Commands queued while Redis is slow; past this the link is reset and the node resynchronises
instead of growing without bound."""
BACKOFF_MIN_S = 0.1
STABLE_LINK_S = 10.0
"""A link up this long counts as healthy again: its next failure reconnects without waiting."""
STOP_FLUSH_S = 1.0
"""How long a stopping link goes on sending its last commands (the goodbye)."""
ENCODING_ERRORS = "surrogatepass"
"""How a ``str`` argument becomes UTF-8: a relayed line keeps an invalid client byte as a lone
surrogate (chatd.protocol.framing), which JSON carries and ``json.loads`` of bytes gives back."""
MIN_REDIS_VERSION = (7, 0)
"""Sharded pub/sub (SSUBSCRIBE, SPUBLISH) came with Redis 7.0."""


FIRST_KEY_COMMANDS = frozenset({
    "SPUBLISH", "GET", "SET", "DEL", "EXISTS", "EXPIRE", "PEXPIRE", "INCR", "SADD", "SREM", "SMEMBERS",
    "SISMEMBER", "HGET", "HSET", "HDEL", "HGETALL", "XADD", "XRANGE", "XREVRANGE", "XTRIM", "XLEN",
})  # fmt: skip
"""Commands whose (first) key is their first argument: the link routes them itself on a cluster."""
SCRIPT_COMMANDS = frozenset({"EVAL", "EVALSHA", "FCALL"})
"""Commands whose first key follows the script and the number of keys."""


class _LinkDown:
    """The reply a command gets when the connection failed before its answer came."""

    def __repr__(self) -> str:
        return "LINK_DOWN"


LINK_DOWN = _LinkDown()

Reply = bytes | int | list[Any] | None | ResponseError | _LinkDown
Callback = Callable[[Reply], None]
Post = Callable[[Callable[[], None]], None]


FAILURES = (OSError, LinkError, RedisError, RedisClusterException, ValueError)
"""What a broken, refused or garbled connection raises; each is an outage, never a crash."""
TOPOLOGY_REPLIES = (AskError, ClusterError, TryAgainError)
"""Replies saying the cluster is not as we read it (MOVED is an AskError): reconnect."""


def connection_options(settings: ClusterSettings) -> dict[str, Any]:
    """What every client and connection of a link is made with: the URL's credentials, the
    timeout that makes a stalled Redis an outage, RESP2 and raw bytes, and no retries of
    redis-py's own (the link reconnects, and tells the node)."""
    address, timeout = settings.redis, settings.redis_timeout_s
    return {
        "username": address.username,
        "password": address.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "protocol": 2,
        "retry": Retry(NoBackoff(), 0),
    }


def require_sharded_pubsub(info: dict[str, Any]) -> None:
    """Refuse, with one line, a Redis that has no SSUBSCRIBE (``info``: redis-py's parsed INFO)."""
    version = str(info.get("redis_version", "0"))
    if tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) < MIN_REDIS_VERSION:
        raise LinkError(f"Redis {version} is older than 7.0 and has no sharded pub/sub (SSUBSCRIBE)")


def first_key(args: tuple[Any, ...]) -> bytes | None:
    """A command's first key, for the commands whose key we know where to find (None: others)."""
    name = args[0].upper() if isinstance(args[0], str) else ""
    if name in FIRST_KEY_COMMANDS and len(args) > 1:
        key = args[1]
    elif name in SCRIPT_COMMANDS and len(args) > 3 and args[2] not in (0, "0", b"0"):
        key = args[3]
    else:
        return None
    return key if isinstance(key, bytes) else str(key).encode()


class Commands(Protocol):
    """What the node asks of the link: the whole of it (a fake in tests)."""

    def command(self, *args: bytes | str | int | float, callback: Callback | None = None) -> bool:
        """Queue one Redis command; False (nothing queued) while the link is down. ``callback``
        gets the reply, or ``LINK_DOWN``, exactly once, through ``post``."""
        ...

    def subscribe(self, channel: str) -> None:
        """Add a shard channel to the subscription set (kept across reconnects; idempotent). Once
        Redis confirms it, ``link_messages`` brings ``(channel, SUBSCRIBED)``."""
        ...

    def unsubscribe(self, channel: str) -> None:
        """Drop a shard channel from the subscription set; no message of it is delivered after."""
        ...


class LinkHandler(Protocol):
    """What the link calls, always through ``post`` (so on the hub's thread or under its lock).

    With ``Commands``, the whole interface between the node and the link: pub/sub
    messages arrive as (shard channel, payload) pairs in arrival order; ``link_tick``
    comes every heartbeat while the link is up; ``link_up`` after every (re)connection
    and subscription, ``link_down`` once per outage.
    """

    def link_up(self) -> None: ...

    def link_down(self) -> None: ...

    def link_tick(self) -> None: ...

    def link_messages(self, messages: list[tuple[bytes, bytes]]) -> None: ...


class RedisLink:
    """Connects to Redis, keeps the subscriptions, carries commands; ``start``/``stop`` from the owner."""

    def __init__(self, settings: ClusterSettings, channels: list[str], handler: LinkHandler, post: Post) -> None:
        self.settings = settings
        self.handler = handler
        self.post = post
        self.cluster = False
        """Whether the Redis of the URL turned out to be a Redis Cluster (known once connected)."""
        self._lock = threading.Lock()
        self._channels: set[str] = set(channels)
        """The subscription set, as the hub wants it (under ``_lock``)."""
        self._wanted: set[bytes] = {channel.encode() for channel in channels}
        """The same, as the channels of messages: only those are delivered (read on the hub's side)."""
        self._channel_ops: list[tuple[bool, str]] = []
        """(subscribe?, channel) asked since the thread last looked (under ``_lock``)."""
        self._queue: list[tuple[tuple[Any, ...], Callback | None]] = []
        self._queued_bytes = 0
        self._overflow = False
        self._up = False
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._thread = threading.Thread(target=self._run, name="chatd-redis", daemon=True)
        self._client: Any = None
        self._slot_nodes: dict[int, Any] = {}
        """Each slot's master as read at connection (a change of it is an outage: reconnect)."""
        self._subscribers: dict[str, Subscriber] = {}
        self._subscribed: dict[bytes, Subscriber] = {}
        """The thread's view: each shard channel it has subscribed, and on which connection."""
        self._inflight: list[Callback | None] = []
        self._tick_pending = False
        self._sent_since_tick = False
        self._poller = select.poll()

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
        size = 16
        for arg in args:
            size += len(arg) + 16 if isinstance(arg, bytes | str) else 24
        with self._lock:
            if not self._up or self._overflow:
                return False
            if self._queued_bytes + size > MAX_QUEUED_BYTES:
                self._overflow = True
                wake = True
            else:
                self._queue.append((args, callback))
                self._queued_bytes += size
                wake = not self._woken
                self._woken = True
        if wake:
            self._wake()
        return not self._overflow

    def subscribe(self, channel: str) -> None:
        self._change(True, channel)

    def unsubscribe(self, channel: str) -> None:
        self._change(False, channel)

    def _change(self, subscribe: bool, channel: str) -> None:
        with self._lock:
            if (channel in self._channels) == subscribe:
                return
            if subscribe:
                self._channels.add(channel)
                self._wanted.add(channel.encode())
            else:
                self._channels.discard(channel)
                self._wanted.discard(channel.encode())
            self._channel_ops.append((subscribe, channel))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # ---- the thread: connecting and failing ----------------------------------------

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
                early = self._connect()
            except Exception as error:
                self._close()
                if not isinstance(error, FAILURES):  # a bug: say so loudly, then back off as after a failure
                    log.exception("cluster: connecting to Redis failed")
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("cluster: Redis at %s unreachable (%s); local chat goes on, retrying", address, error)
                attempt += 1
                continue
            kind = "Redis Cluster" if self.cluster else "Redis"
            if down_since is not None:
                down_s = time.monotonic() - down_since
                log.warning("cluster: %s at %s reachable again after %.1fs", kind, address, down_s)
            else:
                log.info("cluster: connected to %s at %s", kind, address)
            down_since = None
            connected_at = time.monotonic()
            with self._lock:
                self._up = True
                self._overflow = False
            self.post(self.handler.link_up)
            if early:
                self._post_inbound([], early)
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
        self._close()

    def _go_down(self) -> None:
        """Fail every command not answered yet, exactly once each, and tell the hub."""
        with self._lock:
            self._up = False
            queued = [callback for _, callback in self._queue]
            self._queue.clear()
            self._queued_bytes = 0
        callbacks = [callback for callback in self._inflight + queued if callback is not None]
        self._inflight = []
        self._close()

        def deliver() -> None:
            for callback in callbacks:
                callback(LINK_DOWN)
            self.handler.link_down()

        if not self._stopping.is_set():
            self.post(deliver)

    def _connect(self) -> list[tuple[bytes, bytes]]:
        """Open the command client and subscribe the whole set; returns messages that came meanwhile."""
        address, options = self.settings.redis, connection_options(self.settings)
        probe = self._client = redis.Redis(host=address.host, port=address.port, db=address.db, **options)
        info = probe.info()
        require_sharded_pubsub(info)  # a refusal closes the probe with the rest (``_close``)
        self.cluster = info.get("cluster_enabled") == 1
        if self.cluster:
            state = probe.cluster("INFO")
            probe.close()
            if state.get("cluster_state") != "ok":
                raise LinkError("the Redis Cluster is not ready (cluster_state is not ok)")
            client = redis.cluster.RedisCluster(
                host=address.host, port=address.port, require_full_coverage=True, **options
            )
            # Replies stay as Redis sent them (``SET … GET`` is the old value, not True).
            for node in client.get_primaries():
                client.get_redis_connection(node).response_callbacks.clear()
            # A connection to every master now: one opened later, mid-pipeline, to a master that
            # stalled would make redis-py re-read the topology from node after node first.
            client.ping(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        else:
            client = probe
            client.response_callbacks.clear()
        self._client = client
        with self._lock:
            channels = sorted(self._channels)
            self._channel_ops.clear()
        for channel in channels:
            self._subscribe(channel)
        early: list[tuple[bytes, bytes]] = []
        for subscriber in list(self._subscribers.values()):
            pending = {channel.encode() for channel in subscriber.channels}
            while pending:
                subscriber.absorb(subscriber.connection.read_response(), early, self._subscribed, pending)
            subscriber.read(early, self._subscribed)
        return early

    def _subscriber_for(self, channel: str) -> Subscriber:
        """The connection a shard channel is subscribed on: the one Redis, or its slot's master."""
        if self.cluster:
            node = self._client.get_node_from_key(channel)
            host, port, name, db = node.host, node.port, node.name, 0
        else:
            address = self.settings.redis
            host, port, name, db = address.host, address.port, "", address.db
        subscriber = self._subscribers.get(name)
        if subscriber is None:
            connection = redis.connection.Connection(host=host, port=port, db=db, **connection_options(self.settings))
            connection.connect()
            subscriber = self._subscribers[name] = Subscriber(connection)
            self._poller.register(subscriber.fd, select.POLLIN)
        return subscriber

    def _subscribe(self, channel: str) -> None:
        if channel.encode() in self._subscribed:
            return
        subscriber = self._subscriber_for(channel)
        subscriber.send(("SSUBSCRIBE", channel))  # one per channel: on a cluster, one call is one slot
        subscriber.channels.add(channel)
        self._subscribed[channel.encode()] = subscriber

    def _unsubscribe(self, channel: str) -> None:
        subscriber = self._subscribed.pop(channel.encode(), None)
        if subscriber is not None:
            subscriber.send(("SUNSUBSCRIBE", channel))
            subscriber.channels.discard(channel)
            subscriber.unsubscribing[channel.encode()] += 1

    def _close(self) -> None:
        for subscriber in self._subscribers.values():
            with contextlib.suppress(OSError, ValueError, KeyError):
                self._poller.unregister(subscriber.fd)
            with contextlib.suppress(Exception):
                subscriber.connection.disconnect()
        self._subscribers.clear()
        self._subscribed.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        self._slot_nodes = {}

    # ---- the thread: serving -------------------------------------------------------

    def _serve(self) -> None:
        """Move commands out and replies and messages in until the link fails or we stop."""
        settings = self.settings
        tick_s, timeout_s = settings.heartbeat_s, settings.redis_timeout_s
        next_tick = time.monotonic()
        stop_deadline: float | None = None
        wake_fd = self._wake_r.fileno()
        self._poller.register(wake_fd, select.POLLIN)
        try:
            while True:
                now = time.monotonic()
                if self._stopping.is_set():
                    if stop_deadline is None:
                        stop_deadline = now + STOP_FLUSH_S
                    replies = self._send_queued()
                    if replies:
                        self._post_inbound(replies, [])
                    if not self._queue or now >= stop_deadline:
                        return
                if now >= next_tick:
                    next_tick = now + tick_s
                    self._post_tick()
                    if not self._sent_since_tick:  # an idle link asks, so a dead Redis is noticed
                        self._queue_probe()
                    self._sent_since_tick = False
                wait_s = next_tick - now
                for subscriber in self._subscribers.values():
                    if subscriber.ping_sent is None and now - subscriber.last_rx > tick_s:
                        subscriber.send(("PING",))  # subscribed, Redis answers ["pong", ""]
                        subscriber.ping_sent = now
                    if subscriber.ping_sent is not None:
                        left = subscriber.ping_sent + timeout_s - now
                        if left <= 0:
                            raise LinkError(f"subscriber connection silent for {timeout_s:g}s")
                        wait_s = min(wait_s, left)
                if stop_deadline is not None:
                    wait_s = min(wait_s, 0.05)
                readable = {fd for fd, _ in self._poller.poll(max(0.0, wait_s) * 1000)}
                if wake_fd in readable:
                    readable.discard(wake_fd)
                    with contextlib.suppress(OSError):
                        while self._wake_r.recv(4096):
                            pass
                self._apply_channel_ops()
                replies = self._send_queued()
                messages: list[tuple[bytes, bytes]] = []
                if readable:
                    for subscriber in list(self._subscribers.values()):
                        if subscriber.fd in readable:
                            subscriber.read(messages, self._subscribed)
                if replies or messages:
                    self._post_inbound(replies, messages)
        finally:
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(wake_fd)

    def _route(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """The master of a command's first key, for the commands whose key we know where to find:
        redis-py's own routing (command tables, request policies) costs twice the rest of the
        pipeline. Others are left to redis-py."""
        key = first_key(args)
        if key is None:
            return {}
        slot = key_slot(key)
        node = self._slot_nodes.get(slot)
        if node is None:
            node = self._slot_nodes[slot] = self._client.nodes_manager.get_node_from_slot(slot)
        return {"target_nodes": node}

    def _queue_probe(self) -> None:
        """A command of our own: a key (the network's hash tag) routes it on a cluster too."""
        with self._lock:
            self._queue.append((("EXISTS", self.settings.key_tag), None))

    def _apply_channel_ops(self) -> None:
        with self._lock:
            if not self._channel_ops:
                return
            ops, self._channel_ops = self._channel_ops, []
        for subscribe, channel in ops:
            if subscribe:
                self._subscribe(channel)
            else:
                self._unsubscribe(channel)

    def _send_queued(self) -> list[tuple[Callback, Reply]]:
        """One pipeline for everything queued; the replies with their callbacks."""
        with self._lock:
            if self._overflow:
                raise LinkError("too many commands queued for a slow Redis")
            queue, self._queue = self._queue, []
            self._queued_bytes = 0
            self._woken = False
        if not queue:
            return []
        self._sent_since_tick = True
        self._inflight = [callback for _, callback in queue]
        pipeline = self._client.pipeline(transaction=False)
        errors = ENCODING_ERRORS
        # hiredis packs ``str`` strictly: ours are encoded here (the command name stays text,
        # which is how redis-py's cluster routing knows it).
        batch = [
            (args[0], *[arg.encode("utf-8", errors) if isinstance(arg, str) else arg for arg in args[1:]])
            for args, _ in queue
        ]
        if self.cluster:
            # Not ``execute``: it follows MOVED and re-reads the topology from node after node,
            # each with its timeout, before giving up; for us a moved slot or a silent master is
            # an outage now (the node resynchronises once the link is back).
            route = self._route
            stack = [redis.cluster.PipelineCommand(args, route(args), index) for index, args in enumerate(batch)]
            results = pipeline.send_cluster_commands(stack, raise_on_error=False, allow_redirections=False)
        else:
            for args in batch:
                pipeline.execute_command(*args)
            results = pipeline.execute(raise_on_error=False)
        self._inflight = []
        replies: list[tuple[Callback, Reply]] = []
        moved: Exception | None = None
        for (_, callback), result in zip(queue, results, strict=True):
            if isinstance(result, Exception) and not isinstance(result, ResponseError):
                result, moved = LINK_DOWN, result  # a connection error on one cluster node
            elif isinstance(result, TOPOLOGY_REPLIES):
                moved = result
            if callback is not None:
                replies.append((callback, result))
            elif isinstance(result, ResponseError):
                log.warning("cluster: Redis refused a command: %s", result)
        if moved is not None:
            self._post_inbound(replies, [])
            raise LinkError(f"the cluster changed under us ({moved})")
        return replies

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
        handler, wanted = self.handler, self._wanted

        def deliver() -> None:
            for callback, reply in replies:
                callback(reply)
            if messages:
                # Filtered here, on the hub's side: after ``unsubscribe`` returns, a message the
                # thread read before it saw the change is not delivered either.
                kept = [message for message in messages if message[0] in wanted]
                if kept:
                    handler.link_messages(kept)

        self.post(deliver)
