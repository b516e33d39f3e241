"""NickServ: register, identify, and protect nicks (``/msg NickServ HELP``), as ergo's NickServ.

Invariants:
- Every answer is a NOTICE from NickServ (``Service.tell``); a password given to it
  is never repeated, logged or kept.
- Logging in goes through ``check_password`` (throttled, off the loop) and ends in
  ``log_in``; creating an account through ``chatd.core.signup``; every other store call
  runs inside ``hub.offload`` with the client held, so its next lines wait in order.
- GHOST and REGAIN end only a session that does not own the nick: one not logged in to
  the nick's account, or one of the asker's own account (a stale session).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from chatd.core.accounts import Outcome, check_password, log_in, with_password
from chatd.core.enforcement import owner_of
from chatd.core.network import account_dropped
from chatd.core.ports import AccountRecord
from chatd.core.signup import SUCCESS, register_account
from chatd.core.users import change_nick
from chatd.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub
    from chatd.core.services import Service

Handler = Callable[["Hub", "Client", "Service", list[str]], None]
"""A command: (hub, sender, NickServ, the words after the command; at least as many as its table entry says)."""
FINGERPRINT = re.compile(r"[0-9a-f]{64}")
MAX_CERTFPS = 8


def handle(hub: Hub, client: Client, service: Service, text: str) -> None:
    words = text.split()
    if not words:
        service.tell(hub, client, "Say HELP for the list of commands")
        return
    name = words[0].upper()
    entry = COMMANDS.get(name)
    if entry is None:
        service.tell(hub, client, f"Unknown command {words[0][:32]}. Say HELP for the list of commands")
        return
    handler, needed, syntax, _ = entry
    if hub.accounts.store is None and name != "HELP":
        service.tell(hub, client, "Accounts are not enabled on this server")
        return
    if len(words) - 1 < needed:
        service.tell(hub, client, f"Syntax: {syntax}")
        return
    handler(hub, client, service, words[1:])


def _offload(hub: Hub, client: Client, work: Callable[[], object], then: Callable[[object], None]) -> None:
    """Run store ``work`` off the loop with the client held; ``then`` only if it is still here."""

    def done(result: object) -> None:
        client.held = False
        if not client.gone:
            then(result)

    client.held = True
    hub.offload(work, done)


# REGISTER <password> [email]
def ns_register(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    password, email = args[0], args[1] if len(args) > 1 else ""

    def answer(code: str, account: str, text: str) -> None:
        if code == SUCCESS:
            service.tell(hub, client, f"Account {account} registered; you are now logged in to it")
        else:
            service.tell(hub, client, f"Registration failed: {text}")

    register_account(hub, client, client.nick or "*", email, password, answer)


# IDENTIFY [account] <password>
def ns_identify(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    if client.account is not None:
        service.tell(hub, client, f"You are already logged in as {client.account}")
        return
    account, password = (args[0], args[1]) if len(args) > 1 else (client.nick or "*", args[0])
    _identify(hub, client, service, account, password)


def _identify(
    hub: Hub, client: Client, service: Service, account: str, password: str, after: Callable[[], None] | None = None
) -> None:
    """Check the password off the loop; logged in, say so and go on with ``after``."""

    def then(outcome: Outcome) -> None:
        if client.gone:
            return
        if outcome.record is None:
            service.tell(hub, client, f"Authentication failed: {outcome.reason}")
            return
        log_in(hub, client, outcome.record)
        service.tell(hub, client, f"You are now logged in as {outcome.record.name}")
        if after is not None:
            after()

    check_password(hub, client, account, password, then)


# GHOST <nick> [password]
def ns_ghost(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    _free_nick(hub, client, service, args, take=False)


# REGAIN <nick> [password]
def ns_regain(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    _free_nick(hub, client, service, args, take=True)


def _free_nick(hub: Hub, client: Client, service: Service, args: list[str], *, take: bool) -> None:
    """GHOST/REGAIN: end the session on ``nick`` that does not own it; REGAIN then takes it.

    Allowed to a client logged in to the nick's account, or (GHOST) to the account of the
    session on it; a password logs the asker in to the nick's account first.
    """
    nick = args[0]
    holder = hub.find_client(nick)
    owner = owner_of(hub, nick)
    if holder is client:
        service.tell(hub, client, "That is you already" if take else "You can't GHOST yourself (try /QUIT instead)")
        return
    if holder is None and not take:
        service.tell(hub, client, f"No one is using {nick}")
        return
    if len(args) > 1 and client.account is None:
        if owner is None:
            service.tell(hub, client, f"{nick} is not registered")
            return
        _identify(hub, client, service, owner, args[1], lambda: _free_nick(hub, client, service, args[:1], take=take))
        return
    mine = client.account is not None and (
        (owner is not None and irc_lower(owner) == irc_lower(client.account))
        or (holder is not None and not take and holder.account == client.account)
    )
    if not mine:
        service.tell(hub, client, f"You don't own {nick} (log in to its account first)")
        return

    def take_nick() -> None:
        taking = take and client.registered and not client.gone and client.nick != nick
        if taking and (hub.cluster is None or not hub.cluster.request_nick(client, nick)):
            change_nick(hub, client, nick)

    if holder is not None and holder.node is not None and hub.cluster is not None:
        # A session on another node: its node ends it, and the nick is taken once it is gone.
        hub.cluster.ghost(client, holder, f"GHOSTed by {client.nick}", take_nick)
        service.tell(hub, client, f"{nick} has been ghosted")
        return
    if holder is not None:
        hub.quit(holder, f"GHOSTed by {client.nick}")
        service.tell(hub, client, f"{nick} has been ghosted")
    take_nick()


# DROP [account] <password>
def ns_drop(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    account, password = (args[0], args[1]) if len(args) > 1 else (client.account or client.nick or "*", args[0])
    store = hub.accounts.store
    assert store is not None

    def then(outcome: Outcome) -> None:
        record = outcome.record
        if record is None:
            service.tell(hub, client, f"Not dropped: {outcome.reason}")
            return
        key = irc_lower(record.name)

        def dropped(_: object) -> None:
            account_dropped(hub, record.name)  # its sessions logged out here and on every node
            service.tell(hub, client, f"The account {record.name} has been dropped")

        _offload(hub, client, lambda: store.drop_account(key), dropped)

    check_password(hub, client, account, password, then)


# INFO [account]
def ns_info(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    name = args[0] if args else client.account or client.nick or "*"
    store = hub.accounts.store
    assert store is not None
    key = irc_lower(name)

    def then(result: object) -> None:
        if not isinstance(result, AccountRecord):
            service.tell(hub, client, f"{name} is not registered")
            return
        when = datetime.datetime.fromtimestamp(result.registered_at, datetime.UTC)
        service.tell(hub, client, f"Account: {result.name}")
        service.tell(hub, client, f"Registered: {when:%Y-%m-%d %H:%M:%S} UTC")
        if client.account == result.name:
            service.tell(hub, client, f"Email: {result.email or '(none)'}")
            service.tell(hub, client, f"Certificates: {len(result.certfps)}")

    _offload(hub, client, lambda: store.account(key), then)


# SET PASSWORD <new password>
def ns_set(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    if args[0].upper() != "PASSWORD" or len(args) < 2:
        service.tell(hub, client, "Syntax: SET PASSWORD <new password>")
        return
    account, password = client.account, args[1]
    if account is None:
        service.tell(hub, client, "You are not logged in")
        return
    if len(password) < hub.config.password_min_length:
        service.tell(hub, client, f"Passwords must be at least {hub.config.password_min_length} characters long")
        return
    store = hub.accounts.store
    assert store is not None
    key = irc_lower(account)

    def work() -> bool:
        record = store.account(key)
        if record is None:
            return False
        store.update_account(key, with_password(record, password))
        return True

    def then(changed: object) -> None:
        service.tell(hub, client, "Password changed" if changed else f"The account {account} no longer exists")

    _offload(hub, client, work, then)


# CERT ADD [fingerprint] | CERT DEL <fingerprint> | CERT LIST
def ns_cert(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    action = args[0].upper()
    account = client.account
    if account is None:
        service.tell(hub, client, "You are not logged in")
        return
    if action not in ("ADD", "DEL", "LIST"):
        service.tell(hub, client, "Syntax: CERT ADD [fingerprint] | CERT DEL <fingerprint> | CERT LIST")
        return
    given = args[1] if len(args) > 1 else client.certfp if action == "ADD" else None
    fingerprint = None if given is None else given.replace(":", "").lower()
    if action != "LIST" and (fingerprint is None or not FINGERPRINT.fullmatch(fingerprint)):
        if given is None and action == "ADD":
            service.tell(hub, client, "You have no TLS client certificate: give its SHA-256 fingerprint")
        else:
            service.tell(hub, client, "A fingerprint is the certificate's SHA-256 digest in hex (64 digits)")
        return
    store = hub.accounts.store
    assert store is not None
    key = irc_lower(account)

    def work() -> str | tuple[str, ...]:
        record = store.account(key)
        if record is None:
            return f"The account {account} no longer exists"
        certfps = record.certfps
        if action == "LIST":
            return certfps
        assert fingerprint is not None
        if action == "ADD":
            holder = store.account_by_certfp(fingerprint)
            if holder is not None:
                whose = "your account" if holder.name == record.name else "another account"
                return f"That certificate is already on {whose}"
            if len(certfps) >= MAX_CERTFPS:
                return f"An account has at most {MAX_CERTFPS} certificates"
            certfps = (*certfps, fingerprint)
        elif fingerprint not in certfps:
            return "That certificate is not on your account"
        else:
            certfps = tuple(fp for fp in certfps if fp != fingerprint)
        store.update_account(key, replace(record, certfps=certfps))
        return f"Certificate {'added to' if action == 'ADD' else 'removed from'} {record.name}: {fingerprint}"

    def then(result: object) -> None:
        if isinstance(result, tuple):
            service.tell(hub, client, f"{len(result)} certificate(s) on {account}")
            for fp in result:
                service.tell(hub, client, f"  {fp}")
        else:
            service.tell(hub, client, str(result))

    _offload(hub, client, work, then)


# HELP [command]
def ns_help(hub: Hub, client: Client, service: Service, args: list[str]) -> None:
    if args:
        entry = COMMANDS.get(args[0].upper())
        if entry is None:
            service.tell(hub, client, f"No help for {args[0][:32]}: say HELP for the list of commands")
            return
        service.tell(hub, client, f"Syntax: {entry[2]}")
        service.tell(hub, client, entry[3])
        return
    service.tell(hub, client, "NickServ registers accounts and protects their nicks. Commands:")
    for _, _, syntax, text in COMMANDS.values():
        service.tell(hub, client, f"  {syntax} - {text}")
    service.tell(hub, client, "Say HELP <command> for one of them. Clients may also use SASL or REGISTER.")


COMMANDS: dict[str, tuple[Handler, int, str, str]] = {
    "REGISTER": (ns_register, 1, "REGISTER <password> [email]", "register an account named after your nick"),
    "IDENTIFY": (ns_identify, 1, "IDENTIFY [account] <password>", "log in (to the account of your nick by default)"),
    "GHOST": (ns_ghost, 1, "GHOST <nick> [password]", "disconnect a session that uses your nick without owning it"),
    "REGAIN": (ns_regain, 1, "REGAIN <nick> [password]", "ghost whoever uses your nick, then take it"),
    "DROP": (ns_drop, 1, "DROP [account] <password>", "delete an account for good; its sessions are logged out"),
    "INFO": (ns_info, 0, "INFO [account]", "when an account was registered (and, for yours, its email)"),
    "SET": (ns_set, 1, "SET PASSWORD <new password>", "change the password of the account you are logged in to"),
    "CERT": (ns_cert, 1, "CERT ADD|DEL|LIST [fingerprint]", "TLS client certificates that log you in (SASL EXTERNAL)"),
    "HELP": (ns_help, 0, "HELP [command]", "this list, or how to use one command"),
}
