"""Private conversations in history: by account between logged-in users, by nick otherwise.

Invariants (the policy, as ergo keeps the direct messages of registered users):
- A private message between two users who are both logged in is stored whenever the
  server keeps history, under ``account_conversation_key`` of the two accounts: it
  follows the accounts, so any connection logged in to either one reads it, after a
  reconnect, on another device, whatever the nicks. Both accounts are noted as each
  other's correspondents (CHATHISTORY TARGETS).
- Otherwise today's rule holds: with ``--history-private`` only, and only between two
  connected IRC users, under ``conversation_key`` of the two nicks. Plain clients never
  log in, so theirs are never stored.
- A client reads a conversation by account when it is logged in and the target names
  an account: the account of the user holding that nick, or, when no logged-in user
  does (the other side is offline), a registered account of that name.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chatd.core.client import Dialect
from chatd.core.ports import account_conversation_key, conversation_key
from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub


def record_private(hub: Hub, sender: Client, target: Client, event: Delivery) -> None:
    """Keep a private message for CHATHISTORY, if the policy above keeps it."""
    history = hub.history
    if history is None:
        return
    if sender.account is not None and target.account is not None:
        first, second = irc_lower(sender.account), irc_lower(target.account)
        history.record(account_conversation_key(first, second), event)
        history.correspond(first, second)
    elif (
        hub.config.history_private
        and sender.nick_key is not None
        and target.nick_key is not None
        and Dialect.PLAIN not in (sender.dialect, target.dialect)
    ):
        history.record(conversation_key(sender.nick_key, target.nick_key), event)


def target_account(hub: Hub, name: str) -> str | None:
    """The account ``name`` stands for in a private conversation, case-mapped, or None."""
    holder = hub.find_client(name)
    if holder is not None and holder.account is not None:
        return irc_lower(holder.account)
    key = irc_lower(name)
    return key if key in hub.accounts.names else None


def private_conversation(hub: Hub, client: Client, target: str) -> tuple[str, str, float] | None:
    """The history key, display name and earliest readable time of ``client``'s private
    conversation with ``target``: by account when both are accounts, else by nick with
    --history-private; None when none may be read."""
    if client.account is not None:
        other = target_account(hub, target)
        if other is not None:
            return account_conversation_key(irc_lower(client.account), other), target, -math.inf
    if hub.config.history_private and client.nick_key is not None:
        return conversation_key(client.nick_key, irc_lower(target)), target, -math.inf
    return None


def recent_correspondents(hub: Hub, client: Client, low: float, high: float) -> list[tuple[float, str]]:
    """(time of the newest message between ``low`` and ``high``, account name) of each account
    ``client``'s account has a private conversation with; empty when it is not logged in."""
    if client.account is None or hub.history is None:
        return []
    own = irc_lower(client.account)
    found = []
    for other in list(hub.history.correspondents(own)):
        when = hub.history.latest_time(account_conversation_key(own, other), low, high)
        if when is not None:
            found.append((when, hub.accounts.names.get(other, other)))
    return found
