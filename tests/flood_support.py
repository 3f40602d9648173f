"""A flood of big chunked messages past recipients that never read, watched from outside.

One sender sends ``SEND slow1 [slow2 ...] fast`` with chunked bodies as fast
as the reading recipient ``fast`` keeps up; the ``slow`` recipients log in
with a tiny receive buffer and never read again. Meanwhile a sampler reads
the server's RSS and open descriptors from /proc and notices, without
reading from them, when the server cuts the slow ones (their TCP state
leaves ESTABLISHED: the server resets them). Used by
``tests/test_spool_backlog.py`` and by ``bench/spool_flood.py``, which prints
the same figures for any server command.

Everything is bounded: the flood by its byte count, every wait by a deadline.
"""

import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.e2e_support import Deadline
from tests.procfs import memory_kib, open_fd_count
from tests.sockets import TCP_ESTABLISHED, tcp_state

#: The reading recipient may lag the sender by at most this many messages or bytes:
#: it reads in this test process, and a reader that falls far behind is, by design,
#: a slow consumer the server cuts too.
READER_LAG_MESSAGES = 8
READER_LAG_BYTES = 24 * 1024 * 1024

#: Chunk size of the flood's bodies (the protocol's largest).
CHUNK = 999

#: Sampling period of RSS, descriptors and the slow readers' state.
SAMPLE_S = 0.005


def _read_status(sock: socket.socket) -> None:
    """Read one reply line (``OK``) byte by byte, so nothing after it is consumed."""
    line = b""
    for _ in range(64):
        byte = sock.recv(1)
        if not byte:
            raise AssertionError(f"closed before its login answer (got {line!r})")
        line += byte
        if byte == b"\n":
            break
    assert line == b"OK\n", line


def login(sock: socket.socket, user: bytes) -> socket.socket:
    """Log ``sock`` in as ``user``; return it."""
    sock.sendall(b"ME IS " + user + b"\n")
    _read_status(sock)
    return sock


def connect_non_reader(port: int, host: str = "127.0.0.1", receive_buffer: int = 4096):  # type: ignore[no-untyped-def]
    """A plain TCP socket with a small receive buffer set before the connect (a small window)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect((host, port))
    return sock


class DeliveryStream:
    """Parse a stream of chunked deliveries of the flood, checking each one whole.

    Each body is an 8-byte big-endian message number followed by the same
    filler; a delivery is intact when its number is the next one and the
    sha256 of the rest is the filler's.

    Attributes:
        delivered: intact messages so far.
    """

    def __init__(self, sender: bytes, filler_digest: str, filler_size: int) -> None:
        self.delivered = 0
        self._from_line = b"FROM " + sender + b"\n"
        self._filler_digest = filler_digest
        self._filler_size = filler_size
        self._buffer = bytearray()
        self._need = 0  # bytes left in the current chunk
        self._in_message = False
        self._prefix = b""
        self._digest = hashlib.sha256()
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Consume received bytes; a framing or content error fails the test."""
        buffer = self._buffer
        buffer += data
        position = 0
        end = len(buffer)
        for _ in range(end + 1):
            if self._need:
                take = min(self._need, end - position)
                if not take:
                    break
                self._take(buffer, position, take)
                position += take
                self._need -= take
                continue
            newline = buffer.find(b"\n", position, position + 64)
            if newline < 0:
                assert end - position < 64, bytes(buffer[position : position + 64])
                break
            line = bytes(buffer[position : newline + 1])
            position = newline + 1
            if not self._in_message:
                assert line == self._from_line, line
                self._in_message = True
                continue
            assert line[:1] == b"C" and line[1:-1].isdigit(), line
            self._need = int(line[1:-1])
            if not self._need:
                self._finish_message()
        del buffer[:position]

    def _take(self, buffer: bytearray, position: int, size: int) -> None:
        with memoryview(buffer) as view:
            piece = view[position : position + size]
            if len(self._prefix) < 8:
                head = 8 - len(self._prefix)
                self._prefix += bytes(piece[:head])
                piece = piece[head:]
            self._digest.update(piece)
            self._size += len(piece)

    def _finish_message(self) -> None:
        number = struct.unpack(">Q", self._prefix)[0]
        assert number == self.delivered, f"message {number} where {self.delivered} was due"
        assert self._size == self._filler_size, (number, self._size)
        assert self._digest.hexdigest() == self._filler_digest, f"message {number} corrupted"
        self.delivered += 1
        self._in_message = False
        self._prefix = b""
        self._digest = hashlib.sha256()
        self._size = 0


@dataclass
class FloodReport:
    """What a flood did to the server, seen from outside.

    Attributes:
        message_bytes: body size of each message.
        messages: messages sent.
        seconds: how long the flood took.
        cut_after: per slow reader, the wire bytes sent naming it before it was
            seen disconnected (an upper bound on what was queued for it), or
            None if it never was.
        delivered: messages the reading recipient got intact.
        rss_start_kib, rss_peak_kib, rss_end_kib: server RSS before, at most
            during, and after the flood.
        fds_start, fds_peak, fds_end: the server's open descriptors likewise.
    """

    message_bytes: int
    messages: int = 0
    seconds: float = 0.0
    cut_after: list[int | None] = field(default_factory=list)
    delivered: int = 0
    rss_start_kib: int = 0
    rss_peak_kib: int = 0
    rss_end_kib: int = 0
    fds_start: int = 0
    fds_peak: int = 0
    fds_end: int = 0

    def summary(self) -> str:
        """One line of the figures, for a test report or the bench script."""
        cuts = ", ".join("never" if c is None else f"{c / 2**20:.1f} MiB" for c in self.cut_after)
        return (
            f"{self.messages} x {self.message_bytes // 1024} KiB in {self.seconds:.1f} s: "
            f"slow cut after {cuts}; RSS {self.rss_start_kib // 1024} MB -> peak "
            f"{self.rss_peak_kib // 1024} MB -> end {self.rss_end_kib // 1024} MB; fds "
            f"{self.fds_start} -> peak {self.fds_peak} -> end {self.fds_end}; reader got "
            f"{self.delivered}/{self.messages} intact"
        )


