"""Robustness tests 1-3: senders killed mid-message, recipients that stop reading, huge messages.

Each test starts its own real ``chat_server`` on loopback (``--interface
127.0.0.1 --no-random``, through the ``start_server`` fixture of
``tests/conftest.py``), abuses it through real sockets and checks one way it
must hold up (PROTOCOL.md §4 and §7). Every wait is for exact bytes or a
condition, with a deadline; every loop is bounded (see ``tests/e2e_support.py``).
"""

import hashlib
import random
import re
import selectors

import pytest

from chatproto.limits import KIB, MIB
from chatproto.wire.encode import encode_message
from tests.e2e_support import Deadline, free_port, wait_until
from tests.procfs import memory_kib
from tests.robustness_support import delivery, report, start_thread
from tests.sockets import TCP_ESTABLISHED, TcpClient, login_when_free, tcp_state

pytestmark = pytest.mark.e2e  # every test here starts a process


# -- 1. senders killed at random points inside a chunked message --------------------------


def chunked_wire(command: bytes, body: bytes, rng: random.Random) -> tuple[bytes, dict]:
    """Frame ``body`` in chunks of random sizes; return the wire and where each part lies.

    Returns:
        ``(wire, regions)``; ``regions`` maps ``"command"``, ``"header"`` and
        ``"data"`` to lists of ``(start, end)`` byte spans of the wire.
    """
    parts = [command]
    regions: dict[str, list[tuple[int, int]]] = {
        "command": [(0, len(command))],
        "header": [],
        "data": [],
    }
    offset, position = len(command), 0
    for _ in range(len(body) + 1):
        if position == len(body):
            break
        size = min(rng.randint(1, 999), len(body) - position)
        header = b"C%d\n" % size
        regions["header"].append((offset, offset + len(header)))
        regions["data"].append((offset + len(header), offset + len(header) + size))
        parts += [header, body[position : position + size]]
        offset += len(header) + size
        position += size
    regions["header"].append((offset, offset + 3))
    parts.append(b"C0\n")
    return b"".join(parts), regions


def kill_points(regions: dict, rng: random.Random) -> list[int]:
    """Choose prefix lengths ending inside the command line, chunk headers and chunk data."""
    points: set[int] = set()
    for name, count in (("command", 8), ("header", 24), ("data", 24)):
        spans = regions[name]
        for _ in range(count * 20):
            if sum(1 for p in points if _in_spans(p, spans)) >= count:
                break
            start, end = rng.choice(spans)
            points.add(rng.randint(start + 1, end))
    last_start, last_end = regions["header"][-1]
    points.update({last_start, last_end - 2, last_end - 1})  # C0 missing, or part of it
    return sorted(points)


def _in_spans(point: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < point <= end for start, end in spans)


def test_sender_killed_anywhere_in_chunked_message_delivers_none_of_it(start_server, tcp):
    """A chunked message cut off by close or reset at any of 59 seeded points reaches no one."""
    port = free_port()
    start_server([port])
    bob = tcp(port)
    bob.login(b"bob")
    rng = random.Random(20261126)
    body = rng.randbytes(200 * 1000)
    wire, regions = chunked_wire(b"SEND bob\n", body, rng)
    points = kill_points(regions, rng)
    assert len(points) >= 50
    assert wire.endswith(b"C0\n") and len(wire) > 200 * 1000

    for index, point in enumerate(points):
        sender = tcp(port)
        login_when_free(sender, b"alice")
        sender.send(wire[:point])
        if index % 2:
            sender.reset()
        else:
            sender.close()
        # alice is free again only once the server has processed that close;
        # a partial message would have reached bob before this marker.
        marker = tcp(port)
        login_when_free(marker, b"alice")
        text = b"marker %d at %d" % (index, point)
        marker.send(encode_message([b"bob"], text))
        bob.expect(delivery(b"alice", text))
        marker.close()

    whole = tcp(port)
    login_when_free(whole, b"alice")
    whole.send(wire)
    assert bob.recv_delivery() == (b"alice", body, True)


