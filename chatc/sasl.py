"""The client side of IRCv3 SASL (sasl-3.1), sans-I/O: PLAIN and SCRAM-SHA-256 over ``AUTHENTICATE``.

Invariants:
- Every payload leaves base64-encoded in ``AUTHENTICATE`` lines of at most ``CHUNK_BYTES`` (400)
  characters; a payload whose last chunk is exactly 400 long (or an empty one) ends with
  ``AUTHENTICATE +``, so the server always knows where it ends (sasl-3.1, "chunking").
- A server's challenge is put together the same way, and bounded: one longer than
  ``MAX_CHALLENGE_BYTES`` aborts the exchange rather than growing us.
- The password lives only in ``Credentials`` (whose repr hides it) and in the scramp client; no
  text this module returns for display contains it.
- SCRAM checks the server too: a server-final message with the wrong signature aborts the
  exchange (``AUTHENTICATE *``) instead of accepting a login from a server that does not know the
  password's keys (RFC 5802 section 5: mutual authentication).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Final

from scramp import ScramClient, ScramException

from chatd.protocol.message import format_message

CHUNK_BYTES: Final = 400
MAX_CHALLENGE_BYTES: Final = 8192
SCRAM: Final = "SCRAM-SHA-256"
PLAIN: Final = "PLAIN"
# Strongest first: SCRAM never sends the password, PLAIN does (only safe over TLS).
PREFERRED_MECHANISMS: Final = (SCRAM, PLAIN)


class SaslError(Exception):
    """The exchange cannot go on; the message says why, in words for the user (never the password)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who to log in as. ``password`` is kept out of ``repr`` so no log or traceback shows it."""

    account: str
    password: str = field(repr=False)
    mechanism: str | None = None  # None: the best the server offers (``choose_mechanism``)


def choose_mechanism(
    offered: str | None, refused: frozenset[str] = frozenset(), wanted: str | None = None
) -> str | None:
    """The mechanism to try, given the ``sasl`` capability's value (``PLAIN,SCRAM-SHA-256,EXTERNAL``).

    A server that gives no value (CAP 3.1, or ``sasl`` without ``=``) is tried with PLAIN, which every
    server has; its 908 reply then names the ones it has. None when nothing we know is left. With
    ``wanted`` (``--sasl-mechanism``) only that one is tried.
    """
    names = {name.strip().upper() for name in offered.split(",")} if offered else {PLAIN}
    if not offered and wanted:
        names = {wanted}
    for mechanism in PREFERRED_MECHANISMS if wanted is None else (wanted,):
        if mechanism in names and mechanism not in refused:
            return mechanism
    return None


def authenticate_lines(payload: bytes) -> list[str]:
    """``AUTHENTICATE`` lines carrying ``payload``: base64 in 400-byte chunks, ``+`` where it must end."""
    encoded = base64.b64encode(payload).decode("ascii")
    lines = [format_message("AUTHENTICATE", encoded[start : start + CHUNK_BYTES])
             for start in range(0, len(encoded), CHUNK_BYTES)]  # fmt: skip
    if len(encoded) % CHUNK_BYTES == 0:  # empty, or the last chunk is full: say it ended
        lines.append(format_message("AUTHENTICATE", "+"))
    return lines


class SaslLogin:
    """One SASL exchange on one connection: ``start`` names the mechanism, ``feed`` answers the server.

    One owner (the ``ClientState``); a new connection makes a new one.
    """

    def __init__(self, credentials: Credentials, mechanism: str) -> None:
        self.credentials = credentials
        self.mechanism = mechanism
        self.verified = False  # SCRAM: the server proved it knows the password's keys
        self._incoming = ""
        self._scram: ScramClient | None = None
        self._step = 0

    def start(self) -> list[str]:
        return [format_message("AUTHENTICATE", self.mechanism)]

    def feed(self, chunk: str) -> list[str]:
        """One ``AUTHENTICATE`` parameter from the server; the lines to answer with (none while a chunked
        challenge continues). Raises ``SaslError`` when the exchange must be aborted."""
        if chunk != "+":
            self._incoming += chunk
            if len(self._incoming) > MAX_CHALLENGE_BYTES:
                raise SaslError("the server's SASL challenge is too long")
            if len(chunk) == CHUNK_BYTES:
                return []  # a full chunk: more follows
        encoded, self._incoming = self._incoming, ""
        try:
            challenge = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise SaslError("the server's SASL challenge is not base64") from None
        return authenticate_lines(self._respond(challenge))

    def _respond(self, challenge: bytes) -> bytes:
        account, password = self.credentials.account, self.credentials.password
        if self.mechanism == PLAIN:
            # authzid, authcid, password (RFC 4616); weechat and irssi send the account as both names.
            return f"{account}\0{account}\0{password}".encode()
        self._step += 1
        try:
            if self._step == 1:
                self._scram = ScramClient([SCRAM], account, password)
                return self._scram.get_client_first().encode()
            assert self._scram is not None
            if self._step == 2:
                self._scram.set_server_first(challenge.decode("utf-8"))
                return self._scram.get_client_final().encode()
            if self._step == 3:
                self._scram.set_server_final(challenge.decode("utf-8"))
                self.verified = True
                return b""  # "AUTHENTICATE +": the server then says 903 (ergo waits for it too)
        except (ScramException, ValueError) as exc:  # scramp refuses a step (or a name SASLprep cannot take)
            raise SaslError(f"SCRAM failed: {_scram_reason(exc)}") from None
        except UnicodeDecodeError:
            raise SaslError("the server's SCRAM message is not UTF-8") from None
        raise SaslError("the server sent more SCRAM steps than there are")


def _scram_reason(exc: Exception) -> str:
    """scramp's message, which names the step ("The server signature doesn't match") and never the password."""
    text = str(exc.args[0]) if exc.args else "error"
    return text.rstrip(".")
