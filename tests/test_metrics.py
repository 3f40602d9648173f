"""The Prometheus collector reads the service's counters; no reactor, no HTTP."""

from prometheus_client.registry import CollectorRegistry

from chatproto.limits import Limits
from chatproto.server.metrics import ChatCollector
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol
from chatproto.wire.encode import encode_message
from tests.support import connect, make_service


def samples(collector: ChatCollector) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_metrics_count_the_traffic() -> None:
    """Users, messages, deliveries, bytes and errors match what the clients did."""
    service = make_service(random_messages=True, limits=Limits())
    factory = ChatFactory(service)
    alice, alice_transport = connect(service, factory=factory)
    bob, _ = connect(service, port=40001, factory=factory)
    connect(service, port=40002, factory=factory)  # connected, never logs in
    alice.dataReceived(b"ME IS alice\n")
    bob.dataReceived(b"ME IS bob\nME IS bob\n")  # the second is refused
    udp = ChatDatagramProtocol(service)
    udp.makeConnection(_NullDatagramTransport())
    udp.datagramReceived(b"ME IS carol", ("127.0.0.1", 5000))
    alice.dataReceived(encode_message([b"bob"], b"hi") * 2)
    alice.dataReceived(encode_message(None, b"x" * 150))  # chunked broadcast: not to carol
    alice.dataReceived(b"HELLO\n")
    got = samples(ChatCollector(service, factory))
    assert got[("chat_users_online", (("transport", "tcp"),))] == 2
    assert got[("chat_users_online", (("transport", "udp"),))] == 1
    assert got[("chat_tcp_connections", ())] == 3
    assert got[("chat_messages_received_total", (("command", "send"), ("framing", "short")))] == 2
    assert (
        got[("chat_messages_received_total", (("command", "broadcast"), ("framing", "chunked")))]
        == 1
    )
    assert got[("chat_message_bytes_received_total", ())] == 154
    # Deliveries include bob's random message, also counted on its own.
    assert got[("chat_deliveries_total", (("framing", "short"),))] == 3
    assert got[("chat_deliveries_total", (("framing", "chunked"),))] == 2
    assert got[("chat_random_messages_total", ())] == 1
    assert got[("chat_errors_total", (("reason", "already logged in"),))] == 1
    assert got[("chat_errors_total", (("reason", "unknown command"),))] == 1
    assert got[("chat_delivery_latency_seconds_count", ())] == 5  # one per delivery
    assert alice_transport.value().startswith(b"OK\n")


def test_delivered_bytes_are_wire_bytes() -> None:
    """chat_delivered_bytes_total counts the FROM line and the framed body."""
    service = make_service()
    factory = ChatFactory(service)
    alice, _ = connect(service)
    alice.dataReceived(b"ME IS alice\n" + encode_message([b"alice"], b"hello"))
    got = samples(ChatCollector(service, factory))
    assert got[("chat_delivered_bytes_total", ())] == len(b"FROM alice\n5\nhello")


def test_collector_yields_every_family_once_in_order() -> None:
    """The collector yields each metric family once, in a fixed order, with its type."""
    service = make_service()
    families = [
        (family.name, family.type)
        for family in ChatCollector(service, ChatFactory(service)).collect()
    ]
    assert families == [
        ("chat_users_online", "gauge"),
        ("chat_tcp_connections", "gauge"),
        ("chat_messages_received", "counter"),
        ("chat_message_bytes_received", "counter"),
        ("chat_deliveries", "counter"),
        ("chat_delivered_bytes", "counter"),
        ("chat_random_messages", "counter"),
        ("chat_errors", "counter"),
        ("chat_slow_consumers_disconnected", "counter"),
        ("chat_connections_refused", "counter"),
        ("chat_flood_throttled", "counter"),
        ("chat_flood_dropped", "counter"),
        ("chat_address_limit_refused", "counter"),
        ("chat_spool_bytes", "gauge"),
        ("chat_delivery_latency_seconds", "histogram"),
        ("chat_cluster_messages_in", "counter"),
        ("chat_cluster_messages_out", "counter"),
        ("chat_cluster_messages_dropped", "counter"),
    ]


class _NullDatagramTransport:
    def write(self, packet: bytes, addr: object = None) -> None:
        pass
