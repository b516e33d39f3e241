"""Registration and connection liveness: CAP, PASS, NICK, USER, PING, PONG, QUIT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.core.accounts import Outcome, check_password, log_in
from chatd.core.caps import ls_lines, supported_caps
from chatd.core.client import Client, Dialect
from chatd.core.enforcement import reserved_nick_refused
from chatd.core.event import codec_for
from chatd.core.users import change_nick, try_complete_registration
from chatd.protocol import numerics as n
from chatd.protocol.casemap import is_valid_nick
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatd.core.hub import Hub




def _apply_caps(hub: Hub, client: Client, request: list[str]) -> None:
    for token in request:
        if token.startswith("-"):
            client.caps.discard(token[1:])
        else:
            client.caps.add(token)
    if client.dialect is not Dialect.PLAIN:
        client.codec = codec_for(client.caps)
        hub.codec_changed(client)


# CAP <subcommand> [:<capabilities>]
def handle_cap(hub: Hub, client: Client, message: Message) -> None:
    sub = message.params[0].upper()
    target = client.display_nick
    server = hub.config.name
    if sub == "LS":
        if not client.registered:
            client.cap_negotiating = True
        if message.param(1).isdigit() and int(message.param(1)) >= 302:
            client.cap_version = max(client.cap_version, 302)
            client.caps.add("cap-notify")  # implied for 302 clients
        lines = ls_lines(hub.accounts.enabled, client.cap_version, hub.config.account_registration)
        for index, caps in enumerate(lines):
            more = ("*",) if index < len(lines) - 1 else ()
            hub.send_line(client, format_message("CAP", target, "LS", *more, caps, source=server))
    elif sub == "LIST":
        hub.send_line(client, format_message("CAP", target, "LIST", " ".join(sorted(client.caps)), source=server))
    elif sub == "REQ":
        if not client.registered:
            client.cap_negotiating = True
        wanted = message.param(1)
        request = wanted.split()
        supported = supported_caps(hub.accounts.enabled, hub.config.account_registration)
        if request and all(token.lstrip("-") in supported for token in request):
            _apply_caps(hub, client, request)
            hub.send_line(client, format_message("CAP", target, "ACK", wanted, source=server))
        else:
            hub.send_line(client, format_message("CAP", target, "NAK", wanted, source=server))
    elif sub == "END":
        if client.cap_negotiating:
            client.cap_negotiating = False
            try_complete_registration(hub, client)
    else:
        hub.reply(client, n.ERR_INVALIDCAPCMD, sub, "Invalid CAP command")


# PASS <password> | PASS <account>:<password> | PASS <server password>:<account>:<password>
def handle_pass(hub: Hub, client: Client, message: Message) -> None:
    """The server password (``--password``), or a login for clients without SASL, as ergo's
    ``login-via-pass-command``: ``account:password``, after the server password when one is set.

    The login is checked off the loop with the client held, so 001 follows its answer. A
    failed login is a NOTICE, not a refusal: the client goes on, not logged in.
    """
    if client.registered:
        hub.reply(client, n.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    value = message.params[0]
    server_password = hub.config.password
    if server_password is not None:
        client.password = value  # right or wrong: 464 when registration completes
        if value == server_password or not value.startswith(server_password + ":"):
            return
        client.password = server_password
        value = value[len(server_password) + 1 :]
    account, colon, password = value.partition(":")
    if not colon or not account or not hub.accounts.enabled or client.account is not None:
        return

    def then(outcome: Outcome) -> None:
        if client.gone:
            return
        if outcome.record is None:
            hub.notice(client, f"Login via PASS failed: {outcome.reason}")
        else:
            log_in(hub, client, outcome.record)

    check_password(hub, client, account, password, then)


# NICK <nickname>
def handle_nick(hub: Hub, client: Client, message: Message) -> None:
    nick = message.param(0)
    if not nick:
        hub.reply(client, n.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    if not is_valid_nick(nick):
        hub.reply(client, n.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")
        return
    holder = hub.find_client(nick)
    if holder is not None and holder is not client:
        hub.reply(client, n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
        if client.nick is None:
            client.asked_nick = nick
        return
    if nick == client.nick:
        return
    if reserved_nick_refused(hub, client, nick):
        return
    if hub.cluster is not None and hub.cluster.request_nick(client, nick):
        return  # the network answers later: no 001 (or NICK) before it says yes
    change_nick(hub, client, nick)


# USER <username> <mode> <unused> :<realname>
def handle_user(hub: Hub, client: Client, message: Message) -> None:
    if client.registered or client.user is not None:
        hub.reply(client, n.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    if not message.params[0] or not message.params[3]:
        hub.reply(client, n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
        return
    username = "".join(ch for ch in message.params[0] if ch not in "@!: ")[:16] or "user"
    client.user = "~" + username
    client.realname = message.params[3]
    if client.nick is not None:
        client.update_prefix()
    try_complete_registration(hub, client)


# PING <token>
def handle_ping(hub: Hub, client: Client, message: Message) -> None:
    if not message.params or not message.params[0]:
        hub.reply(client, n.ERR_NOORIGIN, "No origin specified")
        return
    hub.send_line(client, format_message("PONG", hub.config.name, message.params[0], source=hub.config.name))


# PONG <token>
def handle_pong(hub: Hub, client: Client, message: Message) -> None:
    """Nothing to do: any line from a client already counts as a sign of life."""


# QUIT [:<reason>]
def handle_quit(hub: Hub, client: Client, message: Message) -> None:
    reason = message.param(0)
    hub.quit(client, f"Quit: {reason}" if reason else "Quit")
