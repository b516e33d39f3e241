"""A message to many recipients, encoded at most once per codec.

Recipients differ in what they negotiated: plain clients get a ``name: text``
line, IRC clients get the IRC line with or without the IRCv3 ``time`` tag and
with or without ``msgid`` and client-only tags, with or without the sender's
``account`` tag (account-tag), and a JOIN in its short or its extended-join form.
Each client carries a small ``codec`` number naming its form (a bit per capability
that changes the bytes); a ``Delivery`` builds the bytes for a codec the first time
a recipient needs it and hands the same ``bytes`` to everyone else with that codec.
The common case — no tags — is encoded eagerly.

A bit that changes nothing for this message (account-tag when the sender is not
logged in, extended-join on anything but a JOIN) gives the very bytes of the codec
without it, so a client with such a cap costs one list lookup more, once per message.
"""

from __future__ import annotations

import datetime
from typing import Final

from chatd.protocol.framing import WIRE
from chatd.protocol.message import format_tags

CODEC_SERVER_TIME: Final = 1
CODEC_MESSAGE_TAGS: Final = 2
CODEC_ACCOUNT_TAG: Final = 4
CODEC_EXTENDED_JOIN: Final = 8
CODEC_PLAIN: Final = 16
CODEC_COUNT: Final = 17

CAP_CODEC_BITS: Final = (
    ("server-time", CODEC_SERVER_TIME),
    ("message-tags", CODEC_MESSAGE_TAGS),
    ("account-tag", CODEC_ACCOUNT_TAG),
    ("extended-join", CODEC_EXTENDED_JOIN),
)
"""The capabilities that change the bytes an IRC client is sent, and the codec bit of each."""


def codec_for(caps: set[str]) -> int:
    """The codec of an IRC client that negotiated ``caps``."""
    return sum(bit for cap, bit in CAP_CODEC_BITS if cap in caps)


def server_time(when: float) -> str:
    """The IRCv3 ``time`` tag value: UTC, millisecond precision, ``Z`` suffix."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Delivery:
    """One relayed message; ``cache[codec]`` is its bytes for that codec once built."""

    __slots__ = (
        "account",
        "cache",
        "client_tags",
        "extended_line",
        "line",
        "msgid",
        "plain_line",
        "tags_only",
        "when",
    )

    def __init__(
        self,
        line: str,
        plain_line: str | None,
        msgid: str,
        when: float,
        client_tags: dict[str, str] | None = None,
        *,
        tags_only: bool = False,
        account: str | None = None,
    ) -> None:
        self.line = line
        self.account = account
        """The sender's account when it is a logged-in user (the ``account`` tag), else None."""
        self.extended_line: str | None = None
        """A JOIN's extended-join form (``JOIN #chan <account|*> :<realname>``), set by
        ``chatd.core.attribution.announce_join`` before the event is delivered; None otherwise."""
        self.plain_line = plain_line
        self.msgid = msgid
        self.when = when
        self.client_tags = client_tags or {}
        self.tags_only = tags_only
        cache: list[bytes | None] = [None] * CODEC_COUNT
        if not tags_only:
            cache[0] = line.encode(errors=WIRE) + b"\r\n"
        self.cache = cache

    def data(self, codec: int) -> bytes:
        """The bytes for recipients of ``codec``; ``b""`` when they must get nothing."""
        data = self.cache[codec]
        if data is None:
            data = self.cache[codec] = self._build(codec)
        return data

    def _build(self, codec: int) -> bytes:
        if codec == CODEC_PLAIN:
            return b"" if self.plain_line is None else self.plain_line.encode(errors=WIRE) + b"\n"
        if codec & CODEC_EXTENDED_JOIN and self.extended_line is None:
            return self.data(codec & ~CODEC_EXTENDED_JOIN)
        if codec & CODEC_ACCOUNT_TAG and self.account is None:
            return self.data(codec & ~CODEC_ACCOUNT_TAG)
        if self.tags_only and not codec & CODEC_MESSAGE_TAGS:
            return b""  # TAGMSG reaches only clients that understand tags
        line = self.extended_line if codec & CODEC_EXTENDED_JOIN else self.line
        assert line is not None
        tags: dict[str, str] = {}
        if codec & CODEC_SERVER_TIME:
            tags["time"] = server_time(self.when)
        if codec & CODEC_ACCOUNT_TAG:
            tags["account"] = self.account or ""
        if codec & CODEC_MESSAGE_TAGS:
            tags["msgid"] = self.msgid
            tags.update(self.client_tags)
        if not tags:
            return line.encode(errors=WIRE) + b"\r\n"
        return f"@{format_tags(tags)} {line}\r\n".encode(errors=WIRE)
