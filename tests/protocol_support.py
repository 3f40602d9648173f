"""Helpers shared by the TCP protocol tests (``test_protocol_*``): log in, close a connection."""

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from chatproto.server.service import ChatService
from tests.support import connect, take


def close(protocol) -> None:  # type: ignore[no-untyped-def]
    protocol.connectionLost(Failure(ConnectionDone()))


def login(service: ChatService, name: bytes, **kwargs):  # type: ignore[no-untyped-def]
    protocol, transport = connect(service, **kwargs)
    protocol.dataReceived(b"ME IS " + name + b"\n")
    assert take(transport) == b"OK\n"
    return protocol, transport