# -- 2. a recipient that never reads while 100 MB are sent to it ----------------------------

FLOOD_BYTES = 100 * 1000 * 1000
FLOOD_BATCH = 1000  # messages per sendall
#: Default --max-backlog (limits.py: "in-memory bytes queued for one TCP recipient").
DEFAULT_BACKLOG_BYTES = 16 * MIB
#: The design lets one slow client pin its backlog limit in memory; allow as much again
#: for Python object and allocator overhead, and 16 MiB for everything else (the
#: sender's read buffer, the fast client's transport buffer, interpreter arenas).
FLOOD_RSS_GROWTH_LIMIT_BYTES = 2 * DEFAULT_BACKLOG_BYTES + 16 * MIB


def flood_body(number: int) -> bytes:
    """Return the 90-byte body of message ``number``: the number first, then padding."""
    return b"%08d" % number + b"." * 82


def test_slow_recipient_is_dropped_while_others_get_every_message(start_server, tcp, capsys):
    """A recipient that never reads is disconnected with bounded server RSS; another gets all."""
    port = free_port()
    server = start_server([port])  # default --max-backlog: 16 MiB
    pid = server.process.pid
    slow = TcpClient.with_receive_buffer(port, 4096)
    try:
        slow.login(b"slow")
        fast, alice = tcp(port), tcp(port)
        fast.login(b"fast")
        alice.login(b"alice")

        frame_size = len(encode_message([b"slow", b"fast"], flood_body(0)))
        count = FLOOD_BYTES // frame_size
        batches = [
            b"".join(
                encode_message([b"slow", b"fast"], flood_body(number))
                for number in range(start, min(start + FLOOD_BATCH, count))
            )
            for start in range(0, count, FLOOD_BATCH)
        ]
        expected = b"".join(delivery(b"alice", flood_body(number)) for number in range(count))
        assert sum(map(len, batches)) >= FLOOD_BYTES - frame_size

        before = memory_kib(pid)
        errors: list[BaseException] = []

        def flood() -> None:
            for batch in batches:
                alice.send(batch)

        sender = start_thread(flood, errors)
        deadline = Deadline(90)
        piece = 1 << 20
        for offset in range(0, len(expected), piece):
            want = expected[offset : offset + piece]
            got = fast.recv_exactly(len(want), deadline.remaining())
            if got != want:
                at = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
                raise AssertionError(
                    f"fast got {got[at - 20 : at + 40]!r} at byte {offset + at}, "
                    f"expected {want[at - 20 : at + 40]!r}"
                )
        sender.join(deadline.remaining())
        assert not sender.is_alive() and errors == []
        after = memory_kib(pid)

        # Disconnected by the server while it never read: its TCP state left ESTABLISHED.
        wait_until(lambda: tcp_state(slow.sock) != TCP_ESTABLISHED, what="slow to be dropped")
        drained = slow.recv_until_closed(max_bytes=1 * MIB)
        assert drained == expected[: len(drained)]
        tcp(port).login(b"slow")  # it was logged out, so its userid is free
        alice.send(encode_message([b"fast"], b"end"))
        fast.expect(delivery(b"alice", b"end"))
    finally:
        slow.close()

    growth_kib = after["VmHWM"] - before["VmHWM"]
    report(
        capsys,
        f"100 MB flood ({count} messages) past a non-reading recipient: server VmRSS before "
        f"{before['VmRSS']} KiB, VmHWM before {before['VmHWM']} KiB, after "
        f"{after['VmHWM']} KiB (growth {growth_kib} KiB); slow drained {len(drained)} bytes",
    )
    assert growth_kib * KIB < FLOOD_RSS_GROWTH_LIMIT_BYTES


# -- 3. one 64 MiB chunked message to ten recipients --------------------------------------


