"""SASL as IRCv3 sasl-3.1 has it: the payload framing of ``AUTHENTICATE`` and the mechanisms
PLAIN, SCRAM-SHA-256 (``scramp``'s server side) and EXTERNAL (the TLS client certificate).

Invariants:
- A client has at most one exchange, ``Client.sasl``, from ``AUTHENTICATE <mechanism>``
  until it succeeds (900, 903), fails (904, 905), is aborted (906) or registration
  completes under it (906). ``Client.sasl`` is cleared before that last numeric is sent,
  so a new ``AUTHENTICATE`` always starts afresh.
- The store is touched only in ``Hub.offload`` work, and the client is ``held`` while it
  runs: its following lines (more ``AUTHENTICATE``, ``CAP END``, ``NICK``) wait, so one
  check is in flight at a time and 001 never comes before the 903 it waited for.
- Work handed to the offload never raises (it returns what went wrong instead): an
  exception there would leave the client held for good.
- A payload is base64 in chunks of 400 bytes; a chunk of exactly 400 means more follows,
  ``+`` ends a payload that is a multiple of 400 (or empty). Chunks past 400 bytes, or a
  payload past ``MAX_PAYLOAD_BYTES``, end the exchange with 905. The server's challenges
  are chunked the same way (``challenge_lines``).
- Failed password checks count against the account and the address
  (``Accounts.failed``); past the limit an attempt is refused before any check, with a
  904 that says so. No password, nor any part of a payload, is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import scramp

from chatd.core.accounts import (
    SCRAM_ITERATIONS,
    SCRAM_MECHANISM,
    Outcome,
    check_password,
    log_in,
    throttle_keys,
)
from chatd.core.caps import SASL_MECHANISMS
from chatd.core.ports import AccountRecord, AccountStore
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

log = logging.getLogger("chatd")

CHUNK_BYTES = 400
MAX_PAYLOAD_BYTES = 8192
"""Base64 bytes of one client response, all chunks together: far more than any of our
mechanisms needs, small enough that a client cannot make the server hold much."""

THROTTLED = "Too many failed login attempts; try again in a minute"
INVALID = "Invalid account name or password"
AFTER_REGISTRATION = ("PLAIN", "EXTERNAL")
"""Mechanisms a registered client may still use (as ergo: one step each, no conversation)."""


class SaslError(Exception):
    """A response that ends the exchange: the numeric and its text."""

    def __init__(self, numeric: str, text: str) -> None:
        super().__init__(text)
        self.numeric = numeric
        self.text = text


@dataclass(slots=True)
class SaslAttempt:
    """One client's exchange: its mechanism, the chunks of the response so far, SCRAM's state."""

    mechanism: str
    chunks: list[str]
    size: int = 0
    scram: scramp.core.ScramServer | None = None
    record: AccountRecord | None = None
    account: str = ""
    stage: str = "first"

    def add(self, chunk: str) -> bytes | None:
        """Take one ``AUTHENTICATE`` parameter: the decoded response once complete, None while
        more is to come. Raises ``SaslError`` (905 a chunk too long, 904 a whole
        response too long or bad base64)."""
        if chunk != "+":
            if len(chunk) > CHUNK_BYTES:
                raise SaslError(n.ERR_SASLTOOLONG, "SASL message too long")
            self.size += len(chunk)
            if self.size > MAX_PAYLOAD_BYTES:  # 905 is for one chunk over 400 bytes; the whole is a failure
                raise SaslError(n.ERR_SASLFAIL, f"SASL message too long (more than {MAX_PAYLOAD_BYTES} bytes)")
            self.chunks.append(chunk)
            if len(chunk) == CHUNK_BYTES:
                return None
        text = "".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SaslError(n.ERR_SASLFAIL, "SASL authentication failed: Invalid base64 encoding") from None


def challenge_lines(server: str, payload: bytes) -> list[str]:
    """``AUTHENTICATE`` lines carrying ``payload`` to a client, in 400-byte chunks (``+`` when
    empty, or after a last chunk of exactly 400)."""
    text = base64.b64encode(payload).decode()
    chunks = [text[i : i + CHUNK_BYTES] for i in range(0, len(text), CHUNK_BYTES)]
    if not chunks or len(chunks[-1]) == CHUNK_BYTES:
        chunks.append("+")
    return [format_message("AUTHENTICATE", chunk, source=server) for chunk in chunks]


def start(hub: Hub, client: Client, mechanism: str) -> None:
    """``AUTHENTICATE <mechanism>`` with no exchange under way: begin one, or refuse (908, 904)."""
    if mechanism not in SASL_MECHANISMS:
        hub.reply(client, n.RPL_SASLMECHS, ",".join(SASL_MECHANISMS), "are available SASL mechanisms")
        fail(hub, client, f"Unknown mechanism {mechanism}")
        return
    if client.registered and mechanism not in AFTER_REGISTRATION:
        fail(hub, client, f"{mechanism} is only allowed before connection registration")
        return
    client.sasl = SaslAttempt(mechanism, [])
    hub.send_line(client, format_message("AUTHENTICATE", "+", source=hub.config.name))


def respond(hub: Hub, client: Client, attempt: SaslAttempt, chunk: str) -> None:
    """One chunk of the client's response: once the response is whole, the mechanism's step."""
    try:
        response = attempt.add(chunk)
    except SaslError as error:
        client.sasl = None
        hub.reply(client, error.numeric, error.text)
        return
    if response is None:
        return
    step = _STEPS[attempt.mechanism]
    step(hub, client, attempt, response)


def abort(hub: Hub, client: Client) -> None:
    """``AUTHENTICATE *``, or registration completing mid-exchange: 906, and nothing kept."""
    client.sasl = None
    hub.reply(client, n.ERR_SASLABORTED, "SASL authentication aborted")


def fail(hub: Hub, client: Client, reason: str) -> None:
    client.sasl = None
    hub.reply(client, n.ERR_SASLFAIL, f"SASL authentication failed: {reason}")


def succeed(hub: Hub, client: Client, record: AccountRecord) -> None:
    client.sasl = None
    log_in(hub, client, record)
    hub.reply(client, n.RPL_SASLSUCCESS, "SASL authentication successful")


# ---- PLAIN (RFC 4616): [authzid] NUL authcid NUL password ---------------------------------


def _plain(hub: Hub, client: Client, attempt: SaslAttempt, response: bytes) -> None:
    parts = response.split(b"\0")
    if len(parts) != 3:
        fail(hub, client, "Invalid PLAIN message")
        return
    try:
        authzid, authcid, password = (part.decode() for part in parts)
    except UnicodeDecodeError:
        fail(hub, client, "Invalid PLAIN message")
        return
    if authzid and irc_lower(authzid) != irc_lower(authcid):
        fail(hub, client, "authzid and authcid should be the same")
        return
    if not authcid:
        fail(hub, client, INVALID)
        return

    def then(outcome: Outcome) -> None:
        if client.gone or client.sasl is not attempt:
            return
        if outcome.record is None:
            fail(hub, client, outcome.reason)
        else:
            succeed(hub, client, outcome.record)

    check_password(hub, client, authcid, password, then)


# ---- SCRAM-SHA-256 (RFC 5802, RFC 7677) with scramp's server side -------------------------


_SECRET = os.urandom(32)
"""Per process: the made-up SCRAM keys of accounts that do not exist come from it, so such an
account gets the same salt on every try and looks like any other to a prober."""


def _unknown_account_keys(name: str) -> tuple[bytes, bytes, bytes, int]:
    digest = hashlib.sha256(_SECRET + irc_lower(name).encode()).digest()
    return digest[:16], os.urandom(32), os.urandom(32), SCRAM_ITERATIONS


def _scram(hub: Hub, client: Client, attempt: SaslAttempt, response: bytes) -> None:
    try:
        text = response.decode()
    except UnicodeDecodeError:
        fail(hub, client, "Invalid SCRAM message")
        return
    if attempt.stage == "first":
        _scram_first(hub, client, attempt, text)
    elif attempt.stage == "final":
        _scram_final(hub, client, attempt, text)
    elif text:  # after the server's final message, only an empty response ends the exchange
        fail(hub, client, "Unexpected SCRAM message")
    elif attempt.record is None:
        fail(hub, client, INVALID)
    else:
        succeed(hub, client, attempt.record)


def _scram_first(hub: Hub, client: Client, attempt: SaslAttempt, text: str) -> None:
    store = hub.accounts.store
    if store is None or hub.accounts.throttled(hub.clock(), "host:" + client.host):
        fail(hub, client, THROTTLED if store is not None else "Accounts are not enabled on this server")
        return
    found: list[AccountRecord | None] = []

    def auth_info(name: str) -> tuple[bytes, bytes, bytes, int]:
        record = store.account(irc_lower(name))
        found.append(record)
        if record is None:
            return _unknown_account_keys(name)
        return record.scram_salt, record.scram_stored_key, record.scram_server_key, record.scram_iterations

    server = scramp.ScramMechanism(SCRAM_MECHANISM).make_server(auth_info)

    def work() -> tuple[str | None, str]:
        """The server-first message (or None) and the account name, or why not."""
        try:
            server.set_client_first(text)
            return server.get_server_first(), server.client_first_bare
        except scramp.ScramException as error:
            return None, str(error)
        except Exception:  # a store failure or a malformed message scramp did not expect
            log.exception("SCRAM first step failed")
            return None, "Invalid SCRAM message"

    def then(result: tuple[str | None, str]) -> None:
        client.held = False
        if client.gone or client.sasl is not attempt:
            return
        server_first, detail = result
        if server_first is None or not found:
            fail(hub, client, detail)
            return
        attempt.record = found[0]
        attempt.account = _scram_username(detail)
        if hub.accounts.throttled(hub.clock(), *throttle_keys(client, attempt.account)):
            fail(hub, client, THROTTLED)
            return
        attempt.scram = server
        attempt.stage = "final"
        for line in challenge_lines(hub.config.name, server_first.encode()):
            hub.send_line(client, line)

    client.held = True
    hub.offload(work, then)


def _scram_username(client_first_bare: str) -> str:
    for field in client_first_bare.split(","):
        if field.startswith("n="):
            return field[2:].replace("=2C", ",").replace("=3D", "=")
    return ""


def _scram_final(hub: Hub, client: Client, attempt: SaslAttempt, text: str) -> None:
    """Check the client's proof: a few HMACs over keys already loaded, so on the loop."""
    server = attempt.scram
    assert server is not None
    try:
        server.set_client_final(text)
        server_final = server.get_server_final()
    except Exception:  # ScramException (a wrong proof), or a malformed message
        hub.accounts.failed(hub.clock(), *throttle_keys(client, attempt.account))
        fail(hub, client, INVALID)
        return
    if attempt.record is None:
        fail(hub, client, INVALID)
        return
    attempt.stage = "done"
    for line in challenge_lines(hub.config.name, server_final.encode()):
        hub.send_line(client, line)


