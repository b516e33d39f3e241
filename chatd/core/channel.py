"""A channel, and every change of one: topic, modes, membership, kick, snapshot and restore.

Invariants (this module's "Rule 1"):
- A channel's state changes only here: ``Channel`` methods change the state itself
  (``add``, ``remove``, ``set_topic``, ``apply_modes``, ``restore``), and the functions
  below (``set_topic``, ``change_modes``, ``part``, ``kick``) change it *and* tell the
  members, for the command handlers and the cluster alike. So there is one MODE
  implementation, one KICK, one PART, whether a local user or another node asked.
- ``apply_modes`` is the only place a mode is set or cleared, and it returns exactly what
  changed: nothing that is already so is announced again.
- ``members``, ``operators`` and ``voiced`` agree: a privileged client is always a member
  (``remove`` drops every privilege). ``fanout_cache`` is dropped whenever membership changes.
- A ``ChannelState`` is a frozen copy of what outlives a member list (topic, modes, key,
  limit, bans, creation time): what a node hands another in a burst, and what a saved
  permanent channel comes back as.
- A channel registered with ChanServ has its ``registration`` and shows ``+r``, and only
  ``set_registration`` changes either: no MODE sets or clears ``r``. Its first joiner gets
  no operator status for being first; every joiner gets what its account's access gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.core.limits import MAX_BANS, MAX_KEY_LENGTH
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.mask import mask_matches, normalize_mask
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub
    from chatd.core.ports import ChannelRegistration


# CHANMODES=beI,k,l,Cimnrst: A (list, always a parameter), B (parameter both ways),
# C (parameter only when set), D (flags). Prefix modes o and v take a nick.
LIST_MODES = frozenset("beI")
"""``b`` bans, ``e`` ban exceptions (a match is not banned), ``I`` invite exceptions (a match
joins +i without an INVITE): each a list of up to ``MAX_BANS`` masks."""
KEY_MODES = frozenset("k")
LIMIT_MODES = frozenset("l")
FLAG_MODES = frozenset("Cimnst")
"""``C`` no CTCP but ACTION, ``i`` invite only, ``m`` moderated, ``n`` no outside messages,
``s`` secret, ``t`` topic by operators."""
CTCP_ACTION = "\x01ACTION "
MEMBER_MODES = frozenset("ov")
REGISTERED_MODE = "r"
"""Shown by a channel registered with ChanServ; set and cleared by ChanServ only."""

EXTBAN_PREFIX = "$"
ACCOUNT_EXTBAN = "a"
"""``$a:<account>`` in a ban or exception list matches whoever is logged in to that account
(IRCv3 account-extban; the account may be a wildcard mask): a ban that follows the person
through nick and host changes."""
MUTE_EXTBAN = "m"
"""``$m:<mask>`` (a hostmask or ``$a:<account>``) in the ban list mutes instead of banning: the
user may join, but not speak, unless voiced, an operator or excepted (+e). The two are the only
extended ban types."""
MUTE_PREFIX = f"{EXTBAN_PREFIX}{MUTE_EXTBAN}:"

ModeChange = tuple[str, str, str | None]
"""``(sign, mode char, parameter)``: ``("+", "k", "sesame")``, ``("-", "l", None)``. A list of
them is what MODE asks for, what ``apply_modes`` returns, and what travels between nodes."""


def takes_param(char: str, adding: bool) -> bool:
    """Whether a mode change consumes a parameter of the MODE line."""
    return char in LIST_MODES or char in MEMBER_MODES or char in KEY_MODES or (char in LIMIT_MODES and adding)


def list_entry(param: str) -> str | None:
    """The mask a list mode keeps for ``param``, completed as servers do; None for an extended
    ban that is neither ``$a:<account>`` nor ``$m:<mask>``."""
    if not param.startswith(EXTBAN_PREFIX):
        return normalize_mask(param)
    kind, colon, rest = param[1:].partition(":")
    if not colon or not rest:
        return None
    if kind == ACCOUNT_EXTBAN:
        return param
    if kind == MUTE_EXTBAN and not rest.startswith(MUTE_PREFIX):
        inner = list_entry(rest)
        return None if inner is None else MUTE_PREFIX + inner
    return None


def entry_matches(mask: str, client: Client) -> bool:
    """Whether a list entry (a hostmask, ``$a:<account>``, or a mute of either) names ``client``."""
    if mask.startswith(EXTBAN_PREFIX):
        kind, _, rest = mask[1:].partition(":")
        if kind == MUTE_EXTBAN:
            return entry_matches(rest, client)
        account = client.account
        return account is not None and mask_matches(rest, account)
    return mask_matches(mask, client.prefix)


def mode_text(applied: Iterable[ModeChange]) -> tuple[str, list[str]]:
    """The announced form of changes: ``("+kl-t", ["sesame", "5"])``, each sign written once per run."""
    text, params, last = "", [], ""
    for sign, char, param in applied:
        if sign != last:
            text += sign
            last = sign
        text += char
        if param is not None:
            params.append(param)
    return text, params


@dataclass(frozen=True, slots=True)
class Ban:
    mask: str
    set_by: str
    set_at: float


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What a channel is apart from its members; ``modes`` holds the flag modes only."""

    name: str
    created: float
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    modes: str = "nt"
    mode_key: str | None = None
    limit: int | None = None
    bans: tuple[Ban, ...] = ()
    excepts: tuple[Ban, ...] = ()
    invexes: tuple[Ban, ...] = ()


