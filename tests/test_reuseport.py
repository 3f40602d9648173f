"""``--reuse-port``: listeners bound with SO_REUSEPORT, alone and in several processes.

The unit tests bind real sockets on 127.0.0.1 (port 0 or a free port) and
hand them to a memory reactor, which keeps a duplicate of the descriptor the
way a real reactor does. The end-to-end tests run two servers on one port.
"""

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock, _FakePort

from chatproto.server.reuseport import (
    MAX_DATAGRAM_BYTES,
    ReusePortCheck,
    ReusePortTCPServer,
    ReusePortUDPServer,
    bind_reuse_port,
)
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol
from chatproto.tap import Options, makeService
from tests.e2e_support import HOST, Deadline, Server, free_port
from tests.test_e2e import assert_one_line_error

IPV6_LOOPBACK = "::1"


class StoppablePort(_FakePort):
    """A fake listening port that remembers being stopped.

    Attributes:
        stopped: the Deferred ``stopListening`` returned, once it was called.
    """

    stopped: Deferred[None] | None = None

    def stopListening(self) -> Deferred[None]:
        self.stopped = Deferred()
        return self.stopped


class AdoptingReactor(MemoryReactorClock):
    """A memory reactor that keeps a duplicate of every adopted socket, as a real one does.

    Attributes:
        sockets: the duplicates, in adoption order; closed by :meth:`close`.
        packet_sizes: ``maxPacketSize`` of every adopted datagram port.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sockets: list[socket.socket] = []
        self.packet_sizes: list[int] = []

    def _keep(self, fileno: int, family: socket.AddressFamily, kind: socket.SocketKind) -> None:
        self.sockets.append(socket.fromfd(fileno, family, kind))

    def adoptStreamPort(self, fileno, addressFamily, factory):  # type: ignore[no-untyped-def]
        self._keep(fileno, addressFamily, socket.SOCK_STREAM)
        super().adoptStreamPort(fileno, addressFamily, factory)
        return StoppablePort(None)

    def adoptDatagramPort(self, fileno, addressFamily, protocol, maxPacketSize=8192):  # type: ignore[no-untyped-def]
        self._keep(fileno, addressFamily, socket.SOCK_DGRAM)
        self.packet_sizes.append(maxPacketSize)
        super().adoptDatagramPort(fileno, addressFamily, protocol, maxPacketSize)
        return StoppablePort(None)

    def close(self) -> None:
        """Close every kept socket."""
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def reactor() -> Iterator[AdoptingReactor]:
    """An adopting memory reactor; its sockets are closed at teardown."""
    adopting = AdoptingReactor()
    yield adopting
    adopting.close()


def is_fd_open(fd: int) -> bool:
    """Whether ``fd`` is an open descriptor of this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_tcp_server_adopts_a_listening_reuse_port_socket(reactor):
    """The TCP service hands the reactor a bound, listening, non-blocking SO_REUSEPORT socket."""
    factory = ServerFactory()
    server = ReusePortTCPServer(0, HOST, 7, factory, reactor)
    server.startService()
    ((fileno, family, adopted_factory),) = reactor.adoptedPorts
    (sock,) = reactor.sockets
    assert (family, adopted_factory, server.running) == (socket.AF_INET, factory, True)
    assert sock.getsockname()[0] == HOST
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert os.get_blocking(sock.fileno()) is False
    assert not is_fd_open(fileno)  # ours is closed: the reactor holds its own duplicate


def test_udp_server_adopts_a_bound_reuse_port_socket(reactor):
    """The UDP service hands the reactor a bound, non-blocking SO_REUSEPORT datagram socket."""
    protocol = DatagramProtocol()
    server = ReusePortUDPServer(0, HOST, protocol, reactor)
    server.startService()
    ((fileno, family, adopted_protocol, _),) = reactor.adoptedPorts
    (sock,) = reactor.sockets
    assert (family, adopted_protocol, server.running) == (socket.AF_INET, protocol, True)
    assert reactor.packet_sizes == [MAX_DATAGRAM_BYTES]
    assert sock.type == socket.SOCK_DGRAM and sock.getsockname()[0] == HOST
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    assert os.get_blocking(sock.fileno()) is False
    assert not is_fd_open(fileno)