# ---- EXTERNAL (RFC 4422 appendix A): the TLS client certificate ---------------------------


def _external(hub: Hub, client: Client, attempt: SaslAttempt, response: bytes) -> None:
    store = hub.accounts.store
    certfp = client.certfp
    if certfp is None or store is None:
        fail(hub, client, "No client certificate presented (connect with TLS and a certificate)")
        return
    try:
        authzid = response.decode()
    except UnicodeDecodeError:
        fail(hub, client, "Invalid authzid")
        return

    def work() -> AccountRecord | Exception | None:
        try:
            return store.account_by_certfp(certfp)
        except Exception as error:
            log.exception("certificate lookup failed")
            return error

    def then(result: AccountRecord | Exception | None) -> None:
        client.held = False
        if client.gone or client.sasl is not attempt:
            return
        if isinstance(result, Exception):
            fail(hub, client, "Unknown error")
        elif result is None:
            fail(hub, client, "This certificate is not registered to any account")
        elif authzid and irc_lower(authzid) != irc_lower(result.name):
            fail(hub, client, "This certificate belongs to another account")
        else:
            succeed(hub, client, result)

    client.held = True
    hub.offload(work, then)


def add_certfp(store: AccountStore, key: str, certfp: str) -> bool:
    """Let the certificate ``certfp`` (SHA-256 hex) log in to account ``key`` by EXTERNAL.

    Blocks on the store: call it only inside ``Hub.offload`` work (NickServ CERT ADD). False
    when there is no such account or the certificate already belongs to another one.
    """
    certfp = certfp.lower()
    holder = store.account_by_certfp(certfp)
    record = store.account(key)
    if record is None or (holder is not None and irc_lower(holder.name) != key):
        return False
    if certfp not in record.certfps:
        store.update_account(key, replace(record, certfps=(*record.certfps, certfp)))
    return True


_STEPS: dict[str, Callable[[Hub, Client, SaslAttempt, bytes], None]] = {
    "PLAIN": _plain,
    SCRAM_MECHANISM: _scram,
    "EXTERNAL": _external,
}
