"""Blocking test clients on real sockets: raw-protocol TCP and UDP, connectors, TCP state.

Every read has a deadline and every loop a count limit (see ``tests/e2e_support.py``).
"""

import re
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e_support import HOST, TIMEOUT_S, Deadline, address_family


class TcpClient:
    """A blocking TCP chat client with a receive buffer and bounded reads."""

    def __init__(self, port: int, source: str | None = None) -> None:
        """Connect to ``port`` on the test host, from ``source`` if given (127.0.0.2, ...)."""
        source_address = None if source is None else (source, 0)
        self.sock = socket.create_connection(
            (HOST, port), timeout=TIMEOUT_S, source_address=source_address
        )
        self._buffer = bytearray()

    def close(self) -> None:
        """Close the connection (a normal FIN)."""
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection with a TCP reset (SO_LINGER 0, then close)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.settimeout(TIMEOUT_S * 3)
        self.sock.sendall(data)

    def _fill(self, deadline: Deadline) -> None:
        """Receive at least one more byte, or fail at the deadline or on EOF."""
        if deadline.expired():
            raise AssertionError(
                f"timed out after {deadline.seconds} s; got only {bytes(self._buffer)[:200]!r}"
            )
        self.sock.settimeout(deadline.remaining())
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {deadline.seconds} s; got only {bytes(self._buffer)[:200]!r}"
            ) from None
        if not data:
            raise AssertionError(f"connection closed; got only {bytes(self._buffer)[:200]!r}")
        self._buffer += data

    def recv_exactly(self, size: int, seconds: float = TIMEOUT_S) -> bytes:
        """Return the next ``size`` bytes, waiting at most ``seconds`` for them."""
        deadline = Deadline(seconds)
        for _ in range(size + 1):
            if len(self._buffer) >= size:
                break
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def recv_line(self, max_bytes: int = 8192, seconds: float = TIMEOUT_S) -> bytes:
        """Return the next line, its ``\\n`` included."""
        deadline = Deadline(seconds)
        for _ in range(max_bytes + 1):
            end = self._buffer.find(b"\n", 0, max_bytes + 1)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > max_bytes:
                break
            self._fill(deadline)
        raise AssertionError(f"no line within {max_bytes} bytes: {bytes(self._buffer)[:200]!r}")

    def expect(self, expected: bytes, seconds: float = TIMEOUT_S) -> None:
        """Assert that the next bytes received are exactly ``expected``."""
        got = self.recv_exactly(len(expected), seconds)
        assert got == expected

    def login(self, user: bytes) -> None:
        """Log in as ``user`` and assert the reply is ``OK``."""
        self.send(b"ME IS " + user + b"\n")
        self.expect(b"OK\n")

    def recv_until(
        self, suffix: bytes, max_bytes: int = 1 << 20, seconds: float = TIMEOUT_S
    ) -> tuple[bytes, bool]:
        """Receive until the data ends with ``suffix`` or the peer closes.

        Returns:
            ``(data, closed)``: everything up to and including the first
            ``suffix`` and False; or, when the peer closes first (EOF or
            reset), everything received and True. Fails after ``seconds``
            or past ``max_bytes``.
        """
        deadline = Deadline(seconds)
        for _ in range(max_bytes + 2):
            end = self._buffer.find(suffix) if suffix else -1
            if end >= 0:
                size = end + len(suffix)
                data = bytes(self._buffer[:size])
                del self._buffer[:size]
                return data, False
            if len(self._buffer) > max_bytes:
                break
            if deadline.expired():
                raise AssertionError(
                    f"neither {suffix!r} nor a close within {seconds} s; "
                    f"got {bytes(self._buffer)[:200]!r}"
                )
            self.sock.settimeout(deadline.remaining())
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                rest = bytes(self._buffer)
                self._buffer.clear()
                return rest, True
            self._buffer += data
        raise AssertionError(f"more than {max_bytes} bytes: {bytes(self._buffer)[:200]!r}")

    def recv_until_closed(self, max_bytes: int = 1 << 20, seconds: float = TIMEOUT_S) -> bytes:
        """Return every byte still to come before the peer closes (EOF or reset).

        Fails if the connection is still open after ``seconds`` or more than
        ``max_bytes`` arrive first.
        """
        data, closed = self.recv_until(b"", max_bytes, seconds)
        assert closed
        return data

    @classmethod
    def from_socket(cls, sock: socket.socket) -> "TcpClient":
        """Wrap an already connected stream socket (TLS, UNIX, IPv6) as a client."""
        client = cls.__new__(cls)
        client.sock = sock
        client.sock.settimeout(TIMEOUT_S)
        client._buffer = bytearray()
        return client

    @classmethod
    def with_receive_buffer(cls, port: int, size: int) -> "TcpClient":
        """Connect with SO_RCVBUF set to ``size`` before the connect (a small TCP window)."""
        client = cls.__new__(cls)
        client.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        client.sock.settimeout(TIMEOUT_S)
        client.sock.connect((HOST, port))
        client._buffer = bytearray()
        return client

    def recv_delivery(self) -> tuple[bytes, bytes, bool]:
        """Read one delivery; return (sender, body, chunked)."""
        line = self.recv_line()
        assert line.startswith(b"FROM ") and line.endswith(b"\n"), line
        sender = line[5:-1]
        length = self.recv_line()
        if not length.startswith(b"C"):
            assert re.fullmatch(rb"[0-9]{1,2}\n", length), length
            return sender, self.recv_exactly(int(length)), False
        pieces: list[bytes] = []
        for _ in range(1 << 20):
            assert re.fullmatch(rb"C[0-9]{1,3}\n", length), length
            size = int(length[1:])
            if size == 0:
                return sender, b"".join(pieces), True
            pieces.append(self.recv_exactly(size))
            length = self.recv_line()
        raise AssertionError("too many chunks")


