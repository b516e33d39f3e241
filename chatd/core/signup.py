"""Creating an account: the one path REGISTER and NickServ REGISTER share.

Invariants:
- ``register_account`` is the one way an account is created: the checks, the
  per-address throttle, hashing and the store off the loop (the client held
  meanwhile), and on success ``hub.accounts.names`` and ``log_in``. The store's
  ``create_account`` decides who wins a name, across nodes too.
- The password is never echoed, logged, or kept once the record is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.core.accounts import account_name_error, log_in, make_record
from chatd.core.enforcement import GUEST_PREFIX, SERVICE_NICKS
from chatd.core.network import account_registered
from chatd.core.ports import AccountRecord
from chatd.protocol.casemap import irc_lower
from chatd.protocol.framing import WIRE

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

MAX_PASSWORD_BYTES = 300
"""The spec's advice: longer passwords may not fit a PRIVMSG to NickServ later."""
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
EMAIL_PATTERN = re.compile(r"[^@\s\ud800-\udfff]+@[^@\s\ud800-\udfff]+\.[^@\s\ud800-\udfff]+")
SUCCESS = "SUCCESS"
GUEST_PATTERN = re.compile(irc_lower(GUEST_PREFIX) + r"[0-9]+")
"""Nicks enforcement hands out: never an account, so a renamed user never lands on a protected nick."""

Answer = Callable[[str, str, str], None]
"""How a registration ends: ``answer(code, account, message)``; code is ``SUCCESS`` or a FAIL code."""


def register_account(hub: Hub, client: Client, account: str, email: str, password: str, answer: Answer) -> None:
    """Create ``account`` (which must be the client's nick) and log the client in to it.

    ``email`` is "" or "*" for none. ``answer`` is called once, now or after the store
    answered, with ``SUCCESS`` or the spec's failure code.
    """
    accounts = hub.accounts
    store = accounts.store
    if store is None:
        answer("TEMPORARILY_UNAVAILABLE", account or "*", "Accounts are not enabled on this server")
        return
    mode = hub.config.account_registration
    if mode == "closed":
        answer("TEMPORARILY_UNAVAILABLE", account or "*", "Registration is closed on this server")
        return
    if mode == "after-connect" and not client.registered:
        answer("COMPLETE_CONNECTION_REQUIRED", account or "*", "Register your account once you are connected")
        return
    if client.account is not None:
        answer("ALREADY_AUTHENTICATED", client.account, f"You are already logged in as {client.account}")
        return
    if client.nick is None:
        asked = client.asked_nick
        if asked is not None and account in ("*", asked) and hub.find_client(asked) is not None:
            answer("ACCOUNT_EXISTS", asked, "Someone is using that nick: it cannot be registered from under them")
            return
        answer("NEED_NICK", "*", "Choose a nickname with NICK first: the account is named after it")
        return
    if account != "*" and irc_lower(account) != client.nick_key:
        answer("ACCOUNT_NAME_MUST_BE_NICK", safe_param(account), "Only your current nick can be your account name")
        return
    account = client.nick  # spelled as the nick is
    key = irc_lower(account)
    problem = account_name_error(account)
    if problem is None and key in SERVICE_NICKS:
        problem = "That name belongs to a service"
    if problem is None and GUEST_PATTERN.fullmatch(key):
        problem = "Guest<digits> names are given to users who did not log in; choose another"
    if problem is not None:
        answer("BAD_ACCOUNT_NAME", safe_param(account), problem)
        return
    if email in ("", "*"):
        email = ""
    elif not EMAIL_PATTERN.fullmatch(email):
        answer("INVALID_EMAIL", account, "That is not an email address (give one, or * for none)")
        return
    shortest = hub.config.password_min_length
    if len(password) < shortest:
        answer("WEAK_PASSWORD", account, f"Passwords must be at least {shortest} characters long")
        return
    if not password.isascii() and _SURROGATE_RE.search(password):
        # SCRAM (RFC 5802) keys come from the password as Unicode text: bytes that are not
        # UTF-8 (lone surrogates, see chatd.protocol.framing) have no such form.
        answer("UNACCEPTABLE_PASSWORD", account, "Choose another password (it must be valid UTF-8)")
        return
    if len(password.encode(errors=WIRE)) > MAX_PASSWORD_BYTES or irc_lower(password) == key:
        answer("UNACCEPTABLE_PASSWORD", account, "Choose another password (not your nick, at most 300 bytes)")
        return
    server_password = hub.config.password
    if not client.registered and server_password is not None and client.password != server_password:
        answer("TEMPORARILY_UNAVAILABLE", account, "Give the server password (PASS) before registering")
        return
    if key in accounts.names:
        answer("ACCOUNT_EXISTS", account, "That account name is already registered")
        return
    throttle_key = "register:" + client.host
    now = hub.clock()
    exempt = client.host in hub.config.per_ip_exempt
    if not exempt and accounts.throttled(now, throttle_key):
        answer("TEMPORARILY_UNAVAILABLE", account, "Too many registrations from your address; try again in a minute")
        return
    if not exempt:
        accounts.failed(now, throttle_key)  # every attempt counts: the limit is on creating accounts

    def work() -> AccountRecord | None:
        record = make_record(account, password, email)
        return record if store.create_account(key, record) else None

    def done(record: AccountRecord | None) -> None:
        client.held = False
        if client.gone:
            return
        if record is None:
            answer("ACCOUNT_EXISTS", account, "That account name is already registered")
            return
        account_registered(hub, record.name)  # protected here and on every node
        answer(SUCCESS, record.name, "Account successfully registered")
        log_in(hub, client, record)

    client.held = True
    hub.offload(work, done)


def safe_param(text: str) -> str:
    """A parameter that cannot break the line it goes in (the spec's ``*`` when it would)."""
    return text if text and " " not in text and not text.startswith(":") else "*"
