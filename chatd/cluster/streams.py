"""Lossless delivery between nodes: Redis Streams behind sharded pub/sub, read from the last id.

Why both: pub/sub is the fast path (one hop, pushed), but it is at-most-once: a subscriber
whose connection drops misses what was published meanwhile. A stream keeps every event
(``XADD … MAXLEN ~``), so a node that was cut off reads on from the last id it processed.
One Lua script appends a node's events for a stream (one entry each) and pushes
``<previous id> <last id>\n<event>\n<event>…`` on the stream's shard channel (same hash
slot), so a reader sees at once when it missed some. What a node's users send in one turn
of its event loop goes out as one such batch: one command, one push, however many events.

Invariants:
- Each stream's events are handed on exactly once and in stream order: a live event is
  taken only when its previous id is the last one taken; an id at or below it is a
  duplicate; anything else is a gap, and the stream is read (``XRANGE (last +``) before
  the held events go on. Until its position is known (a new subscription, or the link
  just back) a stream holds what arrives.
- A new subscription's position is the stream's last id read *before* the event that made
  us interested goes out (``XREVRANGE … COUNT 1`` queued first), or the moment of that event
  if earlier (stream ids are Redis's clock in ms: what another node sent after our user joined
  but before our link got there is theirs too); once both that position and
  Redis's confirmation of the SSUBSCRIBE are in, the stream is read on from the position:
  what others sent before the subscription took effect is not lost.
- What local users send to a stream is kept in the outbox until Redis has answered its
  XADD: while the link is down (up to ``OUTBOX_LIMIT`` events, none older than
  ``OUTBOX_MAX_AGE_S``), then published in order once the link is back and the streams
  are read. A publish whose answer was lost may land twice; readers drop the second by
  msgid (``Deduplicator``).
- ``{<prefix>}:epoch`` is set once per Redis dataset. A node that finds another one after
  a reconnect knows Redis lost its data: every stream is read from its start (what is in
  it now was all written since), instead of from ids that no longer exist.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from chatd.cluster.link import LINK_DOWN, Reply, ReplyError
from chatd.cluster.subscriber import SUBSCRIBED

log = logging.getLogger("chatd")

StreamId = tuple[int, int]
ZERO: StreamId = (0, 0)

STREAM_MAXLEN = 10_000
"""Events a stream keeps (approximately): how far a node that was cut off can read back."""
STREAM_IDLE_MS = 24 * 3600 * 1000
"""A stream nobody wrote to for this long goes (its channel's readers start afresh)."""
CATCH_UP_COUNT = 1000
OUTBOX_LIMIT = 10_000
"""Events a node keeps for Redis while it is away; past this the oldest go (logged)."""
OUTBOX_MAX_AGE_S = 120.0
"""An event older than this when Redis is back is dropped: news that late misleads."""

BATCH_MAX = 256
"""Events per publish command at most (a blast's turn can hold thousands)."""

# KEYS[1] the stream, KEYS[2] its shard channel (same hash slot); ARGV maxlen, idle expiry ms, then
# the events (compact JSON: no raw newline). Each entry keeps its event ('e') and the id of the
# entry before it ('p'), so a reader reading on sees when entries it never read were trimmed away.
# Returns the last new entry's id.
PUBLISH_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
local id
local before = prev
for i = 3, #ARGV do
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i], 'p', before)
  before = id
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SPUBLISH', KEYS[2], prev .. ' ' .. id .. '\\n' .. table.concat(ARGV, '\\n', 3))
return id
"""

Command = Callable[..., bool]
Deliver = Callable[[list[bytes]], None]
"""Events of one stream, in order: a batch, so the node can fan a run of messages out at once."""


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """A stream and its shard channel: one hash tag, so one slot of a Redis Cluster."""

    stream: str
    live: str


def channel_keys(prefix: str, casefolded_name: str) -> StreamKeys:
    """Channel names may hold ``{``/``}``: the hash tag is a digest of the name instead."""
    tag = hashlib.blake2b(casefolded_name.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return StreamKeys(f"{{{prefix}:c:{tag}}}:s", f"{{{prefix}:c:{tag}}}:p")


def node_keys(prefix: str, node_id: str) -> StreamKeys:
    return StreamKeys(f"{{{prefix}:to:{node_id}}}:s", f"{{{prefix}:to:{node_id}}}:p")


@dataclass(slots=True)
class StreamReader:
    """Where this node is in one stream, and what waits for that to be known."""

    keys: StreamKeys
    last: StreamId | None = None
    held: list[tuple[StreamId, StreamId, list[bytes]]] = field(default_factory=list)
    reading: bool = False
    subscribed: bool = False
    """Redis confirmed the subscription (or the link was (re)connected with it)."""
    caught_up: bool = False
    """Read on from the position once it and the subscription were both in force."""


@dataclass(slots=True, eq=False)
class Outgoing:
    keys: StreamKeys
    event: str
    made_at: float
    sent: bool = False
    done: bool = False
    """Redis took it (or refused it for good): it leaves the outbox once every older one has."""


class Deduplicator:
    """The msgids delivered lately, per target: an event published twice is delivered once."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def first_time(self, kind: str, target: str, msgid: str) -> bool:
        key = (kind, target, msgid)
        if key in self.seen:
            return False
        self.seen[key] = None
        if len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return True


