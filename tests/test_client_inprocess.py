"""The client's real connections against an in-process server, on the real reactor.

``ChatClientProtocol`` and ``ChatDatagramClient`` talk over loopback sockets
(port 0) to ``ChatFactory`` / ``ChatDatagramProtocol`` of a real
``ChatService`` in this process, driven by pytest-twisted: no subprocess, so
not ``e2e``. Every wait is a Deferred with a timeout, never a sleep.
"""

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred

from chatproto.client.inbox import Inbox, Received, SavedFile, TextMessage
from chatproto.client.tcp import ChatClientProtocol
from chatproto.client.udp import ChatDatagramClient
from chatproto.limits import Limits
from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol

HOST = "127.0.0.1"
#: Longest wait for anything on loopback; a hang fails the test instead of blocking it.
TIMEOUT_S = 10.0


class WaitingView:
    """A ChatView whose ``next_message`` fires with the next delivery."""

    def __init__(self) -> None:
        self._waiting: list[Deferred[Received]] = []
        self.received: list[Received] = []

    def next_message(self) -> Deferred[Received]:
        """Return a Deferred that fires with the next message (fails after TIMEOUT_S)."""
        waiting: Deferred[Received] = Deferred()
        self._waiting.append(waiting)
        return waiting.addTimeout(TIMEOUT_S, reactor)

    def message_received(self, message: Received) -> None:
        self.received.append(message)
        if self._waiting:
            self._waiting.pop(0).callback(message)

    def message_refused(self) -> None:
        """Not expected in these tests."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        """Not watched in these tests."""


@pytest.fixture
def server() -> Iterator[tuple[int, int]]:
    """A ChatService listening on 127.0.0.1 (TCP and UDP, port 0); yields both ports."""
    service = ChatService(reactor, Limits(), random_messages=False)
    service.startService()
    tcp_port = reactor.listenTCP(0, ChatFactory(service), interface=HOST)
    udp_port = reactor.listenUDP(0, ChatDatagramProtocol(service), interface=HOST)
    yield tcp_port.getHost().port, udp_port.getHost().port
    for stopping in (tcp_port.stopListening, udp_port.stopListening, service.stopService):
        pytest_twisted.blockon(maybeDeferred(stopping))


@inlineCallbacks
def tcp_login(port: int, user: bytes, download_dir: Path):  # type: ignore[no-untyped-def]
    """Connect a ChatClientProtocol and wait for ``OK``; return it with a WaitingView."""
    protocol = ChatClientProtocol(user, Inbox(download_dir), reactor)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, HOST, port, timeout=TIMEOUT_S)
    yield endpoints.connectProtocol(endpoint, protocol)
    yield protocol.logged_in.addTimeout(TIMEOUT_S, reactor)
    view = WaitingView()
    protocol.attach(view)
    return protocol, view


def close(*protocols: ChatClientProtocol) -> None:
    """Drop the connections at once (teardown of a test)."""
    for protocol in protocols:
        protocol.transport.abortConnection()


@pytest_twisted.inlineCallbacks
def test_tcp_client_logs_in_sends_and_receives_a_text(server, tmp_path: Path):
    """A real TCP client's message reaches another real TCP client as a TextMessage."""
    tcp_port, _ = server
    alice, _ = yield tcp_login(tcp_port, b"alice", tmp_path)
    bob, bob_view = yield tcp_login(tcp_port, b"bob", tmp_path)
    try:
        arriving = bob_view.next_message()
        alice.send_text([b"bob"], b"hello bob")
        message = yield arriving
        assert message == TextMessage(sender="alice", text="hello bob", size=9)
    finally:
        close(alice, bob)


@pytest_twisted.inlineCallbacks
def test_chunked_file_round_trip_arrives_byte_for_byte(server, tmp_path: Path):
    """A file sent with send_file (several chunks) is saved whole by the receiving client."""
    tcp_port, _ = server
    data = os.urandom(5000) + b"\x00\xff"  # not UTF-8: saved as a file
    downloads = tmp_path / "bob"
    downloads.mkdir()
    alice, _ = yield tcp_login(tcp_port, b"alice", tmp_path)
    bob, bob_view = yield tcp_login(tcp_port, b"bob", downloads)
    try:
        arriving = bob_view.next_message()
        sent = yield alice.send_file([b"bob"], io.BytesIO(data), len(data)).addTimeout(
            TIMEOUT_S, reactor
        )
        message = yield arriving
        assert sent == len(data)
        assert isinstance(message, SavedFile)
        assert (message.sender, message.size) == ("alice", len(data))
        assert message.path.read_bytes() == data
    finally:
        close(alice, bob)


@pytest_twisted.inlineCallbacks
def test_udp_client_logs_in_and_its_message_reaches_a_tcp_client(server, tmp_path: Path):
    """A real UDP client logs in over a datagram and its short message reaches a TCP client."""
    tcp_port, udp_port = server
    bob, bob_view = yield tcp_login(tcp_port, b"bob", tmp_path)
    gina = ChatDatagramClient(b"gina", (HOST, udp_port), Inbox(tmp_path), reactor)
    listening = reactor.listenUDP(0, gina, interface=HOST)
    try:
        yield gina.logged_in.addTimeout(TIMEOUT_S, reactor)
        arriving = bob_view.next_message()
        gina.send_text([b"bob"], b"hi from udp")
        message = yield arriving
        assert message == TextMessage(sender="gina", text="hi from udp", size=11)
    finally:
        close(bob)
        yield maybeDeferred(listening.stopListening)
