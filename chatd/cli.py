"""The ``chatd`` command: options (each also from ``CHATD_<NAME>``), logging, signals."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import getpass
import logging
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from chatd import __version__
from chatd.backends import BackendSettings, create_server
from chatd.backends.base import ALL_BACKENDS
from chatd.backends.tls import server_context
from chatd.cluster.config import NODE_ID_PATTERN, ClusterSettings, default_node_id, parse_redis_url
from chatd.config_file import ConfigFile, ConfigFileError, load_config_file
from chatd.core import ServerConfig
from chatd.core.passwords import hash_password
from chatd.history import History, HistoryStoreError, SqliteStore
from chatd.workers import notify_ready, run_workers

log = logging.getLogger("chatd")


class _OneLineParser(argparse.ArgumentParser):
    """Report bad options in one line, as ``chatd: error: ...``, and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {text}")
    return value


def build_parser(file_defaults: dict[str, str] | None = None) -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="chatd",
        description="A chat server speaking the IRC client protocol and a plain line mode "
        "(first line is your name, then one message per line). "
        "Every option can also be set with an environment variable CHATD_<OPTION>, "
        "e.g. CHATD_PORT=6668; a command-line option wins.",
    )

    def option(flag: str, help_text: str, **kwargs: Any) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        env_name = "CHATD_" + dest.upper()
        default = kwargs.pop("default", None)
        if file_defaults and dest in file_defaults:
            default = file_defaults[dest]
        if env_name in os.environ:
            default = os.environ[env_name]
        shown = "" if kwargs.get("action") else " (default: %(default)s)"
        parser.add_argument(flag, dest=dest, default=default, help=f"{help_text}{shown} [env {env_name}]", **kwargs)

    option("--config", "TOML file with option defaults, [operators] and [admin] (see chatd.config_file)")
    option("--host", "address to listen on; 0.0.0.0 serves the network", default="127.0.0.1")
    option("--port", "TCP port to listen on; 0 picks a free one", type=_port, default=6667)
    option("--backend", "I/O model", choices=ALL_BACKENDS, default="selectors")
    option("--name", "server name shown to clients", default="chatd")
    option("--network", "network name in RPL_ISUPPORT", default="chatd")
    option("--motd-file", "file whose lines form the message of the day", default=None)
    option("--password", "connection password clients must give with PASS", default=None)
    option("--sendq", "bytes queued for a client before it is disconnected", type=_positive(int), default=1 << 20)
    option(
        "--ping-interval", "seconds of silence before the server pings a client", type=_positive(float), default=120.0
    )
    option("--ping-timeout", "seconds to wait for any reply to a ping", type=_positive(float), default=60.0)
    option("--max-clients", "most simultaneous connections", type=_positive(int), default=10_000)
    option(
        "--max-per-ip",
        "most connections from one address (loopback exempt); 0 for no limit",
        type=_non_negative(int),
        default=32,
    )
    option("--register-timeout", "seconds a new connection has to register", type=_positive(float), default=60.0)
    option(
        "--flood-burst",
        "lines a client may send at once before flood control slows it",
        type=_positive(int),
        default=10,
    )
    option(
        "--flood-rate",
        "lines per second a client may send after its burst; 0 turns flood control off",
        type=_non_negative(float),
        default=4.0,
    )
    option(
        "--flood-limit",
        "lines a client may send beyond its rate before it is cut with Excess Flood",
        type=_positive(int),
        default=200,
    )
    option("--tls-cert", "PEM certificate (chain) file; enables the TLS listener", default=None)
    option("--tls-key", "PEM private key file (default: read from the certificate file)", default=None)
    option("--tls-port", "TCP port of the TLS listener", type=_port, default=6697)
    option("--data-dir", "directory for the history database (chatd.sqlite3)", default="chatd-data")
    option("--no-persist", "keep history and channel state in memory only", action="store_true", default=False)
    option(
        "--history-private",
        "keep private messages between two connected users for CHATHISTORY",
        action="store_true",
        default=False,
    )
    option(
        "--history-max-age", "seconds a channel message is kept (0: forever)", type=_non_negative(float), default=0.0
    )
    option("--history-max-rows", "most channel messages kept in all (0: no limit)", type=_non_negative(int), default=0)
    option(
        "--history-on-join",
        "recent channel messages shown to a joining client (0: none)",
        type=_non_negative(int),
        default=20,
    )
    option("--plain-channel", "channel plain-mode clients talk in", default="#lobby")
    option(
        "--cluster",
        "join a chat network of several chatd nodes over Redis, e.g. redis://127.0.0.1:6379/0 "
        "(nicks, channels, private messages, topics and modes are shared; history stays per node)",
        default=None,
    )
    option("--node-id", "this node's unique name in the network, shown as its server (default: hostname-pid)")
    option(
        "--cluster-heartbeat",
        "seconds between a node's signs of life to the network",
        type=_positive(float),
        default=1.0,
    )
    option(
        "--cluster-timeout",
        "seconds of silence after which a node counts as dead and its users quit",
        type=_positive(float),
        default=5.0,
    )
    option(
        "--workers",
        "run N cluster nodes on this machine behind one --port (SO_REUSEPORT), each restarted if it dies; "
        "needs --cluster and a fixed --port (0: this process serves alone)",
        type=_non_negative(int),
        default=0,
    )
    option(
        "--reuse-port",
        "listen with SO_REUSEPORT so several chatd processes share the port (--workers sets it in its nodes)",
        action="store_true",
        default=False,
    )
    option("--log-level", "logging threshold", choices=("debug", "info", "warning", "error"), default="info")
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    parser.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password from standard input, print its scrypt hash for [operators], and exit",
    )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, BackendSettings]:
    """Options to settings; exits 2 with one line on anything invalid."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=os.environ.get("CHATD_CONFIG"))
    config_path = pre.parse_known_args(argv)[0].config
    config_file = ConfigFile()
    if config_path:
        try:
            config_file = load_config_file(config_path)
        except ConfigFileError as error:
            build_parser().error(f"argument --config: {error}")
    parser = build_parser(config_file.server)
    known = {action.dest for action in parser._actions}
    for key in config_file.server:
        if key not in known or key in ("config", "help", "version", "hash_password"):
            parser.error(f"argument --config: [server] has no option {key!r}")
    args = parser.parse_args(argv)
    # Values from the environment arrive as strings; run them through the same checks.
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if isinstance(value, str) and action.type is not None:
            try:
                setattr(args, action.dest, action.type(value))
            except (ValueError, argparse.ArgumentTypeError) as error:
                parser.error(f"argument {action.option_strings[0]}: invalid value {value!r}: {error}")
        if action.choices and value is not None and value not in action.choices:
            parser.error(f"argument {action.option_strings[0]}: invalid choice {value!r}")
    from chatd.protocol.casemap import is_channel_name

    if not is_channel_name(args.plain_channel):
        parser.error(f"argument --plain-channel: not a channel name: {args.plain_channel!r}")
    if args.workers and not args.hash_password:
        # N nodes without a shared Redis would be N separate chats behind one port.
        if not getattr(args, "cluster", None):
            parser.error("argument --workers: needs --cluster redis://HOST:PORT/DB (the nodes share it)")
        if args.port == 0 or (args.tls_cert and args.tls_port == 0):
            parser.error("argument --workers: needs a fixed --port (with 0 each node would pick its own port)")
        if not NODE_ID_PATTERN.fullmatch(f"{_node_id_base(args)}-{args.workers}"):
            parser.error("argument --node-id: with --workers, the node ids <id>-<n> must stay within 63 characters")
    cluster = _cluster_settings(parser, args)
    motd: tuple[str, ...] | None = None
    if args.motd_file:
        try:
            motd = tuple(Path(args.motd_file).read_text(encoding="utf-8", errors="replace").splitlines())
        except OSError as error:
            parser.error(f"argument --motd-file: cannot read {args.motd_file}: {error.strerror}")
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
        history_private=bool(args.history_private),
        max_per_ip=args.max_per_ip,
        register_timeout_s=args.register_timeout,
        flood_burst=args.flood_burst,
        flood_rate=args.flood_rate,
        flood_excess_limit=args.flood_limit,
        plain_channel=args.plain_channel,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    tls_context = None
    if args.tls_cert:
        try:
            tls_context = server_context(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as error:
            parser.error(f"argument --tls-cert/--tls-key: cannot load the certificate: {error}")
    elif args.tls_key:
        parser.error("argument --tls-key: needs --tls-cert")
    return args, BackendSettings(
        host=args.host,
        port=args.port,
        sendq_bytes=args.sendq,
        config=config,
        tls_port=args.tls_port if tls_context else None,
        tls_context=tls_context,
        history=None,
        reuse_port=bool(args.reuse_port),
        cluster=cluster,
    )


def _cluster_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ClusterSettings | None:
    """The --cluster options checked and combined; exits 2 with one line on a bad one."""
    if not args.cluster:
        if args.node_id:
            parser.error("argument --node-id: needs --cluster")
        return None
    try:
        redis = parse_redis_url(args.cluster)
    except ValueError as error:
        parser.error(f"argument --cluster: {args.cluster!r} {error}")
    node_id = args.node_id or default_node_id()
    if not NODE_ID_PATTERN.fullmatch(node_id):
        parser.error(f"argument --node-id: letters, digits, '.', '_' and '-' only (at most 63), got {node_id!r}")
    if args.cluster_timeout <= 2 * args.cluster_heartbeat:
        parser.error("argument --cluster-timeout: must be more than twice --cluster-heartbeat")
    if args.backend == "asyncio":
        parser.error("argument --cluster: works with the selectors and threads backends")
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
        store = (
            None
            if args.no_persist
            else SqliteStore(args.data_dir, max_age_s=args.history_max_age, max_rows=args.history_max_rows)
        )
    except HistoryStoreError as error:
        print(f"chatd: {error}", file=sys.stderr)
        return 1
    settings = dataclasses.replace(settings, history=History(store))
    server = create_server(args.backend, settings)
    try:
        server.bind()
    except OSError as error:
        ports = f"{settings.port}" + (f" or {settings.tls_port}" if settings.tls_port is not None else "")
        print(f"chatd: cannot listen on {settings.host}:{ports}: {error.strerror or error}", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        server.shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    notify_ready()  # a --workers supervisor (or systemd, Type=notify) waits for this
    host, port = server.address
    log.info("chatd %s listening on %s:%s (backend %s)", __version__, host, port, args.backend)
    if server.tls_address is not None:
        log.info("TLS listening on %s:%s", *server.tls_address)
    server.serve_forever()
    log.info("stopped")
    return 0
