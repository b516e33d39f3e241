"""Nick protection: a registered nick belongs to its account (``--nick-enforcement``).

A nick is *registered* when ``hub.accounts.names`` holds it (every account's name is
protected as a nick); it is *owned* by a client logged in to that account. A client on
a registered nick it does not own is, by mode:

- ``strict``: refused at once (433 "Nickname is reserved by a different account", as
  ergo). Before connection registration the check waits for the end of registration,
  so that a client logging in with SASL during CAP negotiation keeps its nick;
- ``timeout`` (the default): told by NickServ that it has ``nick_grace_s`` seconds to log
  in, then renamed ``Guest<digits>``;
- ``optional``: left alone.

Invariants:
- Service nicks (NickServ, ChanServ) are never anyone's: ``reserved_nick_refused``
  answers 432 whatever the mode.
- A rename deadline is only a promise to look again: when it comes, the client is
  renamed only if it is still here, still on that nick, still registered, and still
  not logged in to the nick's account. So logging in by any path (SASL, NickServ,
  REGISTER) or changing nick cancels it without touching the heap.
- Only local users are enforced here; another node enforces its own users.
- The deadlines live in one heap on the hub's clock; ``chatd.core.liveness`` runs them
  with its own timers, so the backends need to know of nothing new.
"""

from __future__ import annotations

import heapq
import random
from typing import TYPE_CHECKING

from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower, is_valid_nick
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

STRICT = "strict"
TIMEOUT = "timeout"
OPTIONAL = "optional"
GUEST_PREFIX = "Guest"
SERVICE_NICKS = frozenset({"nickserv", "chanserv"})
"""Case-mapped nicks of chatd.core.services (kept here too: services import this module)."""


def owner_of(hub: Hub, nick: str) -> str | None:
    """The account a nick is registered to, or None (always None without accounts)."""
    return hub.accounts.names.get(irc_lower(nick))


def unowned(hub: Hub, client: Client, nick: str) -> str | None:
    """The account that owns ``nick`` when ``client`` is not logged in to it, else None."""
    owner = owner_of(hub, nick)
    if owner is None or (client.account is not None and irc_lower(client.account) == irc_lower(owner)):
        return None
    return owner


def reserved_nick_refused(hub: Hub, client: Client, nick: str) -> bool:
    """NICK's check before claiming ``nick``: True (and the client told why) when it may not have it.

    A service nick is refused in every mode (432, as ergo's restricted nicks); a nick of
    another account is refused at once only in strict mode, and only once the client is
    registered or not negotiating capabilities (it may still log in with SASL).
    """
    if irc_lower(nick) in SERVICE_NICKS:
        hub.reply(client, n.ERR_ERRONEUSNICKNAME, nick, "Nickname is reserved for services")
        return True
    if hub.config.nick_enforcement != STRICT or (not client.registered and client.cap_negotiating):
        return False
    if unowned(hub, client, nick) is None:
        return False
    _refuse(hub, client, nick)
    return True


def refused_at_registration(hub: Hub, client: Client) -> bool:
    """Strict mode, at the end of connection registration: True (and 433 sent) when the nick
    belongs to an account the client did not log in to; it stays unregistered and may
    choose another nick."""
    if hub.config.nick_enforcement != STRICT or client.nick is None or client.node is not None:
        return False
    if unowned(hub, client, client.nick) is None:
        return False
    _refuse(hub, client, client.nick)
    return True


def _refuse(hub: Hub, client: Client, nick: str) -> None:
    server = hub.config.name
    text = "Nickname is reserved by a different account"
    target = client.nick if client.registered and client.nick else "*"
    hub.send_line(client, format_message(n.ERR_NICKNAMEINUSE, target, nick, text, source=server))
    hub.send_line(client, format_message("FAIL", "NICK", "NICKNAME_RESERVED", nick, text, source=server))


def nick_taken(hub: Hub, client: Client) -> None:
    """A local registered client now has its nick (001, a NICK change): in timeout mode, a
    nick of an account it is not logged in to starts the grace time, with NickServ saying so."""
    nick = client.nick
    if hub.config.nick_enforcement != TIMEOUT or nick is None or client.node is not None:
        return
    owner = unowned(hub, client, nick)
    if owner is None:
        return
    grace = hub.config.nick_grace_s
    hub.liveness.enforcement.schedule(hub.clock() + grace, client)
    _from_nickserv(
        hub,
        client,
        f"The nickname {nick} is registered to the account {owner}. Log in to it within {grace:g} seconds "
        f"(/msg NickServ IDENTIFY <password>), or you will be renamed.",
    )


def _from_nickserv(hub: Hub, client: Client, text: str) -> None:
    source = f"NickServ!NickServ@{hub.config.name}"
    hub.send_line(client, format_message("NOTICE", client.display_nick, text, source=source))


def guest_nick(hub: Hub) -> str:
    """A free ``Guest<digits>`` nick that no account owns."""
    for digits in (5, 5, 5, 6, 6, 7, 8):
        nick = f"{GUEST_PREFIX}{random.randrange(10 ** (digits - 1), 10**digits)}"
        if is_valid_nick(nick) and hub.find_client(nick) is None and owner_of(hub, nick) is None:
            return nick
    return f"{GUEST_PREFIX}{hub.next_client_id()}"


def rename_to_guest(hub: Hub, client: Client) -> None:
    """Move ``client`` off a nick it may not keep, to a fresh guest nick (through the network
    in a cluster, which may answer later)."""
    from chatd.core.users import change_nick  # here: users calls this module when a nick changes

    nick = guest_nick(hub)
    if hub.cluster is not None and hub.cluster.request_nick(client, nick):
        return
    change_nick(hub, client, nick)


class NickEnforcement:
    """The rename deadlines of timeout mode: ``(deadline, client id, client, nick key)`` in a heap."""

    __slots__ = ("_heap", "hub")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._heap: list[tuple[float, int, Client, str]] = []

    def schedule(self, deadline: float, client: Client) -> None:
        assert client.nick_key is not None
        heapq.heappush(self._heap, (deadline, client.id, client, client.nick_key))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run(self, now: float) -> None:
        """Rename every client whose grace ended and who still holds a nick it does not own."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, client, key = heapq.heappop(heap)
            if client.gone or not client.registered or client.nick_key != key or client.nick is None:
                continue
            if unowned(self.hub, client, client.nick) is None:
                continue
            _from_nickserv(self.hub, client, f"You did not log in to {client.nick} in time: renaming you.")
            rename_to_guest(self.hub, client)

    def clear(self) -> None:
        self._heap.clear()
