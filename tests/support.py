"""Fakes shared by the reactor-free unit tests."""

from collections.abc import Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from chatproto.limits import Limits
from chatproto.server.interfaces import IClient
from chatproto.server.message import Delivery, DeliveryRun, MessageBody, body_from_wire
from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatFactory, ChatProtocol


class ScriptedRandom:
    """A random source whose ``choice`` picks the indexes it is given, and ``random`` the draws."""

    def __init__(self, picks: Sequence[int] = (), draws: Sequence[float] = ()) -> None:
        self._picks = list(picks)
        self._draws = list(draws)
        self.choices: list[tuple] = []

    def random(self) -> float:
        return self._draws.pop(0) if self._draws else 0.0

    def choice(self, seq: Sequence):  # type: ignore[no-untyped-def]
        self.choices.append(tuple(seq))
        index = self._picks.pop(0) if self._picks else 0
        return seq[index]


def answer(deferred: Deferred | bool):  # type: ignore[no-untyped-def,type-arg]
    """Return an answer that came at once: a bool, or the result a Deferred already has."""
    if isinstance(deferred, bool):
        return deferred
    results: list = []
    deferred.addBoth(results.append)
    assert results, f"{deferred!r} has no answer yet"
    return results[0]


def _messages_of(run: DeliveryRun) -> list[Delivery]:
    """The deliveries a run holds, one per frame (``FROM`` line, then the body as framed)."""
    deliveries = []
    for frame in run.frames:
        head, _, wire = frame.partition(b"\n")
        deliveries.append(Delivery(head.removeprefix(b"FROM "), body_from_wire(wire, MessageBody)))
    return deliveries


@implementer(IClient)
class FakeClient:
    """An IClient that records what the service and the session do to it."""

    def __init__(
        self,
        peer: str = "10.0.0.1",
        *,
        takes_chunked: bool = True,
        expires_when_idle: bool = False,
    ) -> None:
        self.name: bytes | None = None
        self.peer = peer
        self.expires_when_idle = expires_when_idle
        self.transport_name = "udp" if expires_when_idle else "tcp"
        self.takes_chunked = takes_chunked
        self.deliveries: list[Delivery] = []
        self.replies: list[bytes] = []
        self.disconnected: list[str] = []
        self.resumed = 0

    def deliver(self, delivery: Delivery | DeliveryRun) -> int:
        if isinstance(delivery, DeliveryRun):  # a stream client is handed runs
            self.deliveries += _messages_of(delivery)
            return delivery.count
        if delivery.body.is_chunked and not self.takes_chunked:
            return False
        self.deliveries.append(delivery)
        return True

    def reply(self, data: bytes) -> None:
        self.replies.append(data)

    def disconnect(self, reason: str) -> None:
        self.disconnected.append(reason)

    def resume_input(self) -> None:
        self.resumed += 1

    def received(self) -> list[tuple[bytes, bytes]]:
        """Return (sender, body) of every delivery."""
        return [(d.sender, d.body.read()) for d in self.deliveries]


def make_service(**kwargs) -> ChatService:  # type: ignore[no-untyped-def]
    """Return a ChatService on a fresh Clock, random messages off unless asked."""
    kwargs.setdefault("random_messages", False)
    kwargs.setdefault("limits", Limits())
    return ChatService(kwargs.pop("clock", Clock()), **kwargs)


def connect(
    service: ChatService,
    host: str = "127.0.0.1",
    port: int = 40000,
    factory: ChatFactory | None = None,
) -> tuple[ChatProtocol, StringTransport]:
    """Connect a ChatProtocol for ``service`` (from ``factory``) to a StringTransport."""
    address = IPv4Address("TCP", host, port)
    if factory is None:
        factory = ChatFactory(service)
    protocol = factory.buildProtocol(address)
    assert isinstance(protocol, ChatProtocol)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def take(transport: StringTransport) -> bytes:
    """Return what was written to ``transport`` and clear it."""
    data = transport.value()
    transport.clear()
    return data