class Channel:
    """State of one channel. Holds no I/O; the hub does the fan-out."""

    __slots__ = (
        "bans",
        "created",
        "excepts",
        "fanout_cache",
        "invexes",
        "invited",
        "limit",
        "members",
        "mode_key",
        "modes",
        "name",
        "name_key",
        "operators",
        "registration",
        "topic",
        "topic_at",
        "topic_by",
        "voiced",
    )

    def __init__(self, name: str, name_key: str, created: float) -> None:
        self.name = name
        self.name_key = name_key
        self.created = created
        self.members: dict[Client, None] = {}
        self.operators: set[Client] = set()
        self.voiced: set[Client] = set()
        self.modes: set[str] = {"n", "t"}
        self.topic = ""
        self.topic_by = ""
        self.topic_at = 0.0
        self.mode_key: str | None = None
        self.limit: int | None = None
        self.bans: list[Ban] = []
        self.excepts: list[Ban] = []
        self.invexes: list[Ban] = []
        self.invited: set[str] = set()
        self.fanout_cache: object | None = None
        """A backend's precomputed delivery targets; dropped whenever membership or a member's
        codec or transport changes."""
        self.registration: ChannelRegistration | None = None
        """Its founder and access list while it is registered with ChanServ."""

    # ---- membership ------------------------------------------------------------

    def add(self, client: Client) -> str:
        """Add a member with the privilege joining gives it, and return that (``"o"``, ``"v"``, ``""``).

        The first member of an unregistered channel becomes its operator; in a registered
        channel, being first gives nothing, and the founder and AMODE access give by account.
        """
        registration = self.registration
        given = registration.mode_for(client.account) if registration is not None else "" if self.members else "o"
        if given == "o":
            self.operators.add(client)
        elif given == "v":
            self.voiced.add(client)
        self.members[client] = None
        self.fanout_cache = None
        return given

    def remove(self, client: Client) -> None:
        self.members.pop(client, None)
        self.fanout_cache = None
        self.operators.discard(client)
        self.voiced.discard(client)

    def with_status(self, status: str) -> set[Client]:
        """The members a STATUSMSG to ``status`` + channel reaches: operators for ``@``, voiced
        members and operators for ``+`` (each at least that status)."""
        return self.operators if status == "@" else self.operators | self.voiced

    def set_prefix(self, client: Client, prefix: str) -> None:
        """Give a member exactly the privileges a NAMES prefix (``@``, ``+``, ``@+``) shows."""
        (self.operators.add if "@" in prefix else self.operators.discard)(client)
        (self.voiced.add if "+" in prefix else self.voiced.discard)(client)

    # ---- topic and modes -----------------------------------------------------------

    def set_topic(self, topic: str, by: str, when: float) -> None:
        self.topic, self.topic_by, self.topic_at = topic, by, when

    def set_registration(self, registration: ChannelRegistration | None) -> bool:
        """Register the channel (or, with None, end its registration); True when ``+r`` changed."""
        self.registration = registration
        had = REGISTERED_MODE in self.modes
        (self.modes.add if registration is not None else self.modes.discard)(REGISTERED_MODE)
        return had != (registration is not None)

    def topic_locked_for(self, client: Client) -> bool:
        """Whether TOPICLOCK keeps ``client`` from changing the topic (only the founder and +o access may)."""
        registration = self.registration
        return registration is not None and registration.topic_lock and registration.mode_for(client.account) != "o"

    def apply_modes(
        self,
        changes: Iterable[ModeChange],
        *,
        by: str,
        at: float,
        find: Callable[[str], Client | None],
        refused: Callable[[ModeChange, str], None] | None = None,
    ) -> list[ModeChange]:
        """Apply mode changes in order; return those that changed something, as announced.

        ``by`` and ``at`` are recorded on new bans; ``find`` looks up the nick of ``+o``/``+v``.
        A change that cannot apply is passed to ``refused`` with the numeric that explains it
        (``ERR_NOSUCHNICK``, ``ERR_USERNOTINCHANNEL``, ``ERR_INVALIDMODEPARAM``,
        ``ERR_BANLISTFULL``, ``ERR_UNKNOWNMODE``, ``ERR_ONLYSERVERSCANCHANGE`` for ``r``), at its
        place in the sequence: ``changes``
        is consumed lazily, so a caller's own replies while producing it stay in order.
        A key is cut to ``MAX_KEY_LENGTH``; an announced ``-k`` carries ``*``.
        """
        applied: list[ModeChange] = []
        for change in changes:
            sign, char, param = change
            adding = sign == "+"
            param = param or ""
            problem = None
            if char in FLAG_MODES:
                if adding != (char in self.modes):
                    (self.modes.add if adding else self.modes.discard)(char)
                    applied.append((sign, char, None))
            elif char in MEMBER_MODES:
                target = find(param)
                if target is None:
                    problem = n.ERR_NOSUCHNICK
                elif target not in self.members:
                    problem = n.ERR_USERNOTINCHANNEL
                else:
                    group = self.operators if char == "o" else self.voiced
                    if adding != (target in group):
                        (group.add if adding else group.discard)(target)
                        applied.append((sign, char, target.nick))
            elif char in KEY_MODES:
                if adding:
                    if " " in param or "," in param or param.startswith(":"):
                        problem = n.ERR_INVALIDMODEPARAM
                    else:
                        key = param[:MAX_KEY_LENGTH]
                        if key and key != self.mode_key:
                            self.mode_key = key
                            applied.append((sign, char, key))
                elif self.mode_key is not None:
                    self.mode_key = None
                    applied.append((sign, char, "*"))
            elif char in LIMIT_MODES:
                if adding:
                    if param.isdigit() and int(param) > 0 and int(param) != self.limit:
                        self.limit = int(param)
                        applied.append((sign, char, str(self.limit)))
                elif self.limit is not None:
                    self.limit = None
                    applied.append((sign, char, None))
            elif char in LIST_MODES:
                entries = self.mode_list(char)
                mask = list_entry(param)
                present = (
                    None if mask is None else next((e for e in entries if irc_lower(e.mask) == irc_lower(mask)), None)
                )
                if mask is None:
                    problem = n.ERR_INVALIDMODEPARAM
                elif adding and present is None:
                    if len(entries) >= MAX_BANS:
                        problem = n.ERR_BANLISTFULL
                    else:
                        entries.append(Ban(mask, by, at))
                        applied.append((sign, char, mask))
                elif not adding and present is not None:
                    entries.remove(present)
                    applied.append((sign, char, present.mask))
            elif char == REGISTERED_MODE:
                problem = n.ERR_ONLYSERVERSCANCHANGE
            else:
                problem = n.ERR_UNKNOWNMODE
            if problem is not None and refused is not None:
                refused(change, problem)
        return applied

    # ---- snapshot and restore ------------------------------------------------------

    def snapshot(self) -> ChannelState:
        return ChannelState(
            self.name,
            self.created,
            self.topic,
            self.topic_by,
            self.topic_at,
            "".join(sorted(self.modes)),
            self.mode_key,
            self.limit,
            tuple(self.bans),
            tuple(self.excepts),
            tuple(self.invexes),
        )

    def restore(self, state: ChannelState) -> None:
        """Take every part of ``state`` but the name (a channel keeps the name it was made with)."""
        self.created = state.created
        self.set_topic(state.topic, state.topic_by, state.topic_at)
        self.modes = set(state.modes)
        self.mode_key = state.mode_key
        self.limit = state.limit
        self.bans = list(state.bans)
        self.excepts = list(state.excepts)
        self.invexes = list(state.invexes)

    # ---- questions -----------------------------------------------------------------

    def prefix_of(self, client: Client, *, every: bool = False) -> str:
        """A member's NAMES prefix: the highest of ``@`` and ``+``, or all of them (multi-prefix)."""
        if client in self.operators:
            return "@+" if every and client in self.voiced else "@"
        if client in self.voiced:
            return "+"
        return ""

    def mode_string(self, *, with_params: bool) -> str:
        """The 324 form: ``+klnt key 10``; parameters only for those allowed to see them."""
        flags = sorted(self.modes)
        params = []
        if self.mode_key is not None:
            flags.append("k")
            params.append(self.mode_key)
        if self.limit is not None:
            flags.append("l")
            params.append(str(self.limit))
        text = "+" + "".join(flags)
        return " ".join([text, *params]) if with_params and params else text

    def visible_to(self, client: Client) -> bool:
        """Secret (+s) channels exist only for their members."""
        return "s" not in self.modes or client in self.members

    def refuses_text(self, text: str) -> bool:
        """+C: a CTCP request or reply (``\x01...``) other than ACTION is not relayed."""
        return "C" in self.modes and text[:1] == "\x01" and not text.startswith(CTCP_ACTION)

    def mode_list(self, char: str) -> list[Ban]:
        """The list a list mode (``b``, ``e``, ``I``) names."""
        return self.bans if char == "b" else self.excepts if char == "e" else self.invexes

    def is_banned(self, client: Client, *, mutes: bool = False) -> bool:
        """Matched by a ban (with ``mutes``, a mute too) and by no ban exception (+e)."""
        if not self.bans:  # the common case, asked on every message: no generator to build
            return False
        if not any(
            entry_matches(ban.mask, client) for ban in self.bans if mutes or not ban.mask.startswith(MUTE_PREFIX)
        ):
            return False
        return not any(entry_matches(entry.mask, client) for entry in self.excepts)

    def is_invite_excepted(self, client: Client) -> bool:
        """Matched by an invite exception (+I): joins +i as if invited."""
        return any(entry_matches(entry.mask, client) for entry in self.invexes)

    def can_speak(self, client: Client) -> bool:
        """+n keeps outsiders out, +m keeps all but voiced and operators quiet, bans and mutes silence."""
        if client not in self.members:
            return "n" not in self.modes and not self.is_banned(client, mutes=True)
        if client in self.operators or client in self.voiced:
            return True
        return "m" not in self.modes and not self.is_banned(client, mutes=True)


