"""One node of a chat network: publish what local users do, apply what other nodes publish.

Runs on the hub's thread (or under its lock), like the core: every method here is
called either by the core (``chatd.core.network.Network``) or by the Redis link
through the backend's ``post``. It never blocks: Redis commands are queued on the
link, and their replies come back as callbacks.

The node is the hub's side of the network and composes one part per job:
- ``claims.NickClaims``: who holds each nick, in Redis, by Lua scripts;
- ``replica.Replica``: the users of the other nodes, as ordinary ``Client`` objects;
- ``handlers``: what each event from another node does here;
- ``liveness.Liveness``: our heartbeat, and the death of silent or expired nodes;
- ``wire``: how events, users and channel state are written on the bus.
What stays here: the ``Network`` calls of the core (each becomes one published
event), the link's calls, and the (re)sync between nodes.

The link interface is narrow on purpose: the node calls only ``link.command``,
``link.subscribe`` and ``link.unsubscribe`` (``link.Commands``) and the link calls only
``link_up``, ``link_down``, ``link_tick`` and ``link_messages`` (``link.LinkHandler``).

Model:
- Events go out as one compact JSON object each. What every node needs (users, their
  nicks and quits, joins, parts, modes, topics, heartbeats) is pushed on the sharded
  pub/sub channel ``{<prefix>}:events``; losing some to a link drop is repaired by the
  resync below. Channel messages go through the channel's stream and events for one
  node (private messages, invites, kills, bursts) through that node's stream, with
  ``streams.Streams``: lossless across link drops and Redis restarts, exactly once and
  in order per stream.
- Interest routing: a node reads a channel's stream only while it has local members
  there (``_follow_interest``, every tick and at each local JOIN), so a channel's
  messages cost nothing on the nodes that have nobody in it. A channel message is
  published once and each reading node delivers it to its own members, encoding it
  once per wire form as for a local message; msgid and time travel with it.
- Memberships, topics and modes are not stored in Redis: the live nodes hold them and
  hand them over in bursts, which is all a (re)joining node needs, without a second
  write per JOIN.
- (Re)sync: on every (re)connection the node re-claims its users' nicks, then
  publishes HELLO with a burst of its users, memberships and channel state; every
  other node applies it (diffing against its replica: users and memberships that
  appeared JOIN, those that vanished PART or QUIT) and answers with its own burst.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from chatd.cluster.claims import NickClaims, Taken
from chatd.cluster.config import ClusterSettings
from chatd.cluster.handlers import HANDLERS, NEEDS_NO_REPLICA, on_messages
from chatd.cluster.link import Commands, Reply
from chatd.cluster.liveness import Liveness
from chatd.cluster.replica import RemoteNode, Replica
from chatd.cluster.streams import StreamKeys, Streams, channel_keys, node_keys
from chatd.cluster.wire import (
    MalformedEvent,
    decode_event,
    encode_event,
    encode_message,
    event_fields,
    message_head,
    own_suffix,
    registration_fields,
    state_fields,
    user_info,
)
from chatd.core.channel import Channel, ModeChange
from chatd.core.client import Client
from chatd.core.event import Delivery
from chatd.core.hub import Hub

log = logging.getLogger("chatd")


class _NoLink:
    """The link before one is attached: nothing is sent."""

    def command(self, *args: bytes | str | int | float, callback: Callable[[Reply], None] | None = None) -> bool:
        return False

    def subscribe(self, channel: str) -> None:
        pass

    def unsubscribe(self, channel: str) -> None:
        pass


class ClusterNode:
    """The hub's view of the network; implements ``chatd.core.network.Network``."""

    def __init__(
        self, hub: Hub, settings: ClusterSettings, link: Commands | None = None,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:  # fmt: skip
        """``defer``: the backend's way to run something once the loop's turn is over (see
        ``Streams``); the events of one turn then go out in one batch per stream."""
        self.hub = hub
        self.settings = settings
        self.node_id = settings.node_id
        self.instance = secrets.token_hex(6)
        """Distinguishes this run from an earlier one with the same node id (user ids embed it)."""
        prefix = self.prefix = settings.prefix
        self.events_channel = f"{settings.key_tag}:events"
        self._events_channel = self.events_channel.encode()
        self.own_keys = node_keys(prefix, self.node_id)
        self.own_suffix = own_suffix(self.node_id)
        """How every event this node publishes ends: Redis sends each back to us, and we drop
        those without parsing them."""
        self.link: Commands = link or _NoLink()
        self.streams = Streams(
            prefix, self._command, lambda live: self.link.subscribe(live), lambda live: self.link.unsubscribe(live),
            self._streamed, hub.clock, defer,
        )  # fmt: skip
        self.streams.follow(self.own_keys)
        self._channel_keys: dict[str, StreamKeys] = {}
        self._node_keys: dict[str, StreamKeys] = {}
        self.up = False
        self.replica = Replica(hub, self.instance)
        self.claims = NickClaims(hub, self.replica, self._command, self.node_id, settings.key_tag)
        self.liveness = Liveness(
            settings, self.instance, self.replica, self._command, clock=hub.clock, drop=self._drop_node,
            resync=self._resync,
        )  # fmt: skip
        self.hello_at = float("-inf")
        """When we last said HELLO (hub clock): bursts answering it are on their way for a while."""
        self.sync_requested: dict[str, float] = {}
        """When we last asked each node we hold nothing of for its burst (hub clock)."""

    @property
    def nodes(self) -> dict[str, RemoteNode]:
        """Every other node we hold a replica of, by id."""
        return self.replica.nodes

    # ---- sending -----------------------------------------------------------------

    def _command(self, *args: bytes | str | int | float, callback: Callable[[Reply], None] | None = None) -> bool:
        return self.up and self.link.command(*args, callback=callback)

    @property
    def subscriptions(self) -> list[str]:
        """The shard channels a link must hold from its start."""
        return [self.events_channel, *self.streams.following()]

    def _publish(self, payload: dict[str, Any], to: str | None = None) -> None:
        """To every node on pub/sub, or to one node through its stream."""
        if to is not None:
            keys = self._node_keys.get(to) or self._node_keys.setdefault(to, node_keys(self.prefix, to))
            self.streams.publish(keys, encode_event(payload, self.node_id))
            self.hub.stats.cluster_events_out += 1
        elif self._command("SPUBLISH", self.events_channel, encode_event(payload, self.node_id)):
            self.hub.stats.cluster_events_out += 1

    def _keys_of(self, channel_key: str) -> StreamKeys:
        keys = self._channel_keys.get(channel_key)
        if keys is None:
            keys = self._channel_keys[channel_key] = channel_keys(self.prefix, channel_key)
        return keys

    def _follow_interest(self) -> None:
        """Read the streams of the channels with local members, and only those."""
        wanted = {
            self._keys_of(key).live: key
            for key, channel in self.hub.channels.items()
            if any(member.node is None for member in channel.members)
        }
        for live in self.streams.following():
            if live not in wanted and live != self.own_keys.live:
                self.streams.unfollow(live)
        for key in wanted.values():
            self.streams.follow(self._keys_of(key))
        for key in [key for key in self._channel_keys if key not in self.hub.channels]:
            del self._channel_keys[key]

    # ---- the core's calls (local clients only) ---------------------------------------

    def remote_clients(self) -> Iterable[Client]:
        return list(self.replica.remote.values())

    def census(self) -> tuple[int, int, int]:
        replica = self.replica
        return len(replica.remote), replica.remote_invisible, len(replica.nodes)

    def request_nick(self, client: Client, nick: str) -> bool:
        return self.claims.request(client, nick)

    def registered(self, client: Client) -> None:
        client.uid = f"{self.instance}.{client.id:x}"
        self.claims.taken(client)
        self._publish({"t": "user", **user_info(client)})

    def nick_changed(self, client: Client, old_key: str | None) -> None:
        self.claims.taken(client, old_key)
        self._publish({"t": "nick", "u": client.uid, "nick": client.nick})

    def gone(self, client: Client, reason: str) -> None:
        self.claims.gone(client)
        if client.registered and client.uid:
            self._publish({"t": "quit", "u": client.uid, "r": reason})

    def joined(self, client: Client, channel: Channel) -> None:
        # Our position in the channel's stream is taken before the JOIN goes out: what anyone
        # sends once they have seen it is after that position.
        self.streams.follow(self._keys_of(channel.name_key), since=self.hub.wall_clock())
        # The channel's state travels along: a node where it is new (or only remote users
        # are in it) takes it, rather than what its own history remembers of the name.
        self._publish(
            {
                "t": "join",
                "u": client.uid,
                "c": channel.name,
                "p": channel.prefix_of(client, every=True),
                "s": state_fields(channel.snapshot()),
            }
        )

    def parted(self, client: Client, channel: Channel, reason: str) -> None:
        self._publish({"t": "part", "u": client.uid, "c": channel.name, "r": reason})

    def kicked(self, source: Client, channel: Channel, target: Client, reason: str) -> None:
        self._publish({"t": "kick", "u": source.uid, "c": channel.name, "k": target.uid, "r": reason})

    def topic_changed(self, client: Client, channel: Channel) -> None:
        self._publish(
            {"t": "topic", "u": client.uid, "c": channel.name, "topic": channel.topic, "at": channel.topic_at}
        )

    def modes_changed(self, client: Client, channel: Channel, applied: list[ModeChange], event: Delivery) -> None:
        self._publish(
            {
                "t": "mode",
                "u": client.uid,
                "c": channel.name,
                "ch": applied,
                "line": event.line,
                "plain": event.plain_line,
                "at": event.when,
            }
        )

    def user_changed(self, client: Client) -> None:
        self._publish(
            {
                "t": "umeta",
                "u": client.uid,
                "away": client.away,
                "real": client.realname,
                "modes": "".join(sorted(client.user_modes)),
                "acct": client.account,
            }
        )

    def account_registered(self, name: str) -> None:
        self.replica.note_account(name, exists=True)
        self._publish({"t": "areg", "a": name})

    def account_dropped(self, name: str) -> None:
        self.replica.note_account(name, exists=False)
        self._publish({"t": "adrop", "a": name})

    def ghost(self, client: Client, target: Client, reason: str, then: Callable[[], None]) -> None:
        self.replica.when_gone(target, then)
        self._publish({"t": "ghost", "u": client.uid, "k": target.uid, "r": reason}, to=target.node)

    def channel_registration_changed(self, channel: Channel) -> None:
        self.replica.note_registration(channel.name)
        self._publish({"t": "creg", "c": channel.name, "r": registration_fields(channel.registration)})

    def channel_message(self, client: Client, channel: Channel, event: Delivery) -> None:
        head = message_head("msg", "c", channel.name)
        self.streams.publish(self._keys_of(channel.name_key), encode_message(head, event, self.node_id))
        self.hub.stats.cluster_events_out += 1

    def status_message(self, client: Client, channel: Channel, event: Delivery, status: str) -> None:
        head = f'{message_head("smsg", "c", channel.name)},"st":"{status}"'  # status: @ or +
        self.streams.publish(self._keys_of(channel.name_key), encode_message(head, event, self.node_id))
        self.hub.stats.cluster_events_out += 1

    def redacted(
        self, client: Client, channel: Channel | None, target: Client | None, msgid: str, event: Delivery
    ) -> None:
        if channel is not None:  # on the channel's stream, in order with its messages
            head = f'{message_head("redact", "c", channel.name)},"m":{json.dumps(msgid)}'
            self.streams.publish(self._keys_of(channel.name_key), encode_message(head, event, self.node_id))
        elif target is not None:
            fields = {"t": "redact", "u": client.uid, "k": target.uid, "m": msgid, **event_fields(event)}
            self._publish(fields, to=target.node)

    def private_message(self, client: Client, target: Client, event: Delivery) -> None:
        self._publish({"t": "pm", "u": client.uid, "k": target.uid, **event_fields(event)}, to=target.node)

    def invited(self, client: Client, target: Client, channel: Channel) -> None:
        self._publish({"t": "invite", "u": client.uid, "k": target.uid, "c": channel.name}, to=target.node)

    def wallops(self, client: Client, line: str) -> None:
        self._publish({"t": "wallops", "line": line})

    def killed(self, client: Client, target: Client, reason: str) -> None:
        self._publish(
            {"t": "kill", "u": client.uid, "k": target.uid, "src": client.prefix, "r": reason}, to=target.node
        )

    # ---- the link's calls ----------------------------------------------------------------

    def link_up(self) -> None:
        self.up = True
        self.streams.link_up()
        self.liveness.link_up()
        self._resync()

    def link_down(self) -> None:
        self.up = False
        self.streams.link_down()

    def link_tick(self) -> None:
        if not self.up:
            return
        self._follow_interest()
        self.liveness.heartbeat()
        self._publish({"t": "hb"})
        self.liveness.check()

    def link_messages(self, messages: list[tuple[bytes, bytes]]) -> None:
        for channel, payload in messages:
            if channel != self._events_channel:
                self.streams.live(channel, payload)
            elif payload and not payload.endswith(self.own_suffix):  # b"": our subscription confirmed
                self._apply(payload, deduplicate=False)

    def _streamed(self, payloads: list[bytes]) -> None:
        """Events of one stream, in order. A run of messages to one channel (a busy channel's
        batch) is fanned out at once: one append per local connection for the whole run."""
        run: list[tuple[str, dict[str, Any]]] = []
        own = self.own_suffix
        for payload in payloads:
            if payload.endswith(own):
                continue
            accepted = self._accept(payload, deduplicate=True)
            if accepted is None:
                continue
            sender, kind, event = accepted
            if kind == "msg":
                if run and run[0][1].get("c") != event.get("c"):
                    self._messages(run)
                    run = []
                run.append((sender, event))
                continue
            if run:
                self._messages(run)
                run = []
            self._dispatch_logged(sender, kind, event)
        if run:
            self._messages(run)

    def _apply(self, payload: bytes, *, deduplicate: bool) -> None:
        accepted = self._accept(payload, deduplicate=deduplicate)
        if accepted is not None:
            self._dispatch_logged(*accepted)

    def _accept(self, payload: bytes, *, deduplicate: bool) -> tuple[str, str, dict[str, Any]] | None:
        """The event of a payload, unless it is malformed, ours, or (from a stream) a copy."""
        try:
            sender, kind, event = decode_event(payload)
        except MalformedEvent as error:
            log.warning("cluster: ignoring a malformed event: %s", error)
            return None
        if sender == self.node_id:
            return None
        # A publish whose answer the link lost is sent again: the copy has the same msgid.
        if deduplicate and "id" in event and not self.streams.dedupe.first_time(
            kind, event.get("c") or event.get("k"), event["id"]
        ):
            return None
        self.hub.stats.cluster_events_in += 1
        return sender, kind, event

    def _dispatch_logged(self, sender: str, kind: str, event: dict[str, Any]) -> None:
        try:
            self._dispatch(sender, kind, event)
        except Exception:
            log.warning("cluster: event %r from %s failed", kind, sender, exc_info=True)

    def _messages(self, run: list[tuple[str, dict[str, Any]]]) -> None:
        """A run of channel messages (``msg`` needs no replica of its sender's node)."""
        now = self.hub.clock()
        for sender in {sender for sender, _ in run}:
            node = self.replica.nodes.get(sender)
            if node is None:
                self._request_sync(sender)
            else:
                node.last_heard = now
        try:
            on_messages(self.replica, [event for _, event in run])
        except Exception:
            log.warning("cluster: %d messages from %s failed", len(run), run[0][0], exc_info=True)

    def _dispatch(self, sender: str, kind: str, event: dict[str, Any]) -> None:
        if kind == "hello":
            self._apply_burst(sender, event)
            self._publish({"t": "burst", **self._burst()}, to=sender)
            return
        if kind == "burst":
            self._apply_burst(sender, event)
            return
        if kind == "sync":
            self._publish({"t": "burst", **self._burst()}, to=sender)
            return
        if kind == "bye":
            self._drop_node(sender)
            return
        if kind == "yield":
            self.claims.yield_nick(sender, event["k"])
            return
        node = self.replica.nodes.get(sender)
        if node is None:
            # A node we hold no replica of (new, or one we took for dead): ask for its burst.
            # Messages need nothing of its users, so they are delivered meanwhile.
            self._request_sync(sender)
            if kind not in NEEDS_NO_REPLICA:
                return
            node = RemoteNode(sender, self.hub.clock())
        node.last_heard = self.hub.clock()
        handler = HANDLERS.get(kind)
        if handler is not None:
            handler(self.replica, node, event)

    def farewell(self) -> None:
        """Leave the network on a clean stop: others QUIT our users at once; our nicks are freed."""
        self.claims.release_all()
        self.liveness.forget_self()
        self._publish({"t": "bye"})

    # ---- (re)sync --------------------------------------------------------------------------

    def _resync(self) -> None:
        """Re-claim our users' nicks (renaming the losers), then HELLO with our burst; and re-read
        the accounts' names and channel registrations, for what went by while we were away."""
        self.claims.resync(self._say_hello)
        self.replica.reload_account_names()
        self.replica.reload_registrations()

    def _say_hello(self, taken: Taken) -> None:
        self.hello_at = self.hub.clock()
        self._publish({"t": "hello", **self._burst()})
        for key, owner in taken:
            self._publish({"t": "yield", "k": key}, to=owner)

    def _request_sync(self, node_id: str) -> None:
        """A node we hold nothing of is talking: ask it for its burst (not right after our HELLO,
        whose answers are on their way)."""
        now = self.hub.clock()
        if now - self.hello_at < 2 * self.settings.heartbeat_s:
            return
        if now - self.sync_requested.get(node_id, float("-inf")) < self.settings.node_timeout_s:
            return
        self.sync_requested[node_id] = now
        self._publish({"t": "sync"}, to=node_id)

    def _drop_node(self, node_id: str) -> None:
        self.sync_requested.pop(node_id, None)
        self._node_keys.pop(node_id, None)
        self.replica.drop(node_id)

    def _apply_burst(self, node_id: str, burst: dict[str, Any]) -> None:
        self.sync_requested.pop(node_id, None)
        self.replica.apply_burst(node_id, burst)

    def _burst(self) -> dict[str, Any]:
        """Our users, their memberships, and the state of the channels they are in."""
        users = [user_info(client) for client in self.hub.clients.values() if client.registered and client.uid]
        channels = []
        for channel in self.hub.channels.values():
            members = [
                [member.uid, channel.prefix_of(member, every=True)]
                for member in channel.members
                if member.node is None and member.uid
            ]
            if members:
                channels.append({"c": channel.name, "m": members, **state_fields(channel.snapshot())})
        return {"users": users, "chans": channels}
