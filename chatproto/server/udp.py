"""The UDP side: each datagram is one complete command (PROTOCOL §6).

:class:`ChatDatagramProtocol` (one per UDP port) decodes a datagram with the
same codec as TCP and hands the events to the sending address's
:class:`UDPClient`. A UDP client is its source address, whatever server port
a datagram arrives on (PROTOCOL §6), so the ports of one server share one
:class:`UDPClients` directory. Only addresses that logged in (or whose login
is being answered) are remembered; their expiry after a quiet period is the
service's job.
"""

from twisted.internet.interfaces import IUDPTransport
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from chatproto.server.interfaces import IClient
from chatproto.server.message import Delivery, DeliveryRun
from chatproto.server.received import ReceivedDatagram
from chatproto.server.service import ChatService
from chatproto.server.session import ClientSession
from chatproto.wire.codec import decode_datagram

Address = tuple[str, int]


class UDPClients:
    """The UDP clients of one server, by source address, shared by all its UDP ports."""

    __slots__ = ("_by_address",)

    def __init__(self) -> None:
        self._by_address: dict[Address, UDPClient] = {}

    def get(self, address: Address) -> "UDPClient | None":
        """Return the client known at ``address``, or None."""
        return self._by_address.get(address)

    def add(self, client: "UDPClient") -> None:
        """Remember ``client`` at its address."""
        self._by_address[client.address] = client

    def forget(self, client: "UDPClient") -> None:
        """Stop knowing ``client``'s address (it logged out or expired)."""
        if self._by_address.get(client.address) is client:
            del self._by_address[client.address]

    def on_port(self, protocol: "ChatDatagramProtocol") -> list["UDPClient"]:
        """Return the clients that logged in on ``protocol``'s port."""
        return [c for c in self._by_address.values() if c.login_port is protocol]


@implementer(IClient)
class UDPClient:
    """One UDP client, known by its source address.

    Attributes:
        name: the userid once logged in, else None.
        peer: the client's IP address.
        address: the (host, port) datagrams come from and go to.
        session: its conversation state.
        received: with ``-v``, the datagram being handled, for display.
        login_port: the port it logged in on: deliveries go out from there.
        reply_port: the port its latest datagram came to: replies go out from there.
        expires_when_idle: True: a UDP user is logged out after a silence.
        transport_name: ``"udp"``.
    """

    expires_when_idle = True
    transport_name = "udp"

    __slots__ = (
        "name",
        "peer",
        "address",
        "session",
        "received",
        "login_port",
        "reply_port",
        "_held",
    )

    def __init__(self, protocol: "ChatDatagramProtocol", address: Address) -> None:
        self.name: bytes | None = None
        self.peer = address[0]
        self.address = address
        self.login_port = self.reply_port = protocol
        service = protocol.service
        self.received = ReceivedDatagram() if service.is_verbose else None
        self.session = ClientSession(service, self, self.received)
        # Datagrams that came while the session waited for a login answer.
        self._held: list[tuple[bytes, ChatDatagramProtocol]] | None = None

    def hold(self, datagram: bytes, port: "ChatDatagramProtocol") -> None:
        """Keep a datagram until the login is answered (up to ``max_held_commands``)."""
        held = self._held
        if held is None:
            self._held = held = []
        service = port.service
        if len(held) < service.limits.max_held_commands:
            held.append((datagram, port))
        else:
            service.note(self, "command dropped: waiting for the login answer")

    def deliver(self, delivery: Delivery | DeliveryRun) -> int:
        # The service hands a datagram client its messages one by one.
        assert isinstance(delivery, Delivery), "a run goes to stream clients only"
        if delivery.body.is_chunked:
            return False  # PROTOCOL §4: a chunked message cannot go over UDP
        protocol = self.login_port
        protocol.transport.write(delivery.datagram, self.address)
        protocol.service.stats.delivery_latency.counts[0] += 1  # handed over at once
        return True

    def reply(self, data: bytes) -> None:
        self.reply_port.transport.write(data, self.address)

    def resume_input(self) -> None:
        """A login was answered: forget a refused one, then handle the datagrams held."""
        if self.name is None:
            self.login_port.clients.forget(self)
        held, self._held = self._held or [], None
        position = 0
        while position < len(held) and not self.session.waiting:
            datagram, port = held[position]
            position += 1
            port.handle(self, datagram)
        if position < len(held):  # a held ME IS waits for its own answer
            self._held = held[position:]

    def disconnect(self, reason: str) -> None:
        self._held = None
        self.login_port.clients.forget(self)
        self.session.connection_lost()


class ChatDatagramProtocol(DatagramProtocol):
    """Serve the chat protocol on one UDP port.

    Args:
        service: the chat service shared with every other listener.
        clients: the server's UDP clients, shared by all its UDP ports (a
            directory of this port's own if not given).

    Attributes:
        service: the chat service.
        clients: the UDP clients by address.
    """

    log = Logger()
    noisy = False
    transport: IUDPTransport  # set by listenUDP before any datagram arrives

    def __init__(self, service: ChatService, clients: UDPClients | None = None) -> None:
        self.service = service
        self.clients = UDPClients() if clients is None else clients

    def datagramReceived(self, datagram: bytes, address: Address) -> None:  # type: ignore[override]
        try:
            client = self.clients.get(address)
            if client is None:
                client = UDPClient(self, address)
            if client.session.waiting:  # its login is being answered
                client.hold(datagram, self)
            elif client.session.flood_wait > 0:  # a datagram cannot be slowed down
                self.service.stats.flood_dropped += 1
                self.service.note(client, "datagram dropped: over the flood budget")
            else:
                self.handle(client, datagram)
        except Exception:
            self.log.failure("error handling a datagram from {address}", address=address)
        self.service.writes.flush()

    def handle(self, client: UDPClient, datagram: bytes) -> None:
        """Hand the command in ``datagram``, which came to this port, to ``client``'s session."""
        client.reply_port = self
        if client.received is not None:
            client.received.feed(datagram)
        handle = client.session.handle
        for event in decode_datagram(datagram, self.service.limits):
            handle(event)
        if client.name is not None:
            self.clients.add(client)
            self.service.touch(client)
        elif client.session.waiting:  # its login is being answered
            self.clients.add(client)

    def stopProtocol(self) -> None:
        # The clients of other ports stay: their deliveries go out from there.
        for client in self.clients.on_port(self):
            client.disconnect("server stopping")
