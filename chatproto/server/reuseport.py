"""Listeners bound with ``SO_REUSEPORT``, so several processes can serve one port.

Twisted's ``listenTCP`` and ``listenUDP`` cannot set a socket option before
``bind``, so these services create and bind the socket themselves and hand
it to the reactor (``IReactorSocket.adoptStreamPort`` /
``adoptDatagramPort``). With every process bound this way, the kernel
spreads new TCP connections over the processes and sends the datagrams of
one UDP source address to one process.
"""

import socket
from collections.abc import Sequence

from twisted.application.service import Service
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import DatagramProtocol, ServerFactory

#: Largest datagram read, the same as ``listenUDP``'s default.
MAX_DATAGRAM_BYTES = 8192


def bind_reuse_port(port: int, interface: str, kind: socket.SocketKind) -> socket.socket:
    """Return a new non-blocking socket bound to ``interface``:``port`` with SO_REUSEPORT.

    The family is IPv6 when ``interface`` is an IPv6 literal, else IPv4. A
    stream socket also gets SO_REUSEADDR, as Twisted's TCP ports do.

    Raises:
        CannotListenError: the address cannot be bound (in use without
            SO_REUSEPORT, by another user, not local, ...).
    """
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # getaddrinfo resolves a scope such as fe80::1%eth0 into the address tuple.
            flags = socket.AI_NUMERICHOST | socket.AI_PASSIVE
            address = socket.getaddrinfo(interface, port, family, kind, 0, flags)[0][4]
        else:
            address = (interface, port)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise CannotListenError(interface, port, error) from None
    return sock


class _ReusePortServer(Service):
    """A listener on a port other processes may share: binds at start, closes at stop.

    Attributes:
        port: the port.
        interface: the address to bind (an IPv4 or IPv6 literal).
        listening: the reactor's port while the service runs, else None.
    """

    kind: socket.SocketKind  # SOCK_STREAM or SOCK_DGRAM

    def __init__(self, port: int, interface: str, reactor) -> None:  # type: ignore[no-untyped-def]
        self.port = port
        self.interface = interface
        self.listening: IListeningPort | None = None
        self._reactor = reactor

    def startService(self) -> None:
        """Bind, then hand the socket to the reactor (which works on its own duplicate).

        Raises:
            CannotListenError: the port cannot be bound or listened on.
        """
        sock = bind_reuse_port(self.port, self.interface, self.kind)
        try:
            self.listening = self._adopt(sock)
        finally:
            sock.close()
        super().startService()

    def stopService(self) -> Deferred[None] | None:
        """Stop listening; return a Deferred that fires once the port is closed."""
        super().stopService()
        listening, self.listening = self.listening, None
        return None if listening is None else listening.stopListening()

    def _adopt(self, sock: socket.socket) -> IListeningPort:
        """Hand the bound socket to the reactor; return its listening port."""
        raise NotImplementedError


class ReusePortTCPServer(_ReusePortServer):
    """Listen for TCP connections on a port other processes may share.

    Attributes:
        backlog: connections the kernel queues before they are accepted.
        factory: builds a protocol per connection.
    """

    kind = socket.SOCK_STREAM

    def __init__(
        self,
        port: int,
        interface: str,
        backlog: int,
        factory: ServerFactory,
        reactor,  # type: ignore[no-untyped-def]
    ) -> None:
        super().__init__(port, interface, reactor)
        self.backlog = backlog
        self.factory = factory

    def _adopt(self, sock: socket.socket) -> IListeningPort:
        try:
            sock.listen(self.backlog)
        except OSError as error:
            raise CannotListenError(self.interface, self.port, error) from None
        return self._reactor.adoptStreamPort(sock.fileno(), sock.family, self.factory)


class ReusePortUDPServer(_ReusePortServer):
    """Receive datagrams on a UDP port other processes may share.

    Attributes:
        protocol: handles every datagram of this process's share.
    """

    kind = socket.SOCK_DGRAM

    def __init__(
        self,
        port: int,
        interface: str,
        protocol: DatagramProtocol,
        reactor,  # type: ignore[no-untyped-def]
    ) -> None:
        super().__init__(port, interface, reactor)
        self.protocol = protocol

    def _adopt(self, sock: socket.socket) -> IListeningPort:
        return self._reactor.adoptDatagramPort(
            sock.fileno(), sock.family, self.protocol, MAX_DATAGRAM_BYTES
        )


class ReusePortCheck(Service):
    """Check at start that every port can be bound with SO_REUSEPORT, then let go of it.

    A supervisor that only starts workers runs this first, so that a port
    held by a process without SO_REUSEPORT (or not allowed at all) stops it
    with :class:`CannotListenError` instead of leaving its workers failing.

    Attributes:
        ports: the ports to check, each for TCP and UDP.
        interface: the address they will be bound to.
    """

    def __init__(self, ports: Sequence[int], interface: str) -> None:
        self.ports = list(ports)
        self.interface = interface

    def startService(self) -> None:
        """Bind each port for TCP and UDP and close the sockets at once.

        Raises:
            CannotListenError: a port cannot be bound.
        """
        for port in self.ports:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                bind_reuse_port(port, self.interface, kind).close()
        super().startService()