class ChunkedDeliveryReader:
    """Parse one chunked delivery arriving in pieces, hashing the body as it comes.

    Attributes:
        sender: the userid in the ``FROM`` line, once read.
        size: body bytes so far.
        is_done: whether the ``C0`` line has arrived.
    """

    def __init__(self) -> None:
        self.sender: bytes | None = None
        self.size = 0
        self.is_done = False
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._need = 0  # bytes left of the current chunk

    def feed(self, data: bytes) -> None:
        """Consume received bytes; a framing error fails the test."""
        assert not self.is_done, f"bytes after the delivery: {data[:100]!r}"
        buffer = self._buffer
        buffer += data
        position = 0
        for _ in range(len(buffer) + 1):
            if self._need:
                take = min(self._need, len(buffer) - position)
                if take == 0:
                    break
                with memoryview(buffer) as view:
                    self._digest.update(view[position : position + take])
                position += take
                self._need -= take
                self.size += take
                continue
            newline = buffer.find(b"\n", position, position + 64)
            if newline < 0:
                assert len(buffer) - position < 64, bytes(buffer[position : position + 64])
                break
            line = bytes(buffer[position:newline])
            position = newline + 1
            if self.sender is None:
                assert line.startswith(b"FROM "), line
                self.sender = line[5:]
                continue
            assert re.fullmatch(rb"C[0-9]{1,3}", line), line
            self._need = int(line[1:])
            if self._need == 0:
                self.is_done = True
                assert position == len(buffer), bytes(buffer[position : position + 100])
                break
        del buffer[:position]

    def hexdigest(self) -> str:
        """Return the sha256 of the body received."""
        return self._digest.hexdigest()


BIG_BODY_BYTES = 64 * MIB  # exactly the default --max-message, which is allowed
BIG_RSS_LIMIT_BYTES = 100 * 1000 * 1000


def test_64mib_chunked_message_reaches_ten_recipients_intact_in_bounded_memory(
    start_server, tcp, capsys
):
    """A 64 MiB chunked message reaches 10 TCP recipients intact while server peak RSS < 100 MB."""
    port = free_port()
    server = start_server([port])  # default --max-message: 64 MiB of body, so it fits
    names = [b"reader%d" % number for number in range(10)]
    readers = [tcp(port) for _ in names]
    for reader, name in zip(readers, names, strict=True):
        reader.login(name)
    alice = tcp(port)
    alice.login(b"alice")
    body = random.Random(64).randbytes(BIG_BODY_BYTES)
    frame = encode_message(names, body, chunked=True)
    digest = hashlib.sha256(body).hexdigest()

    errors: list[BaseException] = []
    sender = start_thread(lambda: alice.send(frame), errors)
    parsers = {reader.sock: ChunkedDeliveryReader() for reader in readers}
    deadline = Deadline(60)
    with selectors.DefaultSelector() as selector:
        for sock in parsers:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        for _ in range(len(names) * (BIG_BODY_BYTES // 1000 + 1000)):
            if not selector.get_map():
                break
            assert not deadline.expired(), {p.sender: p.size for p in parsers.values()}
            for key, _ in selector.select(deadline.remaining()):
                data = key.fileobj.recv(1 << 20)
                assert data, "a recipient's connection closed"
                parser = parsers[key.fileobj]
                parser.feed(data)
                if parser.is_done:
                    selector.unregister(key.fileobj)
        assert not selector.get_map()
    sender.join(deadline.remaining())
    assert not sender.is_alive() and errors == []
    peak_kib = memory_kib(server.process.pid)["VmHWM"]

    results = [(p.sender, p.size, p.hexdigest()) for p in parsers.values()]
    assert results == [(b"alice", BIG_BODY_BYTES, digest)] * len(names)
    report(capsys, f"64 MiB chunked message to 10 recipients: server VmHWM {peak_kib} KiB")
    assert peak_kib * KIB < BIG_RSS_LIMIT_BYTES
