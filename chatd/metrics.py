"""/metrics and /healthz: the server's counters in the Prometheus text format, read at scrape time.

The hub and the backends count in plain numbers (``chatd.core.stats``); a scrape reads
them through ``HubCollector`` and ``prometheus_client`` writes the exposition. Nothing
is pushed into prometheus objects per message, so the hot path never pays for metrics.

Invariants:
- ``render`` and ``health`` only read: a few ints, ``len`` of the hub's dicts, the
  history queue's size, the cluster link's flag. None of it takes a lock or blocks,
  so they may run on the selectors loop between two events, or on any thread of the
  threads backend without the hub lock (each read is one atomic operation under the GIL;
  a scrape may see one counter an event ahead of another, never a torn value).
- Every metric is named ``chatd_*`` with its unit in the name (``_seconds``, ``_total``),
  apart from the standard ``process_*`` family of ``prometheus_client``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from chatd.core.stats import SERVING, Histogram

if TYPE_CHECKING:
    from chatd.core.hub import Hub

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format: every Prometheus (and every scraper) reads it; our names need no escaping."""

FORWARDING_HEADERS = frozenset({"forwarded", "x-forwarded-for", "x-real-ip"})
"""A request carrying one of these came through a proxy: from elsewhere, whatever its peer address."""

TRANSPORT_KINDS = ("tcp", "tls", "websocket")
"""Always shown, at 0 when none is open, so a dashboard's series exist from the start."""


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets, total = histogram.snapshot()
    return HistogramMetricFamily(
        name, documentation, buckets=[(floatToGoString(bound), count) for bound, count in buckets], sum_value=total
    )


class RoutesLike(Protocol):
    """What ``Metrics.install`` needs of an HTTP router (``chatd.http.HttpRoutes`` has it)."""

    def set_metrics(
        self,
        provider: Callable[[], tuple[str, bytes]] | None,
        allowed: Callable[[str, Iterable[str]], bool] | None = None,
    ) -> None: ...

    def set_health(self, provider: Callable[[], tuple[int, str]] | None) -> None: ...