# ---- changes told to the members (the hub fans them out) -------------------------------


def set_topic(hub: Hub, client: Client, channel: Channel, topic: str, when: float) -> None:
    """Set a channel's topic on ``client``'s word (the caller checked the right to) and tell its members."""
    channel.set_topic(topic, client.prefix, when)
    hub.save_channel(channel)
    event = hub.send_to_channel(
        channel,
        format_message("TOPIC", channel.name, topic, source=client.prefix),
        f"* {client.nick} changed the topic to: {topic}",
        account=client.account,
    )
    hub.record(channel, event, "event")
    if hub.cluster is not None and client.node is None:
        hub.cluster.topic_changed(client, channel)


def change_modes(hub: Hub, client: Client, channel: Channel, changes: Iterable[ModeChange]) -> None:
    """Apply a channel operator's MODE changes (privilege checked by the caller) and announce
    what changed; each refused change is answered to ``client`` with its numeric."""

    def refused(change: ModeChange, numeric: str) -> None:
        _sign, char, param = change
        if numeric == n.ERR_NOSUCHNICK:
            hub.reply(client, numeric, param or "", "No such nick/channel")
        elif numeric == n.ERR_USERNOTINCHANNEL:
            hub.reply(client, numeric, param or "", channel.name, "They aren't on that channel")
        elif numeric == n.ERR_INVALIDMODEPARAM and char in LIST_MODES:
            hub.reply(client, numeric, channel.name, char, param or "*", "Unknown extban (only $a: and $m:)")
        elif numeric == n.ERR_INVALIDMODEPARAM:
            hub.reply(client, numeric, channel.name, char, "*", "Invalid channel key")
        elif numeric == n.ERR_BANLISTFULL:
            hub.reply(client, numeric, channel.name, char, "Channel ban list is full")
        elif numeric == n.ERR_ONLYSERVERSCANCHANGE:
            hub.reply(client, numeric, channel.name, "Only ChanServ can change mode r (see /msg ChanServ HELP)")
        else:
            hub.reply(client, n.ERR_UNKNOWNMODE, char, "is unknown mode char to me")

    applied = channel.apply_modes(changes, by=client.prefix, at=hub.wall_clock(), find=hub.find_client, refused=refused)
    if not applied:
        return
    hub.save_channel(channel)
    text, params = mode_text(applied)
    event = hub.send_to_channel(
        channel,
        format_message("MODE", channel.name, text, *params, source=client.prefix),
        f"* {client.nick} sets mode {text} {' '.join(params)}".rstrip(),
        account=client.account,
    )
    if hub.cluster is not None:
        hub.cluster.modes_changed(client, channel, applied, event)


