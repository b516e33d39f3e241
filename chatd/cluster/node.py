"""One node of a chat network: publish what local users do, apply what other nodes publish.

Runs on the hub's thread (or under its lock), like the core: every method here is
called either by the core (``chatd.core.network.Network``) or by the Redis link
through the backend's ``post``. It never blocks: Redis commands are queued on the
link, and their replies come back as callbacks.

Model:
- Users of other nodes are ordinary ``Client`` objects in the hub — in
  ``clients_by_key`` and in channel member lists, so NAMES, WHO, WHOIS, ISON, LIST
  and member counts work unchanged — with ``node`` set to their home node and a
  transport that writes nowhere. They are *not* in ``hub.clients`` (local
  connections, timers, LUSERS). The home node is the authority on its users: only
  its events and bursts create, change or remove them.
- Events go out as one compact JSON object per pub/sub message: on
  ``<prefix>:events`` for everyone, or on ``<prefix>:to:<node>`` for one node
  (private messages, invites, kills, bursts). A channel message is published once
  per node and each node delivers it to its own members, encoding it once per
  wire form as for a local message; msgid and time travel with it.
- Redis keys: ``<prefix>:nick:<casefolded nick>`` → owning node (uniqueness);
  ``<prefix>:nicks:<node>`` the set of those a node owns; ``<prefix>:nickat`` when
  each was taken; ``<prefix>:node:<node>`` a liveness key refreshed every heartbeat
  with an expiry; ``<prefix>:nodes`` every node that has lived. All nick changes run
  as Lua scripts, so a claim and its bookkeeping are one atomic step. Memberships,
  topics and modes are not stored in Redis: the live nodes hold them and hand them
  over in bursts, which is all a (re)joining node needs, without a second write per
  JOIN.
- Nicks: a local claim waits for Redis (no 001, no NICK, until it says yes); while
  Redis is unreachable a node claims against its replica alone. On resync, of two
  users holding one nick the later claim is renamed ``Guest<digits>``.
- (Re)sync: on every (re)connection the node re-claims its users' nicks, then
  publishes HELLO with a burst of its users, memberships and channel state; every
  other node applies it (diffing against its replica: users and memberships that
  appeared JOIN, those that vanished PART or QUIT) and answers with its own burst.
- Death: a node silent for ``node_timeout_s`` is dropped (its users QUIT with
  ``<node> left the network``); a sweep script removes the keys of every node whose
  liveness key expired. A node that finds its own liveness key gone (it was
  presumed dead) resynchronises.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from chatd.cluster.config import ClusterSettings
from chatd.cluster.link import LINK_DOWN, Reply
from chatd.cluster.resp import RespError
from chatd.cluster.wire import channel_state, state_fields
from chatd.core.channel import Channel, ChannelState, apply_relayed_modes, kick, part, set_topic
from chatd.core.client import Client, Mode
from chatd.core.event import Event
from chatd.core.hub import Hub
from chatd.core.users import announce_nick, change_nick, deliver_wallops, kill
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import format_message

log = logging.getLogger("chatd")

GUEST_PREFIX = "Guest"

NEEDS_NO_REPLICA = frozenset({"msg", "pm", "wallops", "kill"})
"""Events applied even from a node whose users we do not know (yet, or any more)."""


def _event_fields(event: Event) -> dict[str, Any]:
    """What a relayed message carries to the other nodes, so each encodes it as its own."""
    fields: dict[str, Any] = {
        "line": event.line,
        "plain": event.plain_line,
        "id": event.msgid,
        "at": event.when,
    }
    if event.client_tags:
        fields["tags"] = event.client_tags
    if event.tags_only:
        fields["to"] = 1
    return fields


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""Built once: ``json.dumps`` with options makes a new encoder for every message."""

# Every script takes the key prefix last in ARGV. ``<prefix>:nickat`` maps each claimed nick to
# when its holder took it (wall clock), so a clash after an outage is settled for the older claim.

