"""A blocking WebSocket chat client on a real socket (wsproto), and the web server's launch.

:class:`WebSocketClient` speaks the chat protocol in binary messages
(PROTOCOL §9), with every read under a deadline, like ``tests/sockets.py``'s
TCP client: the end-to-end tests of ``--web`` use both side by side.
"""

import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from tests.e2e_support import HOST, POLL_S, TIMEOUT_S, Deadline, Server, free_ports


class RefusedError(Exception):
    """The server answered the upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upgrade refused with {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class WebSocketClient:
    """A chat client over a WebSocket to ``/chat`` of a ``--web`` port.

    Args:
        port: the web port on the test host.
        origin: the ``Origin`` header to send (None: none, as non-browsers do).
        path: the path to upgrade.
        tls: a TLS context, for an ``ssl:`` web endpoint (``wss:``).
    """

    def __init__(
        self,
        port: int,
        origin: str | None = None,
        path: str = "/chat",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT_S)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=HOST)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.closed: CloseConnection | None = None
        self._stream = bytearray()  # received chat bytes, not yet read
        self._message_pieces = 0
        headers = [] if origin is None else [(b"origin", origin.encode())]
        self.sock.sendall(
            self.ws.send(Request(host=f"{HOST}:{port}", target=path, extra_headers=headers))
        )
        deadline = Deadline()
        status, body = None, b""
        while True:
            for event in self._events(deadline):
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise RefusedError(status, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        assert status is not None
                        raise RefusedError(status, body)

    def _events(self, deadline: Deadline) -> list[Event]:
        """Receive once (within the deadline) and return wsproto's events."""
        if deadline.expired():
            raise AssertionError(f"timed out; chat bytes so far {bytes(self._stream)[:200]!r}")
        self.sock.settimeout(deadline.remaining())
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise AssertionError(
                f"timed out; chat bytes so far {bytes(self._stream)[:200]!r}"
            ) from None
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    def _fill(self, deadline: Deadline) -> None:
        """Receive until at least one more chat byte (or a close, which fails)."""
        size = len(self._stream)
        while len(self._stream) == size:
            for event in self._events(deadline):
                self._handle(event)
            if self.closed is not None and len(self._stream) == size:
                raise AssertionError(
                    f"closed ({self.closed.code}); got only {bytes(self._stream)[:200]!r}"
                )

    def _handle(self, event: Event) -> None:
        if isinstance(event, BytesMessage):
            self._stream += event.data
        elif isinstance(event, TextMessage):
            raise AssertionError(f"the server sent a text message: {event.data!r}")
        elif isinstance(event, CloseConnection):
            self.closed = event
            if self.ws.state.name not in ("CLOSED", "LOCAL_CLOSING"):
                try:
                    self.sock.sendall(self.ws.send(event.response()))
                except OSError:
                    pass

    def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message."""
        self.sock.settimeout(TIMEOUT_S * 3)
        self.sock.sendall(self.ws.send(Message(data=data)))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (hand-made frames)."""
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        """Send a text message (which the server must refuse)."""
        self.sock.sendall(self.ws.send(Message(data=text)))

    def recv_exactly(self, size: int, seconds: float = TIMEOUT_S) -> bytes:
        """Return the next ``size`` chat bytes."""
        deadline = Deadline(seconds)
        while len(self._stream) < size:
            self._fill(deadline)
        data = bytes(self._stream[:size])
        del self._stream[:size]
        return data

    def expect(self, expected: bytes, seconds: float = TIMEOUT_S) -> None:
        """Assert the next chat bytes are exactly ``expected``."""
        assert self.recv_exactly(len(expected), seconds) == expected

    def login(self, user: bytes) -> None:
        """Log in as ``user`` and expect ``OK``."""
        self.send(b"ME IS " + user + b"\n")
        self.expect(b"OK\n")

    def recv_line(self, seconds: float = TIMEOUT_S) -> bytes:
        """Return the next chat line, with its newline."""
        deadline = Deadline(seconds)
        while b"\n" not in self._stream:
            self._fill(deadline)
        end = self._stream.index(b"\n") + 1
        line = bytes(self._stream[:end])
        del self._stream[:end]
        return line

    def recv_chunked(self, seconds: float = TIMEOUT_S * 3) -> bytes:
        """Read one chunked body (after its ``FROM`` line) and return its bytes."""
        body = bytearray()
        while True:
            header = self.recv_line(seconds)
            assert header.startswith(b"C"), header
            size = int(header[1:])
            if size == 0:
                return bytes(body)
            body += self.recv_exactly(size, seconds)

    def wait_closed(self, seconds: float = TIMEOUT_S) -> CloseConnection:
        """Wait for the server's close frame (chat bytes before it are kept); return it."""
        deadline = Deadline(seconds)
        while self.closed is None:
            for event in self._events(deadline):
                self._handle(event)
        return self.closed

    def kill(self) -> None:
        """Drop the TCP connection with a reset, as a killed browser's does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def binary_frame_header(size: int, fin: bool = True) -> bytes:
    """Return a masked binary frame's header announcing ``size`` payload bytes (mask 0)."""
    first = 0x82 if fin else 0x02
    if size < 126:
        return bytes([first, 0x80 | size]) + b"\0\0\0\0"
    if size < 1 << 16:
        return bytes([first, 0x80 | 126]) + struct.pack("!H", size) + b"\0\0\0\0"
    return bytes([first, 0x80 | 127]) + struct.pack("!Q", size) + b"\0\0\0\0"


