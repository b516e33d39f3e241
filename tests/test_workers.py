"""``chatd --workers N``: N cluster nodes behind one port, supervised.

The supervisor itself is first checked with stub children (tiny scripts that bind the port
with SO_REUSEPORT and report ready), so its restart, stop and start-failure rules are
tested without Redis; then the real thing: ``chatd --workers 2 --cluster redis://...``
against a real ``redis-server`` on a free loopback port (skipped, saying why, when it is
not installed). Every wait polls under a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.backends import BackendSettings, create_server
from tests import helpers
from tests.helpers import IrcClient, RedisServer, free_port

DEADLINE_S = 30.0
REPO = Path(__file__).resolve().parent.parent


def _has_cluster_options() -> bool:
    from chatd.cli import build_parser

    options = {flag for action in build_parser()._actions for flag in action.option_strings}
    return {"--cluster", "--node-id"} <= options


needs_cluster = pytest.mark.skipif(not _has_cluster_options(), reason="this chatd has no --cluster/--node-id yet")


wait_until = functools.partial(helpers.wait_until, timeout=DEADLINE_S)


def started_pids(log: Path, index: int) -> list[int]:
    """The pids the supervisor logged for worker ``index``, oldest first."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [int(pid) for pid in re.findall(rf"worker {index} \(node \S+\) started, pid (\d+)", text)]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still there, or a zombie nobody reaped yet: a zombie has state Z.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ---- SO_REUSEPORT --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["selectors", "threads"])
def test_reuse_port_lets_two_servers_share_a_port_and_only_then(backend: str) -> None:
    first = create_server(backend, BackendSettings(port=0, reuse_port=True))
    first.bind()
    port = first.address[1]
    second = create_server(backend, BackendSettings(port=port, reuse_port=True))
    second.bind()
    assert second.address[1] == port
    alone = create_server(backend, BackendSettings(port=port))
    with pytest.raises(OSError):
        alone.bind()
    for server in (first, second):
        server.shutdown()


# ---- the supervisor, with stub children ----------------------------------------------------

STUB_CHILD = """\
import signal, socket, sys
from chatd.workers import notify_ready
port, node = int(sys.argv[1]), sys.argv[2]
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", port))
sock.listen()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
notify_ready()
while True:
    conn, _ = sock.accept()
    conn.sendall(node.encode() + b"\\n")
    conn.close()
"""

STUB_SUPERVISOR = """\
import logging, sys
from chatd.workers import Supervisor
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
child, port = sys.argv[1], sys.argv[2]
supervisor = Supervisor(lambda node_id: [sys.executable, child, port, node_id], 2, "stub")
raise SystemExit(supervisor.run())
"""


@pytest.fixture
def stub_supervisor(tmp_path: Path) -> Callable[[int], tuple[subprocess.Popen[bytes], Path]]:
    child = tmp_path / "child.py"
    child.write_text(STUB_CHILD)
    script = tmp_path / "supervisor.py"
    script.write_text(STUB_SUPERVISOR)
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"supervisor-{port}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, str(script), str(child), str(port)], stderr=out, env=env)
        started.append(process)
        return process, log

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def node_behind(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.makefile().readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_supervisor_restarts_a_killed_child_and_stops_on_a_signal(stub_supervisor, stop_signal: int) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    process, log = stub_supervisor(port)
    wait_until(lambda: "all 2 workers ready" in log.read_text(), "both stub children ready")
    seen: set[str] = set()
    wait_until(lambda: seen.add(node_behind(port)) or seen == {"stub-1", "stub-2"}, "connections on both children")

    [first] = started_pids(log, 1)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: len(started_pids(log, 1)) == 2, "worker 1 restarted")
    assert "worker 1 (node stub-1) exited unexpectedly with status -9" in log.read_text()
    wait_until(lambda: log.read_text().count("worker 1 (node stub-1) ready") == 2, "the new worker 1 ready")
    assert gone(first)

    children = [started_pids(log, 1)[-1], started_pids(log, 2)[-1]]
    process.send_signal(stop_signal)  # forwarded to each child as SIGTERM
    assert process.wait(DEADLINE_S) == 0, log.read_text()
    assert all(gone(pid) for pid in children)
    assert "all workers stopped" in log.read_text()


def test_supervisor_exits_nonzero_when_a_child_cannot_start(stub_supervisor) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process, log = stub_supervisor(taken.getsockname()[1])
        assert process.wait(DEADLINE_S) == 1
    assert "could not start" in log.read_text()


# ---- the command line ------------------------------------------------------------------------


def run_chatd(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *argv],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=env,
        cwd=REPO,
    )


def test_workers_without_cluster_is_one_line_and_exit_2() -> None:
    for result, given in (
        (run_chatd("--workers", "2", "--port", str(free_port())), "--workers"),
        (run_chatd("--port", str(free_port()), env=dict(os.environ, CHATD_WORKERS="3")), "CHATD_WORKERS"),
    ):
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"chatd: {given}: needs --cluster"), result.stderr