class HubCollector(Collector):
    """Reads one hub's counters (and its history store's and cluster link's) on every scrape."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        stats = hub.stats
        connections = GaugeMetricFamily(
            "chatd_connections", "Open client connections by transport (plain-mode ones included).", labels=["kind"]
        )
        open_by_kind = dict(stats.connections)  # one atomic copy: the loop may add a kind meanwhile
        for kind in TRANSPORT_KINDS:
            open_by_kind.setdefault(kind, 0)
        for kind, count in sorted(open_by_kind.items()):
            connections.add_metric([kind], count)
        yield connections
        yield GaugeMetricFamily(
            "chatd_plain_connections",
            "Open connections in plain (netcat-style) mode, over any transport.",
            value=stats.plain_connections,
        )
        yield GaugeMetricFamily("chatd_users", "Registered users connected to this server.", value=hub.user_count)
        yield GaugeMetricFamily(
            "chatd_channels", "Channels that exist (with members, or permanent).", value=len(hub.channels)
        )
        yield CounterMetricFamily(
            "chatd_messages", "PRIVMSG, NOTICE and TAGMSG this server's users sent.", value=stats.messages
        )
        yield CounterMetricFamily(
            "chatd_deliveries",
            "Copies of channel events and private messages handed to recipients (counted per fan-out).",
            value=stats.deliveries,
        )
        yield CounterMetricFamily(
            "chatd_sendq_disconnects",
            "Clients cut because their send queue passed --sendq.",
            value=stats.sendq_disconnects,
        )
        yield CounterMetricFamily(
            "chatd_flood_disconnects", "Clients cut for Excess Flood.", value=stats.flood_disconnects
        )
        yield _histogram("chatd_loop_lag_seconds", "How late the backend ran its timers once due.", stats.loop_lag)
        yield GaugeMetricFamily(
            "chatd_serving",
            "1 while the server serves; 0 while starting or shutting down.",
            value=stats.state == SERVING,
        )
        yield from self._history()
        yield from self._cluster()

    def _history(self) -> Iterator[Metric]:
        store = getattr(self.hub.history, "store", None)
        if store is None:  # in-memory history or none: nothing is written
            return
        yield GaugeMetricFamily(
            "chatd_history_write_queue", "History writes queued for the SQLite writer thread.", value=store.queue_depth
        )
        yield _histogram(
            "chatd_history_commit_seconds", "Time the writer thread took per batch commit.", store.commit_seconds
        )

    def _cluster(self) -> Iterator[Metric]:
        node = self.hub.cluster
        if node is None:
            return
        stats = self.hub.stats
        yield GaugeMetricFamily(
            "chatd_cluster_link_up", "1 while the link to Redis is up, 0 while it is down.", value=bool(node.up)
        )
        yield GaugeMetricFamily(
            "chatd_cluster_nodes", "Other nodes this one holds users of.", value=len(getattr(node, "nodes", ()))
        )
        streams = getattr(node, "streams", None)
        if streams is not None:
            yield GaugeMetricFamily(
                "chatd_cluster_outbox_events",
                "Events this node's users sent that Redis has not taken yet (buffered while it is away).",
                value=len(streams.outbox),
            )
            yield GaugeMetricFamily(
                "chatd_cluster_streams_read", "Streams this node reads: its own and its channels'.",
                value=len(streams.readers),
            )  # fmt: skip
            yield CounterMetricFamily(
                "chatd_cluster_stream_gaps_trimmed",
                "Times events of a stream this node reads were trimmed from Redis before it read them "
                "(away longer than a stream keeps): lost to this node.",
                value=streams.trimmed,
            )
        events = CounterMetricFamily(
            "chatd_cluster_events",
            "Cluster events published by this node (out) and received from others (in); rate() gives per second.",
            labels=["direction"],
        )
        events.add_metric(["in"], stats.cluster_events_in)
        events.add_metric(["out"], stats.cluster_events_out)
        yield events


class Metrics:
    """The /metrics and /healthz providers of one hub; build once, call per request.

    Both may be called from the loop's thread or from any thread (see the module's
    invariants); neither blocks.
    """

    def __init__(self, hub: Hub, *, process: bool = True) -> None:
        self.hub = hub
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(HubCollector(hub))
        if process:  # CPU, memory and descriptors of this process, read from /proc at scrape time
            self.registry.register(ProcessCollector(registry=None))

    def render(self) -> tuple[str, bytes]:
        """The exposition: ``(content type, body)``."""
        return CONTENT_TYPE, generate_latest(self.registry)

    def health(self) -> tuple[int, str]:
        """``(status, body)`` of /healthz: 200 while serving, 503 while starting or shutting down."""
        state = self.hub.stats.state
        return (200, "ok\n") if state == SERVING else (503, f"{state}\n")

    def install(self, routes: RoutesLike, metrics_routes: RoutesLike | None = None) -> None:
        """Plug /metrics and /healthz into the HTTP routers (``chatd.http.HttpRoutes``).

        Without a metrics listener (``metrics_routes`` None) /metrics is on the public
        listener's ``routes`` for ``scrape_allowed`` requests only. With one, /metrics is
        there alone, open to every peer (the operator chose its address), and the public
        listener answers /metrics with 404, so the counters are only where they were put;
        /healthz is on both, since load balancers check the public port.
        """
        routes.set_health(self.health)
        if metrics_routes is None:
            routes.set_metrics(self.render, scrape_allowed)
            return
        routes.set_metrics(None)
        metrics_routes.set_metrics(self.render)
        metrics_routes.set_health(self.health)


def render(hub: Hub) -> tuple[str, bytes]:
    """``(content type, body)`` of /metrics for ``hub``; a ``Metrics`` kept around does the same."""
    return Metrics(hub).render()


def health(hub: Hub) -> tuple[int, str]:
    """``(status, body)`` of /healthz for ``hub``."""
    return Metrics(hub, process=False).health()


def is_loopback(peer: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``); False for
    anything else, a name or garbage included."""
    try:
        address = ipaddress.ip_address(peer.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def scrape_allowed(peer: str, header_names: Iterable[str]) -> bool:
    """Whether /metrics on the public (WebSocket) listener answers a request (without a
    ``--metrics-port`` listener; with one, /metrics is there alone and open): only when it comes
    from this machine itself (``peer`` is the socket's peer address, never one a header names)
    and no proxy forwarded it. Without ``--metrics-host`` this is the whole access control: a
    Prometheus (or curl) on the host scrapes; the browsers the listener serves do not, and a
    reverse proxy on the same host does not open it to the world, since it adds X-Forwarded-For.
    """
    return is_loopback(peer) and not any(name.lower() in FORWARDING_HEADERS for name in header_names)