def launch_web(
    launch: Callable[..., Server],
    extra: Sequence[str] = (),
    launcher: str = "chat_server",
    random_messages: bool = False,
) -> tuple[Server, int, int]:
    """Start a server with one chat port and one ``--web`` port; return it and both ports."""
    chat_port, web_port = free_ports(2)
    options = ["--web", str(web_port), *extra]
    if not random_messages:
        options.insert(0, "--no-random")
    server = launch(launcher, [chat_port], options)
    wait_for_port_tcp(web_port, server)
    return server, chat_port, web_port


def wait_for_port_tcp(port: int, server: Server) -> None:
    """Wait until the web port accepts connections (it has no UDP side to wait for)."""
    deadline = Deadline()
    while not deadline.expired():
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=deadline.remaining()):
                return
        except OSError:
            time.sleep(POLL_S)  # a poll under a deadline, not a wait for an outcome
    raise AssertionError(f"web port {port} not listening")


class MemoryBrowser:
    """A WebSocket client of a :func:`~chatproto.web.site.web_site` in memory: no reactor.

    The site's HTTP channel runs on a ``StringTransport`` (which, like a real
    one, takes a single producer); a wsproto client makes and reads the frames.
    ``pump()`` moves what the server wrote into the client.
    """

    def __init__(
        self,
        site: object,
        origin: str | None = None,
        host: str = "10.0.0.7",
        path: str = "/chat",
        host_header: str = "chat.example:8080",
    ) -> None:
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        address = IPv4Address("TCP", host, 50000)
        self.channel = site.buildProtocol(address)  # type: ignore[attr-defined]
        self.transport = StringTransport(
            peerAddress=address, hostAddress=IPv4Address("TCP", "10.0.0.1", 8080)
        )
        self.channel.makeConnection(self.transport)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.status: int | None = None  # the HTTP answer, if not an upgrade
        self.accepted = False
        self.closed: CloseConnection | None = None
        self.stream = bytearray()  # chat bytes received
        headers = [] if origin is None else [(b"origin", origin.encode())]
        request = Request(host=host_header, target=path, extra_headers=headers)
        self.channel.dataReceived(self.ws.send(request))
        self.pump()

    def pump(self) -> None:
        """Hand the client what the server wrote since the last pump."""
        data = self.transport.value()
        self.transport.clear()
        if not data:
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, BytesMessage):
                self.stream += event.data
            elif isinstance(event, CloseConnection):
                self.closed = event

    def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message, then pump."""
        self.send_raw(self.ws.send(Message(data=data)))

    def send_raw(self, data: bytes) -> None:
        """Hand the server these bytes as read from the socket, then pump."""
        self.channel.dataReceived(data)
        self.pump()

    def take(self) -> bytes:
        """Return the chat bytes received so far, and forget them."""
        self.pump()
        data = bytes(self.stream)
        self.stream.clear()
        return data

    def lose(self) -> None:
        """The TCP connection is gone (``StringTransport`` never says so itself)."""
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.channel.connectionLost(Failure(ConnectionDone()))
