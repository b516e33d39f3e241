"""IRCv3 capability negotiation (``CAP``), sans-I/O: CAP lines in, lines to send and notes out.

Invariants:
- Negotiation never stalls registration: ``CAP LS 302`` goes out with NICK/USER, so a server that
  does not know CAP registers us anyway (001, or 421 for CAP, ends the negotiation), and one that
  does gets ``CAP END`` once every REQ has its ACK or NAK.
- ``enabled`` holds only what the server acknowledged on this connection; ``reset`` (a new
  connection) empties it and ``offered``. Both sets are changed in place, never replaced, so a
  reference to them stays current.
- A CAP LS reply continued forever cannot grow us: names past ``MAX_CAP_NAMES`` are not collected.
- ``CAP END`` waits while ``held`` (a SASL login in flight, see ``chatc/accounts.py``): an
  acknowledged ``sasl`` in ``extra_wanted`` holds it, and ``release`` (the login's end) lets it go.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from chatc.events import Event, send_line
from chatd.protocol.message import Message, format_message

# The IRCv3 capabilities chatc knows how to use; it asks for those the server offers.
WANTED_CAPS: Final = frozenset(
    {
        "account-notify", "away-notify", "batch", "cap-notify", "draft/chathistory", "draft/message-redaction",
        "echo-message", "labeled-response", "message-tags", "multi-prefix", "server-time",
    }
)  # fmt: skip
MAX_CAP_NAMES: Final = 256


class CapNegotiation:
    """What one connection negotiated, and the REQs still unanswered. One owner: the ``ClientState``."""

    def __init__(self) -> None:
        self.enabled: set[str] = set()  # acknowledged by the server on this connection
        self.offered: set[str] = set()
        self.values: dict[str, str] = {}  # CAP LS 302 values: "sasl" -> "PLAIN,SCRAM-SHA-256"
        self.extra_wanted: set[str] = set()  # asked for on top of WANTED_CAPS ("sasl" with --sasl)
        self.held = False  # CAP END waits: a SASL login is in flight
        self.negotiating = False
        self._ls_incoming: list[str] = []
        self._ls_values: dict[str, str] = {}
        self._requests_pending = 0

    def reset(self) -> None:
        """Forget what the last connection negotiated: a new session (maybe another server) starts bare."""
        self.enabled.clear()
        self.offered.clear()
        self.values.clear()
        self.held = False
        self.negotiating = False
        self._ls_incoming.clear()
        self._ls_values.clear()
        self._requests_pending = 0

    def start(self) -> str:
        """The ``CAP LS 302`` that opens negotiation on a new connection (after a ``reset``)."""
        self.reset()
        self.negotiating = True
        return format_message("CAP", "LS", "302")

    def stop(self) -> None:
        """Registered, or the server knows no CAP: whatever was not negotiated by now never will be."""
        self.negotiating = False

    def end(self, registered: bool) -> list[str]:
        """``CAP END`` if negotiation is still open (the connection's timeout for a server that never
        answers a REQ); an empty list otherwise."""
        if not self.negotiating or registered:
            return []
        self.negotiating = False
        self.held = False
        self._requests_pending = 0
        return [format_message("CAP", "END")]

    def release(self, registered: bool) -> list[Event]:
        """The login that held ``CAP END`` is over: ``CAP END`` now if nothing else is outstanding."""
        self.held = False
        return self._maybe_end(registered)

    def handle(self, message: Message, registered: bool) -> tuple[list[Event], str]:
        """CAP LS/ACK/NAK/NEW/DEL: the lines to send (a REQ for what we use, ``CAP END`` once every REQ is
        answered) and a note for the server buffer ("" for none)."""
        sub = message.param(1).upper()
        args = message.params[2:]
        more = len(args) > 1 and args[0] == "*"  # a multi-line CAP LS 302 reply continues
        # "sasl=PLAIN,EXTERNAL" offers a value; "~"/"=" are CAP 3.1 modifiers; "-" in an ACK removes.
        tokens = [token.lstrip("~=").partition("=") for token in (args[-1] if args else "").split()]
        names = [name for name, _, _ in tokens]
        if sub == "LS":
            room = MAX_CAP_NAMES - len(self._ls_incoming)
            self._ls_incoming.extend(names[:room])
            self._ls_values.update((name, value) for name, _, value in tokens[:room] if value)
            if more:
                return [], ""
            self.offered.clear()
            self.offered.update(self._ls_incoming)
            self.values.clear()
            self.values.update(self._ls_values)
            self._ls_incoming.clear()
            self._ls_values.clear()
            if not self.negotiating:
                return [], ""  # a /quote CAP LS later on: nothing to negotiate
            return self._request(self.offered) or self._maybe_end(registered), ""
        if sub == "ACK":
            for name in names:
                if name.startswith("-"):
                    self.enabled.discard(name[1:])
                else:
                    self.enabled.add(name)
                    if name == "sasl" and name in self.extra_wanted and self.negotiating and not registered:
                        self.held = True  # the login runs before CAP END (sasl-3.1)
            self._requests_pending = max(0, self._requests_pending - 1)
            return self._maybe_end(registered), "Capabilities enabled: " + " ".join(names)
        if sub == "NAK":
            self._requests_pending = max(0, self._requests_pending - 1)
            return self._maybe_end(registered), "Capabilities refused: " + " ".join(names)
        if sub == "NEW":
            self.offered.update(names)
            self.values.update((name, value) for name, _, value in tokens if value)
            return self._request(names), ""
        if sub == "DEL":
            self.offered.difference_update(names)
            self.enabled.difference_update(names)
            return [], "Capabilities withdrawn: " + " ".join(names)
        return [], ""

    def _request(self, offered: Iterable[str]) -> list[Event]:
        """One ``CAP REQ`` for the wanted capabilities among ``offered`` that are not on yet (or nothing)."""
        wanted = sorted(name for name in set(offered) & (WANTED_CAPS | self.extra_wanted) if name not in self.enabled)
        if not wanted:
            return []
        self._requests_pending += 1
        return send_line("CAP", "REQ", " ".join(wanted))

    def _maybe_end(self, registered: bool) -> list[Event]:
        if not self.negotiating or self._requests_pending or self.held or registered:
            return []
        self.negotiating = False
        return send_line("CAP", "END")
