"""Helpers shared by the ``chat_client`` tests.

For the unit tests: fake transports, a view, a connection. For the end-to-end
tests: :class:`ClientProcess`, a ``chat_client`` subprocess read with deadlines.
"""

import fcntl
import os
import pty
import re
import select
import subprocess
import sys
import termios
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
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.events import NEED_DATA, BodyData, DeliveryStart, MessageEnd
from tests.e2e_support import TIMEOUT_S, Deadline

CHAT_CLIENT = Path(sys.executable).parent / "chat_client"

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
        self.headers: list[bytes] = []
        self.file_done: Deferred[int] = Deferred()
        self.finished = 0

    def attach(self, view: object) -> None:
        self.view = view

    def send_text(self, recipients: list[bytes] | None, body: bytes) -> None:
        self.texts.append((recipients, body))

    def send_file(self, recipients, source, size, on_progress=None, header=b"") -> Deferred[int]:  # type: ignore[no-untyped-def]
        self.files.append((list(recipients), source.read(), size))
        self.headers.append(header)
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


def decode_body(frames: bytes) -> tuple[list[int], bytes]:
    """Decode a chunked body as a client would; return chunk sizes and the bytes."""
    decoder = ClientDecoder()
    decoder.feed(b"FROM x\n" + frames)
    decoder.eof()
    sizes: list[int] = []
    events = []
    while (event := decoder.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, BodyData):
            sizes.append(len(event.data))
        if isinstance(event, MessageEnd):
            break
    assert events[0] == DeliveryStart(b"x") and events[-1] == MessageEnd()
    return sizes, b"".join(e.data for e in events if isinstance(e, BodyData))


def receive(inbox: Inbox, sender: bytes, *pieces: bytes) -> Received:
    inbox.start(sender)
    for piece in pieces:
        inbox.add(piece)
    return inbox.finish()


# -- chat_client processes -------------------------------------------------------


def _take_terminal() -> None:
    """In the child, after ``setsid``: make standard input its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ClientProcess:
    """A ``chat_client`` subprocess on pipes or a pseudo-terminal, read with deadlines."""

    def __init__(self, args: list[str], cwd: Path, use_pty: bool = False) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [str(CHAT_CLIENT), *args]
        self._buffers = {"out": bytearray(), "err": bytearray()}
        if use_pty:
            primary, secondary = pty.openpty()
            self.process = subprocess.Popen(
                command,
                stdin=secondary,
                stdout=secondary,
                stderr=secondary,
                cwd=cwd,
                env=env,
                # Its own session, with the pty as controlling terminal: Ctrl-C works.
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
            os.close(secondary)
            self._pty_fd: int | None = primary
            self._fds = {"out": primary}
            self._input_fd: int | None = primary
        else:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
            )
            assert self.process.stdout and self.process.stderr and self.process.stdin
            self._pty_fd = None
            self._fds = {"out": self.process.stdout.fileno(), "err": self.process.stderr.fileno()}
            self._input_fd = self.process.stdin.fileno()
        self._open = dict(self._fds)

    def type(self, line: str) -> None:
        """Type ``line`` and a newline."""
        assert self._input_fd is not None
        os.write(self._input_fd, line.encode() + b"\n")

    def press_ctrl_c(self) -> None:
        """Press Ctrl-C on the pseudo-terminal: it echoes ``^C`` and sends SIGINT."""
        assert self._pty_fd is not None, "Ctrl-C needs use_pty=True"
        os.write(self._pty_fd, b"\x03")

    def close_input(self) -> None:
        """Close the client's standard input (end of input)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self._input_fd = None

    def _read_some(self, deadline: Deadline) -> None:
        """Read what is available on any open stream, waiting until the deadline."""
        if not self._open:
            raise AssertionError(f"all output closed; got {self._buffers!r}")
        ready, _, _ = select.select(list(self._open.values()), [], [], deadline.remaining())
        if not ready:
            raise AssertionError(f"timed out; got {self._buffers!r}")
        for name, fd in list(self._open.items()):
            if fd in ready:
                try:
                    data = os.read(fd, 1 << 16)
                except OSError:  # EIO from a pseudo-terminal whose child is gone
                    data = b""
                if not data:
                    del self._open[name]
                self._buffers[name] += data.replace(b"\r\n", b"\n")

    def line(self, stream: str = "out", seconds: float = TIMEOUT_S) -> str:
        """Return the next complete line of ``stream`` without its newline."""
        deadline = Deadline(seconds)
        buffer = self._buffers[stream]
        for _ in range(10_000):
            end = buffer.find(b"\n")
            if end >= 0:
                text = buffer[:end].decode()
                del buffer[: end + 1]
                return text
            if deadline.expired():
                break
            self._read_some(deadline)
        raise AssertionError(f"no line on {stream} within {seconds} s: {bytes(buffer)!r}")

    def wait_for(self, pattern: str, stream: str = "out", max_lines: int = 100) -> re.Match:
        """Skip lines until one matches ``pattern`` in full; fail after ``max_lines``."""
        seen = []
        for _ in range(max_lines):
            text = self.line(stream)
            if match := re.fullmatch(pattern, text):
                return match
            seen.append(text)
        raise AssertionError(f"no line matched {pattern!r} in {seen!r}")

    def rest(self, stream: str, seconds: float = TIMEOUT_S) -> str:
        """Return everything on ``stream`` until it closes."""
        deadline = Deadline(seconds)
        for _ in range(10_000):
            if self._fds[stream] not in self._open.values():
                break
            self._read_some(deadline)
        text = self._buffers[stream].decode()
        self._buffers[stream].clear()
        return text

    def wait(self, seconds: float = TIMEOUT_S) -> int:
        """Wait for the process to exit and return its status."""
        return self.process.wait(timeout=seconds)

    def stop(self) -> None:
        """Kill the process if it still runs and release its pipes or terminal."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        if self._pty_fd is not None:
            os.close(self._pty_fd)
