"""The UDP protocol over FakeDatagramTransport: PROTOCOL.md §6, and TCP<->UDP delivery."""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport

from chatproto.limits import Limits
from chatproto.server.service import ChatService
from chatproto.server.udp import ChatDatagramProtocol, UDPClients
from tests.support import connect, make_service, take

CAROL = ("127.0.0.1", 5001)
DAVE = ("127.0.0.1", 5002)


def listen(
    service: ChatService, clients: UDPClients | None = None
) -> tuple[ChatDatagramProtocol, FakeDatagramTransport]:
    protocol = ChatDatagramProtocol(service, clients)
    transport = FakeDatagramTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def sent(transport: FakeDatagramTransport) -> list[tuple[bytes, object]]:
    packets = list(transport.written)
    transport.written.clear()
    return packets


@pytest.fixture
def service() -> ChatService:
    return make_service()


def test_login_datagram_gets_ok_datagram(service: ChatService) -> None:
    """A datagram ME IS logs the address in and gets OK back to that address."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol\n", CAROL)
    assert sent(transport) == [(b"OK\n", CAROL)]
    assert service.lookup(b"carol") is not None


def test_login_without_newline_is_accepted(service: ChatService) -> None:
    """In a datagram, ME IS may omit its newline (a trailing \\r is tolerated)."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol\r", CAROL)
    assert sent(transport) == [(b"OK\n", CAROL)]


def test_duplicate_userid_over_udp_gets_error(service: ChatService) -> None:
    """A userid online over TCP cannot log in over UDP."""
    tcp, _ = connect(service)
    tcp.dataReceived(b"ME IS carol\n")
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    assert sent(transport) == [(b"ERROR\n", CAROL)]


def test_second_login_from_a_logged_in_address_gets_error(service: ChatService) -> None:
    """A logged-in address cannot log in again; its login stays."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    protocol.datagramReceived(b"ME IS dave", CAROL)
    assert sent(transport) == [(b"OK\n", CAROL), (b"ERROR\n", CAROL)]
    assert service.lookup(b"dave") is None


def test_udp_to_tcp_delivery(service: ChatService) -> None:
    """A SEND datagram from a UDP user reaches a TCP user."""
    bob, bob_transport = connect(service)
    bob.dataReceived(b"ME IS bob\n")
    take(bob_transport)
    protocol, _ = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    protocol.datagramReceived(b"SEND bob\n9\nYou suck!", CAROL)
    assert bob_transport.value() == b"FROM carol\n9\nYou suck!"


def test_tcp_to_udp_delivery_is_one_datagram(service: ChatService) -> None:
    """A short message for a UDP user goes as one datagram to its address."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    sent(transport)
    alice, _ = connect(service)
    alice.dataReceived(b"ME IS alice\nSEND carol\n2\nhi")
    assert sent(transport) == [(b"FROM alice\n2\nhi", CAROL)]


def test_chunked_message_is_dropped_for_udp_recipient(service: ChatService) -> None:
    """A chunked message cannot go over UDP: the UDP user gets nothing, others get it."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    sent(transport)
    alice, _ = connect(service)
    bob, bob_transport = connect(service)
    bob.dataReceived(b"ME IS bob\n")
    take(bob_transport)
    alice.dataReceived(b"ME IS alice\nSEND carol bob\nC2\nhiC0\n")
    assert sent(transport) == []
    assert bob_transport.value() == b"FROM alice\nC2\nhiC0\n"


def test_command_before_login_gets_error(service: ChatService) -> None:
    """A SEND datagram from an address that did not log in gets ERROR."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"SEND bob\n2\nhi", DAVE)
    assert sent(transport) == [(b"ERROR\n", DAVE)]


@pytest.mark.parametrize(
    "datagram",
    [
        b"SEND bob\nC2\nhiC0\n",  # chunked
        b"ME IS carol\nME IS dave\n",  # two frames
        b"SEND bob\n5\nhi",  # body cut short
        b"HELLO",  # unknown command
        b"",  # nothing
        b"SEND bob\n100\n",  # broken length
    ],
)
def test_bad_datagram_gets_one_error_and_is_ignored(service: ChatService, datagram: bytes) -> None:
    """A malformed, chunked or multi-frame datagram gets ERROR and changes nothing."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    sent(transport)
    protocol.datagramReceived(datagram, CAROL)
    assert sent(transport) == [(b"ERROR\n", CAROL)]
    assert service.lookup(b"dave") is None and service.lookup(b"carol") is not None


def test_two_addresses_are_two_users(service: ChatService) -> None:
    """Each source address is its own session."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    protocol.datagramReceived(b"ME IS dave", DAVE)
    protocol.datagramReceived(b"SEND dave\n1\nx", CAROL)
    assert sent(transport) == [(b"OK\n", CAROL), (b"OK\n", DAVE), (b"FROM carol\n1\nx", DAVE)]


