"""Accounts as the core sees them: who is logged in to what, and the checks around logging in.

Invariants:
- ``Client.account`` changes only through ``log_in`` and ``log_out``, which tell the
  client (900/901), the peers that asked (``account-notify``), MONITOR watchers with
  extended-monitor, and the network. Every login path (SASL, PASS, NickServ, REGISTER)
  ends in ``log_in``.
- The store is touched only inside ``Hub.offload``'s work (a worker thread): hashing
  and the disk never run on the event loop. While a check is out, the client is
  ``held``: its following lines (CAP END, NICK, JOIN) wait in order for the answer.
- A password is never logged, never kept after the check, and compared in constant
  time (scrypt, ``chatd.core.passwords``; SCRAM by ``scramp``).
- Failed attempts are counted per account and per address; past ``MAX_FAILURES`` in
  ``FAILURE_WINDOW_S`` further attempts are refused without being checked.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import scramp

from chatd.core.passwords import hash_password, verify_password
from chatd.core.ports import AccountRecord, AccountStore
from chatd.core.presence import tell_watchers
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower, is_valid_nick
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

MAX_FAILURES = 3
FAILURE_WINDOW_S = 60.0
SCRAM_ITERATIONS = 600_000
"""OWASP's figure for PBKDF2-HMAC-SHA256, which SCRAM's stored keys are: a stolen database
must cost as much to attack through them as through the scrypt hash. The client does the
iterations at each login (about 0.2 s in C); the server only at registration."""
SCRAM_MECHANISM = "SCRAM-SHA-256"
ACCOUNT_NAME_MAX = 30


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check found: the account (None: refused) and, if refused, why, in words."""

    record: AccountRecord | None
    reason: str = ""


class Accounts:
    """The hub's account state: the store, the names that are taken, the failure counts."""

    def __init__(self, store: AccountStore | None) -> None:
        self.store = store
        self.names: dict[str, str] = {}
        """Case-mapped name → name of every account known here (nick protection reads it)."""
        self._failures: dict[str, deque[float]] = {}
        if store is not None:
            for name in store.account_names():
                self.names[irc_lower(name)] = name

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def throttled(self, now: float, *keys: str) -> bool:
        """True while any of ``keys`` (``account:x``, ``host:y``) failed too often lately."""
        for key in keys:
            stamps = self._failures.get(key)
            if stamps is None:
                continue
            while stamps and stamps[0] <= now - FAILURE_WINDOW_S:
                stamps.popleft()
            if not stamps:
                del self._failures[key]
            elif len(stamps) >= MAX_FAILURES:
                return True
        return False

    def failed(self, now: float, *keys: str) -> None:
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 100_000:  # a bound: forget the oldest attackers first
            for key in list(self._failures)[:50_000]:
                del self._failures[key]


def account_name_error(name: str) -> str | None:
    """Why ``name`` cannot be an account name, or None: it must be usable as a nick."""
    if not name or len(name) > ACCOUNT_NAME_MAX or not is_valid_nick(name) or name == "*":
        return "Account names must be valid nicknames"
    return None


def make_record(name: str, password: str, email: str = "") -> AccountRecord:
    """A new account's record: scrypt for PLAIN, and SCRAM's keys (runs off the loop: slow on purpose)."""
    salt, stored_key, server_key, iterations = scramp.ScramMechanism(SCRAM_MECHANISM).make_auth_info(
        password, iteration_count=SCRAM_ITERATIONS
    )
    return AccountRecord(
        name=name,
        password_hash=hash_password(password),
        scram_salt=salt,
        scram_stored_key=stored_key,
        scram_server_key=server_key,
        scram_iterations=iterations,
        email=email,
        registered_at=time.time(),
    )


def with_password(record: AccountRecord, password: str) -> AccountRecord:
    """``record`` with a new password (scrypt hash and SCRAM keys both replaced)."""
    fresh = make_record(record.name, password, record.email)
    return replace(record, **{field: getattr(fresh, field) for field in _SECRET_FIELDS})


_SECRET_FIELDS = ("password_hash", "scram_salt", "scram_stored_key", "scram_server_key", "scram_iterations")


def throttle_keys(client: Client, account: str) -> tuple[str, str]:
    return ("account:" + irc_lower(account), "host:" + client.host)


def check_password(
    hub: Hub, client: Client, account: str, password: str, then: Callable[[Outcome], None]
) -> None:
    """Check ``account``'s password off the loop and call ``then`` on it with the outcome.

    The client is held meanwhile. A throttled account or address is refused at once,
    without hashing; a failure counts against both.
    """
    store = hub.accounts.store
    keys = throttle_keys(client, account)
    if store is None:
        then(Outcome(None, "Accounts are not enabled on this server"))
        return
    if hub.accounts.throttled(hub.clock(), *keys):
        then(Outcome(None, "Too many failed login attempts; try again in a minute"))
        return
    key = irc_lower(account)

    def work() -> AccountRecord | None:
        record = store.account(key)
        if record is None:
            verify_password(password, _dummy_hash())  # the same time whether or not the account exists
            return None
        return record if verify_password(password, record.password_hash) else None

    def done(record: AccountRecord | None) -> None:
        client.held = False
        if record is None:
            hub.accounts.failed(hub.clock(), *keys)
            then(Outcome(None, "Invalid account name or password"))
        else:
            then(Outcome(record))

    client.held = True
    hub.offload(work, done)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not an account", salt=b"\0" * 16)


def log_in(hub: Hub, client: Client, record: AccountRecord) -> None:
    """``client`` is now logged in to ``record``'s account: say so to it, its peers and the network."""
    if client.account == record.name:
        return
    _announce_account(hub, client, record.name)
    hub.accounts.names[irc_lower(record.name)] = record.name
    if client.node is None:
        hub.reply(
            client,
            n.RPL_LOGGEDIN,
            client.prefix if client.nick else "*",
            record.name,
            f"You are now logged in as {record.name}",
        )


def log_out(hub: Hub, client: Client) -> None:
    """``client`` is no longer logged in (DROP, or another node said so)."""
    if client.account is None:
        return
    _announce_account(hub, client, None)
    if client.node is None:
        hub.reply(client, n.RPL_LOGGEDOUT, client.prefix if client.nick else "*", "You are now logged out")


def _announce_account(hub: Hub, client: Client, account: str | None) -> None:
    """Set ``client.account``; once registered, ``ACCOUNT <name>|*`` goes to peers with
    account-notify and to MONITOR watchers with extended-monitor too, and the network hears.

    The ACCOUNT line is made before the change, so its account tag names the account
    the user was logged in to (as the account-tag spec's example shows)."""
    if not client.registered:
        client.account = account
        return
    event = hub.send_to_peers(
        client,
        format_message("ACCOUNT", account or "*", source=client.prefix),
        None,
        include_self=False,
        only_cap="account-notify",
    )
    client.account = account
    tell_watchers(hub, client, event, "account-notify")
    if hub.cluster is not None and client.node is None:
        hub.cluster.user_changed(client)
