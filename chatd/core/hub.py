"""The hub: the tables of clients and channels of one server, the calls a backend makes into
it, sending, and the state changes several commands share (join, leave, quit).

Invariants:
- ``clients_by_key`` holds every client that has claimed a nick, keyed by its
  case-mapped nick; ``channels`` holds every channel with at least one member, and
  every permanent channel (``chatd.core.permanent``), empty or not.
- In a cluster (``cluster`` set), users of other nodes (``Client.node`` set) are in
  ``clients_by_key`` and in channels like local ones, never in ``clients`` (which
  holds this server's connections); they are created, changed and removed only by
  the cluster code, and the core calls ``cluster`` only about local clients.
- A client whose send queue overflowed is only marked during a fan-out and is
  disconnected after the command that overflowed it finishes (``_reap``), never in
  the middle of iterating a channel.
- Every line sent to a client leaves through ``Client.send`` in the order the hub
  produced it, so replies keep the order of the commands that caused them.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Sequence

from chatd.core.accounts import Accounts
from chatd.core.attribution import announce_join
from chatd.core.channel import Channel
from chatd.core.client import Client, Dialect, Transport
from chatd.core.commands.channels import send_names, send_topic
from chatd.core.config import PermanentChannel, ServerConfig
from chatd.core.conversations import record_private
from chatd.core.event import Delivery
from chatd.core.fanout import Audience, GroupFactory
from chatd.core.lines import handle_line
from chatd.core.liveness import Liveness
from chatd.core.network import Network
from chatd.core.permanent import (
    PermanentChannels,
    found_permanent_channels,
    keep_channel,
    new_channel,
    release_channel,
)
from chatd.core.ports import AccountStore, HistoryPort, Offload, run_here
from chatd.core.presence import Watchlist
from chatd.core.replay import replay_history
from chatd.core.session import receive_lines, resume_lines
from chatd.core.stats import Stats, transport_kind
from chatd.core.users import WhowasEntry, depart, remember_nick
from chatd.core.welcome import isupport_tokens
from chatd.protocol.casemap import irc_lower
from chatd.protocol.framing import WIRE
from chatd.protocol.message import format_message

log = logging.getLogger("chatd")


class Hub:
    """Chat state and protocol logic, driven by a backend; never blocks, never does I/O."""

    def __init__(
        self,
        config: ServerConfig,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        history: HistoryPort | None = None,
        accounts: AccountStore | None = None,
    ) -> None:
        self.config = config
        self.history = history
        self.accounts = Accounts(accounts)
        """Who may log in to what (chatd.core.accounts); no store: accounts are off."""
        self.offload: Offload = run_here
        """Run slow work (hashing, the account store) off the loop; the backend replaces it."""
        self.clock = clock
        self.wall_clock = wall_clock
        self.clients: dict[int, Client] = {}
        self.clients_by_key: dict[str, Client] = {}
        self.clients_per_host: dict[str, int] = {}
        self.channels: dict[str, Channel] = {}
        self.max_seen_users = 0
        self.user_count = 0
        self.user_mode_counts: Counter[str] = Counter()
        self._next_id = 0
        self.liveness = Liveness(self)
        self._run_line = functools.partial(handle_line, self)
        self._doomed: list[Client] = []
        self.overflowed = self._doomed.append
        """Record a client whose send queue overflowed; it is cut after the current command."""
        self.fanout_groups: GroupFactory | None = None
        """Set by a backend that delivers a channel's plain-form lines as a group (``chatd.core.fanout``)."""
        self.whowas: deque[WhowasEntry] = deque(maxlen=config.whowas_size)
        self.watchlist = Watchlist()
        """Who MONITORs which nick (chatd.core.presence)."""
        self._msgid_counter = 0
        self._batch_counter = 0
        # Unique across the nodes of a network too, started in the same second or not.
        self._msgid_prefix = f"{int(wall_clock()):x}{secrets.token_hex(3)}-"
        self.isupport = isupport_tokens(config)
        self.cluster: Network | None = None
        """The other nodes of the chat network, or None when this server is on its own."""
        self.labeled_client: Client | None = None
        """The client whose labeled command is running, if any (chatd.core.replies)."""
        self.permanent = PermanentChannels()
        """The channels that outlive their members; the config's are founded now."""
        self.stats = Stats()
        """Counters read by /metrics (chatd.core.stats); bumped here, in the backends and stores."""
        found_permanent_channels(self)

    # ---- the backend's calls -------------------------------------------------

    def connect(self, transport: Transport, host: str) -> Client:
        """Register a new connection; a full server answers it with ERROR and closes it."""
        now = self.clock()
        client = Client(self.next_client_id(), transport, host, now, self.wall_clock(), self._doomed.append)
        config = self.config
        refusal = None
        if len(self.clients) >= config.max_clients:
            refusal = "Server is full"
        elif (
            config.max_per_ip
            and host not in config.per_ip_exempt
            and self.clients_per_host.get(host, 0) >= config.max_per_ip
        ):
            refusal = "Too many connections from your address"
        if refusal is not None:
            client.gone = True
            transport.close(format_message("ERROR", f"Closing Link: {host} ({refusal})").encode(errors=WIRE) + b"\r\n")
            return client
        self.clients[client.id] = client
        self.clients_per_host[host] = self.clients_per_host.get(host, 0) + 1
        self.stats.connected(transport_kind(transport))
        client.flood_tokens = float(config.flood_burst)
        self.liveness.schedule(now + min(config.ping_interval_s, config.register_timeout_s), client)
        return client

    def receive(self, client: Client, lines: Sequence[bytes | object]) -> float | None:
        """Handle complete lines from a client, in order; lines may include ``OVERLONG``.

        Returns None, or the monotonic time until which the client is throttled by
        flood control: the backend must stop reading it and call ``resume`` then.
        (Backends get here through ``chatd.core.session.Session``, which does that.)
        """
        return receive_lines(self, client, lines, self._run_line)

    def resume(self, client: Client) -> float | None:
        """Handle backlogged lines the client's token bucket allows; same result as ``receive``."""
        return resume_lines(self, client, self._run_line)

    def disconnect(self, client: Client, reason: str) -> None:
        """The connection ended from below (EOF, reset): tell peers, forget the client."""
        if client.gone:
            return
        depart(self, client, reason)
        self._reap()

    def run_timers(self) -> float | None:
        """Ping idle clients, drop silent ones; return the next deadline, or None."""
        self.liveness.run(self.clock())
        self._reap()
        return self.liveness.next_deadline()

    def next_deadline(self) -> float | None:
        """When ``run_timers`` next has work, on the hub's clock; None when no client exists."""
        return self.liveness.next_deadline()

    def shutdown(self, message: str = "Server shutting down") -> None:
        """Say goodbye to every client and close each connection after its queue drains."""
        farewell = format_message("ERROR", message).encode(errors=WIRE) + b"\r\n"
        for client in list(self.clients.values()):
            client.gone = True
            client.transport.close(farewell)
        if self.history is not None:
            self.history.close()
        self.clients.clear()
        self.stats.cleared()
        self.user_count = 0
        self.user_mode_counts.clear()
        self.clients_per_host.clear()
        self.clients_by_key.clear()
        self.channels.clear()
        self.liveness.clear()

    # ---- sending ---------------------------------------------------------------

    def send_line(self, client: Client, line: str) -> None:
        client.send(line.encode(errors=WIRE) + b"\r\n")

    def reply(self, client: Client, numeric: str, *params: str) -> None:
        """Send a numeric from the server, addressed to the client's nick (``*`` before one)."""
        self.send_line(client, format_message(numeric, client.display_nick, *params, source=self.config.name))

    def notice(self, client: Client, text: str) -> None:
        self.send_line(client, format_message("NOTICE", client.display_nick, text, source=self.config.name))

    def event(
        self,
        line: str,
        plain_line: str | None,
        client_tags: dict[str, str] | None = None,
        *,
        tags_only: bool = False,
        account: str | None = None,
    ) -> Delivery:
        """A message to relay, with a fresh msgid and the time it happened (``account``: its
        logged-in sender's, for the account tag).

        The msgid ends in the time in milliseconds (``msgid_time``), so history can find a
        message by its id through the (channel, time) index, without an index of its own.
        """
        self._msgid_counter += 1
        when = self.wall_clock()
        msgid = f"{self._msgid_prefix}{self._msgid_counter:x}-{int(when * 1000):x}"
        return Delivery(line, plain_line, msgid, when, client_tags, tags_only=tags_only, account=account)

    def send_to_channel(
        self,
        channel: Channel,
        line: str,
        plain_line: str | None,
        skip: Client | None = None,
        client_tags: dict[str, str] | None = None,
        *,
        tags_only: bool = False,
        account: str | None = None,
    ) -> Delivery:
        """Fan one message out to a channel's members, encoding it once per codec.

        IRC members get ``line`` (tagged as each negotiated); plain members get
        ``plain_line``, or nothing when it is None. Returns the event, so the
        sender can be echoed the very same message.
        """
        event = self.event(line, plain_line, client_tags, tags_only=tags_only, account=account)
        self.deliver(channel, event, skip)
        return event

    def deliver(self, channel: Channel, event: Delivery, skip: Client | None) -> None:
        """``send_to_channel`` for an event already made; a labeled client's copy joins its response."""
        labeled = self.labeled_client
        if labeled is None or labeled is skip or labeled not in channel.members:
            self.fanout(channel.members, event, skip, channel)
        else:  # its copy is part of its labeled response: through Client.send (chatd.core.replies)
            if skip is None:
                self.fanout(channel.members, event, labeled, channel)
            else:
                self.generic_fanout([member for member in channel.members if member is not labeled], event, skip)
            self.send_event(labeled, event)

    def fanout(
        self, members: Collection[Client], event: Delivery, skip: Client | None, channel: Channel | None = None
    ) -> None:
        """Deliver ``event`` to every member but ``skip``: the server's hot path.

        For a channel, when the backend registered ``fanout_groups``, the members that
        take the plain IRC form over the backend's own connections get the bytes as one
        group call (``chatd.core.fanout.Audience``, cached on the channel until it
        changes); everyone else goes through ``generic_fanout``.
        """
        self.stats.deliveries += len(members) - (skip is not None)  # per fan-out, never per member
        make_group = self.fanout_groups
        if channel is None or make_group is None:
            self.generic_fanout(members, event, skip)
            return
        audience = Audience.of(channel, make_group)
        group = audience.group
        data = event.cache[0]
        if data is not None and group is not None:
            group.send(data, None if skip is None else skip.transport)
        if audience.others:
            self.generic_fanout(audience.others, event, skip)

    def generic_fanout(
        self, members: Iterable[Client], event: Delivery, skip: Client | None, channel: Channel | None = None
    ) -> None:
        """Deliver ``event`` to every member but ``skip``, through each one's transport.

        One list index and one transport call per member. Members of a channel are
        never gone (leaving removes them), so Client.send's check is skipped; an
        overflow is only recorded, and reaped after the command.
        """
        cache = event.cache
        overflowed = self.overflowed
        for member in members:
            if member is skip:
                continue
            data = cache[member.codec] or event.data(member.codec)
            if data and not member._write(data):
                overflowed(member)

    def send_to_peers(
        self,
        client: Client,
        line: str,
        plain_line: str | None,
        include_self: bool,
        *,
        only_cap: str | None = None,
    ) -> Delivery:
        """Send one message once to everyone who shares a channel with ``client``; return it.

        With ``only_cap``, only peers that negotiated that capability hear of it.
        """
        event = self.event(line, plain_line, account=client.account)
        seen: set[Client] = {client}
        if include_self and (only_cap is None or only_cap in client.caps):
            self.send_event(client, event)
        for channel in client.channels.values():
            for member in channel.members:
                if member in seen:
                    continue
                seen.add(member)
                if only_cap is None or only_cap in member.caps:
                    self.send_event(member, event)
        return event

    def send_event(self, client: Client, event: Delivery) -> None:
        data = event.data(client.codec)
        if data:
            client.send(data)

    def send_event_unlabeled(self, client: Client, event: Delivery) -> None:
        """Like ``send_event``, but never part of a labeled response: straight to the connection."""
        data = event.data(client.codec)
        if data and not client.gone and not client._write(data):
            self.overflowed(client)

    def codec_changed(self, client: Client) -> None:
        """A client's codec or transport changed: its channels' audiences (and the backend groups
        in them) are dropped, to be rebuilt on the next message."""
        for channel in client.channels.values():
            channel.fanout_cache = None

    def reap_overflowed(self) -> bool:
        """Cut clients a backend found past their send queue outside a command; True if any were."""
        if not self._doomed:
            return False
        self._reap()
        return True

    # ---- lookups -------------------------------------------------------------

    def next_client_id(self) -> int:
        """A fresh id for a Client (a connection here, or a replica of another node's user)."""
        self._next_id += 1
        return self._next_id

    def find_client(self, nick: str) -> Client | None:
        return self.clients_by_key.get(irc_lower(nick))

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(irc_lower(name))

    # ---- state changes shared by several commands ------------------------------

    def claim_nick(self, client: Client, nick: str) -> None:
        """Move ``client`` to ``nick`` in the nick table (the caller checked it is free)."""
        if client.nick_key is not None:
            if self.clients_by_key.get(client.nick_key) is client:
                del self.clients_by_key[client.nick_key]
            if client.registered:
                remember_nick(self, client)
        client.nick = nick
        client.nick_key = irc_lower(nick)
        self.clients_by_key[client.nick_key] = client
        client.update_prefix()

    def join(self, client: Client, name: str) -> Channel:
        """Add ``client`` to a channel (creating it), announce it and send topic and names."""
        key = irc_lower(name)
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = new_channel(self, name, key)
        channel.add(client)
        client.channels[key] = channel
        joined = announce_join(self, client, channel)
        if client.node is not None:  # a user of another node joining: its own node shows it the channel
            self.record(channel, joined, "event")
            return channel
        if client.dialect is Dialect.IRC:
            if channel.topic:
                send_topic(self, client, channel)
            send_names(self, client, channel)
        replay_history(self, client, channel)
        self.record(channel, joined, "event")  # after the replay: a joiner is not shown its own join
        if self.cluster is not None:
            self.cluster.joined(client, channel)
        return channel

    def keep_channel(self, declared: PermanentChannel, owner: str) -> Channel:
        """Make a channel permanent for ``owner`` (see chatd.core.permanent.keep_channel)."""
        return keep_channel(self, declared, owner)

    def release_channel(self, name: str, owner: str) -> None:
        """``owner`` keeps the channel no longer (see chatd.core.permanent.release_channel)."""
        release_channel(self, name, owner)

    def record(self, channel: Channel, event: Delivery, kind: str = "message") -> None:
        """Keep a channel message (or, with kind "event", a JOIN/PART/KICK/TOPIC/QUIT) for
        replay and CHATHISTORY; a no-op without history."""
        if self.history is not None:
            self.history.record(channel.name_key, event, kind)

    def record_private(self, sender: Client, target: Client, event: Delivery) -> None:
        """Keep a private message for CHATHISTORY: by account, or by nick (chatd.core.conversations)."""
        record_private(self, sender, target, event)

    def save_channel(self, channel: Channel) -> None:
        """Persist a permanent channel's topic and modes after they change (other channels
        keep nothing beyond their life, so nothing of theirs is written)."""
        if self.history is not None and channel.name_key in self.permanent:
            self.history.save_channel(channel.name_key, channel.snapshot())

    def leave(self, client: Client, channel: Channel) -> None:
        """Remove a member from a channel; an empty channel that is not permanent ceases to
        exist, and everything about it (modes, key, bans, topic, saved state) is forgotten."""
        channel.remove(client)
        client.channels.pop(channel.name_key, None)
        if not channel.members and channel.name_key not in self.permanent:
            self.channels.pop(channel.name_key, None)
            if self.history is not None:
                self.history.end_life(channel.name_key)

    def quit(self, client: Client, reason: str, *, error: str | None = None, abort: bool = False) -> None:
        """End a client the server decided to end: peers see QUIT, the client gets ERROR."""
        if client.gone:
            return
        farewell_text = error if error is not None else f"Closing Link: {client.host} ({reason})"
        if client.dialect is Dialect.PLAIN:
            farewell = f"* {farewell_text}\n".encode(errors=WIRE)
        else:
            farewell = format_message("ERROR", farewell_text).encode(errors=WIRE) + b"\r\n"
        depart(self, client, reason)
        client.transport.close(farewell, abort=abort)

    # ---- internals -------------------------------------------------------------

    def _reap(self) -> None:
        """Disconnect clients whose send queue overflowed during the last command."""
        doomed = self._doomed
        while doomed:
            client = doomed.pop()
            if not client.gone:
                self.stats.sendq_disconnects += 1
                self.quit(client, "SendQ exceeded", error="SendQ exceeded", abort=True)
