"""Command line of chatc: options, then the full-screen UI on a terminal or the headless mode on a pipe.

Every option also reads ``CHATC_<NAME>`` from the environment (as chatd does); the
command line wins. One exception keeps a password where it belongs: with ``--sasl``,
``CHATC_PASSWORD`` is the account's password, never also sent as the server password (PASS);
a server password then needs ``--password`` itself. Bad input ends with one line on stderr
saying why (no usage dump: the reason is what the user needs, ``--help`` has the rest) and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from chatc import __version__
from chatc.accounts import SASL_FAIL_POLICIES
from chatc.connection import ServerAddress
from chatc.sasl import PREFERRED_MECHANISMS, Credentials
from chatc.state import ClientState
from chatd.protocol.casemap import MAX_NICK_LENGTH, is_valid_nick, nick_from_plain_name

EXIT_USAGE = 2
PROMPT_FOR_PASSWORD = "\0prompt"


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {port}")
    return port


_NICK_SPECIALS = "[]\\`_^{|}"


def nick_problem(nick: str) -> str | None:
    """Why ``nick`` is no valid nick, in the words a user can act on; None when it is valid."""
    if not nick:
        return "a nick cannot be empty"
    if len(nick) > MAX_NICK_LENGTH:
        return f"a nick has at most {MAX_NICK_LENGTH} characters ({len(nick)} given)"
    if nick[0].isdigit():
        return "a nick cannot start with a digit"
    if nick[0] == "-":
        return "a nick cannot start with '-'"
    for char in nick:
        if not (char.isascii() and char.isalnum()) and char not in _NICK_SPECIALS + "-":
            return f"a nick cannot contain {char!r} (letters, digits, - and {_NICK_SPECIALS} only)"
    return None if is_valid_nick(nick) else "not a valid nick"


def _nick(value: str) -> str:
    problem = nick_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{value!r}: {problem}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports an error as one line, ``chatc: --nick '1a': why``, without the usage block."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):
            message = message[len("argument ") :]
        if message.startswith("unrecognized arguments"):
            message += " (chatc --help lists the options)"
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def _channel(value: str) -> str:
    channel = value if value[:1] in "#&" else "#" + value
    if len(channel) < 2 or any(char in channel for char in " ,\x07\0\r\n:"):
        raise argparse.ArgumentTypeError(f"not a valid channel name: {value!r}")
    return channel


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = _Parser(
        prog="chatc",
        description="Terminal chat client for chatd and any IRC server. Full-screen on a terminal; "
        "when stdin is not a terminal, sends each input line to --channel and prints what arrives.",
    )
    parser.add_argument("--host", default=env.get("CHATC_HOST", "127.0.0.1"), help="server host (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=env.get("CHATC_PORT"), help="server port (default 6667, or 6697 with --tls)"
    )
    parser.add_argument(
        "--nick", type=_nick, default=env.get("CHATC_NICK"), help="nick to use (default: asks, suggesting login name)"
    )
    parser.add_argument(
        "--channel",
        type=_channel,
        action="append",
        default=None,
        help="channel to join; repeat for more. The first one receives headless input",
    )
    parser.add_argument(
        "--password",
        nargs="?",
        const=PROMPT_FOR_PASSWORD,
        default=None,
        help="server password (PASS); without a value it is asked for (or read from CHATC_PASSWORD, "
        "except with --sasl)",
    )
    parser.add_argument(
        "--sasl",
        action="store_true",
        help="log in to an account with SASL (SCRAM-SHA-256 when the server offers it, else PLAIN); "
        "the password is asked for, or read from CHATC_PASSWORD",
    )
    parser.add_argument(
        "--account", default=env.get("CHATC_ACCOUNT"), help="account to log in to with --sasl (default: the nick)"
    )
    parser.add_argument(
        "--sasl-mechanism",
        choices=PREFERRED_MECHANISMS,
        type=str.upper,
        default=env.get("CHATC_SASL_MECHANISM"),
        help="use only this SASL mechanism (default: SCRAM-SHA-256 when offered, else PLAIN)",
    )
    parser.add_argument(
        "--sasl-fail",
        choices=SASL_FAIL_POLICIES,
        default=env.get("CHATC_SASL_FAIL", "disconnect"),
        help="when the login fails: disconnect (the default, as irssi) or continue without an account",
    )
    parser.add_argument(
        "--headless", action="store_true", help="no UI even on a terminal (the default when stdin is not one)"
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS, checking the server's certificate")
    parser.add_argument(
        "--tls-insecure", action="store_true", help="TLS without certificate checks (implies --tls; no impostor check)"
    )
    parser.add_argument(
        "--tls-ca", metavar="FILE", default=env.get("CHATC_TLS_CA"), help="PEM certificates to trust (implies --tls)"
    )
    parser.add_argument("--version", action="version", version=f"chatc {__version__}")
    return parser


def _default_nick() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "guest"
    return nick_from_plain_name(login)


def ask_nick(default: str) -> str | None:
    """Ask on the terminal; None when the user gives up (Ctrl-C / Ctrl-D).

    The default is a placeholder, not text in the line: what the user types replaces it
    (typing ``ana`` gives ``ana``, not ``rootana``) and Enter alone takes it.
    """
    from prompt_toolkit import prompt
    from prompt_toolkit.formatted_text import FormattedText

    while True:
        try:
            answer = prompt("Nick: ", placeholder=FormattedText([("ansibrightblack", default)])).strip() or default
        except (EOFError, KeyboardInterrupt):
            return None
        problem = nick_problem(answer)
        if problem is None:
            return answer
        print(f"chatc: {answer!r}: {problem}", file=sys.stderr)


def _ask_password(parser: argparse.ArgumentParser, prompt: str, option: str) -> str | None:
    """Read a password on the terminal without echo; None when the user gives up (Ctrl-C / Ctrl-D)."""
    if not sys.stdin.isatty():
        parser.error(f"{option} needs a terminal to ask for the password, or CHATC_PASSWORD")
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    channels: list[str] = args.channel or []
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.headless

    if args.sasl_mechanism is not None and args.sasl_mechanism.upper() not in PREFERRED_MECHANISMS:
        parser.error(f"argument --sasl-mechanism: invalid choice: {args.sasl_mechanism!r} (SCRAM-SHA-256 or PLAIN)")
    if args.sasl_fail not in SASL_FAIL_POLICIES:
        parser.error(f"argument --sasl-fail: invalid choice: {args.sasl_fail!r} (disconnect or continue)")
    env_password = os.environ.get("CHATC_PASSWORD")
    password = args.password
    if password is None and not args.sasl:
        password = env_password
    if password == PROMPT_FOR_PASSWORD:
        password = None if args.sasl else env_password
        if password is None:
            password = _ask_password(parser, "Server password: ", "--password without a value")
            if password is None:
                return EXIT_USAGE

    nick = args.nick
    if nick is None:
        nick = ask_nick(_default_nick()) if interactive else _default_nick()
        if nick is None:
            return EXIT_USAGE

    credentials = None
    if args.sasl:
        account = args.account or nick
        secret = env_password
        if secret is None:
            secret = _ask_password(parser, f"Password for account {account}: ", "--sasl")
            if secret is None:
                return EXIT_USAGE
        credentials = Credentials(account, secret, args.sasl_mechanism)

    tls = args.tls or args.tls_insecure or args.tls_ca is not None
    if args.tls_ca is not None and not os.path.isfile(args.tls_ca):
        parser.error(f"argument --tls-ca: no such file: {args.tls_ca!r}")
    port = args.port if args.port is not None else (6697 if tls else 6667)
    address = ServerAddress(args.host, port, tls=tls, tls_verify=not args.tls_insecure, tls_ca=args.tls_ca)
    try:
        address.ssl_context()
    except (OSError, ValueError) as exc:
        parser.error(f"argument --tls-ca: cannot use {args.tls_ca!r}: {exc}")
    state = ClientState(
        nick, channels, password=password or None, server_name=args.host, sasl=credentials, sasl_fail=args.sasl_fail
    )
    try:
        if interactive:
            from chatc.ui import run_ui

            return run_ui(address, state)
        from chatc.headless import run_headless

        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors="replace")
        return run_headless(address, state, channels[0] if channels else None, sys.stdin.buffer, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return 130
