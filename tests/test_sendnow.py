"""``send_now``: a write to an idle TCP transport leaves at once, and never out of order.

A real ``twisted.internet.tcp.Server`` over a socket pair, on a reactor that
only records which descriptors want reading and writing: what the peer
socket reads back is what left, and the recorded writers say whether the
transport still waits for a writable turn.
"""

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport

from chatproto.server.sendnow import can_send_now, send_now


class RecordingReactor:
    """The ``IReactorFDSet`` part a ``tcp.Server`` uses, recording its registrations."""

    def __init__(self) -> None:
        self.readers: set[object] = set()
        self.writers: set[object] = set()

    def addReader(self, reader: object) -> None:
        self.readers.add(reader)

    def addWriter(self, writer: object) -> None:
        self.writers.add(writer)

    def removeReader(self, reader: object) -> None:
        self.readers.discard(reader)

    def removeWriter(self, writer: object) -> None:
        self.writers.discard(writer)


@pytest.fixture
def pair():  # type: ignore[no-untyped-def]
    """A tcp.Server on one end of a socket pair, the other end to read what it sent."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    reactor = RecordingReactor()
    protocol = Protocol()
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, reactor)  # type: ignore[arg-type]
    protocol.makeConnection(transport)
    yield transport, peer, reactor
    ours.close()
    peer.close()


def _read(peer: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


def test_only_plain_tcp_transports_are_sent_to_at_once(pair) -> None:  # type: ignore[no-untyped-def]
    transport, _, _ = pair
    assert can_send_now(transport)
    assert not can_send_now(StringTransport())


def test_an_idle_transport_sends_at_once(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer, reactor = pair
    send_now(transport, b"FROM alice\n2\nhi")
    assert transport not in reactor.writers  # nothing left for a later turn
    assert _read(peer, 15) == b"FROM alice\n2\nhi"


def test_bytes_already_buffered_go_first(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer, reactor = pair
    transport.write(b"first ")
    send_now(transport, b"second")
    assert transport in reactor.writers
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing overtook the buffered bytes
    peer.setblocking(True)
    transport.doWrite()
    assert _read(peer, 12) == b"first second"


def test_what_the_kernel_does_not_take_follows_in_order(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer, reactor = pair
    data = bytes(range(256)) * 16 * 1024  # 4 MiB: more than a socket buffer
    send_now(transport, data)
    assert transport in reactor.writers  # the rest waits for a writable turn
    send_now(transport, b"after")  # behind the rest, not before it
    received = bytearray()
    while len(received) < len(data) + 5:
        received += peer.recv(1 << 20)
        if transport in reactor.writers:
            transport.doWrite()
    assert bytes(received) == data + b"after"


def test_a_closing_transport_is_written_to_as_usual(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer, reactor = pair
    transport.loseConnection()
    send_now(transport, b"last words")
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)
    peer.setblocking(True)
    transport.doWrite()
    assert _read(peer, 10) == b"last words"


def test_a_send_to_a_closed_peer_is_left_to_the_transport(pair) -> None:  # type: ignore[no-untyped-def]
    """The peer gone, the bytes go to the transport's buffer: its own turn reports the loss."""
    transport, peer, reactor = pair
    peer.close()
    send_now(transport, b"x" * 100_000)  # EPIPE: no exception, the bytes are buffered
    assert transport in reactor.writers
    assert isinstance(transport.doWrite(), BaseException)  # connection lost, in Twisted's way
