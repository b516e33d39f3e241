"""The replica of other nodes' users: ordinary ``Client`` objects that live elsewhere.

Invariants:
- A user of another node is in ``remote`` (by network-wide id), in its ``RemoteNode``'s
  ``users``, in ``remote_by_key`` (by casefolded nick) and, unless a local user holds
  that nick while a clash is being settled, in ``hub.clients_by_key``; never in
  ``hub.clients``. Its ``node`` is set and its transport writes nowhere.
- Only this module creates, renames and removes such users, and only as their home node
  says (its events and bursts): the home node is the authority on its users.
- Users appearing, renamed and leaving reach MONITOR watchers through ``chatd.core.presence``
  (``introduce`` here; ``announce_nick`` and ``depart`` in ``chatd.core.users``).
- ``remote_invisible`` is how many of ``remote`` are +i, kept as they change, so LUSERS
  never scans them.
- A remote user's ``account`` is what its home node says (its ``acct`` field): set as it
  is introduced, before any of its JOINs is shown (extended-join reads it), and changed
  afterwards only through ``chatd.core.accounts.log_in``/``log_out``, which tell local
  peers with account-notify (and nothing to the user itself: its node did).
- ``hub.accounts.names`` follows other nodes' registrations and drops (their ``areg`` and
  ``adrop`` events), and is re-read from the shared store on every (re)connection, in
  case some went by while the link was down; events that arrive while that read is out
  are applied again after it, so the read never undoes a newer event. ChanServ's channel
  registrations likewise (``creg`` events, re-read on every (re)connection).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chatd.cluster.wire import channel_state
from chatd.core.accounts import log_in, log_out
from chatd.core.channel import REGISTERED_MODE, Channel, ChannelState, part
from chatd.core.client import Client, Dialect
from chatd.core.config import PermanentChannel
from chatd.core.hub import Hub
from chatd.core.network import forget_account
from chatd.core.permanent import CHANSERV_OWNER
from chatd.core.ports import AccountRecord, ChannelRegistration
from chatd.core.presence import tell_watchers, went_online
from chatd.core.services import find_service
from chatd.core.services.chanserv import _set_registration
from chatd.core.users import announce_nick, depart
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import format_message

log = logging.getLogger("chatd")


class _Nowhere:
    """The transport of a user of another node: its own node delivers to it."""

    __slots__ = ()

    def write(self, data: bytes) -> bool:
        return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        return None


NOWHERE = _Nowhere()

_channel_key = functools.lru_cache(maxsize=4096)(irc_lower)
"""``irc_lower`` remembered for the names events spell: a busy channel's every message would
casefold the same name again."""


class RemoteNode:
    """What this node knows of another: its users and when it was last heard from."""

    __slots__ = ("id", "last_heard", "users")

    def __init__(self, node_id: str, now: float) -> None:
        self.id = node_id
        self.users: dict[str, Client] = {}
        self.last_heard = now


class Replica:
    """Every other node's users, kept as their nodes tell; runs on the hub's thread."""

    def __init__(self, hub: Hub, instance: str) -> None:
        self.hub = hub
        self.instance = instance
        """This run's id, embedded in the network-wide ids of our own users."""
        self.nodes: dict[str, RemoteNode] = {}
        """Every other node we hold a replica of (from its HELLO or BURST), by id."""
        self.remote: dict[str, Client] = {}
        """Every user of another node, by network-wide id (``<instance>.<local id>``)."""
        self.remote_by_key: dict[str, Client] = {}
        """Users of other nodes by casefolded nick, even where a local user shadows one in
        ``hub.clients_by_key`` while a clash is being settled."""
        self.remote_invisible = 0
        """How many users in ``remote`` are +i, kept as they change (LUSERS must not scan them)."""
        self._awaiting_quit: dict[str, list[Callable[[], None]]] = {}
        """What runs once a user of another node is gone, by its id (GHOST/REGAIN waiting to
        take its nick)."""
        self._registrations_touched: set[str] | None = None
        """While the store's channel registrations are being read: the channels whose
        registration changed meanwhile (by event or here), which the read must not undo."""
        self._names_journal: list[tuple[str, bool]] | None = None
        """While the store's account names are being read: the registrations (True) and drops
        (False) other nodes announced meanwhile, to apply again on top of what the read found."""

    # ---- looking users up ------------------------------------------------------------

    def find_channel(self, name: str) -> Channel | None:
        """``hub.find_channel``, with the casefolding of names remembered."""
        return self.hub.channels.get(_channel_key(name))

    def local_by_uid(self, uid: str) -> Client | None:
        """The registered local user with this network-wide id, if it is still here."""
        head, _, tail = uid.rpartition(".")
        if head != self.instance:
            return None
        try:
            client = self.hub.clients.get(int(tail, 16))
        except ValueError:
            return None
        return client if client is not None and not client.gone and client.registered else None

    def anyone(self, uid: str) -> Client | None:
        return self.remote.get(uid) or self.local_by_uid(uid)

    def give_back(self, key: str) -> None:
        """A local user let go of a nick: a user of another node that holds it becomes findable."""
        other = self.remote_by_key.get(key)
        if other is not None and key not in self.hub.clients_by_key:
            self.hub.clients_by_key[key] = other

    # ---- users -----------------------------------------------------------------------

    def introduce(self, node: RemoteNode, info: dict[str, Any]) -> Client:
        hub = self.hub
        client = Client(hub.next_client_id(), NOWHERE, info["host"], hub.clock(), info["signon"], hub.overflowed)
        client.dialect = Dialect.IRC
        client.node = node.id
        client.uid = info["u"]
        client.registered = True
        client.user = info["user"]
        client.realname = info["real"]
        client.away = info["away"]
        self._set_modes(client, info["modes"])
        account = info.get("acct")
        if account is not None:
            # Logged in before it registered (SASL): nobody here has seen it yet to be told.
            client.account = account
            hub.accounts.names[irc_lower(account)] = account
        client.nick = info["nick"]
        client.nick_key = irc_lower(client.nick or "")
        client.update_prefix()
        node.users[client.uid] = client
        self.remote[client.uid] = client
        self._map_key(client)
        went_online(hub, client)
        return client

    def introduce_or_update(self, node: RemoteNode, info: dict[str, Any]) -> None:
        client = node.users.get(info["u"])
        if client is None:
            self.introduce(node, info)
        else:
            self.update_user(client, info)

    def update_user(self, client: Client, info: dict[str, Any]) -> None:
        if info["nick"] != client.nick:
            self.rename(client, info["nick"])
        self.update_meta(client, info)

    def rename(self, client: Client, nick: str) -> None:
        old_prefix, old_nick = client.prefix, client.nick
        self._unmap_key(client)
        client.nick = nick
        client.nick_key = irc_lower(nick)
        client.update_prefix()
        self._map_key(client)
        announce_nick(self.hub, client, old_prefix, old_nick)

    def update_meta(self, client: Client, info: dict[str, Any]) -> None:
        """Away status, realname, user modes and account, as its node says; peers with the caps
        see changes."""
        hub = self.hub
        if info["away"] != client.away:
            client.away = info["away"]
            params = (client.away,) if client.away is not None else ()
            line = format_message("AWAY", *params, source=client.prefix)
            event = hub.send_to_peers(client, line, None, include_self=False, only_cap="away-notify")
            tell_watchers(hub, client, event, "away-notify")
        if info["real"] != client.realname:
            client.realname = info["real"]
            line = format_message("SETNAME", client.realname, source=client.prefix)
            event = hub.send_to_peers(client, line, None, include_self=False, only_cap="setname")
            tell_watchers(hub, client, event, "setname")
        self._set_modes(client, info["modes"])
        if "acct" in info:  # a node of a version before accounts sends none: keep ours
            self.update_account(client, info["acct"])

    def update_account(self, client: Client, account: str | None) -> None:
        """Its home node logged ``client`` in to ``account`` (None: out); local peers see ACCOUNT."""
        if account == client.account:
            return
        if account is None:
            log_out(self.hub, client)
        else:
            # The home node checked the credentials; log_in reads only the name of the record.
            log_in(self.hub, client, AccountRecord(account, "", b"", b"", b"", 0))

    def quit(self, node: RemoteNode, client: Client, reason: str) -> None:
        node.users.pop(client.uid, None)
        if self.remote.pop(client.uid, None) is not None and "i" in client.user_modes:
            self.remote_invisible -= 1
        self._unmap_key(client)
        depart(self.hub, client, reason)
        for then in self._awaiting_quit.pop(client.uid, ()):
            then()

    def when_gone(self, client: Client, then: Callable[[], None]) -> None:
        """Run ``then`` once ``client`` (a user of another node) has quit, however it goes: its
        QUIT, a burst without it, or its node leaving; at once if it is gone already."""
        if client.uid not in self.remote:
            then()
            return
        self._awaiting_quit.setdefault(client.uid, []).append(then)

    def drop(self, node_id: str) -> None:
        """Forget a node: its users QUIT with ``<node> left the network``."""
        node = self.nodes.pop(node_id, None)
        if node is None:
            return
        for client in list(node.users.values()):
            self.quit(node, client, f"{node_id} left the network")

    def _set_modes(self, client: Client, modes: str) -> None:
        """A remote user's modes, keeping the invisible count (call only while it is in ``remote``
        or about to be)."""
        self.remote_invisible += ("i" in modes) - ("i" in client.user_modes)
        client.user_modes = set(modes)

    def _map_key(self, client: Client) -> None:
        """Make a remote user findable by nick, unless a local user holds that nick (a clash
        being settled: Redis has the last word, and the loser's node renames it)."""
        key = client.nick_key
        assert key is not None
        self.remote_by_key[key] = client
        holder = self.hub.clients_by_key.get(key)
        if holder is None or holder.node is not None:
            self.hub.clients_by_key[key] = client

    def _unmap_key(self, client: Client) -> None:
        key = client.nick_key
        if key is None:
            return
        if self.remote_by_key.get(key) is client:
            del self.remote_by_key[key]
        if self.hub.clients_by_key.get(key) is client:
            del self.hub.clients_by_key[key]

    # ---- accounts ------------------------------------------------------------------------

    def account_registered(self, name: str) -> None:
        """Another node registered ``name``: its nick is protected here too."""
        self.hub.accounts.names[irc_lower(name)] = name
        self.note_account(name, exists=True)

    def account_dropped(self, name: str) -> None:
        """Another node dropped ``name``: its nick is free, and our users of it are logged out."""
        forget_account(self.hub, name)
        self.note_account(name, exists=False)

    def note_account(self, name: str, *, exists: bool) -> None:
        """A registration or drop, here or elsewhere: kept while the store's names are read."""
        if self._names_journal is not None:
            self._names_journal.append((name, exists))

    def reload_account_names(self) -> None:
        """Re-read every account's name from the store (off the loop), for what other nodes
        registered or dropped while we did not hear them."""
        hub = self.hub
        store = hub.accounts.store
        if store is None or self._names_journal is not None:
            return
        self._names_journal = []

        def read() -> list[str] | None:
            try:
                return store.account_names()
            except Exception:  # the names we hold stay; the next (re)connection tries again
                log.warning("cluster: cannot re-read the account names", exc_info=True)
                return None

        def adopt(stored: list[str] | None) -> None:
            journal, self._names_journal = self._names_journal or [], None
            if stored is None:
                return
            names = {irc_lower(name): name for name in stored}
            for name, exists in journal:
                if exists:
                    names[irc_lower(name)] = name
                else:
                    names.pop(irc_lower(name), None)
            hub.accounts.names.clear()
            hub.accounts.names.update(names)

        hub.offload(read, adopt)

    # ---- channel registrations ---------------------------------------------------------------

    def apply_registration(self, name: str, registration: ChannelRegistration | None) -> None:
        """Make ``name`` registered as ``registration`` says (None: not registered), as ChanServ
        does it: ``+r``/``-r`` from ChanServ to local members, permanent while registered; so
        the founder and AMODE access get the same privileges whichever node they join on."""
        hub = self.hub
        service = find_service("ChanServ")
        channel = hub.find_channel(name)
        if service is None or (registration is None and (channel is None or channel.registration is None)):
            return
        if registration is not None:
            channel = hub.keep_channel(PermanentChannel(name), CHANSERV_OWNER)
        assert channel is not None
        _set_registration(hub, service, channel, registration)
        if registration is None:
            hub.release_channel(channel.name, CHANSERV_OWNER)

    def note_registration(self, name: str) -> None:
        """A channel's registration changed, here or elsewhere: kept while the store is read."""
        if self._registrations_touched is not None:
            self._registrations_touched.add(irc_lower(name))

    def reload_registrations(self) -> None:
        """Re-read every channel registration from the store (off the loop), for what other
        nodes registered, changed or dropped while we did not hear them."""
        hub = self.hub
        store = hub.accounts.store
        if store is None or self._registrations_touched is not None:
            return
        self._registrations_touched = set()

        def read() -> list[ChannelRegistration] | None:
            try:
                return store.channel_registrations()
            except Exception:  # what we hold stays; the next (re)connection tries again
                log.warning("cluster: cannot re-read the channel registrations", exc_info=True)
                return None

        def adopt(stored: list[ChannelRegistration] | None) -> None:
            touched, self._registrations_touched = self._registrations_touched or set(), None
            if stored is None:
                return
            wanted = {irc_lower(registration.name): registration for registration in stored}
            for key, registration in wanted.items():
                channel = hub.channels.get(key)
                if key not in touched and (channel is None or channel.registration != registration):
                    self.apply_registration(registration.name, registration)
            for key, channel in list(hub.channels.items()):
                if channel.registration is not None and key not in wanted and key not in touched:
                    self.apply_registration(channel.name, None)

        hub.offload(read, adopt)

    # ---- channels ----------------------------------------------------------------------

    def apply_burst(self, node_id: str, burst: dict[str, Any]) -> None:
        """Make our replica of ``node_id`` what it says it is; local users see the differences
        (users and memberships that appeared JOIN, those that vanished PART or QUIT)."""
        hub = self.hub
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = RemoteNode(node_id, hub.clock())
        node.last_heard = hub.clock()
        incoming = {info["u"]: info for info in burst.get("users", [])}
        for uid, client in list(node.users.items()):
            if uid not in incoming:
                self.quit(node, client, f"{node_id} left the network")
        for info in incoming.values():
            self.introduce_or_update(node, info)
        wanted: dict[str, dict[str, str]] = {}
        for entry in burst.get("chans", []):
            wanted[irc_lower(entry["c"])] = {uid: prefix for uid, prefix in entry["m"]}
        for user in list(node.users.values()):
            for key, joined in list(user.channels.items()):
                if user.uid not in wanted.get(key, {}):
                    part(hub, user, joined, "")
        for entry in burst.get("chans", []):
            channel: Channel | None = None
            for uid, prefix in entry["m"]:
                member = node.users.get(uid)
                if member is None:
                    continue
                channel = member.channels.get(irc_lower(entry["c"])) or hub.join(member, entry["c"])
                channel.set_prefix(member, prefix)
            if channel is not None:
                adopt_state(channel, channel_state(channel.name, entry))


def adopt_state(channel: Channel, state: ChannelState) -> None:
    """Take another node's view of a channel where ours has nothing better: when no local
    user is in it, all of it; else only a newer topic. Never ``+r``: whether a channel is
    registered is this node's registration (ChanServ's, kept by ``creg`` events), not a mode."""
    if any(member.node is None for member in channel.members):
        if state.topic_at > channel.topic_at:
            channel.set_topic(state.topic, state.topic_by, state.topic_at)
        return
    registered = REGISTERED_MODE in channel.modes
    modes = state.modes.replace(REGISTERED_MODE, "") + (REGISTERED_MODE if registered else "")
    channel.restore(replace(state, created=min(channel.created, state.created), modes=modes))
