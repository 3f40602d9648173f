"""Fakes and helpers shared by the ``chat_client`` unit tests: transports, a view, a connection."""

import re
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatproto.client.cli import (
    ChatClientProtocol,
    ChatDatagramClient,
    ChunkedFileSender,
    Inbox,
    Received,
)

#: A fixed moment for message stamps in the unit tests.
NOW = 1_800_000_000.0


STAMP = re.escape("[") + r"\d\d:\d\d:\d\d" + re.escape("]")


class HalfCloseTransport(StringTransport):
    """A StringTransport that also records ``loseWriteConnection``."""

    is_write_closed = False

    def loseWriteConnection(self) -> None:
        self.is_write_closed = True


class RecordingView:
    """A ChatView that records what it hears."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refusals = 0
        self.lost: list[tuple[bool, str]] = []

    def message_received(self, message: Received) -> None:
        self.messages.append(message)

    def message_refused(self) -> None:
        self.refusals += 1

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        self.lost.append((is_expected, reason))


class FakeConnection:
    """A ChatConnection that records what a front end asks of it."""

    transport_name = "TCP"

    def __init__(
        self, *, can_send_files: bool = True, is_datagram: bool = False, max_body_bytes: int = 1000
    ) -> None:
        self.can_send_files = can_send_files
        self.is_datagram = is_datagram
        self.max_body_bytes = max_body_bytes
        self.is_sending_file = False
        self.view: object = None
        self.texts: list[tuple[list[bytes] | None, bytes]] = []
        self.files: list[tuple[list[bytes], bytes, int]] = []
        self.file_done: Deferred[int] = Deferred()
        self.finished = 0

    def attach(self, view: object) -> None:
        self.view = view

    def send_text(self, recipients: list[bytes] | None, body: bytes) -> None:
        self.texts.append((recipients, body))

    def send_file(self, recipients, source, size, on_progress=None) -> Deferred[int]:  # type: ignore[no-untyped-def]
        self.files.append((list(recipients), source.read(), size))
        source.close()
        return self.file_done

    def finish(self) -> None:
        self.finished += 1


class FakeUdpTransport:
    """Just enough of a connected UDP port for ``ChatDatagramClient``."""

    def __init__(self) -> None:
        self.connected_to: tuple[str, int] | None = None
        self.datagrams: list[bytes] = []
        self.is_listening = True
        self.protocol: ChatDatagramClient | None = None

    def connect(self, host: str, port: int) -> None:
        self.connected_to = (host, port)

    def write(self, datagram: bytes, address: object = None) -> None:
        self.datagrams.append(datagram)

    def stopListening(self) -> None:
        self.is_listening = False
        assert self.protocol is not None
        self.protocol.doStop()


def clock_at(seconds: float = NOW) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


def tcp_client(
    tmp_path: Path, user: bytes = b"alice", clock: Clock | None = None
) -> tuple[ChatClientProtocol, HalfCloseTransport]:
    """A ChatClientProtocol connected to a fake transport, its login line cleared."""
    protocol = ChatClientProtocol(user, Inbox(tmp_path), clock or clock_at())
    transport = HalfCloseTransport()
    protocol.makeConnection(transport)
    transport.clear()
    return protocol, transport


def logged_in_client(
    tmp_path: Path, clock: Clock | None = None
) -> tuple[ChatClientProtocol, HalfCloseTransport, RecordingView]:
    """A TCP client past ``OK``, reporting to a RecordingView."""
    protocol, transport = tcp_client(tmp_path, clock=clock)
    protocol.dataReceived(b"OK\n")
    view = RecordingView()
    protocol.attach(view)
    return protocol, transport, view


def udp_client(tmp_path: Path) -> tuple[ChatDatagramClient, FakeUdpTransport]:
    protocol = ChatDatagramClient(b"gina", ("127.0.0.1", 9000), Inbox(tmp_path), clock_at())
    transport = FakeUdpTransport()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def pull_all(sender: ChunkedFileSender, transport: StringTransport, limit: int = 10_000) -> None:
    """Act as the transport: pull from ``sender`` until it unregisters (bounded)."""
    for _ in range(limit):
        if transport.producer is not sender:
            return
        sender.resumeProducing()
    raise AssertionError(f"sender still registered after {limit} pulls")
