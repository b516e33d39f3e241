"""Paging back through IRCv3 ``draft/chathistory``: the requests, and where their answers go.

Invariants (the state's, for this part):
- At most one request per buffer is in flight. Its answer is the ``chathistory`` batch inside the
  ``labeled-response`` batch carrying our label; a server without labeled-response answers in order,
  so it is the next ``chathistory`` batch for that channel.
- An answer's lines are collected, then put into the buffer in one go, oldest first, minus msgids
  already shown, just above the oldest message they precede: the join, topic and names lines of the
  current session stay where they were, so the buffer reads in time order. They are history (muted,
  never unread). An answer shorter than asked means nothing older exists: the buffer says so once,
  above them, and stops asking until ``/clear``.

``HistoryPaging`` is a part of ``ClientState`` kept in its own module; it reads the state's
buffers, capabilities and batches, which ``ClientState.__init__`` creates.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Final

from chatc.buffers import Buffer, BufferLine, BufferModel, HistoryInserted, oldest_message_index
from chatc.events import Event
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

HISTORY_BATCH: Final = "chathistory"
# Internal batch kinds: the answer to our own CHATHISTORY request, and the labeled-response
# batch around it (its "target" is our label).
PAGE_BATCH: Final = "chatc/history-page"
LABELED_BATCH: Final = "labeled-response"
HISTORY_CAP: Final = "draft/chathistory"
# /history without a count, and PageUp at the top of a buffer, ask for this many.
DEFAULT_HISTORY_PAGE: Final = 50
# A server that advertises no CHATHISTORY limit still has one; asking for more than it gives would
# read as "nothing older left". 100 is what chatd (and ergo) allow.
UNADVERTISED_HISTORY_LIMIT: Final = 100


def parse_server_time(value: str | None) -> float | None:
    """The epoch time of an IRCv3 ``time`` tag (``2026-11-26T10:40:00.000Z``), or None if absent or malformed.

    A tag without a zone is taken as UTC, which is what the specification mandates.
    """
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def format_server_time(when: float) -> str:
    """An epoch time as a CHATHISTORY ``timestamp=`` value: UTC, milliseconds (truncated), ``Z``."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class HistoryRefused(Exception):
    """``request_history`` cannot ask now; the message says why, for the user."""


