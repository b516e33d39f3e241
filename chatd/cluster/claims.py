"""Nick claims: which node holds each nick network-wide, kept in Redis by Lua scripts.

Invariants:
- Redis is the authority on nick ownership: ``{<prefix>}:nick:<casefolded nick>`` names
  the owning node, ``{<prefix>}:nicks:<node>`` is the set a node owns and
  ``{<prefix>}:nickat`` when each was taken. Every change of them is one Lua script, so a
  claim and its bookkeeping are one atomic step; the hash tag ``{<prefix>}`` puts them all
  in one slot of a Redis Cluster, where each script runs on the master its declared keys
  name (the keys a script builds from the prefix are in that slot too).
- A local claim waits for Redis (no 001, no NICK, until it says yes); the client's input
  is held meanwhile (``Client.held``). While Redis is unreachable a node claims against
  its replica alone, and the clash, if any, is settled at resync: the later claimant is
  renamed ``Guest<digits>``.
- ``pending`` holds a nick from the moment it is asked of Redis until the answer comes,
  so no second local user claims it meanwhile; ``wanted`` makes an answer to a client
  that has asked for another nick since stale.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from chatd.cluster.link import LINK_DOWN, Reply, ReplyError
from chatd.cluster.replica import Replica
from chatd.core.client import Client
from chatd.core.hub import Hub
from chatd.core.users import change_nick
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower

log = logging.getLogger("chatd")

GUEST_PREFIX = "Guest"

Command = Callable[..., bool]
"""``command(*args, callback=None) -> bool``: queue one Redis command (False: not sent)."""
Taken = list[tuple[str, str]]
"""(nick, node) pairs: nicks our resync took from another node, whose user it must rename."""

# Every script takes the key prefix (the hash tag ``{<prefix>}``) in ARGV. ``<prefix>:nickat`` maps each claimed nick to
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


class NickClaims:
    """This node's side of the nick table in Redis; runs on the hub's thread."""

    def __init__(self, hub: Hub, replica: Replica, command: Command, node_id: str, prefix: str) -> None:
        self.hub = hub
        self.replica = replica
        self.command = command
        self.node_id = node_id
        self.prefix = prefix
        self.nick_set_key = f"{prefix}:nicks:{node_id}"
        self.claimed: set[str] = set()
        """Casefolded nicks Redis has confirmed as ours."""
        self.claimed_at: dict[str, float] = {}
        """When a local user took each nick (wall clock): the older claim wins a clash after an outage."""
        self.pending: dict[str, Client] = {}
        """Nicks asked of Redis and not answered yet, with who asked (no second local claim meanwhile)."""
        self.wanted: dict[Client, str] = {}
        """The nick each waiting client asked for last (an earlier answer is then stale)."""

    # ---- a local user asks, takes or leaves a nick -------------------------------------

    def request(self, client: Client, nick: str) -> bool:
        """``Network.request_nick``: True when Redis answers later (and the client is held)."""
        key = irc_lower(nick)
        holder = self.pending.get(key)
        if holder is not None and holder is not client and not holder.gone:
            self.hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            return True
        if key == client.nick_key and key in self.claimed:
            return False  # a change of case only: the nick is ours already
        self.pending[key] = client
        self.wanted[client] = key
        sent = self.command(
            *self._claim_args(key, self.hub.wall_clock()),
            callback=lambda reply: self._answered(client, nick, key, reply),
        )
        if not sent:  # Redis is out of reach: claim against what we know, settle at resync
            del self.pending[key]
            del self.wanted[client]
        client.held = sent
        return sent

    def _answered(self, client: Client, nick: str, key: str, reply: Reply) -> None:
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
            if granted and (client.gone or client.nick_key != key):
                self.release(key)
            return
        if isinstance(reply, bytes):
            self.hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            return
        if isinstance(reply, ReplyError):
            log.warning("cluster: nick claim failed: %s", reply)
        # Granted, or Redis could not answer (then: claimed locally, settled at resync).
        holder = self.hub.find_client(nick)
        if holder is not None and holder is not client and holder.node is None:
            self.hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            if granted:
                self.release(key)
            return
        old_key, was_registered = client.nick_key, client.registered
        change_nick(self.hub, client, nick)
        if not was_registered and old_key is not None and old_key != client.nick_key:
            self.release(old_key)

    def taken(self, client: Client, old_key: str | None = None) -> None:
        """A local user holds its nick now (registered, or renamed): let go of ``old_key``,
        and claim the new nick unless Redis already granted it."""
        if old_key is not None and old_key != client.nick_key:
            self.release(old_key)
        if client.nick_key is not None and client.nick_key not in self.claimed:
            self.claimed_at.setdefault(client.nick_key, self.hub.wall_clock())
            self._claim_after(client)

    def gone(self, client: Client) -> None:
        self.wanted.pop(client, None)
        if client.nick_key is not None and client.nick_key in self.claimed:
            self.release(client.nick_key)

    def release(self, key: str) -> None:
        """Give a nick back: in Redis, and locally to a user of another node that holds it."""
        self.claimed.discard(key)
        self.claimed_at.pop(key, None)
        if key not in self.pending:  # else a local user's claim of it is on its way: keep it
            self.command(
                "EVAL", RELEASE_SCRIPT, 2, self._nick_key(key), self.nick_set_key, self.node_id, key, self.prefix
            )
        self.replica.give_back(key)

    def _claim_after(self, client: Client) -> None:
        """Claim the nick a local user already uses (plain clients, Redis outages); rename it on a clash."""
        key = client.nick_key
        assert key is not None

        def answered(reply: Reply) -> None:
            if reply == 1:
                self.claimed.add(key)
            elif isinstance(reply, bytes) and client.nick_key == key and not client.gone:
                self.rename_to_guest(client)

        self.command(*self._claim_args(key, self.claimed_at.get(key, self.hub.wall_clock())), callback=answered)

    def _nick_key(self, key: str) -> str:
        return f"{self.prefix}:nick:{key}"

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

    def rename_to_guest(self, client: Client) -> None:
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

    # ---- the whole table, at (re)connection and on leaving --------------------------------

    def resync(self, done: Callable[[Taken], None]) -> None:
        """Re-claim every local user's nick, renaming those whose claim is the later one; then
        ``done(taken)`` with the nicks taken from other nodes (not called if Redis fails)."""
        now = self.hub.wall_clock()
        keys = [client.nick_key for client in self.hub.clients.values() if client.nick_key is not None]
        claims = [part for key in keys for part in (key, repr(self.claimed_at.setdefault(key, now)))]

        def answered(reply: Reply) -> None:
            if not (isinstance(reply, list) and len(reply) == 2 and all(isinstance(x, list) for x in reply)):
                if reply is not LINK_DOWN:
                    log.warning("cluster: resync failed: %r", reply)
                return
            lost_list, taken_list = reply
            lost = {item.decode() for item in lost_list if isinstance(item, bytes)}  # type: ignore[union-attr]
            self.claimed = set(keys) - lost
            for client in list(self.hub.clients.values()):
                if client.nick_key in lost and not client.gone:
                    self.rename_to_guest(client)
            taken: Taken = []
            for index in range(0, len(taken_list) - 1, 2):  # type: ignore[arg-type]
                key, owner = taken_list[index], taken_list[index + 1]  # type: ignore[index]
                if isinstance(key, bytes) and isinstance(owner, bytes):
                    taken.append((key.decode(), owner.decode()))
            done(taken)

        self.command("EVAL", RESYNC_SCRIPT, 1, self.nick_set_key, self.node_id, self.prefix, *claims, callback=answered)

    def yield_nick(self, node_id: str, key: str) -> None:
        """Another node's user claimed this nick before ours did (both during an outage): ours is renamed."""
        log.info("cluster: node %s holds an older claim on the nick %s", node_id, key)
        holder = self.hub.clients_by_key.get(key)
        self.claimed.discard(key)
        self.claimed_at.pop(key, None)
        if holder is not None and holder.node is None and not holder.gone:
            self.rename_to_guest(holder)

    def release_all(self) -> None:
        """Free every nick of this node (a clean stop): a resync that claims nothing."""
        self.command("EVAL", RESYNC_SCRIPT, 1, self.nick_set_key, self.node_id, self.prefix)
