"""/metrics and /healthz over both backends: the values move when users connect and talk.

Each test reads the exposition as a scraper would (``prometheus_client``'s own parser over
what ``chatd.metrics`` renders for a running server's hub) and asserts how the counters
and gauges changed: connections by kind, registered users, channels, messages and
deliveries, a sendq and a flood disconnect, loop lag observed, SQLite commit latency
observed, the cluster link's state and events; /healthz is 200 serving, 503 stopping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatd.backends.tls import server_context
from chatd.core.stats import Histogram
from chatd.history import History, SqliteStore
from chatd.metrics import CONTENT_TYPE, Metrics, is_loopback, scrape_allowed
from tests.helpers import REDIS_SERVER, IrcClient, LineClient, RedisServer, RunningServer, running_server, wait_until
from tests.test_tls import TlsIrcClient
from tests.test_tls import certificate as tls_certificate  # noqa: F401 (test_tls's fixture, shared)
from tests.wsclient import WsClient, ws_server, ws_url

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: RunningServer) -> Samples:
    """Every sample of the server's exposition, by name and labels, parsed by prometheus_client."""
    content_type, body = Metrics(server.server.hub).render()  # type: ignore[attr-defined]
    assert content_type == CONTENT_TYPE
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def metric(server: RunningServer, name: str, **labels: str) -> float:
    return value(scrape(server), name, **labels)


def test_counts_move_as_users_connect_join_talk_and_leave(backend: str) -> None:
    with running_server(backend, flood_rate=0) as server:
        start = scrape(server)
        assert value(start, "chatd_connections", kind="tcp") == 0
        assert value(start, "chatd_users") == 0
        alice, bob = server.client("alice"), server.client("bob")
        carol = LineClient(server.address)
        carol.send_raw(b"carol\n")  # plain mode: its first line is its name
        wait_until(lambda: metric(server, "chatd_users") == 3, "three registered users")
        joined = scrape(server)
        assert value(joined, "chatd_connections", kind="tcp") == 3
        assert value(joined, "chatd_connections", kind="websocket") == 0
        assert value(joined, "chatd_plain_connections") == 1
        channels = value(joined, "chatd_channels")
        for client in (alice, bob):
            client.send("JOIN #m")
            client.until("366")
        alice.sync()
        before = scrape(server)
        assert value(before, "chatd_channels") == channels + 1
        alice.send("PRIVMSG #m :hello")
        assert bob.expect("PRIVMSG").params == ("#m", "hello")
        alice.send("PRIVMSG bob :psst")
        assert bob.expect("PRIVMSG").params == ("bob", "psst")
        after = scrape(server)
        assert value(after, "chatd_messages_total") == value(before, "chatd_messages_total") + 2
        # One to bob in #m (the sender is skipped), one private: counted per fan-out.
        assert value(after, "chatd_deliveries_total") == value(before, "chatd_deliveries_total") + 2
        bob.send("QUIT :bye")
        bob.wait_closed()
        carol.close()
        wait_until(lambda: metric(server, "chatd_users") == 1, "two users gone")
        gone = scrape(server)
        assert value(gone, "chatd_connections", kind="tcp") == 1
        assert value(gone, "chatd_plain_connections") == 0
        assert value(gone, "chatd_channels") == channels + 1  # alice is still in #m
        alice.send("PART #m")
        alice.sync()
        assert metric(server, "chatd_channels") == channels


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_connections_are_counted_apart(backend: str, tls_certificate: tuple[Path, Path]) -> None:  # noqa: F811
    cert, key = tls_certificate
    with running_server(backend, tls_context=server_context(str(cert), str(key))) as server:
        tls_address = server.server.tls_address
        assert tls_address is not None
        secure = TlsIrcClient(tls_address, cert, "secure")
        plain = server.client("plaintext")
        wait_until(lambda: metric(server, "chatd_users") == 2, "both registered")
        samples = scrape(server)
        assert value(samples, "chatd_connections", kind="tls") == 1
        assert value(samples, "chatd_connections", kind="tcp") == 1
        secure.send("QUIT")
        secure.wait_closed()
        wait_until(lambda: metric(server, "chatd_connections", kind="tls") == 0, "the TLS client gone")
        plain.sync()