def test_two_servers_bind_the_same_tcp_and_udp_port(reactor):
    """Two TCP and two UDP services on one port all start: the port is shared."""
    port = free_port()
    servers = [
        *(ReusePortTCPServer(port, HOST, 7, ServerFactory(), reactor) for _ in range(2)),
        *(ReusePortUDPServer(port, HOST, DatagramProtocol(), reactor) for _ in range(2)),
    ]
    for server in servers:
        server.startService()
    assert [sock.getsockname() for sock in reactor.sockets] == [(HOST, port)] * 4


def test_ipv6_interface_gives_an_ipv6_socket(reactor):
    """An IPv6 literal as interface binds IPv6 sockets."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        bind_reuse_port(0, IPV6_LOOPBACK, socket.SOCK_STREAM).close()
    except CannotListenError:
        pytest.skip("no IPv6 loopback here")
    ReusePortTCPServer(0, IPV6_LOOPBACK, 7, ServerFactory(), reactor).startService()
    ReusePortUDPServer(0, IPV6_LOOPBACK, DatagramProtocol(), reactor).startService()
    assert [family for _, family, *_ in reactor.adoptedPorts] == [socket.AF_INET6] * 2
    assert [sock.getsockname()[0] for sock in reactor.sockets] == [IPV6_LOOPBACK] * 2


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
def test_port_held_without_reuse_port_cannot_listen(kind, reactor):
    """A port bound by a socket without SO_REUSEPORT raises CannotListenError; nothing adopted."""
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind((HOST, 0))
        port = holder.getsockname()[1]
        if kind == socket.SOCK_STREAM:
            holder.listen()
            server = ReusePortTCPServer(port, HOST, 7, ServerFactory(), reactor)
        else:
            server = ReusePortUDPServer(port, HOST, DatagramProtocol(), reactor)
        with pytest.raises(CannotListenError) as raised:
            server.startService()
    assert (raised.value.interface, raised.value.port) == (HOST, port)
    assert "Address already in use" in str(raised.value)
    assert (reactor.adoptedPorts, server.running) == ([], False)


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_stop_service_stops_listening_and_returns_its_deferred(kind, reactor):
    """stopService stops the adopted port, returns the port's Deferred, and forgets the port."""
    if kind == "tcp":
        server = ReusePortTCPServer(0, HOST, 7, ServerFactory(), reactor)
    else:
        server = ReusePortUDPServer(0, HOST, DatagramProtocol(), reactor)
    server.startService()
    port = server.listening
    stopping = server.stopService()
    assert stopping is port.stopped is not None
    assert (server.listening, server.running) == (None, False)
    stopping.callback(None)


def test_check_passes_on_a_shareable_port_and_keeps_nothing():
    """ReusePortCheck starts when every port can be shared, and holds no socket afterwards."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sharer:
        sharer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sharer.bind((HOST, port))
        sharer.listen()
        check = ReusePortCheck([port], HOST)
        check.startService()
    assert check.running
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, port))  # the check let go of the UDP port


def test_check_refuses_a_port_held_without_reuse_port():
    """ReusePortCheck raises CannotListenError when a port is held without SO_REUSEPORT."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind((HOST, port))
        with pytest.raises(CannotListenError):
            ReusePortCheck([port], HOST).startService()