class Streams:
    """The node's streams: what it reads (by shard channel) and what it has yet to write."""

    def __init__(
        self, prefix: str, command: Command, subscribe: Callable[[str], None], unsubscribe: Callable[[str], None],
        deliver: Deliver, clock: Callable[[], float], defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:  # fmt: skip
        """``defer(f)`` runs ``f`` on the hub's thread once the current turn is over (the backend's
        ``Deferred``): events published until then go out as one batch. Without it, each event
        goes out at once."""
        self.prefix = prefix
        self.command = command
        self.subscribe = subscribe
        self.unsubscribe = unsubscribe
        self.deliver = deliver
        self.clock = clock
        self.readers: dict[str, StreamReader] = {}
        """By shard channel."""
        self.outbox: deque[Outgoing] = deque()
        self.defer = defer
        self.batches: dict[StreamKeys, list[Outgoing]] = {}
        self.epoch_key = f"{{{prefix}}}:epoch"
        self.epoch: bytes | None = None
        self.synced = False
        """False from link up until the epoch is checked and the streams are read."""
        self.dropped = 0
        self.trimmed = 0
        """Times entries a reader had not read were found trimmed away (lost to this node)."""
        self.dedupe = Deduplicator()

    # ---- reading ---------------------------------------------------------------------------

    def follow(self, keys: StreamKeys, since: float | None = None) -> None:
        """Start reading a stream (idempotent) with what comes after now, or after ``since`` (wall
        clock). Call it before publishing what makes others write to it."""
        if keys.live in self.readers:
            return
        reader = self.readers[keys.live] = StreamReader(keys)
        self.subscribe(keys.live)
        if self.synced:
            self._take_position(reader, since)

    def unfollow(self, live: str) -> None:
        if self.readers.pop(live, None) is not None:
            self.unsubscribe(live)

    def following(self) -> list[str]:
        return list(self.readers)

    def _take_position(self, reader: StreamReader, since: float | None = None) -> None:
        def answered(reply: Reply) -> None:
            if self.readers.get(reader.keys.live) is not reader or reader.last is not None:
                return
            if reply is LINK_DOWN or isinstance(reply, ReplyError) or not isinstance(reply, list):
                return  # link_up takes it again
            reader.last = parse_id(_entry_id(reply[0])) if reply else ZERO
            if since is not None:
                reader.last = min(reader.last, (int(since * 1000), 0))
            if reader.subscribed:
                reader.caught_up = True
                self._read_on(reader)
            else:
                self._release(reader)

        self.command("XREVRANGE", reader.keys.stream, "+", "-", "COUNT", 1, callback=answered)

    def live(self, channel: bytes, payload: bytes) -> bool:
        """A pushed event on a stream's shard channel; False when the channel is not one we read."""
        reader = self.readers.get(channel.decode("utf-8", "surrogateescape"))
        if reader is None:
            return False
        if payload == SUBSCRIBED:
            reader.subscribed = True
            if reader.last is not None and not reader.caught_up and self.synced:
                reader.caught_up = True
                self._read_on(reader)
            return True
        try:
            head, _, body = payload.partition(b"\n")
            prev_raw, id_raw = head.split(b" ")
            prev, this = parse_id(prev_raw), parse_id(id_raw)
        except ValueError:
            log.warning("cluster: ignoring a malformed stream event: %r", payload[:200])
            return True
        if reader.last is None or reader.reading or not self.synced:
            reader.held.append((prev, this, body.split(b"\n")))
        elif this <= reader.last:
            pass
        elif prev == reader.last:
            reader.last = this
            self.deliver(body.split(b"\n"))
        else:
            reader.held.append((prev, this, body.split(b"\n")))
            self._read_on(reader)
        return True

    def _read_on(self, reader: StreamReader) -> None:
        """Read the stream past our last id; then what was held meanwhile goes on."""
        if reader.reading or reader.last is None:
            return
        reader.reading = True

        def answered(reply: Reply) -> None:
            if self.readers.get(reader.keys.live) is not reader:
                return
            reader.reading = False
            if reply is LINK_DOWN or isinstance(reply, ReplyError) or not isinstance(reply, list):
                return  # link_up reads on
            events = []
            for entry in reply:
                this = parse_id(_entry_id(entry))
                if reader.last is not None and this <= reader.last:
                    continue
                fields = _entry_fields(entry)
                before = fields.get(b"p")
                if before is not None and reader.last is not None and parse_id(before) > reader.last:
                    self._note_trimmed(reader)
                reader.last = this
                event = fields.get(b"e")
                if event is not None:
                    events.append(event)
            if events:
                self.deliver(events)
            if len(reply) >= CATCH_UP_COUNT:
                self._read_on(reader)
            else:
                self._release(reader)

        assert reader.last is not None
        self.command(
            "XRANGE", reader.keys.stream, f"({format_id(reader.last)}", "+", "COUNT", CATCH_UP_COUNT,
            callback=answered,
        )  # fmt: skip

    def _release(self, reader: StreamReader) -> None:
        """Hand on the held events past our position, in order (a gap the read could not fill,
        entries trimmed away, is not waited for)."""
        held, reader.held = reader.held, []
        released: list[bytes] = []
        for _, this, events in sorted(held, key=lambda item: item[1]):
            if reader.last is not None and this <= reader.last:
                continue
            reader.last = this
            released.extend(events)
        if released:
            self.deliver(released)

    # ---- writing ---------------------------------------------------------------------------

    def publish(self, keys: StreamKeys, event: str) -> None:
        """Append ``event`` to a stream, now or once Redis is back (bounded)."""
        item = Outgoing(keys, event, self.clock())
        self.outbox.append(item)
        if not self.synced:
            self._bound()
        elif self.defer is None:
            self._send(keys, [item])
        else:
            batch = self.batches.get(keys)
            if batch is not None:
                batch.append(item)
                return
            if not self.batches:
                self.defer(self._send_batches)
            self.batches[keys] = [item]

    def _send_batches(self) -> None:
        batches, self.batches = self.batches, {}
        if self.synced:  # else they wait in the outbox for the link to be back
            for keys, items in batches.items():
                self._send(keys, [item for item in items if not item.sent and not item.done])

    def _bound(self) -> None:
        """While Redis is away the outbox keeps the newest ``OUTBOX_LIMIT`` events (while it is
        there, what is on its way is bounded by the link's queue)."""
        excess = len(self.outbox) - OUTBOX_LIMIT
        if excess > 0:
            for _ in range(excess):
                self.outbox.popleft()
            self._note_dropped(excess)

    def _send(self, keys: StreamKeys, items: list[Outgoing]) -> None:
        """One publish command per ``BATCH_MAX`` events of one stream, in order."""
        for start in range(0, len(items), BATCH_MAX):
            chunk = items[start : start + BATCH_MAX]
            sent = self.command(
                "EVAL", PUBLISH_SCRIPT, 2, keys.stream, keys.live, STREAM_MAXLEN, STREAM_IDLE_MS,
                *[item.event for item in chunk], callback=self._answer(keys, chunk),
            )  # fmt: skip
            for item in chunk:
                item.sent = sent

    def _answer(self, keys: StreamKeys, chunk: list[Outgoing]) -> Callable[[Reply], None]:
        def answered(reply: Reply) -> None:
            if reply is LINK_DOWN:
                for item in chunk:
                    item.sent = False  # sent again, in order, once the link is back
                return
            if isinstance(reply, ReplyError):
                log.warning("cluster: Redis refused %d events for %s: %s", len(chunk), keys.stream, reply)
            for item in chunk:
                item.done = True
            outbox = self.outbox
            while outbox and outbox[0].done:
                outbox.popleft()

        return answered

    def _flush(self) -> None:
        self._bound()
        too_old = self.clock() - OUTBOX_MAX_AGE_S
        fresh = deque(item for item in self.outbox if not item.done and (item.sent or item.made_at >= too_old))
        if len(fresh) < len(self.outbox):
            self._note_dropped(len(self.outbox) - len(fresh))
            self.outbox = fresh
        waiting: dict[StreamKeys, list[Outgoing]] = {}
        for item in self.outbox:
            if not item.sent and not item.done:
                waiting.setdefault(item.keys, []).append(item)
        for keys, items in waiting.items():
            self._send(keys, items)

    def _note_trimmed(self, reader: StreamReader) -> None:
        """Entries after our position are gone from the stream (``MAXLEN``) before we read them:
        said, and counted, since they cannot be delivered."""
        self.trimmed += 1
        log.warning(
            "cluster: events of %s were trimmed from Redis before this node read them "
            "(it was away for more than the stream keeps, about %d events); they are lost here",
            reader.keys.stream, STREAM_MAXLEN,
        )  # fmt: skip

    def _note_dropped(self, count: int) -> None:
        if not self.dropped:
            log.warning("cluster: Redis away too long; dropping the oldest buffered events")
        self.dropped += count

    # ---- the link ------------------------------------------------------------------------

    def link_up(self) -> None:
        """Check the epoch, read every stream on from where we were, then send what waited."""
        self.synced = False
        mine = secrets.token_hex(8)

        def answered(reply: Reply) -> None:
            if reply is LINK_DOWN or isinstance(reply, ReplyError):
                return  # the next link_up tries again
            epoch = reply if isinstance(reply, bytes) else mine.encode()
            if self.epoch is not None and epoch != self.epoch:
                log.warning("cluster: Redis lost its data (a new epoch); reading every stream from its start")
                for reader in self.readers.values():
                    if reader.last is not None:
                        reader.last = ZERO
            self.epoch = epoch
            self.synced = True
            for reader in self.readers.values():
                reader.subscribed = reader.caught_up = True  # the link subscribed them all before link_up
                if reader.last is None:
                    self._take_position(reader)
                else:
                    self._read_on(reader)
            if self.dropped:
                log.warning("cluster: %d buffered events were dropped while Redis was away", self.dropped)
                self.dropped = 0
            self._flush()

        self.command("SET", self.epoch_key, mine, "NX", "GET", callback=answered)

    def link_down(self) -> None:
        self.synced = False
        for reader in self.readers.values():
            reader.reading = False


def _entry_id(entry: object) -> bytes:
    """An entry of XRANGE/XREVRANGE as redis-py gives it: ``(id, fields)``."""
    return entry[0]  # type: ignore[index,no-any-return]


def _entry_fields(entry: object) -> dict[bytes, bytes]:
    fields = entry[1]  # type: ignore[index]
    if isinstance(fields, dict):
        return fields
    if isinstance(fields, list):  # the raw RESP form: [field, value, ...]
        return dict(zip(fields[::2], fields[1::2], strict=False))
    return {}

