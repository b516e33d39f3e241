"""Accounts on the client side: the SASL login during registration, 900-908, ACCOUNT, REGISTER replies.

These handlers are part of ``ClientState`` (``chatc/state.py`` dispatches to them); they change
buffers only through ``BufferModel`` events. Invariants of this part:
- With credentials, ``sasl`` is requested with the other capabilities and ``CAP END`` waits until
  the login is over (903 success; 904/905/906 failure; 907 already logged in). The exchange itself
  is ``chatc/sasl.py``'s.
- A failed login always says why, in the server buffer and as a ``LoginFailed`` event (headless
  prints it): the server's 904 text, our reason for aborting, or "the server does not offer SASL".
  Then ``sasl_fail`` decides, as irssi (``sasl_disconnect_on_failure ON``) and weechat
  (``sasl_fail = reconnect``) do by default, that chatc does not go on unauthenticated:
  ``disconnect`` (the default) sends QUIT and the connection stops; ``continue`` registers without
  an account.
- A 908 naming the mechanisms makes the next 904 a retry with the best one left, not a failure.
- ``state.account`` is what the server last said (900, 901, or ACCOUNT about us); a new connection
  starts with None.
- No password is ever shown: lines to NickServ that carry one are shown with it masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chatc.buffers import SERVER_KEY
from chatc.events import AccountStatus, Event, LoginFailed, SendLine
from chatc.sasl import SaslError, SaslLogin, choose_mechanism
from chatc.text import nick_of, safe_text
from chatd.protocol import numerics as n
from chatd.protocol.casemap import irc_lower
from chatd.protocol.message import Message, format_message

if TYPE_CHECKING:
    from chatc.state import ClientState

SASL_FAIL_POLICIES: Final = ("disconnect", "continue")
SASL_NUMERICS: Final = (n.ERR_NICKLOCKED, n.RPL_SASLSUCCESS, n.ERR_SASLFAIL, n.ERR_SASLTOOLONG, n.ERR_SASLABORTED,
                        n.ERR_SASLALREADY, n.RPL_SASLMECHS)  # fmt: skip
MASK: Final = "********"
NICKSERV: Final = "NickServ"
# NickServ commands whose words carry a password: the words that introduce it -> where it is (-1: last).
_SECRET_WORDS: Final = {("IDENTIFY",): -1, ("REGISTER",): 1, ("SET", "PASSWORD"): 2, ("PASSWORD",): 1}


def hide_password(target: str, text: str) -> str:
    """``text`` as it may be shown: a password in a line to NickServ replaced by asterisks."""
    if irc_lower(target) not in ("nickserv", "ns"):
        return text
    words = text.split(" ")
    for command, position in _SECRET_WORDS.items():
        if tuple(word.upper() for word in words[: len(command)]) == command and len(words) > len(command):
            words[position] = MASK
            return " ".join(words)
    return text


def is_secret(target: str, text: str) -> bool:
    """Does a line to ``target`` carry a password (so the input history must not keep it)?"""
    return hide_password(target, text) != text


# ---- the login during registration ---------------------------------------------------------------


def after_cap(state: ClientState, message: Message, events: list[Event]) -> list[Event]:
    """Start, or fail, the login once CAP says whether ``sasl`` is on: the events ``CAP`` yields, adjusted."""
    if state.credentials is None or state.registered or state.login is not None:
        return events
    sub = message.param(1).upper()
    args = message.params[2:]
    if sub == "LS" and state.cap.negotiating and not (len(args) > 1 and args[0] == "*"):
        if "sasl" not in state.cap.offered:
            return _failed(state, "the server does not offer SASL (no sasl capability)", events)
    elif sub == "ACK" and state.cap.held and "sasl" in state.cap.enabled:
        mechanism = choose_mechanism(state.cap.values.get("sasl"), wanted=state.credentials.mechanism)
        if mechanism is None:
            return _failed(state, f"no mechanism chatc knows among {state.cap.values.get('sasl')}", events)
        return [*events, *_attempt(state, mechanism)]
    elif sub == "NAK" and "sasl" in message.param(2).split() and state.cap.negotiating:
        return _failed(state, "the server refused the sasl capability", events)
    return events


def _attempt(state: ClientState, mechanism: str) -> list[Event]:
    assert state.credentials is not None
    state.login = SaslLogin(state.credentials, mechanism)
    note = f"Logging in as {state.credentials.account} ({mechanism})"
    state.add_line(state.buffers[SERVER_KEY], "info", note)
    return [SendLine(line) for line in state.login.start()]


def _failed(state: ClientState, reason: str, pending: list[Event] | None = None) -> list[Event]:
    """The login is over without an account: say why, then go on (CAP END) or give up (QUIT)."""
    state.login = None
    reason = safe_text(reason)
    fatal = state.sasl_fail == "disconnect"
    then = "disconnecting (--sasl-fail continue goes on without)" if fatal else "continuing without an account"
    state.add_line(state.buffers[SERVER_KEY], "error", f"SASL login failed: {reason}; {then}")
    events = [event for event in pending or [] if not isinstance(event, SendLine)]
    if fatal:
        state.cap.stop()
        state.cap.held = False
        return [*events, SendLine(format_message("QUIT", "SASL login failed")), LoginFailed(reason, True)]
    events += [event for event in pending or [] if isinstance(event, SendLine)]
    return [*events, LoginFailed(reason, False), *state.cap.release(state.registered)]


def handle_authenticate(state: ClientState, message: Message) -> list[Event]:
    """``AUTHENTICATE <chunk>`` from the server: the next step, or an abort (the 906 then ends the login)."""
    login = state.login
    if login is None or state.login_abort:
        return []
    try:
        return [SendLine(line) for line in login.feed(message.param(0))]
    except SaslError as exc:
        state.login_abort = str(exc)
        return [SendLine(format_message("AUTHENTICATE", "*"))]


def login_timeout(state: ClientState, force: bool) -> list[Event]:
    """The connection's deadline: a login still in flight waits for the ``force`` call, then fails."""
    if state.login is not None and not state.registered:
        if not force:
            return []
        state.login_abort = ""
        events = [SendLine(format_message("AUTHENTICATE", "*"))]
        return [*events, *_failed(state, "the server did not finish the SASL exchange in time")]
    return [SendLine(line) for line in state.cap.end(state.registered)]


