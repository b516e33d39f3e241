"""AUTHENTICATE: the client's side of a SASL exchange (IRCv3 sasl-3.1); the mechanisms are in
``chatd.core.sasl``.

Before anything else: accounts must be on and the client must have negotiated ``sasl``
(904 otherwise), and a client already logged in gets 907, as ergo answers. ``*`` aborts
(906). With no exchange under way the parameter names a mechanism; during one it is a
chunk of the client's response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.sasl import abort, fail, respond, start
from chatd.protocol import numerics as n
from chatd.protocol.message import Message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub


# AUTHENTICATE <mechanism>|<base64 chunk>|+|*
def handle_authenticate(hub: Hub, client: Client, message: Message) -> None:
    param = message.params[0]
    if not hub.accounts.enabled:
        fail(hub, client, "Accounts are not enabled on this server")
        return
    if "sasl" not in client.caps:
        fail(hub, client, "Negotiate the sasl capability first (CAP REQ sasl)")
        return
    if client.account is not None:
        client.sasl = None
        hub.reply(client, n.ERR_SASLALREADY, "You have already authenticated using SASL")
        return
    if param == "*":
        abort(hub, client)
        return
    attempt = client.sasl
    if attempt is None:
        start(hub, client, param.upper())
    else:
        respond(hub, client, attempt, param)
