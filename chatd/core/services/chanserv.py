"""ChanServ: registered channels, their founders and access lists (``/msg ChanServ HELP``).

Invariants:
- A registration reaches the store before the hub acts on it: each change is written
  inside ``Hub.offload`` work (the client ``held`` meanwhile), and applied to the channel
  (``Channel.set_registration``) in the answer, on the hub's thread. Registering writes
  only where no registration exists (the database's primary key decides between two
  nodes sharing one file).
- A change is computed from the registration it was asked of (its *base*); if another
  change landed while the write was out, it is computed again from the new state and
  written again, so the store and the hub end at the same registration whatever order
  the workers finished in.
- A registered channel is declared permanent under the owner ``"chanserv"``
  (``chatd.core.permanent``) for exactly as long as it is registered, and shows ``+r``.
- Privileges: the founder may do everything; an account with ``+o`` access may OP/DEOP
  and change ``+v`` access; anyone may ask for INFO. Server operators count as founders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatd.core.channel import Channel, ModeChange, mode_text
from chatd.core.config import PermanentChannel
from chatd.core.network import channel_registration_changed
from chatd.core.permanent import CHANSERV_OWNER
from chatd.core.ports import ChannelRegistration
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub
    from chatd.core.services import Service

log = logging.getLogger("chatd")

_FAILED = object()
"""What a store call that raised gives its answer instead of a result."""

Change = Callable[[ChannelRegistration], "ChannelRegistration | str"]
"""A change to a registration: the new one, or why it cannot be made (told to the asker)."""

HELP: dict[str, tuple[str, ...]] = {
    "REGISTER": (
        "REGISTER <#channel>",
        "Registers a channel you are an operator of, to your account: its topic, modes, key,",
        "limit, bans and history are kept while it is empty and across restarts, and you",
        "get operator status whenever you join it. Nobody gets it for joining first.",
    ),
    "DROP": ("DROP <#channel>", "Ends the registration (founder only); the channel becomes ordinary again."),
    "INFO": ("INFO <#channel>", "Shows a registered channel's founder, registration time and settings."),
    "OP": ("OP <#channel> [nick]", "Gives you (or nick) operator status; founder and +o access only."),
    "DEOP": ("DEOP <#channel> [nick]", "Takes operator status from you (or nick); founder and +o access only."),
    "AMODE": (
        "AMODE <#channel> [+o|-o|+v|-v <account>]",
        "Lists, or changes, who gets operator (+o) or voice (+v) by account on joining.",
        "The founder may change either; +o access may change +v.",
    ),
    "SET": ("SET <#channel> TOPICLOCK ON|OFF", "TOPICLOCK: only the founder and +o access may change the topic."),
    "TRANSFER": (
        "TRANSFER <#channel> <account>",
        "Makes another account the founder (founder only); you keep +o access.",
    ),
    "HELP": ("HELP [command]", "Lists the commands, or explains one."),
}


def handle(hub: Hub, client: Client, service: Service, text: str) -> None:
    """One message to ChanServ: ``<COMMAND> [#channel] [arguments…]``."""
    words = text.split()
    command = words[0].upper() if words else "HELP"
    tell = _teller(hub, client, service)
    if command == "HELP":
        _help(tell, words[1:])
        return
    handler = COMMANDS.get(command)
    if handler is None:
        tell(f"Unknown command {command}. To see the available commands, run: /msg ChanServ HELP")
        return
    if hub.accounts.store is None:
        tell("Channel registration is not enabled on this server")
        return
    if len(words) < 2:
        tell(f"Syntax: {HELP[command][0]}")
        return
    channel = hub.find_channel(words[1])
    if channel is None:
        tell(f"No such channel: {words[1]}")
        return
    if command != "REGISTER" and command != "INFO" and channel.registration is None:
        tell(f"Channel {channel.name} is not registered")
        return
    handler(hub, client, service, channel, words[2:])


def _teller(hub: Hub, client: Client, service: Service) -> Callable[[str], None]:
    return lambda text: service.tell(hub, client, text)


def _help(tell: Callable[[str], None], args: list[str]) -> None:
    if args:
        lines = HELP.get(args[0].upper())
        if lines is None:
            tell(f"No help for {args[0]}. To see the available commands, run: /msg ChanServ HELP")
            return
        tell(f"Syntax: {lines[0]}")
        for line in lines[1:]:
            tell(line)
        return
    tell("ChanServ keeps registered channels: their founder, who gets op or voice by account, and their state.")
    for lines in HELP.values():
        tell(f"  {lines[0]}")
    tell("For more on one of them: /msg ChanServ HELP <command>")


# ---- who may do what --------------------------------------------------------------------


def _founded(client: Client, registration: ChannelRegistration) -> bool:
    """Whether ``client`` is logged in to the founder's account."""
    return client.account is not None and irc_lower(client.account) == irc_lower(registration.founder)


def _is_founder(client: Client, registration: ChannelRegistration) -> bool:
    """The founder, or a server operator acting as one."""
    return "o" in client.user_modes or _founded(client, registration)


def _has_op_access(client: Client, registration: ChannelRegistration) -> bool:
    return _is_founder(client, registration) or registration.mode_for(client.account) == "o"


# ---- the commands ---------------------------------------------------------------------------


# REGISTER <#channel>
def _register(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    tell = _teller(hub, client, service)
    if client.account is None:
        tell("You must be logged in to an account to register a channel (see /msg NickServ HELP)")
        return
    if channel.registration is not None:
        tell(f"Channel {channel.name} is already registered to {channel.registration.founder}")
        return
    if client not in channel.operators:
        tell(f"You must be an operator of {channel.name} to register it")
        return
    registration = ChannelRegistration(channel.name, client.account, hub.wall_clock())
    store = hub.accounts.store
    assert store is not None
    key = channel.name_key

    def done(created: bool) -> None:
        if not created:
            tell(f"Channel {channel.name} is already registered")
            return
        kept = hub.keep_channel(PermanentChannel(channel.name), CHANSERV_OWNER)
        _set_registration(hub, service, kept, registration)
        channel_registration_changed(hub, kept)
        tell(f"Channel {kept.name} successfully registered to {registration.founder}")

    _offload(hub, client, tell, lambda: store.save_channel_registration(key, registration, create=True), done)


# DROP <#channel>
def _drop(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    tell = _teller(hub, client, service)
    registration = channel.registration
    assert registration is not None
    if not _is_founder(client, registration):
        tell(f"Only the founder of {channel.name} ({registration.founder}) can drop it")
        return
    store = hub.accounts.store
    assert store is not None
    key = channel.name_key

    def done(_: None) -> None:
        if channel.registration is not None:
            _set_registration(hub, service, channel, None)
            channel_registration_changed(hub, channel)
            hub.release_channel(channel.name, CHANSERV_OWNER)
        tell(f"Channel {channel.name} is no longer registered")

    _offload(hub, client, tell, lambda: store.drop_channel_registration(key), done)


# INFO <#channel>
def _info(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    tell = _teller(hub, client, service)
    registration = channel.registration
    if registration is None:
        tell(f"Channel {channel.name} is not registered")
        return
    when = datetime.fromtimestamp(registration.registered_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    tell(f"Channel {channel.name} is registered")
    tell(f"Founder: {registration.founder}")
    tell(f"Registered at: {when}")
    tell(f"Topic lock: {'on' if registration.topic_lock else 'off'}")
    tell(f"Access entries: {len(registration.access)} (see /msg ChanServ AMODE {channel.name})")


# OP / DEOP <#channel> [nick]
def _op(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str], *, adding: bool = True) -> None:
    tell = _teller(hub, client, service)
    registration = channel.registration
    assert registration is not None
    if client.account is None and "o" not in client.user_modes:
        tell("You must be logged in to an account to use OP and DEOP (see /msg NickServ HELP)")
        return
    if not _has_op_access(client, registration):
        tell(f"You have no operator access to {channel.name}")
        return
    target = hub.find_client(args[0]) if args else client
    if target is None or target not in channel.members:
        tell(f"{args[0] if args else client.nick} is not on {channel.name}")
        return
    if (
        not adding
        and target is not client
        and not _is_founder(client, registration)
        and _is_founder(target, registration)
    ):
        tell(f"Only the founder can take operator status from the founder of {channel.name}")
        return
    applied = _apply(hub, client, service, channel, [("+" if adding else "-", "o", target.nick)])
    if applied:
        done = "Gave operator status to" if adding else "Took operator status from"
        tell(f"{done} {target.nick} on {channel.name}")
    else:
        tell(f"{target.nick} {'already has' if adding else 'does not have'} operator status on {channel.name}")


def _deop(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    _op(hub, client, service, channel, args, adding=False)


# AMODE <#channel> [+o|-o|+v|-v <account>]
def _amode(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    tell = _teller(hub, client, service)
    registration = channel.registration
    assert registration is not None
    if not _has_op_access(client, registration):
        tell(f"You have no operator access to {channel.name}")
        return
    if not args:
        tell(f"Channel {channel.name} has {len(registration.access) + 1} persistent modes set")
        tell(f"Account {registration.founder} receives mode +o (founder)")
        for account, mode in registration.access:
            tell(f"Account {account} receives mode +{mode}")
        return
    change = args[0]
    if len(args) != 2 or len(change) != 2 or change[0] not in "+-" or change[1] not in "ov":
        tell(f"Syntax: {HELP['AMODE'][0]}")
        return
    sign, mode = change[0], change[1]
    account = hub.accounts.names.get(irc_lower(args[1]))
    if account is None:
        tell(f"Account {args[1]} does not exist")
        return

    def amend(base: ChannelRegistration) -> ChannelRegistration | str:
        if not _has_op_access(client, base):
            return f"You have no operator access to {channel.name}"
        if irc_lower(account) == irc_lower(base.founder):
            return f"{account} founded {channel.name}: the founder always gets operator status"
        now = base.mode_for(account)
        if not _is_founder(client, base) and "o" in (mode, now):
            return "Only the founder can change who gets operator status"
        others = tuple(entry for entry in base.access if irc_lower(entry[0]) != irc_lower(account))
        if sign == "+":
            return replace(base, access=(*others, (account, mode))) if now != mode else "No changes were made"
        return replace(base, access=others) if now == mode else "No changes were made"

    def applied(new: ChannelRegistration) -> None:
        receives = "now receives" if sign == "+" else "no longer receives"
        tell(f"Account {account} {receives} mode +{mode} on {channel.name}")
        present = [
            member for member in channel.members if member.account and irc_lower(member.account) == irc_lower(account)
        ]
        _apply(hub, client, service, channel, [(sign, mode, member.nick) for member in present])

    _change(hub, client, service, channel, amend, applied)


# SET <#channel> TOPICLOCK ON|OFF
def _set(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    tell = _teller(hub, client, service)
    if len(args) != 2 or args[0].upper() != "TOPICLOCK" or args[1].upper() not in ("ON", "OFF"):
        tell(f"Syntax: {HELP['SET'][0]}")
        return
    locked = args[1].upper() == "ON"

    def amend(base: ChannelRegistration) -> ChannelRegistration | str:
        if not _is_founder(client, base):
            return f"Only the founder of {channel.name} ({base.founder}) can change its settings"
        return replace(base, topic_lock=locked)

    def applied(new: ChannelRegistration) -> None:
        tell(f"Topic lock of {channel.name} is now {'on' if locked else 'off'}")

    _change(hub, client, service, channel, amend, applied)


# TRANSFER <#channel> <account>
def _transfer(hub: Hub, client: Client, service: Service, channel: Channel, args: list[str]) -> None:
    tell = _teller(hub, client, service)
    if len(args) != 1:
        tell(f"Syntax: {HELP['TRANSFER'][0]}")
        return
    account = hub.accounts.names.get(irc_lower(args[0]))
    if account is None:
        tell(f"Account {args[0]} does not exist")
        return

    def amend(base: ChannelRegistration) -> ChannelRegistration | str:
        if not _is_founder(client, base):
            return f"Only the founder of {channel.name} ({base.founder}) can transfer it"
        if irc_lower(account) == irc_lower(base.founder):
            return f"{account} already founded {channel.name}"
        keep = tuple(
            entry for entry in base.access if irc_lower(entry[0]) not in (irc_lower(account), irc_lower(base.founder))
        )
        return replace(base, founder=account, access=(*keep, (base.founder, "o")))

    def applied(new: ChannelRegistration) -> None:
        tell(f"{channel.name} now belongs to {new.founder}; {new.access[-1][0]} keeps +o access")

    _change(hub, client, service, channel, amend, applied)


COMMANDS: dict[str, Callable[[Hub, Client, Service, Channel, list[str]], None]] = {
    "REGISTER": _register,
    "DROP": _drop,
    "INFO": _info,
    "OP": _op,
    "DEOP": _deop,
    "AMODE": _amode,
    "SET": _set,
    "TRANSFER": _transfer,
}


# ---- changing a registration and telling the channel ----------------------------------------


def _change(
    hub: Hub,
    client: Client,
    service: Service,
    channel: Channel,
    amend: Change,
    applied: Callable[[ChannelRegistration], None],
) -> None:
    """Write ``amend(current registration)`` to the store, then make it the channel's.

    Should the registration have changed while the write was out, the change is computed
    again from the new one and written again (see the module's invariants); should it have
    been dropped, the row just written is dropped again.
    """
    tell = _teller(hub, client, service)
    base = channel.registration
    if base is None:
        tell(f"Channel {channel.name} is not registered")
        return
    new = amend(base)
    if isinstance(new, str):
        tell(new)
        return
    store = hub.accounts.store
    assert store is not None
    key = channel.name_key

    def done(_: bool) -> None:
        current = channel.registration
        if current is None:
            hub.offload(lambda: store.drop_channel_registration(key), lambda _: None)
            tell(f"Channel {channel.name} is no longer registered")
        elif current is not base:
            _change(hub, client, service, channel, amend, applied)
        else:
            channel.set_registration(new)
            channel_registration_changed(hub, channel)
            applied(new)

    _offload(hub, client, tell, lambda: store.save_channel_registration(key, new), done)


def _offload(
    hub: Hub, client: Client, tell: Callable[[str], None], work: Callable[[], Any], then: Callable[[Any], None]
) -> None:
    """Run a store call off the loop with ``client`` held, then ``then(result)``; a store that
    fails is logged and told to the client, which is let go either way (never held for good)."""

    def guarded() -> Any:
        try:
            return work()
        except Exception:
            log.exception("ChanServ: the account store failed")
            return _FAILED

    def done(result: Any) -> None:
        client.held = False
        if result is _FAILED:
            tell("ChanServ could not save that; please try again later")
        else:
            then(result)

    client.held = True
    hub.offload(guarded, done)


def _set_registration(hub: Hub, service: Service, channel: Channel, registration: ChannelRegistration | None) -> None:
    """Register or unregister ``channel``: ``+r``/``-r`` from ChanServ, and its state saved."""
    if channel.set_registration(registration):
        sign = "+" if registration is not None else "-"
        hub.send_to_channel(
            channel,
            format_message("MODE", channel.name, sign + "r", source=service.prefix(hub)),
            f"* {service.nick} sets mode {sign}r",
        )
    hub.save_channel(channel)


def _apply(hub: Hub, client: Client, service: Service, channel: Channel, changes: list[ModeChange]) -> list[ModeChange]:
    """Op or voice members on ChanServ's word, announced from ChanServ; returns what changed."""
    applied = channel.apply_modes(changes, by=service.prefix(hub), at=hub.wall_clock(), find=hub.find_client)
    if not applied:
        return applied
    text, params = mode_text(applied)
    event = hub.send_to_channel(
        channel,
        format_message("MODE", channel.name, text, *params, source=service.prefix(hub)),
        f"* {service.nick} sets mode {text} {' '.join(params)}",
    )
    if hub.cluster is not None and client.node is None:
        hub.cluster.modes_changed(client, channel, applied, event)
    return applied