def test_a_client_that_never_reads_is_a_sendq_disconnect(backend: str) -> None:
    with running_server(backend, sendq_bytes=16 * 1024, flood_rate=0) as server:
        sender = server.client("sender")
        sleeper = IrcClient(server.address, "sleeper", receive_buffer=4096)
        for client in (sender, sleeper):
            client.send("JOIN #q")
            client.until("366")
        sleeper.sync()
        assert metric(server, "chatd_sendq_disconnects_total") == 0
        batch = b"".join(f"PRIVMSG #q :{index} {'z' * 400}\r\n".encode() for index in range(100))
        sent = 0
        # The kernel's buffers (autotuned to a few MiB) fill first; then the 16 KiB sendq passes.
        while metric(server, "chatd_sendq_disconnects_total") == 0:
            assert sent < 64 << 20, "the sleeper was never cut"
            sender.send_raw(batch)
            sent += len(batch)
        assert metric(server, "chatd_sendq_disconnects_total") == 1
        assert metric(server, "chatd_flood_disconnects_total") == 0
        sleeper.close()


def test_a_flooder_is_a_flood_disconnect(backend: str) -> None:
    with running_server(backend, flood_burst=5, flood_rate=50.0, flood_excess_limit=20) as server:
        flooder, watcher = server.client("flooder"), server.client("watcher")
        with contextlib.suppress(OSError):  # the server may close on us mid-flood
            flooder.send_raw(b"".join(f"PRIVMSG watcher :{i}\r\n".encode() for i in range(2000)))
        assert any("Excess Flood" in line for line in flooder.wait_closed())
        watcher.sync()
        samples = scrape(server)
        assert value(samples, "chatd_flood_disconnects_total") == 1
        assert value(samples, "chatd_sendq_disconnects_total") == 0
        assert value(samples, "chatd_users") == 1


def test_loop_lag_is_observed_when_timers_run(backend: str) -> None:
    with running_server(backend, register_timeout_s=0.2) as server:
        LineClient(server.address).wait_closed()  # silent: the registration timer cuts it
        samples = scrape(server)
        count = value(samples, "chatd_loop_lag_seconds_count")
        assert count >= 1
        assert value(samples, "chatd_loop_lag_seconds_bucket", le="+Inf") == count
        assert 0 <= value(samples, "chatd_loop_lag_seconds_sum") < count * 5.0


def test_history_commit_latency_with_sqlite(backend: str, tmp_path: Path) -> None:
    history = History(SqliteStore(str(tmp_path)))
    with running_server(backend, history=history) as server:
        talker = server.client("talker")
        talker.send("JOIN #h")
        talker.until("366")
        for index in range(5):
            talker.send(f"PRIVMSG #h :entry {index}")
        talker.sync()
        wait_until(lambda: metric(server, "chatd_history_commit_seconds_count") >= 1, "a commit observed")
        wait_until(lambda: metric(server, "chatd_history_write_queue") == 0, "the writer to drain its queue")
        assert metric(server, "chatd_history_commit_seconds_sum") > 0


def test_without_a_store_there_is_no_history_family(backend: str) -> None:
    with running_server(backend, history=History(None)) as server:
        names = {name for name, _ in scrape(server)}
        assert "chatd_history_write_queue" not in names
        assert "chatd_cluster_link_up" not in names
        assert "process_cpu_seconds_total" in names


def test_health_is_200_while_serving_and_503_once_stopping(backend: str) -> None:
    with running_server(backend) as server:
        metrics = Metrics(server.server.hub)  # type: ignore[attr-defined]
        wait_until(lambda: metrics.health()[0] == 200, "the server to serve")
        assert metric(server, "chatd_serving") == 1
        server.server.shutdown()
        assert metrics.health() == (503, "stopping\n")
        assert metric(server, "chatd_serving") == 0