def test_make_service_with_reuse_port_uses_the_reuse_port_services(reactor):
    """With --reuse-port every port gets the SO_REUSEPORT services; --listen stays an endpoint."""
    port_a, port_b = free_port(), free_port()
    options = Options()
    options.parseOptions(
        [str(port_a), str(port_b), "--reuse-port", "--interface", HOST, "--listen", "tcp:0"]
    )
    top = makeService(options, reactor=reactor)
    top.startService()
    try:
        tcp = [s for s in top if isinstance(s, ReusePortTCPServer)]
        udp = [s for s in top if isinstance(s, ReusePortUDPServer)]
        assert [(s.port, s.interface, s.backlog) for s in tcp] == [
            (port_a, HOST, 1024),
            (port_b, HOST, 1024),
        ]
        assert [(s.port, s.interface) for s in udp] == [(port_a, HOST), (port_b, HOST)]
        assert all(isinstance(s.factory, ChatFactory) for s in tcp)
        assert all(isinstance(s.protocol, ChatDatagramProtocol) for s in udp)
        assert [port for port, *_ in reactor.tcpServers] == [0]  # only the --listen endpoint
        assert len(reactor.adoptedPorts) == 4
    finally:
        top.stopService()


# -- end to end: two processes on one port ---------------------------------------------------


StartPair = Callable[..., list[Server]]


@pytest.fixture
def start_pair(tmp_path: Path, launch: Callable[..., Server]) -> StartPair:
    """Start two servers on one port, each in its own directory, through ``launch``."""

    def start(launchers: tuple[str, str], port: int, *extra: str) -> list[Server]:
        return [
            launch(launcher, [port], extra, wait="serving", workdir=tmp_path / f"server-{number}")
            for number, launcher in enumerate(launchers)
        ]

    return start


def login_line(user: bytes) -> str:
    """The -v line a server prints when a client not yet logged in sends ``ME IS user``."""
    return f"RCVD from {HOST}: ME IS {user.decode()}\\n"


@pytest.mark.parametrize(
    "launchers",
    [("chat_server", "chat_server"), ("twistd", "twistd"), ("chat_server", "twistd")],
    ids=["chat_server", "twistd", "mixed"],
)
def test_two_reuse_port_servers_on_one_port_both_serve_tcp(launchers, start_pair, tcp):
    """Two servers with --reuse-port on one port both start, and each accepts TCP logins."""
    port = free_port()
    servers = start_pair(launchers, port, "--reuse-port", "-v")
    served = [0, 0]
    deadline = Deadline()
    # The kernel puts each connection on either process; stop once both have had one.
    # A process prints its RCVD line before its OK can reach the client.
    for number in range(200):
        user = f"user{number}".encode()
        tcp(port).login(user)
        for index, server in enumerate(servers):
            served[index] += login_line(user) in server.verbose_lines()
        if all(served) or deadline.expired():
            break
    assert all(served), served
    assert sum(served) == number + 1  # every login reached exactly one of them


def test_reuse_port_udp_client_keeps_talking_to_one_process(start_pair, udp):
    """Under --reuse-port a UDP client's login and its later SEND reach the same process."""
    port = free_port()
    start_pair(("chat_server", "chat_server"), port, "--reuse-port", "--no-random")
    for number in range(8):
        client = udp(port)
        user = f"carol{number}".encode()
        client.send(b"ME IS " + user)
        client.expect(b"OK\n")
        # A SEND to itself is delivered only by the process that has the login.
        client.send(b"SEND " + user + b"\n2\nhi")
        client.expect(b"FROM " + user + b"\n2\nhi")


@pytest.mark.parametrize(
    ("first", "second"),
    [(["--reuse-port"], []), ([], ["--reuse-port"])],
    ids=["second_without", "first_without"],
)
def test_sharing_a_port_needs_reuse_port_on_both(first, second, tmp_path, launch):
    """If either server lacks --reuse-port, the second one exits 1 with one line on stderr."""
    port = free_port()
    launch("chat_server", [port], first)
    late = launch("chat_server", [port], second, wait=None, workdir=tmp_path / "second")
    late.process.wait(timeout=Deadline().remaining())
    late.stop()
    assert_one_line_error(late, 1)
    assert b"Address already in use" in late.stderr
