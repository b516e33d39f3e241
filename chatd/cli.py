"""The ``chatd`` command: options (each also from ``CHATD_<NAME>``), logging, signals."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import getpass
import ipaddress
import logging
import os
import pwd
import re
import signal
import socket
import ssl
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from chatd import __version__, options
from chatd.backends import BACKENDS, BackendSettings, create_server
from chatd.backends.tls import server_context
from chatd.backends.websocket import parse_networks, parse_origins
from chatd.cluster.config import NODE_ID_PATTERN, ClusterSettings, default_node_id, parse_redis_url
from chatd.config_file import ConfigFile, ConfigFileError, ConfigFileUnreadable, load_config_file
from chatd.core import ServerConfig
from chatd.core.config import ACCOUNT_REGISTRATION_MODES, NICK_ENFORCEMENT_MODES
from chatd.core.passwords import hash_password
from chatd.history import History, HistoryStoreError, SqliteStore
from chatd.history.account_store import MemoryAccountStore, SqliteAccountStore
from chatd.history.store import DATABASE_NAME, POSTGRES_SCHEMES, redacted
from chatd.metrics import Metrics
from chatd.options import Kind, OptionValueError
from chatd.workers import notify_ready, run_workers

if TYPE_CHECKING:
    from chatd.core.ports import AccountStore
    from chatd.history.postgres import PostgresStore

log = logging.getLogger("chatd")

LOG_LEVELS = ("debug", "info", "warning", "error")


class _OneLineParser(argparse.ArgumentParser):
    """Report a bad command line in one line, ``chatd: --port: 'abc' is not ...``, and exit 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):
            fail(message.removeprefix("argument "))
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: what every bad value or option a user gives gets."""
    print(f"chatd: {message}", file=sys.stderr)
    raise SystemExit(2)


@dataclass(frozen=True, slots=True)
class Option:
    """One chatd option: its flag, the ``CHATD_<NAME>`` variable and [server] key that also set it,
    and the Kind that checks a value from any of the three."""

    flag: str
    help: str
    kind: Kind = options.TEXT
    default: Any = None
    choices: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return "CHATD_" + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option("--config", "TOML file with option defaults, [operators], [admin] and [channels] (see chatd.config_file)"),
    Option("--host", "address to listen on; 0.0.0.0 serves the network", default="127.0.0.1"),
    Option("--port", "TCP port to listen on; 0 picks a free one", options.PORT, 6667),
    Option("--backend", "I/O model", options.choice(BACKENDS), "selectors", BACKENDS),
    Option("--name", "server name shown to clients", default="chatd"),
    Option("--network", "network name in RPL_ISUPPORT", default="chatd"),
    Option("--motd-file", "file whose lines form the message of the day"),
    Option("--password", "connection password clients must give with PASS"),
    Option("--sendq", "bytes queued for a client before it is disconnected", options.POSITIVE_INT, 1 << 20),
    Option("--ping-interval", "seconds of silence before the server pings a client", options.POSITIVE_SECONDS, 120.0),
    Option("--ping-timeout", "seconds to wait for any reply to a ping", options.POSITIVE_SECONDS, 60.0),
    Option("--max-clients", "most simultaneous connections", options.POSITIVE_INT, 10_000),
    Option("--max-per-ip", "most connections from one address (loopback exempt); 0 for no limit", options.COUNT, 32),
    Option("--register-timeout", "seconds a new connection has to register", options.POSITIVE_SECONDS, 60.0),
    Option("--flood-burst", "lines a client may send at once before flood control slows it", options.POSITIVE_INT, 10),
    Option(
        "--flood-rate",
        "lines per second a client may send after its burst; 0 turns flood control off",
        options.NUMBER,
        4.0,
    ),
    Option(
        "--flood-limit",
        "lines a client may send beyond its rate before it is cut with Excess Flood",
        options.POSITIVE_INT,
        200,
    ),
    Option("--tls-cert", "PEM certificate (chain) file; enables the TLS listener"),
    Option("--tls-key", "PEM private key file (default: read from the certificate file)"),
    Option("--tls-port", "TCP port of the TLS listener", options.PORT, 6697),
    Option(
        "--ws-port",
        "TCP port for IRC over WebSocket (IRCv3) and HTTP: the web client at /, /healthz, /metrics (default: off)",
        options.PORT,
    ),
    Option("--wss-port", "the same over TLS, with --tls-cert/--tls-key (default: off)", options.PORT),
    Option(
        "--ws-origins",
        "web page origins allowed to open a WebSocket, comma-separated (https://chat.example.org), or * for any "
        "(default: only the server's own origin, the Host the browser asked for)",
    ),
    Option(
        "--trusted-proxy",
        "addresses or CIDRs of reverse proxies and load balancers, comma-separated, whose X-Forwarded-For "
        "(WebSocket) and PROXY headers give the client's real address (default: none, the headers are ignored)",
    ),
    Option(
        "--proxy-protocol",
        "the TCP and TLS listeners expect a PROXY v1/v2 header (HAProxy send-proxy) from a --trusted-proxy; "
        "other connections are refused",
        options.FLAG,
        False,
    ),
    Option(
        "--metrics-port",
        "serve /metrics (to every peer) and /healthz on a listener of their own on this port, plain HTTP only; "
        "the WebSocket port then answers /metrics with 404 (default: off, /metrics is on --ws-port "
        "for this machine only)",
        options.PORT,
    ),
    Option(
        "--metrics-host",
        "IP address of the --metrics-port listener, e.g. a private interface (default: 127.0.0.1)",
    ),
    Option("--data-dir", f"directory for the history database ({DATABASE_NAME})", default="chatd-data"),
    Option("--no-persist", "keep history and channel state in memory only", options.FLAG, False),
    Option(
        "--database",
        "keep history, channel state and accounts in PostgreSQL, e.g. postgresql://chatd:PASSWORD@HOST:5432/chatd "
        "(one database the nodes of a network share; needs chatd[postgres]; default: SQLite in --data-dir)",
    ),
    Option(
        "--history-private",
        "also keep private messages between users not logged in (by nick) for CHATHISTORY "
        "(those of logged-in users are always kept)",
        options.FLAG,
        False,
    ),
    Option("--history-max-age", "seconds a channel message is kept (0: forever)", options.SECONDS, 0.0),
    Option("--history-max-rows", "most channel messages kept in all (0: no limit)", options.COUNT, 0),
    Option("--history-on-join", "recent channel messages shown to a joining client (0: none)", options.COUNT, 20),
    Option(
        "--nick-enforcement",
        "what happens to a user on a registered nick who is not logged in to its account: strict refuses "
        "the nick, timeout renames the user Guest<digits> after --nick-grace, optional does nothing",
        options.choice(NICK_ENFORCEMENT_MODES),
        "timeout",
        NICK_ENFORCEMENT_MODES,
    ),
    Option(
        "--nick-grace",
        "seconds a user on a registered nick has to log in before timeout enforcement renames it",
        options.POSITIVE_SECONDS,
        30.0,
    ),
    Option(
        "--account-registration",
        "who may register accounts: before-connect (anyone, even before connection registration), "
        "after-connect (only once connected), closed (nobody; existing accounts still log in)",
        options.choice(ACCOUNT_REGISTRATION_MODES),
        "before-connect",
        ACCOUNT_REGISTRATION_MODES,
    ),
    Option("--password-min-length", "the shortest account password accepted", options.POSITIVE_INT, 4),
    Option("--plain-channel", "channel plain-mode clients talk in (always permanent)", default="#lobby"),
    Option(
        "--cluster",
        "join a chat network of several chatd nodes over Redis, e.g. redis://127.0.0.1:6379/0 "
        "(nicks, channels, private messages, topics and modes are shared; history stays per node "
        "unless they share a --database)",
    ),
    Option("--node-id", "this node's unique name in the network, shown as its server (default: hostname-pid)"),
    Option(
        "--cluster-heartbeat", "seconds between a node's signs of life to the network", options.POSITIVE_SECONDS, 1.0
    ),
    Option(
        "--cluster-timeout",
        "seconds of silence after which a node counts as dead and its users quit",
        options.POSITIVE_SECONDS,
        5.0,
    ),
    Option(
        "--workers",
        "run N cluster nodes on this machine behind one --port (SO_REUSEPORT), each restarted if it dies; "
        "needs --cluster and a fixed --port (0: this process serves alone)",
        options.COUNT,
        0,
    ),
    Option(
        "--reuse-port",
        "listen with SO_REUSEPORT so several chatd processes share the port (--workers sets it in its nodes)",
        options.FLAG,
        False,
    ),
    Option("--log-level", "logging threshold", options.choice(LOG_LEVELS), "info", LOG_LEVELS),
)
OPTIONS_BY_DEST = {option.dest: option for option in OPTIONS}


def build_parser() -> argparse.ArgumentParser:
    """The command line alone: every option defaults to None here, so ``parse_settings`` can tell
    a value typed on the command line from one to look up in the environment or the file."""
    parser = _OneLineParser(
        prog="chatd",
        description="A chat server speaking the IRC client protocol and a plain line mode "
        "(first line is your name, then one message per line). "
        "Every option can also be set with an environment variable CHATD_<OPTION>, "
        "e.g. CHATD_PORT=6668, or in the [server] table of --config; the command line wins, "
        f"then the environment, then the file. On/off options take {options.FLAG_WORDS} there.",
    )
    for option in OPTIONS:
        shown = "" if option.default in (None, False) else f" (default: {option.default})"
        help_text = f"{option.help}{shown} [env {option.env}]".replace("%", "%%")
        if option.kind is options.FLAG:
            parser.add_argument(option.flag, dest=option.dest, action="store_true", default=None, help=help_text)
        elif option.choices:
            parser.add_argument(option.flag, dest=option.dest, choices=option.choices, help=help_text)
        else:
            parser.add_argument(option.flag, dest=option.dest, type=option.kind.argparse_type(), help=help_text)
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    parser.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password from standard input, print its scrypt hash for [operators], and exit",
    )
    return parser


def resolve_options(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[ConfigFile, dict[str, str]]:
    """Fill every option the command line left unset from ``CHATD_*``, then the file, then its default.

    Returns the config file and, for each option, where its value came from as the user
    would name it (``--port``, ``CHATD_PORT``, ``chatd.toml: [server] port``), for messages
    about it. Exits 2 with one line on a bad value or an unreadable or malformed file.
    """
    sources: dict[str, str] = {}
    config_file = ConfigFile()
    config_path = args.config if args.config is not None else environ.get("CHATD_CONFIG")
    if config_path:
        try:
            config_file = load_config_file(config_path)
        except ConfigFileUnreadable as error:
            fail(f"{'--config' if args.config is not None else 'CHATD_CONFIG'}: {error}")
        except ConfigFileError as error:
            fail(str(error))
    in_file: dict[str, tuple[str, object]] = {}
    for key, value in config_file.server.items():
        dest = key.replace("-", "_")
        if dest not in OPTIONS_BY_DEST or dest == "config":
            fail(f"{config_path}: [server] has no option {key!r} (see chatd --help)")
        if dest in in_file:
            fail(f"{config_path}: [server] {key}: the same option as {in_file[dest][0]}")
        in_file[dest] = (key, value)
    for option in OPTIONS:
        dest = option.dest
        if getattr(args, dest) is not None:
            sources[dest] = option.flag
            continue
        try:
            if option.env in environ:
                sources[dest] = option.env
                value = option.kind.from_text(environ[option.env])
            elif dest in in_file:
                key, raw = in_file[dest]
                sources[dest] = f"{config_path}: [server] {key}"
                value = option.kind.from_toml(raw)
            else:
                sources[dest] = option.flag
                value = option.default
        except OptionValueError as error:
            fail(f"{sources[dest]}: {error}")
        setattr(args, dest, value)
    return config_file, sources


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[argparse.Namespace, BackendSettings]:
    """Options to settings; exits 2 with one line on anything invalid."""
    args = build_parser().parse_args(argv)
    config_file, sources = resolve_options(args, os.environ if environ is None else environ)
    if not _is_channel_name(args.plain_channel):
        fail(f"{sources['plain_channel']}: {args.plain_channel!r} is not a channel name (like #lobby)")
    if args.workers and not args.hash_password:
        # N nodes without a shared Redis would be N separate chats behind one port.
        if not args.cluster:
            fail(f"{sources['workers']}: needs --cluster redis://HOST:PORT/DB (the nodes share it)")
        if args.port == 0 or (args.tls_cert and args.tls_port == 0):
            fail(f"{sources['workers']}: needs a fixed --port (with 0 each node would pick its own port)")
        if not NODE_ID_PATTERN.fullmatch(f"{_node_id_base(args)}-{args.workers}"):
            fail(f"{sources['node_id']}: with --workers, the node ids <id>-<n> must stay within 63 characters")
    cluster = _cluster_settings(args, sources)
    motd: tuple[str, ...] | None = None
    if args.motd_file:
        try:
            motd = tuple(Path(args.motd_file).read_text(encoding="utf-8", errors="replace").splitlines())
        except OSError as error:
            fail(f"{sources['motd_file']}: cannot read {args.motd_file}: {error.strerror}")
    if args.database and not args.hash_password:
        if args.no_persist:
            fail(f"{sources['database']}: cannot be used with --no-persist (which keeps everything in memory)")
        if not args.database.startswith(POSTGRES_SCHEMES):
            fail(f"{sources['database']}: {redacted(args.database)!r} is not a postgresql://… URL")
    elif not args.no_persist and not args.hash_password:
        problem = data_dir_problem(args.data_dir)
        if problem:
            fail(f"{sources['data_dir']}: {problem}")
    config = ServerConfig(
        name=args.name,
        network=args.network,
        motd_lines=motd,
        password=args.password,
        ping_interval_s=args.ping_interval,
        ping_timeout_s=args.ping_timeout,
        max_clients=args.max_clients,
        operators=config_file.operators,
        admin_lines=config_file.admin_lines,
        history_on_join=args.history_on_join,
        history_private=args.history_private,
        max_per_ip=args.max_per_ip,
        register_timeout_s=args.register_timeout,
        flood_burst=args.flood_burst,
        flood_rate=args.flood_rate,
        flood_excess_limit=args.flood_limit,
        plain_channel=args.plain_channel,
        nick_enforcement=args.nick_enforcement,
        nick_grace_s=args.nick_grace,
        account_registration=args.account_registration,
        password_min_length=args.password_min_length,
        permanent_channels=config_file.channels,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    tls_context = None
    if args.tls_cert:
        try:
            tls_context = server_context(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as error:
            fail(f"{sources['tls_cert']}: cannot load the certificate: {error}")
    elif args.tls_key:
        fail(f"{sources['tls_key']}: needs --tls-cert")
    if args.wss_port is not None and tls_context is None:
        fail(f"{sources['wss_port']}: needs --tls-cert")
    origins = None
    if args.ws_origins:
        try:
            origins = parse_origins(args.ws_origins)
        except ValueError as error:
            fail(f"{sources['ws_origins']}: {error}")
    proxies: tuple[Any, ...] = ()
    if args.trusted_proxy:
        try:
            proxies = parse_networks(args.trusted_proxy)
        except ValueError as error:
            fail(f"{sources['trusted_proxy']}: {error}")
    if args.proxy_protocol and not proxies:
        fail(f"{sources['proxy_protocol']}: needs --trusted-proxy (the addresses allowed to send PROXY headers)")
    metrics_host = _metrics_host(args, sources)
    return args, BackendSettings(
        host=args.host,
        port=args.port,
        sendq_bytes=args.sendq,
        config=config,
        tls_port=args.tls_port if tls_context else None,
        tls_context=tls_context,
        history=None,
        reuse_port=args.reuse_port,
        cluster=cluster,
        ws_port=args.ws_port,
        wss_port=args.wss_port,
        ws_origins=origins,
        trusted_proxies=proxies,
        proxy_protocol=args.proxy_protocol,
        metrics_port=args.metrics_port,
        metrics_host=metrics_host,
    )


def _metrics_host(args: argparse.Namespace, sources: dict[str, str]) -> str:
    """--metrics-host checked: an IP address (a name could resolve to a public one), and only
    with --metrics-port; 127.0.0.1 without one, since /metrics there is open to every peer."""
    if not args.metrics_host:
        return "127.0.0.1"
    if args.metrics_port is None:
        fail(f"{sources['metrics_host']}: needs --metrics-port")
    try:
        return str(ipaddress.ip_address(args.metrics_host.strip().removeprefix("[").removesuffix("]")))
    except ValueError:
        fail(f"{sources['metrics_host']}: {args.metrics_host!r} is not an IP address (like 127.0.0.1 or 10.0.0.5)")


def _is_channel_name(name: str) -> bool:
    from chatd.protocol.casemap import is_channel_name

    return is_channel_name(name)


def data_dir_problem(data_dir: str) -> str | None:
    """Why the history store could not be created or written in ``data_dir``, or None.

    Checked before the store opens so the user reads what is wrong with the path they
    gave (a file in the way, a directory this user may not write) rather than SQLite's
    "unable to open database file". The nearest existing ancestor is checked when the
    directory does not exist yet, since the store creates it.
    """
    if not data_dir:
        return "an empty path is not a directory"
    path = Path(os.path.abspath(data_dir))
    probe, hidden = path, False
    while True:
        try:
            status = probe.stat()
            break
        except (FileNotFoundError, NotADirectoryError, PermissionError) as error:
            # PermissionError: an ancestor may not be searched; it is found further up.
            hidden = hidden or isinstance(error, PermissionError)
            if probe.parent == probe:
                return None
            probe = probe.parent
        except OSError as error:
            return f"cannot use {probe}: {error.strerror}"
    if not stat.S_ISDIR(status.st_mode):
        return f"{probe} is a file, not a directory" + ("" if probe == path else f" (so {path} cannot be created)")
    if not os.access(probe, os.W_OK | os.X_OK) or hidden:
        if probe == path:
            return f"cannot write in {path}: permission denied ({_running_as()})"
        action = "reach" if hidden else "create"
        return f"cannot {action} {path}: permission denied in {probe} ({_running_as()})"
    database = path / DATABASE_NAME
    if probe == path and os.path.lexists(database) and not os.access(database, os.R_OK | os.W_OK):
        return f"cannot write {database}: permission denied ({_running_as()})"
    return None


def _running_as() -> str:
    """Which user the server runs as, the first thing to know about a permission error."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return f"chatd runs as user {name}, uid {uid}"


