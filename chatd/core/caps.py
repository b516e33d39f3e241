"""The IRCv3 capabilities chatd offers, and how ``CAP LS`` lists them.

Invariants:
- A capability is listed only when the server does what it promises: those about
  accounts (``ACCOUNT_CAPS``) only when the hub has an account store.
- Values (``sasl=PLAIN,…``) go only to ``CAP LS 302`` clients; older ones get names.
- No ``CAP LS`` line passes 510 bytes: a long list is split over several lines, each
  but the last marked ``*`` (302 clients; older ones get one line, as before 302).
"""

from __future__ import annotations

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "EXTERNAL")

BASE_CAPS = frozenset(
    {
        "away-notify",
        "batch",
        "cap-notify",
        "draft/chathistory",
        "draft/event-playback",
        "draft/message-redaction",
        "echo-message",
        "extended-monitor",
        "invite-notify",
        "labeled-response",
        "message-tags",
        "multi-prefix",
        "server-time",
        "setname",
        "userhost-in-names",
    }
)
ACCOUNT_CAPS = frozenset({"account-notify", "account-tag", "draft/account-registration", "extended-join", "sasl"})
CAP_VALUES = {
    "sasl": ",".join(SASL_MECHANISMS),
    "draft/account-registration": "before-connect",
}
LS_CHUNK = 400
"""Bytes of capabilities per ``CAP LS`` line; with the prefix and ``*`` it stays under 510."""


def supported_caps(accounts: bool, registration: str = "before-connect") -> frozenset[str]:
    """What ``CAP REQ`` may ask for; ``registration`` is the server's ``account_registration``
    (``closed``: no draft/account-registration)."""
    if not accounts:
        return BASE_CAPS
    offered = BASE_CAPS | ACCOUNT_CAPS
    return offered - {"draft/account-registration"} if registration == "closed" else offered


def ls_lines(accounts: bool, version: int, registration: str = "before-connect") -> list[str]:
    """The capability lists of ``CAP LS``, one per line to send (values for 302 clients)."""
    values = dict(CAP_VALUES)
    if registration != "before-connect":
        del values["draft/account-registration"]
    tokens = [
        f"{cap}={values[cap]}" if version >= 302 and cap in values else cap
        for cap in sorted(supported_caps(accounts, registration))
    ]
    if version < 302:
        return [" ".join(tokens)]
    lines: list[str] = []
    current: list[str] = []
    for token in tokens:
        if current and len(" ".join([*current, token])) > LS_CHUNK:
            lines.append(" ".join(current))
            current = []
        current.append(token)
    lines.append(" ".join(current))
    return lines
