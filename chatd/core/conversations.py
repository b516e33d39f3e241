"""Private conversations in history: by account between logged-in users, by nick otherwise.

Invariants (the policy, as ergo keeps the direct messages of registered users):
- A private message between two users who are both logged in is stored whenever the
  server keeps history, under ``account_conversation_key`` of the two accounts: it
  follows the accounts, so any connection logged in to either one reads it, after a
  reconnect, on another device, whatever the nicks. Both accounts are noted as each
  other's correspondents (CHATHISTORY TARGETS).
- A private message between a logged-in user and an IRC user who is not is stored for the
  logged-in side only (as ergo does), under ``account_nick_key`` of its account and the
  other's nick: readable by that account alone, never by whoever later registers the nick.
- With ``--history-private``, messages between two connected IRC users are also stored by
  nick, under ``conversation_key`` of the two nicks (the rule for users not logged in).
  Plain clients never log in, so theirs are never stored.
- A TAGMSG is kept under the same keys when ``chatd.core.kept_tagmsg`` keeps it.
- A client reads a conversation by account when it is logged in and the target names
  an account: the account of the user holding that nick, or, when no logged-in user
  does (the other side is offline), a registered account of that name.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chatd.core.client import Dialect
from chatd.core.kept_tagmsg import TAGMSG_KIND, tagmsg_kept
from chatd.core.ports import account_conversation_key, account_nick_key, conversation_key
from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.event import Delivery
    from chatd.core.hub import Hub


def private_keys(hub: Hub, sender: Client, target: Client) -> list[str]:
    """The history keys a private message from ``sender`` to ``target`` is kept under, by the
    policy above (none: it is not kept)."""
    if sender.account is not None and target.account is not None:
        return [account_conversation_key(irc_lower(sender.account), irc_lower(target.account))]
    if Dialect.PLAIN in (sender.dialect, target.dialect):
        return []
    keys = [
        account_nick_key(irc_lower(side.account), other.nick_key)
        for side, other in ((sender, target), (target, sender))
        if side.account is not None and other.nick_key is not None
    ]
    if hub.config.history_private and sender.nick_key is not None and target.nick_key is not None:
        keys.append(conversation_key(sender.nick_key, target.nick_key))
    return keys


def record_private(hub: Hub, sender: Client, target: Client, event: Delivery) -> None:
    """Keep a private message for CHATHISTORY, if the policy above keeps it."""
    history = hub.history
    if history is None or (event.tags_only and not tagmsg_kept(event.client_tags)):
        return
    kind = TAGMSG_KIND if event.tags_only else "message"
    for key in private_keys(hub, sender, target):
        history.record(key, event, kind)
    if sender.account is not None and target.account is not None:
        history.correspond(irc_lower(sender.account), irc_lower(target.account))


def target_account(hub: Hub, name: str) -> str | None:
    """The account ``name`` stands for in a private conversation, case-mapped, or None."""
    holder = hub.find_client(name)
    if holder is not None:  # the conversation is with whoever holds the nick now
        return None if holder.account is None else irc_lower(holder.account)
    key = irc_lower(name)
    return key if key in hub.accounts.names else None


def private_conversation(hub: Hub, client: Client, target: str) -> tuple[str, str, float] | None:
    """The history key, display name and earliest readable time of ``client``'s private
    conversation with ``target``: by account when both are accounts, else by nick with
    --history-private; None when none may be read."""
    if client.account is not None:
        own = irc_lower(client.account)
        other = target_account(hub, target)
        if other is not None:
            return account_conversation_key(own, other), target, -math.inf
        return account_nick_key(own, irc_lower(target)), target, -math.inf
    if hub.config.history_private and client.nick_key is not None:
        return conversation_key(client.nick_key, irc_lower(target)), target, -math.inf
    return None


def recent_correspondents(hub: Hub, client: Client, low: float, high: float) -> list[tuple[float, str]]:
    """(time of the newest message, account name) of each account ``client``'s account has a
    private conversation with whose newest message lies strictly between ``low`` and ``high``;
    empty when it is not logged in."""
    if client.account is None or hub.history is None:
        return []
    own = irc_lower(client.account)
    found = []
    for other in list(hub.history.correspondents(own)):
        when = hub.history.latest_time(account_conversation_key(own, other), -math.inf, math.inf)
        if when is not None and low < when < high:
            found.append((when, hub.accounts.names.get(other, other)))
    return found