class UdpClient:
    """A blocking UDP chat client bound to its own port on ``host`` (127.0.0.1 by default)."""

    def __init__(self, server_port: int, host: str = HOST, source: str | None = None) -> None:
        """A socket bound to ``source`` (default: ``host``), sending to ``server_port``."""
        self.server = (host, server_port)
        self.sock = socket.socket(address_family(host), socket.SOCK_DGRAM)
        self.sock.bind((source or host, 0))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, datagram: bytes) -> None:
        """Send one datagram to the server port."""
        self.sock.sendto(datagram, self.server)

    def recv(self, seconds: float = TIMEOUT_S) -> tuple[bytes, tuple[str, int]]:
        """Return the next datagram and its source address; fail after ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recvfrom(65536)
        except TimeoutError:
            raise AssertionError(f"no datagram within {seconds} s") from None

    def expect(self, expected: bytes, seconds: float = TIMEOUT_S) -> None:
        """Assert the next datagram is exactly ``expected``, from the server's port."""
        data, source = self.recv(seconds)
        # An IPv6 source is (host, port, flowinfo, scope_id).
        assert (data, source[:2]) == (expected, self.server)


#: ``tcpi_state`` of an established connection (linux/tcp_states.h).
TCP_ESTABLISHED = 1


def tcp_state(sock: socket.socket) -> int:
    """Return the kernel's TCP state of ``sock`` (Linux TCP_INFO), without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def login_when_free(
    client: TcpClient, user: bytes, attempts: int = 500, seconds: float = TIMEOUT_S
) -> None:
    """Send ``ME IS user`` until ``OK`` (bounded): a closed user's id is freed asynchronously."""
    deadline = Deadline(seconds)
    for attempt in range(attempts):
        client.send(b"ME IS " + user + b"\n")
        reply = client.recv_line()
        if reply == b"OK\n":
            return
        assert reply == b"ERROR\n"
        if deadline.expired():
            break
        time.sleep(min(0.001 * (attempt + 1), 0.05))
    raise AssertionError(f"{user!r} still taken after {attempts} attempts / {seconds} s")


def tcp_connector(port: int, host: str = HOST) -> Callable[[float], socket.socket]:
    """Return ``connect(timeout)`` opening a TCP connection to ``host``:``port``."""
    return lambda timeout: socket.create_connection((host, port), timeout=timeout)


def unix_connector(path: Path) -> Callable[[float], socket.socket]:
    """Return ``connect(timeout)`` opening a UNIX stream connection to ``path``."""

    def connect(timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

    return connect