def handle_sasl_numeric(state: ClientState, message: Message) -> list[Event]:
    """903-908: the login's outcome (and 902, a nick reserved for another account)."""
    code = message.command
    text = message.params[-1] if len(message.params) > 1 else ""
    if code == n.RPL_SASLMECHS:
        state.server_mechanisms = message.param(1).upper()
        state.add_line(state.buffers[SERVER_KEY], "info", f"The server's SASL mechanisms: {message.param(1)}")
        return []
    login = state.login
    if login is None:  # not during our login (a /quote AUTHENTICATE, or a late reply): just show it
        kind = "error" if code in (n.ERR_NICKLOCKED, n.ERR_SASLFAIL, n.ERR_SASLTOOLONG, n.ERR_SASLABORTED) else "info"
        state.add_line(state.active, kind, text)
        return []
    if code in (n.RPL_SASLSUCCESS, n.ERR_SASLALREADY):
        state.login = None
        state.add_line(state.buffers[SERVER_KEY], "info", text or "SASL authentication successful")
        return state.cap.release(state.registered)
    abort, state.login_abort = state.login_abort, ""
    state.tried_mechanisms.add(login.mechanism)
    offered, state.server_mechanisms = state.server_mechanisms, ""
    if code == n.ERR_SASLFAIL and offered and not abort:
        # 908 told us what the server has: try the best of those we have not tried yet.
        wanted = state.credentials.mechanism if state.credentials is not None else None
        mechanism = choose_mechanism(offered, refused=frozenset(state.tried_mechanisms), wanted=wanted)
        if mechanism is not None:
            return _attempt(state, mechanism)
    return _failed(state, abort or text or "SASL authentication failed")


# ---- being logged in --------------------------------------------------------------------------------


def handle_logged_in(state: ClientState, message: Message) -> list[Event]:
    """900 ``<nick> <nick!user@host> <account> :You are now logged in as <account>``; 901 logged out."""
    if message.command == n.RPL_LOGGEDIN:
        state.account = safe_text(message.param(2)) or None
        text = message.params[-1] if len(message.params) > 3 else f"You are now logged in as {state.account}"
    else:
        state.account = None
        text = message.params[-1] if len(message.params) > 2 else "You are now logged out"
    state.add_line(state.buffers[SERVER_KEY], "info", text)
    return [AccountStatus(safe_text(text), state.account)]


def handle_account(state: ClientState, message: Message) -> list[Event]:
    """account-notify: ``:nick!u@h ACCOUNT <account|*>``; about us it is our login changing (another
    session's logout, a cluster node), about others it is shown in their query buffer."""
    nick = nick_of(message.source)
    account = message.param(0)
    logged_in = account not in ("", "*")
    if state.is_me(nick):
        state.account = safe_text(account) if logged_in else None
        text = f"You are now logged in as {account}" if logged_in else "You are now logged out"
        state.add_line(state.buffers[SERVER_KEY], "info", text)
        return [AccountStatus(safe_text(text), state.account)]
    query = state.buffers.get(irc_lower(nick))
    if query is not None and query.kind == "query":
        text = f"{nick} is now logged in as {account}" if logged_in else f"{nick} logged out"
        state.add_line(query, "info", text, nick)
    return []


def handle_register_reply(state: ClientState, message: Message) -> list[Event]:
    """``REGISTER SUCCESS|VERIFICATION_REQUIRED <account> :text`` and ``VERIFY SUCCESS <account> :text``
    (draft/account-registration); the failures are ``FAIL REGISTER ...`` (``handle_fail``)."""
    outcome = message.param(0).upper()
    account = message.param(1)
    text = message.params[-1] if len(message.params) > 2 else ""
    if message.command == "VERIFY":
        line = f"Account {account} verified" + (f": {text}" if text else "")
    elif outcome == "VERIFICATION_REQUIRED":
        line = f"Account {account} registered; verify it: {text} (/verify {account} CODE)"
    else:
        line = f"Account {account} registered" + (f": {text}" if text else "")
    state.add_line(state.active, "info", line)
    return [AccountStatus(safe_text(line), state.account)]