def _cluster_settings(args: argparse.Namespace, sources: dict[str, str]) -> ClusterSettings | None:
    """The --cluster options checked and combined; exits 2 with one line on a bad one."""
    if not args.cluster:
        if args.node_id:
            fail(f"{sources['node_id']}: needs --cluster")
        return None
    try:
        redis = parse_redis_url(args.cluster)
    except ValueError as error:
        fail(f"{sources['cluster']}: {args.cluster!r} {error}")
    node_id = args.node_id or default_node_id()
    if not NODE_ID_PATTERN.fullmatch(node_id):
        fail(f"{sources['node_id']}: {node_id!r} is not a node id (letters, digits, '.', '_' and '-', at most 63)")
    if args.cluster_timeout <= 2 * args.cluster_heartbeat:
        fail(f"{sources['cluster_timeout']}: must be more than twice --cluster-heartbeat")
    return ClusterSettings(
        redis=redis,
        node_id=node_id,
        heartbeat_s=args.cluster_heartbeat,
        node_timeout_s=args.cluster_timeout,
        redis_timeout_s=max(1.0, min(3.0, args.cluster_timeout / 2)),
    )


def _node_id_base(args: argparse.Namespace) -> str:
    """The stem of the workers' node ids (``<stem>-1`` ...): ``--node-id`` when given, else this
    host's short name, so the ids stay the same across restarts of the supervisor."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:40]
    return getattr(args, "node_id", None) or host or "node"


def _stores(args: argparse.Namespace) -> tuple[SqliteStore | PostgresStore | None, AccountStore]:
    """History's store and the accounts' one: in memory, SQLite in --data-dir or --database's PostgreSQL.
    Raises HistoryStoreError (one line) when the database cannot be used."""
    limits = {"max_age_s": args.history_max_age, "max_rows": args.history_max_rows}
    if args.no_persist:
        return None, MemoryAccountStore()
    if not args.database:
        store = SqliteStore(args.data_dir, **limits)
        return store, SqliteAccountStore(store)
    try:
        from chatd.history.postgres import PostgresAccountStore, PostgresStore
    except ImportError as error:
        raise HistoryStoreError(
            f"--database needs psycopg 3 ({error}): pip install 'chatd[postgres]' or 'psycopg[binary]'"
        ) from error
    postgres = PostgresStore(args.database, **limits)
    return postgres, PostgresAccountStore(postgres)


def main(argv: Sequence[str] | None = None) -> int:
    args, settings = parse_settings(argv)
    if args.hash_password:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not password:
            print("chatd: an empty password cannot be hashed", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.workers:
        return run_workers(sys.argv[1:] if argv is None else argv, args.workers, _node_id_base(args))
    try:
        store, accounts = _stores(args)
    except HistoryStoreError as error:
        print(f"chatd: {error}", file=sys.stderr)
        return 1
    settings = dataclasses.replace(settings, history=History(store), accounts=accounts)
    server = create_server(args.backend, settings)
    Metrics(server.hub).install(server.http_routes, server.metrics_routes)  # type: ignore[attr-defined]
    try:
        server.bind()
    except OSError as error:
        wss_port = settings.wss_port if settings.tls_context else None
        chosen = (settings.port, settings.tls_port, settings.ws_port, wss_port)
        ports = " or ".join(str(port) for port in chosen if port is not None)
        if settings.metrics_port is not None:
            ports += f" or {settings.metrics_host}:{settings.metrics_port}"
        print(f"chatd: cannot listen on {settings.host}:{ports}: {error.strerror or error}", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        server.shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    notify_ready()  # a --workers supervisor (or systemd, Type=notify) waits for this
    if store is None:
        log.info("history in memory only (no-persist is on): nothing is kept when chatd stops")
    else:
        log.info("history database %s", store.path if args.database else Path(store.path).resolve())
    host, port = server.address
    log.info("chatd %s listening on %s:%s (backend %s)", __version__, host, port, args.backend)
    for kind, address in server.addresses.items():
        if kind != "tcp":
            log.info("%s listening on %s:%s", kind.upper(), *address)
    server.serve_forever()
    log.info("stopped")
    return 0