@needs_cluster
def test_workers_with_port_zero_is_refused() -> None:
    result = run_chatd("--workers", "2", "--cluster", "redis://127.0.0.1:1/0", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "fixed --port" in result.stderr


@needs_cluster
def test_a_worker_runs_with_its_overrides_last() -> None:
    from chatd.cli import parse_settings
    from chatd.workers import child_argv

    argv = child_argv(["--workers=4", "--port", "7000", "--cluster", "redis://127.0.0.1:1/0"], "base-3")
    assert argv[:3] == [sys.executable, "-m", "chatd"]
    args, settings = parse_settings(argv[3:])
    assert args.workers == 0
    assert settings.reuse_port
    assert args.node_id == "base-3"
    assert settings.port == 7000


# ---- the real thing: two chatd nodes on one port over a real Redis -----------------------------


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    return redis.url


def server_seen(observer: IrcClient, nick: str) -> str:
    """The server ``observer``'s node names for ``nick`` in WHOIS (312): another node's users
    show that node's id; its own users show its server name (``--name``)."""
    observer.send(f"WHOIS {nick}")
    return observer.expect("312").params[2]


def known(observer: IrcClient, nick: str) -> bool:
    """Whether ``nick`` is known to the network as seen from ``observer``'s node."""
    observer.send(f"WHOIS {nick}")
    found = observer.expect("311", "401").command == "311"
    observer.expect("318")
    return found


@needs_cluster
@pytest.mark.parametrize("backend", ["selectors", "threads"])
def test_workers_share_one_port_talk_across_nodes_restart_and_stop(
    backend: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "chatd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatd", "--workers", "2", "--cluster", redis_url, "--port", str(port),
             "--node-id", "wk", "--no-persist", "--backend", backend],
            stderr=out,
            cwd=REPO,
        )  # fmt: skip
    clients: list[IrcClient] = []
    try:
        wait_until(lambda: "all 2 workers ready" in log.read_text() or process.poll() is not None, "workers ready")
        assert process.poll() is None, log.read_text()

        # The kernel spreads connections over the two listeners: keep connecting until a
        # client lands on the other node than the first (40 tries on one node: odds 2**-39).
        # Each node is ready once it listens; its Redis link may take a moment longer, so
        # every new user is first waited for until the first client's node knows it.
        alice = IrcClient(("127.0.0.1", port), "alice")
        clients.append(alice)
        here = server_seen(alice, "alice")
        bob = None
        for index in range(40):
            client = IrcClient(("127.0.0.1", port), f"bob{index}")
            clients.append(client)
            nick = f"bob{index}"
            wait_until(lambda nick=nick: known(alice, nick), f"{nick} known on alice's node")  # type: ignore[misc]
            if server_seen(alice, nick) != here:
                bob = client
                break
        assert bob is not None, log.read_text()[-2000:]
        assert bob.nick is not None
        wait_until(lambda: known(bob, "alice"), "alice known on bob's node")
        nodes = {"alice": server_seen(bob, "alice"), "bob": server_seen(alice, bob.nick)}
        assert sorted(nodes.values()) == ["wk-1", "wk-2"], nodes
        survivor = alice if nodes["alice"] == "wk-2" else bob

        alice.send("JOIN #net")
        alice.expect("366")
        bob.send("JOIN #net")
        bob.expect("366")
        alice.expect("JOIN")  # bob's join reaches alice's node
        alice.send("PRIVMSG #net :hello from the other node")
        said = bob.expect("PRIVMSG")
        assert list(said.params) == ["#net", "hello from the other node"] and said.source.startswith("alice!")
        bob.send("PRIVMSG alice :and back")
        assert list(alice.expect("PRIVMSG").params) == ["alice", "and back"]

        # A worker killed outright is restarted, and its node serves again on the same port.
        [killed] = started_pids(log, 1)
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: len(started_pids(log, 1)) == 2, "worker 1 restarted")
        wait_until(lambda: log.read_text().count("worker 1 (node wk-1) ready") == 2, "the new worker 1 ready")
        assert "exited unexpectedly with status -9" in log.read_text()

        def a_client_on_wk1() -> bool:
            client = IrcClient(("127.0.0.1", port), f"again{len(clients)}")
            clients.append(client)
            assert client.nick is not None
            wait_until(lambda: known(survivor, client.nick or ""), f"{client.nick} known on wk-2")
            return server_seen(survivor, client.nick) == "wk-1"

        wait_until(a_client_on_wk1, "a new connection served by the restarted wk-1")

        children = [started_pids(log, 1)[-1], started_pids(log, 2)[-1]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE_S) == 0, log.read_text()[-2000:]
        assert all(gone(pid) for pid in children)
    finally:
        for client in clients:
            client.close()
        if process.poll() is None:
            process.kill()
            process.wait()


@needs_cluster
def test_workers_exit_nonzero_when_the_port_is_taken(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_chatd("--workers", "2", "--cluster", redis_url, "--port", str(port), "--no-persist")
    assert result.returncode == 1
    assert "could not start" in result.stderr