# KEYS[1] nick key, KEYS[2] the node's nick set; ARGV node id, casefolded nick, claim time, prefix.
# Returns 1 when the nick is now ours, else the owning node's id.
CLAIM_SCRIPT = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return owner end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HSET', ARGV[4] .. ':nickat', ARGV[2], ARGV[3])
return 1
"""

# KEYS[1] nick key, KEYS[2] the node's nick set; ARGV node id, casefolded nick, prefix.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', ARGV[3] .. ':nickat', ARGV[2])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS[1] the node's nick set; ARGV node id, prefix, then (nick, claim time) for every nick its
# users hold now. Drops the node's other nicks and re-claims these. A nick another node holds
# stays theirs if their claim is older ("lost"), else becomes ours ("taken", with the node that
# must rename its user). Returns {lost, taken} with taken as nick, node, nick, node...
RESYNC_SCRIPT = """
local nickat = ARGV[2] .. ':nickat'
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = true end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not want[k] then
    local nk = ARGV[2] .. ':nick:' .. k
    if redis.call('GET', nk) == ARGV[1] then
      redis.call('DEL', nk)
      redis.call('HDEL', nickat, k)
    end
    redis.call('SREM', KEYS[1], k)
  end
end
local lost, taken = {}, {}
for i = 3, #ARGV, 2 do
  local k, at = ARGV[i], ARGV[i + 1]
  local nk = ARGV[2] .. ':nick:' .. k
  local owner = redis.call('GET', nk)
  local theirs = tonumber(redis.call('HGET', nickat, k) or '0') or 0
  if owner and owner ~= ARGV[1] and theirs <= tonumber(at) then
    table.insert(lost, k)
  else
    if owner and owner ~= ARGV[1] then
      redis.call('SREM', ARGV[2] .. ':nicks:' .. owner, k)
      table.insert(taken, k)
      table.insert(taken, owner)
    end
    redis.call('SET', nk, ARGV[1])
    redis.call('SADD', KEYS[1], k)
    redis.call('HSET', nickat, k, at)
  end
end
return {lost, taken}
"""

# ARGV key prefix, our node id. Removes the keys of every node whose liveness key expired;
# returns their ids. Idempotent: any node may run it any time.
SWEEP_SCRIPT = """
local dead = {}
for _, node in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':nodes')) do
  if node ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 0 then
    for _, k in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':nicks:' .. node)) do
      local nk = ARGV[1] .. ':nick:' .. k
      if redis.call('GET', nk) == node then
        redis.call('DEL', nk)
        redis.call('HDEL', ARGV[1] .. ':nickat', k)
      end
    end
    redis.call('DEL', ARGV[1] .. ':nicks:' .. node)
    redis.call('SREM', ARGV[1] .. ':nodes', node)
    table.insert(dead, node)
  end
