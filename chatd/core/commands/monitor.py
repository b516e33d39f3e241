"""MONITOR (IRCv3): a client's list of nicks whose presence it is told of.

The list and the notifications live in ``chatd.core.presence``; this module is only the
command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.client import Client
from chatd.core.limits import MAX_MONITOR_TARGETS
from chatd.core.presence import send_joined, send_status
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower, is_valid_nick
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatd.core.hub import Hub


# MONITOR + <target>[,<target>...] | MONITOR - <target>[,<target>...] | MONITOR C | MONITOR L | MONITOR S
def handle_monitor(hub: Hub, client: Client, message: Message) -> None:
    """Change or show the client's monitor list.

    ``+`` adds nicks (at most ``MAX_MONITOR_TARGETS`` in all, 734 for the rest) and answers
    730/731 for each nick asked; a target that is not a valid nick (a mask, say) gets 432
    and is not added. ``-`` removes and ``C`` clears, silently. ``L`` lists (732, 733),
    ``S`` tells the status of each (730/731). Another subcommand is ignored.
    """
    sub = message.params[0].upper()
    if sub in ("+", "-"):
        targets = [target for target in message.param(1).split(",") if target]
        if not targets:
            hub.reply(client, n.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
        elif sub == "+":
            _add(hub, client, targets)
        else:
            for target in targets:
                hub.watchlist.unwatch(client, irc_lower(target))
    elif sub == "C":
        hub.watchlist.forget(client)
    elif sub == "L":
        send_joined(hub, client, n.RPL_MONLIST, list(client.monitoring.values()))
        hub.reply(client, n.RPL_ENDOFMONLIST, "End of MONITOR list")
    elif sub == "S":
        send_status(hub, client, list(client.monitoring.values()))


def _add(hub: Hub, client: Client, targets: list[str]) -> None:
    added: list[str] = []
    for index, target in enumerate(targets):
        if not is_valid_nick(target):
            hub.reply(client, n.ERR_ERRONEUSNICKNAME, target, "Erroneous nickname")
            continue
        key = irc_lower(target)
        if key not in client.monitoring:
            if len(client.monitoring) >= MAX_MONITOR_TARGETS:
                rest = ",".join(targets[index:])
                hub.reply(client, n.ERR_MONLISTFULL, str(MAX_MONITOR_TARGETS), rest, "Monitor list is full")
                break
            hub.watchlist.watch(client, key, target)
        added.append(target)
    send_status(hub, client, added)