def _message_wire(names: bytes, number: int, first_chunk_rest: bytes, rest: bytes) -> bytes:
    """The wire of message ``number``: its command line, then its chunks and ``C0``."""
    first = struct.pack(">Q", number) + first_chunk_rest
    return b"SEND %b\n%b%b" % (names, b"C%d\n%b" % (len(first), first), rest)


def run_flood(
    port: int,
    pid: int,
    message_bytes: int,
    total_bytes: int,
    non_readers: list[socket.socket],
    seconds: float = 120.0,
    connect: Callable[[], socket.socket] | None = None,
) -> FloodReport:
    """Flood ``non_readers`` (logged in as slow0, slow1, ...) and a reader; return the figures.

    ``connect`` opens the sender's and the reader's plain sockets (default:
    TCP to 127.0.0.1:``port``). The flood sends ``total_bytes`` of bodies in
    ``message_bytes`` messages; the slow ones are never read from.
    """
    if connect is None:

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=10)

    deadline = Deadline(seconds)
    report = FloodReport(message_bytes=message_bytes, cut_after=[None] * len(non_readers))
    filler = os.urandom(message_bytes - 8)
    filler_digest = hashlib.sha256(filler).hexdigest()
    first_rest = filler[: CHUNK - 8]
    rest = b"".join(
        b"C%d\n%b" % (len(filler[i : i + CHUNK]), filler[i : i + CHUNK])
        for i in range(CHUNK - 8, len(filler), CHUNK)
    )
    rest += b"C0\n"
    names = b" ".join([b"slow%d" % i for i in range(len(non_readers))] + [b"fast"])
    wire_size = len(_message_wire(names, 0, first_rest, rest))
    count = max(total_bytes // message_bytes, 1)

    sender = login(connect(), b"sender")
    reader = login(connect(), b"fast")
    stream = DeliveryStream(b"sender", filler_digest, len(filler))
    report.rss_start_kib = report.rss_peak_kib = memory_kib(pid)["VmRSS"]
    report.fds_start = report.fds_peak = open_fd_count(pid)
    sent = [0]  # wire bytes whose sendall returned
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader.settimeout(deadline.remaining())
        while stream.delivered < count and not deadline.expired():
            data = reader.recv(1 << 20)
            if not data:
                raise AssertionError(f"reader closed after {stream.delivered} messages")
            stream.feed(data)

    def sample() -> None:
        while not done.is_set():
            _sample(pid, report, non_readers, sent[0])
            done.wait(SAMPLE_S)

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # reported by the caller
                errors.append(error)

        return run

    threads = [threading.Thread(target=guarded(t), daemon=True) for t in (read, sample)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        for number in range(count):
            for _ in range(100_000):  # wait for the reader to keep up (bounded)
                lagging = number - stream.delivered
                if lagging < READER_LAG_MESSAGES and lagging * wire_size < READER_LAG_BYTES:
                    break
                if errors or deadline.expired():
                    raise AssertionError(f"the reader stopped at {stream.delivered}: {errors}")
                time.sleep(0.0005)
            sender.sendall(_message_wire(names, number, first_rest, rest))
            sent[0] += wire_size
            report.messages += 1
        threads[0].join(deadline.remaining())
        report.seconds = time.monotonic() - started
        for _ in range(1000):  # the last cut may be seen a sample late
            if None not in report.cut_after or deadline.expired():
                break
            _sample(pid, report, non_readers, sent[0])
            time.sleep(SAMPLE_S)
    finally:
        done.set()
        threads[1].join(5)
        sender.close()
        reader.close()
    if errors:
        raise errors[0]
    report.delivered = stream.delivered
    report.rss_end_kib = _settled_rss(pid, report.rss_start_kib, deadline)
    report.fds_end = open_fd_count(pid)
    return report


def _sample(pid: int, report: FloodReport, non_readers: list[socket.socket], sent: int) -> None:
    report.rss_peak_kib = max(report.rss_peak_kib, memory_kib(pid)["VmRSS"])
    report.fds_peak = max(report.fds_peak, open_fd_count(pid))
    for index, sock in enumerate(non_readers):
        if report.cut_after[index] is None and tcp_state(sock) != TCP_ESTABLISHED:
            report.cut_after[index] = sent


def _settled_rss(pid: int, start_kib: int, deadline: Deadline) -> int:
    """The server's RSS once the flood is over: back near ``start_kib``, or the last seen.

    The server returns memory as it finishes its last writes; wait (bounded)
    for RSS to come within 32 MB of the start, and report what it is then.
    """
    rss = memory_kib(pid)["VmRSS"]
    for _ in range(200):
        if rss - start_kib < 32 * 1000 or deadline.expired():
            break
        time.sleep(0.01)
        rss = memory_kib(pid)["VmRSS"]
    return rss
