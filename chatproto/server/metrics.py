"""Prometheus metrics for operators: ``--metrics-port`` (``pip install 'chatproto[metrics]'``).

A collector turns the service's plain counters (``chatproto.server.stats``) and
gauges read at scrape time into Prometheus metric families, so the relay's
hot path never touches a Prometheus object. The page is served by
``prometheus_client``'s own Twisted resource under ``/metrics``; it runs the
collector in the reactor's thread pool, so the collector only takes
snapshots (copies) of what it reads.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource
from twisted.web.server import Site

from chatproto.server.service import ChatService
from chatproto.server.stats import LATENCY_BUCKETS_S
from chatproto.server.tcp import ChatFactory


class ChatCollector:
    """Collect the chat server's metrics from its service and TCP factory."""

    def __init__(self, service: ChatService, factory: ChatFactory) -> None:
        self._service = service
        self._factory = factory

    def collect(self) -> Iterator[object]:
        """Yield every metric family, read now from the service, its stats and the factory."""
        yield from self._connections()
        yield from self._traffic()
        yield from self._trouble()
        yield from self._cluster()

    def _connections(self) -> Iterator[object]:
        """Yield the users online by transport and the TCP connections open."""
        users = GaugeMetricFamily(
            "chat_users_online", "Users logged in, by transport.", labels=["transport"]
        )
        for transport, count in self._service.users_by_transport().items():
            users.add_metric([transport], count)
        yield users
        yield GaugeMetricFamily(
            "chat_tcp_connections", "TCP connections open.", value=self._factory.connections
        )

    def _traffic(self) -> Iterator[object]:
        """Yield what came in and went out: messages, bytes, deliveries, random messages."""
        stats = self._service.stats
        yield _labelled_counter(
            "chat_messages_received",
            "Complete messages received, by command and framing.",
            ["command", "framing"],
            dict(stats.messages_in),
        )
        yield CounterMetricFamily(
            "chat_message_bytes_received",
            "Body bytes of the messages received.",
            value=stats.body_bytes_in,
        )
        yield _labelled_counter(
            "chat_deliveries",
            "Messages handed to recipients, by framing.",
            ["framing"],
            {(framing,): count for framing, count in dict(stats.deliveries_out).items()},
        )
        yield CounterMetricFamily(
            "chat_delivered_bytes", "Wire bytes delivered to recipients.", value=stats.bytes_out
        )
        yield CounterMetricFamily(
            "chat_random_messages", "Random messages sent.", value=stats.random_messages
        )

    def _trouble(self) -> Iterator[object]:
        """Yield errors, disconnected and refused clients, spool use and delivery latency."""
        stats = self._service.stats
        yield _labelled_counter(
            "chat_errors",
            "ERROR replies, by reason.",
            ["reason"],
            {(reason,): count for reason, count in dict(stats.errors).items()},
        )
        yield CounterMetricFamily(
            "chat_slow_consumers_disconnected",
            "Recipients disconnected because they stopped reading.",
            value=stats.slow_consumers,
        )
        yield CounterMetricFamily(
            "chat_connections_refused",
            "TCP connections closed at once for the connection limit.",
            value=stats.connections_refused,
        )
        yield from self._abuse()
        yield GaugeMetricFamily(
            "chat_spool_bytes", "Bytes in spool files now.", value=self._service.spool.bytes_in_use
        )
        yield _latency_histogram(stats.delivery_latency.counts[:], stats.delivery_latency.total_s)

    def _abuse(self) -> Iterator[object]:
        """Yield what flood control and the per-address limits did."""
        stats = self._service.stats
        yield CounterMetricFamily(
            "chat_flood_throttled",
            "Times a TCP client was slowed down for passing --flood-messages/--flood-bytes.",
            value=stats.flood_throttled,
        )
        yield CounterMetricFamily(
            "chat_flood_dropped",
            "UDP datagrams dropped for passing --flood-messages/--flood-bytes.",
            value=stats.flood_dropped,
        )
        yield _labelled_counter(
            "chat_address_limit_refused",
            "TCP connections closed and UDP logins refused for a per-address limit, by limit.",
            ["limit"],
            {(name,): count for name, count in dict(stats.address_refused).items()},
        )

    def _cluster(self) -> Iterator[object]:
        """Yield the messages exchanged with other processes (``--cluster``) and those dropped."""
        stats = self._service.stats
        yield CounterMetricFamily(
            "chat_cluster_messages_in",
            "Messages that came from other chatproto processes (--cluster).",
            value=stats.messages_relayed_in,
        )
        yield CounterMetricFamily(
            "chat_cluster_messages_out",
            "Messages passed on to other chatproto processes, once per process.",
            value=stats.messages_relayed_out,
        )
        yield _labelled_counter(
            "chat_cluster_messages_dropped",
            "Messages for users elsewhere that could not be passed on, by reason.",
            ["reason"],
            {(reason,): count for reason, count in dict(stats.messages_not_relayed).items()},
        )


def _labelled_counter(
    name: str, documentation: str, labels: list[str], counts: Mapping[Any, int]
) -> CounterMetricFamily:
    """A counter family with one sample per label tuple (the keys of ``counts``)."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, count in sorted(counts.items()):
        family.add_metric(list(label_values), count)
    return family


def _latency_histogram(counts: list[int], total_s: float) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return HistogramMetricFamily(
        "chat_delivery_latency_seconds",
        "Time from a message's last byte to its handing to a recipient's connection.",
        buckets=buckets,
        sum_value=total_s,
    )


def metrics_site(service: ChatService, factory: ChatFactory) -> Site:
    """Return a web site serving the chat metrics at ``/metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ChatCollector(service, factory))  # type: ignore[arg-type]
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    site = Site(root)
    site.noisy = False
    return site
