"""IRCv3 ``draft/account-registration``: REGISTER and VERIFY (ircv3.net/specs/extensions/account-registration).

The cap is advertised ``before-connect`` (``chatd.core.caps``), so REGISTER works from
the first NICK on; ``custom-account-name`` is not advertised, so the account is always
the current nick (``*`` names it too). chatd sends no email: an address is kept with the
account, no registration waits for verification, and VERIFY always fails
(``FAIL VERIFY INVALID_CODE``). Creating the account is ``chatd.core.signup``'s.
Failures are ``FAIL REGISTER <code>`` (standard-replies); the password is never echoed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.signup import SUCCESS, register_account, safe_param
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub


# REGISTER <account> {<email> | "*"} <password>
def handle_register(hub: Hub, client: Client, message: Message) -> None:
    account, email, password = message.params[:3]
    server = hub.config.name

    def answer(code: str, name: str, text: str) -> None:
        if code == SUCCESS:
            hub.send_line(client, format_message("REGISTER", SUCCESS, name, text, source=server))
        else:
            hub.send_line(client, format_message("FAIL", "REGISTER", code, name, text, source=server))

    register_account(hub, client, account, email, password, answer)


# VERIFY <account> <code>
def handle_verify(hub: Hub, client: Client, message: Message) -> None:
    account = safe_param(message.params[0])
    server = hub.config.name
    if client.account is not None:
        code, text = "ALREADY_AUTHENTICATED", f"You are already logged in as {client.account}"
    else:
        code, text = "INVALID_CODE", "No registration is waiting for a code: this server does not verify email"
    hub.send_line(client, format_message("FAIL", "VERIFY", code, account, text, source=server))
