"""IRCv3 labeled-response: the reply to a labeled command is collected, then sent labeled.

While a labeled command runs (``run_labeled``), everything sent to its client through
``Client.send`` is kept in the client's ``reply_capture`` instead of its transport —
as ergo's ResponseBuffer holds a command's replies. The transport is never swapped.
Fan-out to a channel the client is in leaves the client out of the backend's fast
loop and sends its copy through ``Client.send`` (``Hub.send_to_channel``), so its own
JOIN, PART or MODE line is part of the labeled response; other members are not
affected. Only the copy of a message a client sends itself is not part of it
(``Hub.send_event_unlabeled``).

The collected lines become: nothing → ``ACK``; one line → that line with the label
tag; more → a ``labeled-response`` batch carrying the label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.protocol.framing import WIRE
from chatd.protocol.message import format_tags

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub


def _with_tag(line: bytes, tag: bytes) -> bytes:
    """Add one already-escaped tag to an encoded line."""
    if line.startswith(b"@"):
        return b"@" + tag + b";" + line[1:]
    return b"@" + tag + b" " + line


def run_labeled(hub: Hub, client: Client, label: str, action: Callable[[], None]) -> None:
    """Run ``action`` (one command of ``client``) and send what it made for ``client`` as one
    labeled response."""
    capture = client.reply_capture = bytearray()
    hub.labeled_client = client
    try:
        action()
    finally:
        client.reply_capture = None
        hub.labeled_client = None
    if client.gone:
        return
    captured = [line + b"\r\n" for line in bytes(capture).split(b"\r\n")[:-1]]
    label_tag = format_tags({"label": label}).encode(errors=WIRE)
    server = hub.config.name.encode()
    if not captured:
        client.send(b"@" + label_tag + b" :" + server + b" ACK\r\n")
    elif len(captured) == 1:
        client.send(_with_tag(captured[0], label_tag))
    else:
        hub._batch_counter += 1
        batch_id = f"L{hub._batch_counter}".encode()
        batch_tag = b"batch=" + batch_id
        client.send(b"@" + label_tag + b" :" + server + b" BATCH +" + batch_id + b" labeled-response\r\n")
        for data in captured:
            client.send(_with_tag(data, batch_tag))
        client.send(b":" + server + b" BATCH -" + batch_id + b"\r\n")
