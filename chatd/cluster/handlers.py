"""What this node does with each event another node publishes (one handler per kind).

Invariants:
- Handlers change shared state only through its owners: channels through
  ``chatd.core.channel``, users' visible changes through ``chatd.core.users``, the
  replica of other nodes' users through ``Replica``. So a remote MODE, KICK, TOPIC,
  NICK or KILL follows the same rules, and looks the same, as a local one.
- A handler trusts only what the sending node is the authority on: its own users
  (``node.users``). An event naming a user or channel we do not know is dropped.
- Kinds in ``NEEDS_NO_REPLICA`` are applied even from a node we hold no replica of.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.cluster.replica import RemoteNode, Replica, adopt_state
from chatd.cluster.wire import channel_registration, channel_state, relayed_event, source_of
from chatd.core.channel import apply_relayed_modes, kick, part, set_topic
from chatd.core.commands.messages import deliver_to_status
from chatd.core.commands.redact import REDACTION_CAP, deliver_redaction, forget_private
from chatd.core.fanout import fanout_run
from chatd.core.users import deliver_wallops, kill
from chatd.protocol.casemap import irc_lower
from chatd.protocol.framing import WIRE
from chatd.protocol.message import format_message

Handler = Callable[[Replica, RemoteNode, dict[str, Any]], None]

NEEDS_NO_REPLICA = frozenset({"msg", "smsg", "pm", "wallops", "kill", "ghost", "areg", "adrop", "creg"})
"""Events applied even from a node whose users we do not know (yet, or any more)."""


def on_heartbeat(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """Nothing but a sign of life (the dispatcher noted it)."""


def on_user(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    replica.introduce_or_update(node, event)


def on_nick(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    client = node.users.get(event["u"])
    if client is not None and event["nick"] != client.nick:
        replica.rename(client, event["nick"])


def on_quit(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    client = node.users.get(event["u"])
    if client is not None:
        replica.quit(node, client, event["r"])


def on_join(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    client = node.users.get(event["u"])
    if client is None or irc_lower(event["c"]) in client.channels:
        return
    channel = replica.hub.join(client, event["c"])
    channel.set_prefix(client, event.get("p", ""))
    if "s" in event:
        # The channel's state travels along: a node where it is new (or only remote users
        # are in it) takes it, rather than what its own history remembers of the name.
        adopt_state(channel, channel_state(channel.name, event["s"]))


def on_part(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    client = node.users.get(event["u"])
    channel = client.channels.get(irc_lower(event["c"])) if client is not None else None
    if client is not None and channel is not None:
        part(replica.hub, client, channel, event["r"])


def on_kick(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    source = node.users.get(event["u"])
    target = replica.anyone(event["k"])
    channel = replica.hub.find_channel(event["c"])
    if source is None or target is None or channel is None or target not in channel.members:
        return
    kick(replica.hub, source, channel, target, event["r"])


def on_topic(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    source = node.users.get(event["u"])
    channel = replica.hub.find_channel(event["c"])
    if source is not None and channel is not None:
        set_topic(replica.hub, source, channel, event["topic"], event["at"])


def on_mode(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    hub = replica.hub
    channel = hub.find_channel(event["c"])
    if channel is not None:
        line = event["line"]
        apply_relayed_modes(hub, channel, event["ch"], source_of(line), event["at"], line, event["plain"])


def on_umeta(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    client = node.users.get(event["u"])
    if client is not None:
        replica.update_meta(client, event)


def on_msg(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    on_messages(replica, [event])


def on_messages(replica: Replica, events: list[dict[str, Any]]) -> None:
    """Messages to one channel, in order, as one fan-out (``chatd.core.fanout.fanout_run``)."""
    hub = replica.hub
    channel = replica.find_channel(events[0]["c"])
    if channel is None:
        return
    relayed = [relayed_event(event) for event in events]
    fanout_run(hub, channel, relayed)
    for message in relayed:
        if not message.tags_only:
            hub.record(channel, message)


def on_status_message(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """A STATUSMSG from another node: to our members with the status (never to history)."""
    channel = replica.find_channel(event["c"])
    if channel is not None:
        deliver_to_status(replica.hub, channel, event["st"], relayed_event(event))


def on_redact(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """A REDACT from another node: the message leaves this node's history too, and our members
    (or the other party) with the capability are told."""
    hub = replica.hub
    relayed = relayed_event(event)
    if "c" in event:
        channel = replica.find_channel(event["c"])
        if channel is not None:
            deliver_redaction(hub, channel, event["m"], relayed)
        return
    sender, target = node.users.get(event["u"]), replica.local_by_uid(event["k"])
    if sender is None or target is None:
        return
    forget_private(hub, sender, target, event["m"])
    if REDACTION_CAP in target.caps:
        hub.send_event(target, relayed)


def on_pm(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    target = replica.local_by_uid(event["k"])
    if target is None:
        return
    relayed = relayed_event(event)
    replica.hub.send_event(target, relayed)
    sender = node.users.get(event["u"])
    if sender is not None and not relayed.tags_only:
        replica.hub.record_private(sender, target, relayed)


def on_invite(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    hub = replica.hub
    source = node.users.get(event["u"])
    target = replica.local_by_uid(event["k"])
    channel = hub.find_channel(event["c"])
    if source is None or target is None or channel is None:
        return
    channel.invited.add(target.nick_key or "")
    if target.plain:
        target.send(f"* {source.nick} invites you to {channel.name}\n".encode(errors=WIRE))
    else:
        hub.send_line(target, format_message("INVITE", target.nick or "", channel.name, source=source.prefix))


def on_wallops(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    deliver_wallops(replica.hub, event["line"])


def on_kill(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    target = replica.local_by_uid(event["k"])
    if target is not None:
        kill(replica.hub, target, event["r"], event["src"])


def on_ghost(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """NickServ GHOST/REGAIN on another node, by the owner of this user's nick: it quits."""
    target = replica.local_by_uid(event["k"])
    if target is not None:
        replica.hub.quit(target, event["r"])


def on_account_registered(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """Another node registered an account (the store is shared): its nick is protected here too."""
    replica.account_registered(event["a"])


def on_account_dropped(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """Another node dropped an account: its nick is free, and our users of it are logged out."""
    replica.account_dropped(event["a"])


def on_channel_registration(replica: Replica, node: RemoteNode, event: dict[str, Any]) -> None:
    """Another node's ChanServ registered, changed or dropped a channel: so it is here."""
    registration = channel_registration(event["c"], event["r"])
    replica.note_registration(event["c"])
    replica.apply_registration(event["c"], registration)


HANDLERS: dict[str, Handler] = {
    "user": on_user,
    "nick": on_nick,
    "quit": on_quit,
    "join": on_join,
    "part": on_part,
    "kick": on_kick,
    "topic": on_topic,
    "mode": on_mode,
    "umeta": on_umeta,
    "msg": on_msg,
    "smsg": on_status_message,
    "redact": on_redact,
    "pm": on_pm,
    "invite": on_invite,
    "kill": on_kill,
    "ghost": on_ghost,
    "wallops": on_wallops,
    "areg": on_account_registered,
    "adrop": on_account_dropped,
    "creg": on_channel_registration,
    "hb": on_heartbeat,
}
"""Every kind of event a node applies from another's replica (HELLO, BURST, SYNC, BYE and
YIELD are about the nodes themselves: ``ClusterNode`` handles those)."""