end
return dead
"""


class _Nowhere:
    """The transport of a user of another node: its own node delivers to it."""

    __slots__ = ()

    def write(self, data: bytes) -> bool:
        return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        return None


NOWHERE = _Nowhere()


class Commands:
    """The part of the Redis link the node uses (a fake in tests)."""

    def command(self, *args: bytes | str | int | float, callback: Callable[[Reply], None] | None = None) -> bool:
        raise NotImplementedError


class RemoteNode:
    """What this node knows of another: its users and when it was last heard from."""

    __slots__ = ("id", "last_heard", "users")

    def __init__(self, node_id: str, now: float) -> None:
        self.id = node_id
        self.users: dict[str, Client] = {}
        self.last_heard = now


def _user_info(client: Client) -> dict[str, Any]:
    return {
        "u": client.uid,
        "nick": client.nick,
        "user": client.user,
        "host": client.host,
        "real": client.realname,
        "away": client.away,
        "modes": "".join(sorted(client.user_modes)),
        "signon": client.signon,
    }


class ClusterNode:
    """The hub's view of the network; implements ``chatd.core.network.Network``."""

    def __init__(self, hub: Hub, settings: ClusterSettings, link: Commands | None = None) -> None:
        self.hub = hub
        self.settings = settings
        self.node_id = settings.node_id
        self.instance = secrets.token_hex(6)
        """Distinguishes this run from an earlier one with the same node id (user ids embed it)."""
        prefix = self.prefix = settings.prefix
        self.events_channel = f"{prefix}:events"
        self.own_channel = f"{prefix}:to:{self.node_id}"
        self.own_suffix = _encode_json({"n": self.node_id})[1:].encode()
        """How every event this node publishes ends: Redis sends each back to us, and the link
        drops those unread instead of waking the loop for them."""
        self.nick_set_key = f"{prefix}:nicks:{self.node_id}"
        self.link: Commands = link or Commands()
        self.up = False
        self.nodes: dict[str, RemoteNode] = {}
        """Every other node we hold a replica of (from its HELLO or BURST), by id."""
        self.remote: dict[str, Client] = {}
        """Every user of another node, by network-wide id (``<instance>.<local id>``)."""
        self.remote_by_key: dict[str, Client] = {}
        """Users of other nodes by casefolded nick, even where a local user shadows one in
        ``hub.clients_by_key`` while a clash is being settled."""
        self.remote_invisible = 0
        """How many users in ``remote`` are +i, kept as they change (LUSERS must not scan them)."""
        self.claimed: set[str] = set()
        """Casefolded nicks Redis has confirmed as ours."""
        self.claimed_at: dict[str, float] = {}
        """When a local user took each nick (wall clock): the older claim wins a clash after an outage."""
        self.pending: dict[str, Client] = {}
        """Nicks asked of Redis and not answered yet, with who asked (no second local claim meanwhile)."""
        self.wanted: dict[Client, str] = {}
        """The nick each waiting client asked for last (an earlier answer is then stale)."""
        self.hello_at = float("-inf")
        """When we last said HELLO (hub clock): bursts answering it are on their way for a while."""
        self.sync_requested: dict[str, float] = {}
        self.alive_seen = False
        self.warned_twin = False
        self._handlers: dict[str, Callable[[RemoteNode, dict[str, Any]], None]] = {
            "user": self._on_user,
            "nick": self._on_nick,
            "quit": self._on_quit,
            "join": self._on_join,
            "part": self._on_part,
            "kick": self._on_kick,
            "topic": self._on_topic,
            "mode": self._on_mode,
            "umeta": self._on_umeta,
            "msg": self._on_msg,
            "pm": self._on_pm,
            "invite": self._on_invite,
            "kill": self._on_kill,
            "wallops": self._on_wallops,
            "hb": self._on_heartbeat,
        }

    # ---- sending -----------------------------------------------------------------

    def _command(self, *args: bytes | str | int | float, callback: Callable[[Reply], None] | None = None) -> bool:
        return self.up and self.link.command(*args, callback=callback)

    def _publish(self, payload: dict[str, Any], to: str | None = None) -> None:
        payload.pop("n", None)
        payload["n"] = self.node_id  # last, so the link can spot our own events (``own_suffix``)
        channel = self.events_channel if to is None else f"{self.prefix}:to:{to}"
        self._command("PUBLISH", channel, _encode_json(payload))

    def _nick_key(self, key: str) -> str:
        return f"{self.prefix}:nick:{key}"

    # ---- the core's calls (local clients only) ---------------------------------------

    def remote_clients(self) -> Iterable[Client]:
        return list(self.remote.values())

    def census(self) -> tuple[int, int, int]:
        return len(self.remote), self.remote_invisible, len(self.nodes)

    def request_nick(self, client: Client, nick: str) -> bool:
        key = irc_lower(nick)
        holder = self.pending.get(key)
        if holder is not None and holder is not client and not holder.gone:
            self.hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            return True
        if key == client.key and key in self.claimed:
            return False  # a change of case only: the nick is ours already
        self.pending[key] = client
        self.wanted[client] = key
        sent = self._command(
            *self._claim_args(key, self.hub.wall_clock()),
            callback=lambda reply: self._claim_answered(client, nick, key, reply),
        )
        if not sent:  # Redis is out of reach: claim against what we know, settle at resync
            del self.pending[key]
            del self.wanted[client]
        client.held = sent
        return sent

    def _claim_answered(self, client: Client, nick: str, key: str, reply: Reply) -> None:
        if self.wanted.get(client) == key:
            client.held = False  # its input, held meanwhile, goes on (Hub.resume)
        if self.pending.get(key) is client:
            del self.pending[key]
        current = self.wanted.get(client) == key
        if current:
            del self.wanted[client]
        granted = reply == 1
        if granted:
            self.claimed.add(key)
            self.claimed_at[key] = self.hub.wall_clock()
        if client.gone or not current:  # it left, or asked for another nick since
            if granted and (client.gone or client.key != key):
                self._release(key)
            return
        if isinstance(reply, bytes):
            self.hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            return
        if isinstance(reply, RespError):
            log.warning("cluster: nick claim failed: %s", reply)
        # Granted, or Redis could not answer (then: claimed locally, settled at resync).
        holder = self.hub.find_client(nick)
        if holder is not None and holder is not client and holder.node is None:
            self.hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            if granted:
                self._release(key)
            return
        old_key, was_registered = client.key, client.registered
        change_nick(self.hub, client, nick)
        if not was_registered and old_key is not None and old_key != client.key:
            self._release(old_key)

    def registered(self, client: Client) -> None:
        client.uid = f"{self.instance}.{client.id:x}"
        if client.key is not None and client.key not in self.claimed:
            self.claimed_at.setdefault(client.key, self.hub.wall_clock())
            self._claim_after(client)
        self._publish({"t": "user", **_user_info(client)})

    def nick_changed(self, client: Client, old_key: str | None) -> None:
        if old_key is not None and old_key != client.key:
            self._release(old_key)
        if client.key is not None and client.key not in self.claimed:
            self.claimed_at.setdefault(client.key, self.hub.wall_clock())
            self._claim_after(client)
        self._publish({"t": "nick", "u": client.uid, "nick": client.nick})

    def gone(self, client: Client, reason: str) -> None:
        self.wanted.pop(client, None)
        if client.key is not None and client.key in self.claimed:
            self._release(client.key)
        if client.registered and client.uid:
            self._publish({"t": "quit", "u": client.uid, "r": reason})

    def joined(self, client: Client, channel: Channel) -> None:
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

    def modes_changed(
        self, client: Client, channel: Channel, applied: list[tuple[str, str, str | None]], event: Event
    ) -> None:
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
            }
        )

    def channel_message(self, client: Client, channel: Channel, event: Event) -> None:
        self._publish({"t": "msg", "c": channel.name, **_event_fields(event)})

    def private_message(self, client: Client, target: Client, event: Event) -> None:
        self._publish({"t": "pm", "u": client.uid, "k": target.uid, **_event_fields(event)}, to=target.node)

    def invited(self, client: Client, target: Client, channel: Channel) -> None:
        self._publish({"t": "invite", "u": client.uid, "k": target.uid, "c": channel.name}, to=target.node)

    def wallops(self, client: Client, line: str) -> None:
        self._publish({"t": "wallops", "line": line})

    def killed(self, client: Client, target: Client, reason: str) -> None:
        self._publish(
            {"t": "kill", "u": client.uid, "k": target.uid, "src": client.prefix, "r": reason}, to=target.node
        )

    # ---- nicks in Redis ----------------------------------------------------------------

    def _release(self, key: str) -> None:
        """Give a nick back: in Redis, and locally to a user of another node that holds it."""
        self.claimed.discard(key)
        self.claimed_at.pop(key, None)
        if key not in self.pending:  # else a local user's claim of it is on its way: keep it
            self._command(
                "EVAL", RELEASE_SCRIPT, 2, self._nick_key(key), self.nick_set_key, self.node_id, key, self.prefix
            )
        other = self.remote_by_key.get(key)
        if other is not None and key not in self.hub.clients_by_key:
            self.hub.clients_by_key[key] = other

    def _claim_after(self, client: Client) -> None:
        """Claim the nick a local user already uses (plain clients, Redis outages); rename it on a clash."""
        key = client.key
        assert key is not None

        def answered(reply: Reply) -> None:
            if reply == 1:
                self.claimed.add(key)
            elif isinstance(reply, bytes) and client.key == key and not client.gone:
                self._rename_to_guest(client)

        self._command(*self._claim_args(key, self.claimed_at.get(key, self.hub.wall_clock())), callback=answered)

    def _claim_args(self, key: str, when: float) -> tuple[str | int | float, ...]:
        return (
            "EVAL",
            CLAIM_SCRIPT,
            2,
            self._nick_key(key),
            self.nick_set_key,
            self.node_id,
            key,
            repr(when),
            self.prefix,
        )

    def _rename_to_guest(self, client: Client) -> None:
        """Another node's user holds this local user's nick (both claimed while Redis was out of
        reach): the local one, the later claimant, becomes ``Guest<digits>``."""
        hub = self.hub
        while True:
            guest = f"{GUEST_PREFIX}{secrets.randbelow(10**6):06d}"
            if hub.find_client(guest) is None and irc_lower(guest) not in self.pending:
                break
        log.info("cluster: nick %s is taken on another node; renaming the local user to %s", client.nick, guest)
        hub.notice(client, f"Your nick {client.nick} is in use on another server of the network; you are now {guest}")
        change_nick(hub, client, guest)

    # ---- the link's calls ----------------------------------------------------------------

    def link_up(self) -> None:
        self.up = True
        self.alive_seen = False
        now = self.hub.clock()
        for node in self.nodes.values():
            node.last_heard = now  # we heard nothing while down; give everyone a fresh timeout
        self._heartbeat()
        self._resync()

    def link_down(self) -> None:
        self.up = False

    def link_tick(self) -> None:
        if not self.up:
            return
        self._heartbeat()
        self._publish({"t": "hb"})
        now = self.hub.clock()
        for node_id, node in list(self.nodes.items()):
            if now - node.last_heard > self.settings.node_timeout_s:
                log.info("cluster: node %s silent for %.1fs; dropping its users", node_id, now - node.last_heard)
                self._drop_node(node_id)
        self._command("EVAL", SWEEP_SCRIPT, 0, self.prefix, self.node_id, callback=self._swept)

    def link_messages(self, messages: list[tuple[bytes, bytes]]) -> None:
        for _, payload in messages:
            try:
                event = json.loads(payload)
                sender = event["n"]
                kind = event["t"]
            except (ValueError, KeyError, TypeError):
                log.warning("cluster: ignoring a malformed event: %r", payload[:200])
                continue
            if sender == self.node_id:
                continue
            try:
                self._dispatch(sender, kind, event)
            except Exception:
                log.warning("cluster: event %r from %s failed", kind, sender, exc_info=True)

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
            self._yield_nick(sender, event["k"])
            return
        node = self.nodes.get(sender)
        if node is None:
            # A node we hold no replica of (new, or one we took for dead): ask for its burst.
            # Messages need nothing of its users, so they are delivered meanwhile.
            self._request_sync(sender)
            if kind not in NEEDS_NO_REPLICA:
                return
            node = RemoteNode(sender, self.hub.clock())
        node.last_heard = self.hub.clock()
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(node, event)

    def farewell(self) -> None:
        """Leave the network on a clean stop: others QUIT our users at once; our nicks are freed."""
        self._command("EVAL", RESYNC_SCRIPT, 1, self.nick_set_key, self.node_id, self.prefix)  # frees all our nicks
        self._command("DEL", f"{self.prefix}:node:{self.node_id}")
        self._command("SREM", f"{self.prefix}:nodes", self.node_id)
        self._publish({"t": "bye"})

    # ---- liveness and resync ---------------------------------------------------------------

    def _heartbeat(self) -> None:
        ttl_ms = max(1, int(self.settings.node_timeout_s * 1000))
        self._command(
            "SET", f"{self.prefix}:node:{self.node_id}", self.instance, "PX", ttl_ms, "GET", callback=self._alive
        )
        self._command("SADD", f"{self.prefix}:nodes", self.node_id)

    def _alive(self, reply: Reply) -> None:
        if reply is LINK_DOWN or isinstance(reply, RespError):
            return
        if reply is None and self.alive_seen:
            log.warning("cluster: our liveness key had expired (were we stalled?); resynchronising")
            self._resync()
        elif isinstance(reply, bytes) and reply.decode() != self.instance and not self.warned_twin:
            self.warned_twin = True
            log.warning("cluster: another process also uses node id %s; give each node its own", self.node_id)
        self.alive_seen = True

    def _resync(self) -> None:
        """Re-claim our users' nicks (renaming the losers), then HELLO with our burst."""
        now = self.hub.wall_clock()
        keys = [client.key for client in self.hub.clients.values() if client.key is not None]
        claims = [part for key in keys for part in (key, repr(self.claimed_at.setdefault(key, now)))]

        def answered(reply: Reply) -> None:
            if not (isinstance(reply, list) and len(reply) == 2 and all(isinstance(x, list) for x in reply)):
                if reply is not LINK_DOWN:
                    log.warning("cluster: resync failed: %r", reply)
                return
            lost_list, taken = reply
            lost = {item.decode() for item in lost_list if isinstance(item, bytes)}  # type: ignore[union-attr]
            self.claimed = set(keys) - lost
            for client in list(self.hub.clients.values()):
                if client.key in lost and not client.gone:
                    self._rename_to_guest(client)
            self.hello_at = self.hub.clock()
            self._publish({"t": "hello", **self._burst()})
            for index in range(0, len(taken) - 1, 2):  # type: ignore[arg-type]
                key, owner = taken[index], taken[index + 1]  # type: ignore[index]
                if isinstance(key, bytes) and isinstance(owner, bytes):
                    self._publish({"t": "yield", "k": key.decode()}, to=owner.decode())

        self._command(
            "EVAL", RESYNC_SCRIPT, 1, self.nick_set_key, self.node_id, self.prefix, *claims, callback=answered
        )

    def _yield_nick(self, node_id: str, key: str) -> None:
        """Another node's user claimed this nick before ours did (both during an outage): ours is renamed."""
        log.info("cluster: node %s holds an older claim on the nick %s", node_id, key)
        holder = self.hub.clients_by_key.get(key)
        self.claimed.discard(key)
        self.claimed_at.pop(key, None)
        if holder is not None and holder.node is None and not holder.gone:
            self._rename_to_guest(holder)

    def _swept(self, reply: Reply) -> None:
        if isinstance(reply, list):
            for item in reply:
                if isinstance(item, bytes) and item.decode() in self.nodes:
                    self._drop_node(item.decode())

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
        node = self.nodes.pop(node_id, None)
        self.sync_requested.pop(node_id, None)
        if node is None:
            return
        for client in list(node.users.values()):
            self._quit_remote(node, client, f"{node_id} left the network")

    def _burst(self) -> dict[str, Any]:
        """Our users, their memberships, and the state of the channels they are in."""
        users = [_user_info(client) for client in self.hub.clients.values() if client.registered and client.uid]
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

    def _apply_burst(self, node_id: str, burst: dict[str, Any]) -> None:
        """Make our replica of ``node_id`` what it says it is; local users see the differences."""
        hub = self.hub
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = RemoteNode(node_id, hub.clock())
        node.last_heard = hub.clock()
        self.sync_requested.pop(node_id, None)
        incoming = {info["u"]: info for info in burst.get("users", [])}
        for uid, client in list(node.users.items()):
            if uid not in incoming:
                self._quit_remote(node, client, f"{node_id} left the network")
        for uid, info in incoming.items():
            client = node.users.get(uid)
            if client is None:
                self._introduce(node, info)
            else:
                self._update_user(client, info)
        wanted: dict[str, dict[str, str]] = {}
        for entry in burst.get("chans", []):
            wanted[irc_lower(entry["c"])] = {uid: prefix for uid, prefix in entry["m"]}
        for client in list(node.users.values()):
            for key, channel in list(client.channels.items()):
                if client.uid not in wanted.get(key, {}):
                    part(hub, client, channel, "")
        for entry in burst.get("chans", []):
            channel = None
            for uid, prefix in entry["m"]:
                client = node.users.get(uid)
                if client is None:
                    continue
                channel = client.channels.get(irc_lower(entry["c"]))
                if channel is None:
                    channel = hub.join(client, entry["c"])
                self._set_prefix(channel, client, prefix)
            if channel is not None:
                self._adopt_state(channel, channel_state(channel.name, entry))

    def _adopt_state(self, channel: Channel, state: ChannelState) -> None:
        """Take another node's view of a channel where ours has nothing better: when no local
        user is in it, all of it; else only a newer topic."""
        if any(member.node is None for member in channel.members):
            if state.topic_at > channel.topic_at:
                channel.set_topic(state.topic, state.topic_by, state.topic_at)
            return
        channel.restore(replace(state, created=min(channel.created, state.created)))

    @staticmethod
    def _set_prefix(channel: Channel, client: Client, prefix: str) -> None:
        (channel.operators.add if "@" in prefix else channel.operators.discard)(client)
        (channel.voiced.add if "+" in prefix else channel.voiced.discard)(client)

    # ---- the replica of other nodes' users ---------------------------------------------------

    def _introduce(self, node: RemoteNode, info: dict[str, Any]) -> Client:
        hub = self.hub
        hub._next_id += 1
        client = Client(hub._next_id, NOWHERE, info["host"], hub.clock(), info["signon"], hub.overflowed)
        client.mode = Mode.IRC
        client.node = node.id
        client.uid = info["u"]
        client.registered = True
        client.user = info["user"]
        client.realname = info["real"]
        client.away = info["away"]
        self._set_modes(client, info["modes"])
        client.nick = info["nick"]
        client.key = irc_lower(client.nick or "")
        client.update_prefix()
        node.users[client.uid] = client
        self.remote[client.uid] = client
        self._map_key(client)
        return client

    def _map_key(self, client: Client) -> None:
        """Make a remote user findable by nick, unless a local user holds that nick (a clash
        being settled: Redis has the last word, and the loser's node renames it)."""
        key = client.key
        assert key is not None
        self.remote_by_key[key] = client
        holder = self.hub.clients_by_key.get(key)
        if holder is None or holder.node is not None:
            self.hub.clients_by_key[key] = client

    def _unmap_key(self, client: Client) -> None:
        key = client.key
        if key is None:
            return
        if self.remote_by_key.get(key) is client:
            del self.remote_by_key[key]
        if self.hub.clients_by_key.get(key) is client:
            del self.hub.clients_by_key[key]

    def _quit_remote(self, node: RemoteNode, client: Client, reason: str) -> None:
        node.users.pop(client.uid, None)
        if self.remote.pop(client.uid, None) is not None and "i" in client.user_modes:
            self.remote_invisible -= 1
        self._unmap_key(client)
        self.hub._remove(client, reason)

    def _update_user(self, client: Client, info: dict[str, Any]) -> None:
        if info["nick"] != client.nick:
            self._rename_remote(client, info["nick"])
        self._on_umeta_of(client, info)

    def _rename_remote(self, client: Client, nick: str) -> None:
        old_prefix, old_nick = client.prefix, client.nick
        self._unmap_key(client)
        client.nick = nick
        client.key = irc_lower(nick)
        client.update_prefix()
        self._map_key(client)
        announce_nick(self.hub, client, old_prefix, old_nick)

    def _on_umeta_of(self, client: Client, info: dict[str, Any]) -> None:
        hub = self.hub
        if info["away"] != client.away:
            client.away = info["away"]
            params = (client.away,) if client.away is not None else ()
            line = format_message("AWAY", *params, source=client.prefix)
            hub.send_to_peers(client, line, None, include_self=False, only_cap="away-notify")
        if info["real"] != client.realname:
            client.realname = info["real"]
            line = format_message("SETNAME", client.realname, source=client.prefix)
            hub.send_to_peers(client, line, None, include_self=False, only_cap="setname")
        self._set_modes(client, info["modes"])

    def _set_modes(self, client: Client, modes: str) -> None:
        """A remote user's modes, keeping the invisible count (call only while it is in ``remote``
        or about to be)."""
        self.remote_invisible += ("i" in modes) - ("i" in client.user_modes)
        client.user_modes = set(modes)

    def _local_by_uid(self, uid: str) -> Client | None:
        head, _, tail = uid.rpartition(".")
        if head != self.instance:
            return None
        try:
            client = self.hub.clients.get(int(tail, 16))
        except ValueError:
            return None
        return client if client is not None and not client.gone and client.registered else None

    def _anyone(self, uid: str) -> Client | None:
        return self.remote.get(uid) or self._local_by_uid(uid)

    # ---- events from other nodes ------------------------------------------------------------

    def _on_heartbeat(self, node: RemoteNode, event: dict[str, Any]) -> None:
        """Nothing but a sign of life (``_dispatch`` noted it)."""

    def _on_user(self, node: RemoteNode, event: dict[str, Any]) -> None:
        client = node.users.get(event["u"])
        if client is None:
            self._introduce(node, event)
        else:
            self._update_user(client, event)

    def _on_nick(self, node: RemoteNode, event: dict[str, Any]) -> None:
        client = node.users.get(event["u"])
        if client is not None and event["nick"] != client.nick:
            self._rename_remote(client, event["nick"])

    def _on_quit(self, node: RemoteNode, event: dict[str, Any]) -> None:
        client = node.users.get(event["u"])
        if client is not None:
            self._quit_remote(node, client, event["r"])

    def _on_join(self, node: RemoteNode, event: dict[str, Any]) -> None:
        client = node.users.get(event["u"])
        if client is None or irc_lower(event["c"]) in client.channels:
            return
        channel = self.hub.join(client, event["c"])
        self._set_prefix(channel, client, event.get("p", ""))
        if "s" in event:
            self._adopt_state(channel, channel_state(channel.name, event["s"]))

    def _on_part(self, node: RemoteNode, event: dict[str, Any]) -> None:
        client = node.users.get(event["u"])
        channel = client.channels.get(irc_lower(event["c"])) if client is not None else None
        if client is not None and channel is not None:
            part(self.hub, client, channel, event["r"])

    def _on_kick(self, node: RemoteNode, event: dict[str, Any]) -> None:
        source = node.users.get(event["u"])
        target = self._anyone(event["k"])
        channel = self.hub.find_channel(event["c"])
        if source is None or target is None or channel is None or target not in channel.members:
            return
        kick(self.hub, source, channel, target, event["r"])

    def _on_topic(self, node: RemoteNode, event: dict[str, Any]) -> None:
        source = node.users.get(event["u"])
        channel = self.hub.find_channel(event["c"])
        if source is not None and channel is not None:
            set_topic(self.hub, source, channel, event["topic"], event["at"])

    def _on_mode(self, node: RemoteNode, event: dict[str, Any]) -> None:
        hub = self.hub
        channel = hub.find_channel(event["c"])
        if channel is None:
            return
        source_prefix = event["line"][1:].split(" ", 1)[0] if event["line"].startswith(":") else ""
        apply_relayed_modes(hub, channel, event["ch"], source_prefix, event["at"], event["line"], event["plain"])

    def _on_umeta(self, node: RemoteNode, event: dict[str, Any]) -> None:
        client = node.users.get(event["u"])
        if client is not None:
            self._on_umeta_of(client, event)

    def _event(self, event: dict[str, Any]) -> Event:
        return Event(
            event["line"], event["plain"], event["id"], event["at"], event.get("tags"), tags_only=bool(event.get("to"))
        )

    def _on_msg(self, node: RemoteNode, event: dict[str, Any]) -> None:
        channel = self.hub.find_channel(event["c"])
        if channel is None:
            return
        relayed = self._event(event)
        self.hub.fanout(channel.members, relayed, None, channel)
        if not relayed.tags_only:
            self.hub.record(channel, relayed)

    def _on_pm(self, node: RemoteNode, event: dict[str, Any]) -> None:
        target = self._local_by_uid(event["k"])
        if target is None:
            return
        relayed = self._event(event)
        self.hub.send_event(target, relayed)
        sender = node.users.get(event["u"])
        if sender is not None and not relayed.tags_only:
            self.hub.record_private(sender, target, relayed)

    def _on_invite(self, node: RemoteNode, event: dict[str, Any]) -> None:
        source = node.users.get(event["u"])
        target = self._local_by_uid(event["k"])
        channel = self.hub.find_channel(event["c"])
        if source is None or target is None or channel is None:
            return
        channel.invited.add(target.key or "")
        if target.mode is Mode.PLAIN:
            target.send(f"* {source.nick} invites you to {channel.name}\n".encode())
        else:
            self.hub.send_line(target, format_message("INVITE", target.nick or "", channel.name, source=source.prefix))

    def _on_wallops(self, node: RemoteNode, event: dict[str, Any]) -> None:
        deliver_wallops(self.hub, event["line"])

    def _on_kill(self, node: RemoteNode, event: dict[str, Any]) -> None:
        target = self._local_by_uid(event["k"])
        if target is None:
            return
        kill(self.hub, target, event["r"], event["src"])
