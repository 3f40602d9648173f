"""Per-address limits on a Clock: counts, the connect rate, exemptions, logging, options."""

import pytest
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import capturedLogs
from twisted.python import usage

from chatproto.limits import Limits, Rate
from chatproto.server import addresses
from chatproto.server.addresses import AddressLimits, parse_networks
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol
from chatproto.tap import Options
from tests.protocol_support import close
from tests.support import connect, make_service

LOOPBACK = parse_networks(["127.0.0.0/8", "::1"])


def limited(clock: Clock | None = None, exempt=LOOPBACK, **limits: int) -> AddressLimits:  # type: ignore[no-untyped-def]
    return AddressLimits(Limits(**limits), clock or Clock(), exempt)


def test_connections_past_the_limit_from_one_address_are_refused() -> None:
    table = limited(max_connections_per_ip=2)
    assert [table.admit_connection("10.0.0.2") for _ in range(3)] == [
        None,
        None,
        "max-connections-per-ip",
    ]
    assert table.admit_connection("10.0.0.3") is None  # another address is not affected
    table.connection_closed("10.0.0.2")
    assert table.admit_connection("10.0.0.2") is None  # a slot freed


def test_the_connect_rate_refills_over_a_minute() -> None:
    clock = Clock()
    table = limited(clock, connect_rate_per_ip=3)
    for _ in range(3):
        assert table.admit_connection("10.0.0.2") is None
        table.connection_closed("10.0.0.2")
    assert table.admit_connection("10.0.0.2") == "connect-rate-per-ip"
    clock.advance(20)  # a third of a minute: one connect back
    assert table.admit_connection("10.0.0.2") is None
    assert table.admit_connection("10.0.0.2") == "connect-rate-per-ip"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", None, "x"])
def test_loopback_and_addressless_peers_are_exempt_by_default(host: str | None) -> None:
    table = limited(max_connections_per_ip=1, connect_rate_per_ip=1)
    assert [table.admit_connection(host) for _ in range(5)] == [None] * 5


def test_no_exemption_limits_loopback_too() -> None:
    table = limited(exempt=(), max_connections_per_ip=1)
    assert table.admit_connection("127.0.0.1") is None
    assert table.admit_connection("127.0.0.1") == "max-connections-per-ip"


def test_udp_sessions_past_the_limit_from_one_address_are_refused() -> None:
    table = limited(max_udp_sessions_per_ip=2)
    for _ in range(2):
        assert table.admit_udp_session("10.0.0.2") is None
        table.udp_session_opened("10.0.0.2")
    assert table.admit_udp_session("10.0.0.2") == "max-udp-sessions-per-ip"
    table.udp_session_closed("10.0.0.2")
    assert table.admit_udp_session("10.0.0.2") is None


def test_a_refusal_is_logged_once_per_address_per_minute() -> None:
    clock = Clock()
    table = limited(clock)
    decisions = [table.should_log("10.0.0.2", "max-connections-per-ip") for _ in range(3)]
    assert decisions == [True, False, False]
    assert table.should_log("10.0.0.3", "max-connections-per-ip")
    clock.advance(60)
    assert table.should_log("10.0.0.2", "max-connections-per-ip")


def test_the_tables_of_addresses_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addresses, "MAX_TRACKED_ADDRESSES", 10)
    table = limited()
    for n in range(100):
        host = f"10.0.{n // 256}.{n % 256}"
        table.admit_connection(host)
        table.connection_closed(host)
        table.should_log(host, "connect-rate-per-ip")
    sizes = (len(table._connects), len(table._logged), len(table._exempt_by_host))
    assert (sizes, len(table._open)) == ((10, 10, 10), 0)


# -- in the factory and the service -----------------------------------------------------


def test_the_65th_connection_from_one_address_is_closed_while_another_connects() -> None:
    service = make_service(limit_exempt=())
    factory = ChatFactory(service)
    first = [connect(service, host="10.0.0.2", factory=factory) for _ in range(64)]
    with capturedLogs() as events:
        assert factory.buildProtocol(IPv4Address("TCP", "10.0.0.2", 1)) is None
        assert factory.buildProtocol(IPv4Address("TCP", "10.0.0.2", 2)) is None
    assert connect(service, host="10.0.0.3", factory=factory)
    assert service.stats.address_refused == {"max-connections-per-ip": 2}
    refusals = [e for e in events if "refused" in e["log_format"]]
    assert len(refusals) == 1  # logged once per address per minute
    close(first[0][0])
    assert connect(service, host="10.0.0.2", factory=factory)  # its slot is free again


def test_a_unix_socket_client_is_not_limited() -> None:
    service = make_service(limit_exempt=(), limits=Limits(max_connections_per_ip=1))
    factory = ChatFactory(service)
    protocols = [factory.buildProtocol(UNIXAddress(None)) for _ in range(3)]
    assert all(protocol is not None for protocol in protocols)


def test_the_65th_udp_login_from_one_address_gets_error() -> None:
    service = make_service(limit_exempt=())
    udp = ChatDatagramProtocol(service)
    transport = FakeDatagramTransport()
    udp.makeConnection(transport)
    for n in range(65):
        udp.datagramReceived(b"ME IS u%d" % n, ("10.0.0.2", 5000 + n))
    replies = [data for data, _ in transport.written]
    assert replies == [b"OK\n"] * 64 + [b"ERROR\n"]
    udp.datagramReceived(b"ME IS v", ("10.0.0.3", 5000))
    assert transport.written[-1][0] == b"OK\n"
    service.logout(service.lookup(b"u0"))  # type: ignore[arg-type]
    udp.datagramReceived(b"ME IS w", ("10.0.0.2", 6000))
    assert transport.written[-1][0] == b"OK\n"


# -- the options -------------------------------------------------------------------------


def test_public_turns_on_the_recommended_flood_control() -> None:
    options = Options()
    options.parseOptions(["9000", "--public"])
    assert options.limits().flood_messages == Rate(5.0, 20.0)
    assert options.limits().flood_bytes == Rate(256.0 * 1024, 4.0 * 1024 * 1024)


def test_public_leaves_what_is_given_alone() -> None:
    options = Options()
    options.parseOptions(["9000", "--public", "--flood-messages", "50/100", "--flood-bytes=off"])
    assert (options.limits().flood_messages, options.limits().flood_bytes) == (
        Rate(50.0, 100.0),
        None,
    )


def test_limit_exempt_replaces_the_default_and_none_empties_it() -> None:
    options = Options()
    options.parseOptions(["9000", "--limit-exempt", "10.0.0.0/8", "--limit-exempt", "fd00::/8"])
    assert [str(network) for network in options["limit-exempt"]] == ["10.0.0.0/8", "fd00::/8"]
    options = Options()
    options.parseOptions(["9000", "--limit-exempt", "none"])
    assert options["limit-exempt"] == ()
    assert Options()["limit-exempt"] == LOOPBACK


@pytest.mark.parametrize(
    "args",
    [
        ["--limit-exempt", "10.0.0.300/8"],
        ["--flood-messages", "0"],
        ["--flood-messages", "5/0"],
        ["--flood-bytes", "lots"],
    ],
)
def test_bad_abuse_options_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["9000", *args])