class HistoryPaging:
    """The CHATHISTORY half of ``ClientState`` (see the module invariants)."""

    buffers: dict[str, Buffer]
    model: BufferModel
    caps: set[str]
    clock: Callable[[], float]
    history_limit: int
    msgref_types: frozenset[str]
    _page_requests: dict[str, int]  # buffer key -> how many we asked for
    _page_labels: dict[str, str]  # label -> buffer key, until its answer opens
    _page_lines: dict[str, list[BufferLine]]  # buffer key -> lines of the answer so far
    _page_received: dict[str, int]  # buffer key -> lines the server sent (duplicates too)
    _collecting: list[BufferLine] | None  # where add_line puts lines of an answer
    _label_counter: int
    _line_msgid: str

    def _history_line(self, message: Message, target: str) -> list[Event]:
        raise NotImplementedError  # ClientState shows a replayed line

    def history_pending(self, key: str) -> bool:
        """Whether a CHATHISTORY request for buffer ``key`` awaits its answer."""
        return key in self._page_requests

    def request_history(self, key: str, count: int = DEFAULT_HISTORY_PAGE) -> str:
        """The ``CHATHISTORY BEFORE`` line asking for ``count`` messages older than the top of buffer ``key``.

        The reference is the oldest message shown: its msgid when known (and the server's
        MSGREFTYPES allow it), else its time (``LATEST *`` for a buffer that shows no
        message). ``count`` is capped at the server's ISUPPORT ``CHATHISTORY`` limit (100
        when it names none). The request counts as in flight from now on, so the caller
        must send the line or call ``cancel_history``. Raises ``HistoryRefused`` when the
        server offers no history, the buffer is no joined channel, a request is already
        in flight, or nothing older exists.
        """
        buf = self.buffers.get(key)
        if HISTORY_CAP not in self.caps or "batch" not in self.caps:
            raise HistoryRefused("This server does not offer message history (IRCv3 draft/chathistory)")
        if buf is None or buf.kind != "channel":
            raise HistoryRefused("/history pages back in a channel buffer")
        if not buf.joined:
            raise HistoryRefused(f"Not in {buf.name}: join it to see its history")
        if key in self._page_requests:
            raise HistoryRefused(f"Already fetching history for {buf.name}")
        if buf.history_exhausted:
            raise HistoryRefused(f"Already at the start of the history of {buf.name}")
        count = max(1, min(count, self.history_limit or UNADVERTISED_HISTORY_LIMIT))
        at = oldest_message_index(buf)
        oldest = None if at is None else buf.lines[at]
        if oldest is None:
            params = ["LATEST", buf.name, "*", str(count)]
        elif oldest.msgid and "msgid" in self.msgref_types:
            params = ["BEFORE", buf.name, f"msgid={oldest.msgid}", str(count)]
        else:
            params = ["BEFORE", buf.name, f"timestamp={format_server_time(oldest.time)}", str(count)]
        line = format_message("CHATHISTORY", *params)  # raises ValueError only for a name no server sent
        if "labeled-response" in self.caps:
            self._label_counter += 1
            label = f"chatc-h{self._label_counter}"
            self._page_labels[label] = key
            line = f"@label={label} {line}"
        self._page_requests[key] = count
        return line

    def cancel_history(self, key: str) -> None:
        """Forget the request for buffer ``key`` (its line could not be sent)."""
        self._page_requests.pop(key, None)
        self._page_lines.pop(key, None)
        self._page_received.pop(key, None)
        for label in [label for label, owner in self._page_labels.items() if owner == key]:
            del self._page_labels[label]

    def cancel_all_history(self) -> None:
        """Forget every request: the server knows no CHATHISTORY command, so no answer is coming."""
        for key in list(self._page_requests):
            self.cancel_history(key)

    def history_failed(self, label: str, parent: tuple[str, str] | None) -> str | None:
        """The buffer key of our request that a ``FAIL CHATHISTORY`` answers, that request now ended; None if
        it answers none of ours. ``label`` is the FAIL's own label tag, ``parent`` the batch it came in: a
        labeled-response batch names the request; without labels it answers the oldest request in flight."""
        if not label and parent is not None and parent[0] == LABELED_BATCH:
            label = parent[1]
        key = self._page_labels.get(label) if label else None
        if key is None and not label and "labeled-response" not in self.caps and self._page_requests:
            key = next(iter(self._page_requests))
        if key is not None:
            self.cancel_history(key)
        return key

    def _answer_batch(self, parent: tuple[str, str] | None, target: str) -> tuple[str, str]:
        """A ``chathistory`` batch opening: the answer to our request (PAGE_BATCH and the buffer key),
        or history replayed on join (HISTORY_BATCH and the channel)."""
        if parent is not None and parent[0] == LABELED_BATCH:
            key = self._page_labels.pop(parent[1], None)
            if key is not None and key in self._page_requests:
                self._page_lines[key] = []
                self._page_received[key] = 0
                return PAGE_BATCH, key
        elif "labeled-response" not in self.caps and irc_lower(target) in self._page_requests:
            key = irc_lower(target)  # no labels: the server answers in order, this is ours
            if key not in self._page_lines:
                self._page_lines[key] = []
                self._page_received[key] = 0
                return PAGE_BATCH, key
        return HISTORY_BATCH, target

    def _page_line(self, message: Message, key: str) -> list[Event]:
        """A line of the answer to our CHATHISTORY request: collected, shown when the batch ends."""
        buf = self.buffers.get(key)
        collected = self._page_lines.get(key)
        if buf is None or collected is None:
            return []
        self._page_received[key] = self._page_received.get(key, 0) + 1
        if self._line_msgid and any(line.msgid == self._line_msgid for line in collected):
            return []
        self._collecting = collected
        try:
            self._history_line(message, buf.name)
        finally:
            self._collecting = None
        return []  # nothing new to announce: what was said long ago is no news, even to a script

    def _finish_page(self, key: str) -> None:
        """The answer is complete: the buffer model puts it in (``HistoryInserted`` says where)."""
        asked = self._page_requests.pop(key, 0)
        lines = self._page_lines.pop(key, [])
        received = self._page_received.pop(key, 0)
        if key in self.buffers:
            exhausted = received < asked
            self.model.apply(HistoryInserted(key, tuple(lines), exhausted, self.clock() if exhausted else 0.0))
