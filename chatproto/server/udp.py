"""The UDP side: each datagram is one complete command (PROTOCOL §6).

:class:`ChatDatagramProtocol` (one per UDP port) decodes a datagram with the
same codec as TCP and hands the events to the sending address's
:class:`UDPClient`. Only addresses that logged in (or whose login is being
answered) are remembered; their expiry after a quiet period is the service's job.
"""

from twisted.internet.interfaces import IUDPTransport
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from chatproto.server.interfaces import IClient
from chatproto.server.message import Delivery
from chatproto.server.service import ChatService
from chatproto.server.session import ClientSession
from chatproto.wire.codec import decode_datagram

Address = tuple[str, int]


@implementer(IClient)
class UDPClient:
    """One UDP client, known by its source address.

    Attributes:
        name: the userid once logged in, else None.
        peer: the client's IP address.
        address: the (host, port) datagrams come from and go to.
        session: its conversation state.
        expires_when_idle: True: a UDP user is logged out after a silence.
    """

    expires_when_idle = True

    __slots__ = ("name", "peer", "address", "session", "_protocol")

    def __init__(self, protocol: "ChatDatagramProtocol", address: Address) -> None:
        self.name: bytes | None = None
        self.peer = address[0]
        self.address = address
        self._protocol = protocol
        self.session = ClientSession(protocol.service, self)

    def deliver(self, delivery: Delivery) -> bool:
        if delivery.body.is_chunked:
            return False  # PROTOCOL §4: a chunked message cannot go over UDP
        protocol = self._protocol
        protocol.transport.write(delivery.datagram, self.address)
        protocol.service.stats.delivery_latency.counts[0] += 1  # handed over at once
        return True

    def reply(self, data: bytes) -> None:
        self._protocol.transport.write(data, self.address)

    def resume_input(self) -> None:
        """A login was answered (held datagrams are handled by then); forget a refused one."""
        if self.name is None:
            self._protocol.forget(self)

    def disconnect(self, reason: str) -> None:
        self._protocol.forget(self)
        self.session.connection_lost()


class ChatDatagramProtocol(DatagramProtocol):
    """Serve the chat protocol on one UDP port.

    Attributes:
        service: the chat service shared with every other listener.
    """

    log = Logger()
    noisy = False
    transport: IUDPTransport  # set by listenUDP before any datagram arrives

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self._clients: dict[Address, UDPClient] = {}

    def datagramReceived(self, datagram: bytes, address: Address) -> None:  # type: ignore[override]
        try:
            client = self._clients.get(address)
            if client is None:
                client = UDPClient(self, address)
            handle = client.session.handle
            for event in decode_datagram(datagram, self.service.limits):
                handle(event)
            if client.name is not None:
                self._clients[address] = client
                self.service.touch(client)
            elif client.session.waiting:  # its login is being answered
                self._clients[address] = client
        except Exception:
            self.log.failure("error handling a datagram from {address}", address=address)
        self.service.writes.flush()

    def forget(self, client: UDPClient) -> None:
        """Stop knowing ``client``'s address (it logged out or expired)."""
        if self._clients.get(client.address) is client:
            del self._clients[client.address]

    def stopProtocol(self) -> None:
        for client in list(self._clients.values()):
            client.disconnect("server stopping")