def test_session_expires_after_ttl_without_datagrams() -> None:
    """A UDP user silent for the TTL is logged out; its userid is free again."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(udp_session_ttl_s=30))
    service.startService()
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    clock.advance(29)
    assert service.lookup(b"carol") is not None
    clock.advance(2)
    assert service.lookup(b"carol") is None
    protocol.datagramReceived(b"SEND carol\n1\nx", CAROL)  # no longer logged in
    protocol.datagramReceived(b"ME IS carol", DAVE)
    assert sent(transport)[1:] == [(b"ERROR\n", CAROL), (b"OK\n", DAVE)]
    service.stopService()


def test_datagrams_keep_a_session_alive() -> None:
    """Every datagram restarts the session's TTL."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(udp_session_ttl_s=30))
    service.startService()
    protocol, _ = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    for _ in range(4):
        clock.advance(20)
        protocol.datagramReceived(b"SEND nobody\n1\nx", CAROL)
    assert service.lookup(b"carol") is not None
    service.stopService()


def test_stopping_the_port_logs_its_users_out(service: ChatService) -> None:
    """When the UDP port stops, its users' ids are released."""
    protocol, _ = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    protocol.doStop()
    assert service.lookup(b"carol") is None


def test_a_bug_drops_only_the_datagram(service: ChatService) -> None:
    """An exception while handling a datagram is logged and the protocol carries on."""
    protocol, transport = listen(service)
    protocol.datagramReceived(b"ME IS carol", CAROL)
    sent(transport)

    def broken(*args):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    service.send = broken  # type: ignore[method-assign]
    protocol.datagramReceived(b"SEND carol\n1\nx", CAROL)
    protocol.datagramReceived(b"ME IS dave", DAVE)
    assert sent(transport) == [(b"OK\n", DAVE)]


def test_udp_logins_past_the_session_limit_get_error() -> None:
    """Past max_udp_sessions a new UDP login is refused; TCP logins are not affected."""
    service = make_service(limits=Limits(max_udp_sessions=2))
    protocol, transport = listen(service)
    for port in (5001, 5002, 5003):
        protocol.datagramReceived(b"ME IS u%d" % port, ("127.0.0.1", port))
    assert [reply for reply, _ in sent(transport)] == [b"OK\n", b"OK\n", b"ERROR\n"]
    tcp, tcp_transport = connect(service)
    tcp.dataReceived(b"ME IS alice\n")
    assert tcp_transport.value() == b"OK\n"


# -- one UDP user whatever port it writes to (PROTOCOL §6) ----------------------


def test_udp_user_is_the_same_user_on_another_port(service: ChatService) -> None:
    """Logged in on port A, a SEND from the same socket to port B is that user's."""
    clients = UDPClients()
    port_a, transport_a = listen(service, clients)
    port_b, transport_b = listen(service, clients)
    tcp, tcp_transport = connect(service)
    tcp.dataReceived(b"ME IS t\n")
    port_a.datagramReceived(b"ME IS u", CAROL)
    assert sent(transport_a) == [(b"OK\n", CAROL)]
    port_b.datagramReceived(b"SEND t\n2\nhi", CAROL)
    assert take(tcp_transport) == b"OK\nFROM u\n2\nhi"


def test_reply_leaves_from_the_port_the_datagram_came_to(service: ChatService) -> None:
    """An ERROR answers from the port the command arrived on; deliveries from the login port."""
    clients = UDPClients()
    port_a, transport_a = listen(service, clients)
    port_b, transport_b = listen(service, clients)
    port_a.datagramReceived(b"ME IS u", CAROL)
    sent(transport_a)
    port_b.datagramReceived(b"ME IS again", CAROL)
    assert sent(transport_b) == [(b"ERROR\n", CAROL)]
    port_b.datagramReceived(b"SEND u\n2\nhi", CAROL)
    assert (sent(transport_a), sent(transport_b)) == ([(b"FROM u\n2\nhi", CAROL)], [])


def test_stopping_one_port_keeps_the_users_of_the_other(service: ChatService) -> None:
    """A port that stops logs out the users that logged in on it, and only those."""
    clients = UDPClients()
    port_a, _ = listen(service, clients)
    port_b, _ = listen(service, clients)
    port_a.datagramReceived(b"ME IS u", CAROL)
    port_b.datagramReceived(b"ME IS v", DAVE)
    port_a.stopProtocol()
    assert service.lookup(b"u") is None
    assert service.lookup(b"v") is not None