@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed")
def test_cluster_link_state_and_events(backend: str, redis: RedisServer) -> None:
    from tests.test_cluster import cluster_node, joined, linked, sees_member

    with cluster_node(backend, redis, "a", flood_rate=0) as a, cluster_node(backend, redis, "b") as b:
        linked(a, b)
        samples = scrape(a)
        assert value(samples, "chatd_cluster_link_up") == 1
        assert value(samples, "chatd_cluster_nodes") == 1
        alice, bob = a.client("alice"), b.client("bob")
        joined(alice, "#c")
        sees_member(bob, "#c", "alice")
        joined(bob, "#c")
        alice.sync()
        out_before = metric(a, "chatd_cluster_events_total", direction="out")
        in_before = metric(b, "chatd_cluster_events_total", direction="in")
        alice.send("PRIVMSG #c :across")
        assert bob.expect("PRIVMSG").params == ("#c", "across")
        # Polled: a's reader thread may count its publish just after bob already has the line.
        wait_until(lambda: metric(a, "chatd_cluster_events_total", direction="out") > out_before, "a publishing")
        wait_until(lambda: metric(b, "chatd_cluster_events_total", direction="in") > in_before, "b receiving")
        assert metric(a, "chatd_cluster_streams_read") == 2  # its own stream and #c's
        redis.kill()
        wait_until(lambda: metric(a, "chatd_cluster_link_up") == 0, "the link to go down")
        alice.send("PRIVMSG #c :kept for later")
        wait_until(lambda: metric(a, "chatd_cluster_outbox_events") == 1, "the message to wait in the outbox")


def test_histogram_buckets_are_cumulative_and_end_at_the_count() -> None:
    histogram = Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0, -1.0):
        histogram.observe(seconds)
    buckets, total = histogram.snapshot()
    assert buckets == [(0.1, 3), (1.0, 4), (float("inf"), 5)]
    assert histogram.count == 5
    assert total == pytest.approx(3.65)


def test_only_unforwarded_loopback_requests_may_scrape_the_public_listener() -> None:
    for peer in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"):
        assert is_loopback(peer), peer
        assert scrape_allowed(peer, ["Host", "User-Agent"])
    for peer in ("10.0.0.1", "192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", "localhost", "", "garbage"):
        assert not scrape_allowed(peer, ["Host"]), peer
    for header in ("X-Forwarded-For", "forwarded", "X-Real-IP"):
        assert not scrape_allowed("127.0.0.1", ["Host", header]), header


def test_scraped_over_http_on_the_websocket_port_with_websocket_clients_counted(backend: str) -> None:
    with ws_server(backend, flood_rate=0) as server:
        Metrics(server.server.hub).install(server.server.http_routes)  # as chatd's CLI does
        host, port = server.server.addresses["ws"]

        def over_http(path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
            request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers or {})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.headers["Content-Type"], response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.headers["Content-Type"], error.read()

        def http_samples() -> Samples:
            status, content_type, body = over_http("/metrics")
            assert (status, content_type) == (200, CONTENT_TYPE)
            found: Samples = {}
            for family in text_string_to_metric_families(body.decode()):
                for sample in family.samples:
                    found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
            return found

        assert over_http("/healthz")[0] == 200
        # what a reverse proxy forwards is not this machine asking: refused
        assert over_http("/metrics", {"X-Forwarded-For": "192.0.2.7"})[0] == 403
        before = http_samples()
        web, irc = WsClient(ws_url(server), "web"), server.client("irc")
        for client in (web, irc):
            client.send("JOIN #w")
            client.until("366")
        web.send("PRIVMSG #w :from the browser")
        assert irc.expect("PRIVMSG").params == ("#w", "from the browser")
        after = http_samples()
        assert value(after, "chatd_connections", kind="websocket") == 1
        assert value(after, "chatd_connections", kind="tcp") == 1
        assert value(after, "chatd_users") == value(before, "chatd_users") + 2
        assert value(after, "chatd_messages_total") == value(before, "chatd_messages_total") + 1
        server.server.shutdown()
        assert Metrics(server.server.hub).health() == (503, "stopping\n")
