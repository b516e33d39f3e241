"""One line from a client, to where it belongs: the channel fast path, plain mode, or a command.

The first line of a connection decides its dialect (``chatd.core.plain.speaks_irc``): a
person's name starts plain mode, an IRC command makes it an IRC client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chatd.core.client import Dialect
from chatd.core.commands import dispatch
from chatd.core.commands.messages import FAST_PREFIXES, relay_to_channel_fast
from chatd.core.plain import handle_plain_line, speaks_irc, start_plain
from chatd.protocol import numerics as n
from chatd.protocol.framing import OVERLONG, decode_line
from chatd.protocol.message import parse

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

log = logging.getLogger("chatd")


def handle_line(hub: Hub, client: Client, raw: bytes | object) -> None:
    """Run one line (``bytes``, or ``OVERLONG`` for one past the limit); an exception ends only
    this client, its traceback logged at debug level."""
    try:
        if raw is OVERLONG:
            hub.reply(client, n.ERR_INPUTTOOLONG, "Input line was too long")
            return
        assert isinstance(raw, bytes)
        if (
            raw.startswith(FAST_PREFIXES)
            and client.registered
            and client.dialect is Dialect.IRC
            and relay_to_channel_fast(hub, client, raw)
        ):
            return
        text = decode_line(raw)
        if client.dialect is Dialect.PLAIN:
            handle_plain_line(hub, client, text)
            return
        message = parse(text)
        if not message.command:
            return
        if client.dialect is Dialect.UNDECIDED:
            if not speaks_irc(message):
                start_plain(hub, client, text)
                return
            client.dialect = Dialect.IRC
        dispatch(hub, client, message)
    except Exception:
        log.debug("error handling a line from %r", client, exc_info=True)
        hub.quit(client, "Internal error")