def apply_relayed_modes(
    hub: Hub, channel: Channel, applied: Iterable[ModeChange], by: str, at: float, line: str, plain: str | None
) -> None:
    """Changes another node applied and announced: the same rules here, then its very announcement."""
    channel.apply_modes(applied, by=by, at=at, find=hub.find_client)
    hub.save_channel(channel)
    hub.send_to_channel(channel, line, plain)


def announce_auto_mode(hub: Hub, client: Client, channel: Channel) -> None:
    """After ``client`` joined a registered channel, the other members hear of the privilege its
    account gave it (``:server MODE #chan +o nick``, as ergo sends); the joiner saw it in NAMES."""
    registration = channel.registration
    given = registration.mode_for(client.account) if registration is not None else ""
    if given and client in channel.members:
        nick = client.nick or ""
        hub.send_to_channel(
            channel,
            format_message("MODE", channel.name, "+" + given, nick, source=hub.config.name),
            f"* {hub.config.name} sets mode +{given} {nick}",
            skip=client,
        )


def part(hub: Hub, client: Client, channel: Channel, reason: str) -> None:
    """``client`` leaves ``channel`` (its own wish, or its node's word): members see PART."""
    params = (channel.name, reason) if reason else (channel.name,)
    plain = f"* {client.nick} has left {channel.name}" + (f" ({reason})" if reason else "")
    event = hub.send_to_channel(
        channel, format_message("PART", *params, source=client.prefix), plain, account=client.account
    )
    hub.record(channel, event, "event")
    hub.leave(client, channel)
    if hub.cluster is not None and client.node is None:
        hub.cluster.parted(client, channel, reason)


def kick(hub: Hub, client: Client, channel: Channel, target: Client, reason: str) -> None:
    """Remove ``target`` from ``channel`` on ``client``'s word (checked by the caller), telling its members.

    A plain user kicked out of the plain channel has nowhere left to be: it is ended.
    The network hears of a local kick first, as ending that user tells it of a QUIT.
    """
    if hub.cluster is not None and client.node is None:
        hub.cluster.kicked(client, channel, target, reason)
    event = hub.send_to_channel(
        channel,
        format_message("KICK", channel.name, target.nick or "", reason, source=client.prefix),
        f"* {target.plain_name} was kicked by {client.plain_name} ({reason})",
        account=client.account,
    )
    hub.record(channel, event, "event")
    hub.leave(target, channel)
    if target.plain and target.node is None and channel.name == hub.config.plain_channel:
        hub.quit(target, f"Kicked from {channel.name} by {client.nick}")
