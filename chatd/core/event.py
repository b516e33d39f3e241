"""A message to many recipients, encoded at most once per codec.

Recipients differ in what they negotiated: plain clients get a ``name: text``
line, IRC clients get the IRC line with or without the IRCv3 ``time`` tag and
with or without ``msgid`` and client-only tags. Each client carries a small
``codec`` number naming its form; a ``Delivery`` builds the bytes for a codec the
first time a recipient needs it and hands the same ``bytes`` to everyone else
with that codec. The common case — no tags — is encoded eagerly.
"""

from __future__ import annotations

import datetime
from typing import Final

from chatd.protocol.message import format_tags

CODEC_SERVER_TIME: Final = 1
CODEC_MESSAGE_TAGS: Final = 2
CODEC_PLAIN: Final = 4
CODEC_COUNT: Final = 5


def server_time(when: float) -> str:
    """The IRCv3 ``time`` tag value: UTC, millisecond precision, ``Z`` suffix."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Delivery:
    """One relayed message; ``cache[codec]`` is its bytes for that codec once built."""

    __slots__ = ("cache", "client_tags", "line", "msgid", "plain_line", "tags_only", "when")

    def __init__(
        self,
        line: str,
        plain_line: str | None,
        msgid: str,
        when: float,
        client_tags: dict[str, str] | None = None,
        *,
        tags_only: bool = False,
    ) -> None:
        self.line = line
        self.plain_line = plain_line
        self.msgid = msgid
        self.when = when
        self.client_tags = client_tags or {}
        self.tags_only = tags_only
        cache: list[bytes | None] = [None] * CODEC_COUNT
        if not tags_only:
            cache[0] = line.encode() + b"\r\n"
        self.cache = cache

    def data(self, codec: int) -> bytes:
        """The bytes for recipients of ``codec``; ``b""`` when they must get nothing."""
        data = self.cache[codec]
        if data is None:
            data = self.cache[codec] = self._build(codec)
        return data

    def _build(self, codec: int) -> bytes:
        if codec == CODEC_PLAIN:
            return b"" if self.plain_line is None else self.plain_line.encode() + b"\n"
        if self.tags_only and not codec & CODEC_MESSAGE_TAGS:
            return b""  # TAGMSG reaches only clients that understand tags
        tags: dict[str, str] = {}
        if codec & CODEC_SERVER_TIME:
            tags["time"] = server_time(self.when)
        if codec & CODEC_MESSAGE_TAGS:
            tags["msgid"] = self.msgid
            tags.update(self.client_tags)
        if not tags:
            return self.line.encode() + b"\r\n"
        return f"@{format_tags(tags)} {self.line}\r\n".encode()
