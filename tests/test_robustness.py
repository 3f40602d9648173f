"""Robustness tests: a real ``chat_server`` on loopback, abused through real sockets.

Each test starts its own server (``--interface 127.0.0.1 --no-random``) and
checks one way the server must hold up (PROTOCOL.md §4 and §7): senders
killed mid-message, recipients that stop reading, huge messages, garbage,
connection churn, resource limits, shutdown. Every wait is for exact bytes or
a condition, with a deadline; every loop is bounded (see ``tests/e2e_support.py``).
"""

import hashlib
import os
import random
import re
import resource
import selectors
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from chatproto.limits import KIB, MIB
from chatproto.wire.encode import encode_message
from tests.e2e_support import TIMEOUT_S, Deadline, Server, free_port, free_ports, wait_until
from tests.procfs import fd_targets, memory_kib, open_fd_count, server_receive_queue
from tests.sockets import TCP_ESTABLISHED, TcpClient, UdpClient, login_when_free, tcp_state

pytestmark = pytest.mark.e2e  # every test here starts a process

StartServer = Callable[..., Server]


@pytest.fixture
def start_server(launch) -> StartServer:  # type: ignore[no-untyped-def]
    """Start chat_server processes (``--no-random`` plus options), ready to use."""

    def start(
        ports: list[int], *extra: str, preexec_fn: Callable[[], None] | None = None
    ) -> Server:
        return launch("chat_server", ports, ["--no-random", *extra], preexec_fn)

    return start


def delivery(sender: bytes, body: bytes) -> bytes:
    """Return the exact bytes a recipient gets for a short message."""
    return b"FROM %s\n%d\n%s" % (sender, len(body), body)


def send_tolerating_close(client: TcpClient, data: bytes) -> None:
    """Send ``data``; the server may close the connection before it has all of it."""
    try:
        client.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def start_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """Run ``target`` in a daemon thread; any exception is appended to ``errors``."""

    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print a measured figure so that it shows even with ``-q``."""
    with capsys.disabled():
        print(f"\n[robustness] {text}")


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


# -- 4. garbage on every port, TCP and UDP ----------------------------------------------------

MAX_LINE = 8 * KIB  # the default --max-line

#: Garbage whose framing the server cannot recover from: one ERROR, then it closes.
FATAL_GARBAGE = {
    "huge short length": b"SEND x\n99999999999\n",
    "huge chunk size": b"SEND x\nC99999999\n",
    "endless line": b"x" * (4 * MAX_LINE),
    "endless NULs": b"\x00" * (4 * MAX_LINE),
    "endless length line": b"SEND x\n" + b"9" * (2 * MAX_LINE),
    "chunk header with a sign": b"SEND x\nC+12\n",
}
#: Garbage that is one bad line: one ERROR, and the connection stays usable.
LINE_GARBAGE = {
    "chunk header as a command": b"C99999999\n",
    "NUL line": b"\x00" * 100 + b"\n",
    "line of exactly max-line NULs": b"\x00" * MAX_LINE + b"\n",
    "NUL userid": b"ME IS \x00\n",
    "high bytes": bytes(range(128, 256)) + b"\n",
}


def check_tcp_garbage(port: int, name: bytes, is_logged_in: bool, rng: random.Random) -> None:
    """Throw every kind of garbage at ``port`` on fresh connections; check each answer."""
    for label, garbage in FATAL_GARBAGE.items():
        client = TcpClient(port)
        try:
            if is_logged_in:
                login_when_free(client, name)
            send_tolerating_close(client, garbage)
            assert client.recv_until_closed(max_bytes=64) == b"ERROR\n", label
        finally:
            client.close()
    for label, garbage in LINE_GARBAGE.items():
        client = TcpClient(port)
        try:
            if is_logged_in:
                login_when_free(client, name)
            client.send(garbage + b"HELLO\n")
            assert client.recv_exactly(12) == b"ERROR\nERROR\n", label
        finally:
            client.close()
    for size in (1, 100, 4096, 64 * KIB):
        client = TcpClient(port)
        try:
            if is_logged_in:
                login_when_free(client, name)
                end, done = b"SEND %s\n3\nend" % name, delivery(name, b"end")
            else:  # a new userid each time: the last one may not be released yet
                end, done = b"ME IS %s%d\n" % (name, size), b"OK\n"
            send_tolerating_close(client, rng.randbytes(size) + b"\n" + end)
            data, closed = client.recv_until(done, max_bytes=size * 8 + 64)
            # Each bad line gets one ERROR; then either the end marker or a close.
            assert re.fullmatch(rb"(ERROR\n)+", data if closed else data[: -len(done)]), data
        finally:
            client.close()


UDP_GARBAGE = [
    b"",
    b"SEND x\n99999999999\n",
    b"C99999999\n",
    b"SEND x\nC5\nhello",
    b"x" * (MAX_LINE + 100),
    b"\x00" * 1000,
    b"ME IS \x00",
    b"SEND x\n3\nabcSEND x\n3\nabc",
]


def check_udp_garbage(port: int, names: Iterator[bytes], rng: random.Random) -> None:
    """Send garbage datagrams to ``port``, each from a fresh socket; each gets ERROR or nothing."""
    garbage = UDP_GARBAGE + [rng.randbytes(size) for size in (1, 50, 1500, 65507)]
    for datagram in garbage:
        client = UdpClient(port)
        try:
            client.send(datagram)
            name = next(names)
            client.send(b"ME IS " + name)  # in order after the garbage: its OK ends the replies
            replies = []
            for _ in range(3):
                data, source = client.recv()
                assert source == client.server
                if data == b"OK\n":
                    break
                replies.append(data)
            assert replies in ([], [b"ERROR\n"]), (datagram[:50], replies)
        finally:
            client.close()


def test_garbage_on_every_port_leaves_logged_in_users_unaffected(start_server, tcp, udp):
    """Garbage over TCP and UDP on two ports gets ERROR or a close, and users still chat."""
    port_a, port_b = free_ports(2)
    server = start_server([port_a, port_b])
    alice, bob = tcp(port_a), tcp(port_b)
    alice.login(b"alice")
    bob.login(b"bob")
    carol, dave = udp(port_a), udp(port_b)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")
    dave.send(b"ME IS dave")
    dave.expect(b"OK\n")

    rng = random.Random(4)
    udp_names = iter([b"udp%d" % number for number in range(100)])
    for port, tag in ((port_a, b"a"), (port_b, b"b")):
        check_tcp_garbage(port, b"anon" + tag, False, rng)
        check_tcp_garbage(port, b"junk" + tag, True, rng)
        check_udp_garbage(port, udp_names, rng)
    # Logged-in UDP users sending garbage get exactly one ERROR each.
    for client in (carol, dave):
        client.send(b"SEND x\n99999999999\n")
        client.expect(b"ERROR\n")

    assert server.process.poll() is None
    alice.send(encode_message([b"bob", b"carol", b"dave"], b"still here?"))
    bob.expect(delivery(b"alice", b"still here?"))
    carol.expect(delivery(b"alice", b"still here?"))
    dave.expect(delivery(b"alice", b"still here?"))
    bob.send(encode_message([b"alice"], b"yes"))
    alice.expect(delivery(b"bob", b"yes"))
    carol.send(b"SEND dave alice\n4\nme 2")
    dave.expect(delivery(b"carol", b"me 2"))
    alice.expect(delivery(b"carol", b"me 2"))
    dave.send(b"SEND bob carol\n5\nme 3!")
    bob.expect(delivery(b"dave", b"me 3!"))
    carol.expect(delivery(b"dave", b"me 3!"))


# -- 5. connection churn leaks nothing --------------------------------------------------------

CYCLES = 2000
CYCLE_WORKERS = 8
FD_SLACK = 2
RSS_GROWTH_LIMIT_BYTES = 10 * MIB


def settled_fds_and_rss(pid: int, port: int, users: list[bytes]) -> tuple[int, int]:
    """Return the server's fd count without client connections, and its VmRSS in KiB.

    Logs one probe in as each of ``users`` (retrying until the id is free, so
    every earlier connection of theirs has been closed by the server), counts
    the fds while only the probes are connected, then closes the probes.
    """
    probes = [TcpClient(port) for _ in users]
    try:
        for probe, user in zip(probes, users, strict=True):
            login_when_free(probe, user)
        return open_fd_count(pid) - len(probes), memory_kib(pid)["VmRSS"]
    finally:
        for probe in probes:
            probe.close()


def test_2000_login_cycles_leave_fds_and_rss_at_baseline(start_server, capsys):
    """2,000 connect/login/disconnect cycles on reused userids leak no fds and little RSS."""
    port = free_port()
    server = start_server([port])
    pid = server.process.pid
    users = [b"cycler%d" % number for number in range(CYCLE_WORKERS)]
    settled_fds_and_rss(pid, port, users)  # warm up: first-use allocations go in the baseline
    baseline_fds, baseline_rss = settled_fds_and_rss(pid, port, users)

    def cycle(user: bytes, rounds: int) -> None:
        for round_number in range(rounds):
            client = TcpClient(port)
            login_when_free(client, user)
            if round_number % 2:
                client.reset()
            else:
                client.close()

    errors: list[BaseException] = []
    deadline = Deadline(60)
    workers = [
        start_thread(lambda user=user: cycle(user, CYCLES // CYCLE_WORKERS), errors)
        for user in users
    ]
    for worker in workers:
        worker.join(deadline.remaining())
    assert not any(worker.is_alive() for worker in workers) and errors == []

    fds, rss = settled_fds_and_rss(pid, port, users)
    report(
        capsys,
        f"{CYCLES} login cycles: server fds {baseline_fds} -> {fds}, "
        f"VmRSS {baseline_rss} KiB -> {rss} KiB",
    )
    assert fds <= baseline_fds + FD_SLACK
    assert (rss - baseline_rss) * KIB < RSS_GROWTH_LIMIT_BYTES
    wait_until(lambda: open_fd_count(pid) <= baseline_fds + FD_SLACK, what="the probes to close")


# -- 6. the connection limit ---------------------------------------------------------------


def test_connection_past_max_connections_is_closed_and_others_keep_working(start_server, tcp):
    """With --max-connections 5 a sixth connection is closed at once; the five still chat."""
    port = free_port()
    start_server([port], "--max-connections", "5")
    names = [b"user%d" % number for number in range(5)]
    clients = []
    for name in names:  # one at a time, so the readiness probe's close is long processed
        client = tcp(port)
        client.login(name)
        clients.append(client)

    sixth = tcp(port)
    assert sixth.recv_until_closed(max_bytes=64) == b""

    for index, client in enumerate(clients):
        target = names[(index + 1) % len(names)]
        client.send(encode_message([target], b"hi %s" % target))
    for index, client in enumerate(clients):
        sender = names[(index - 1) % len(names)]
        client.expect(delivery(sender, b"hi %s" % names[index]))


# -- 7. the spool limit ----------------------------------------------------------------------


def test_message_over_spool_limit_gets_error_and_connection_goes_on(start_server, tcp):
    """A 300 KB chunked message past --max-spool gets ERROR after its body and is not delivered."""
    port = free_port()
    start_server([port], "--spill-threshold", "10000", "--max-spool", "100000")
    alice, bob = tcp(port), tcp(port)
    alice.login(b"alice")
    bob.login(b"bob")
    body = random.Random(7).randbytes(300 * 1000)
    frame = encode_message([b"bob"], body, chunked=True)
    assert frame.endswith(b"C0\n")
    alice.send(frame[:-3])
    wait_until(
        lambda: server_receive_queue(port, alice.sock) == 0,
        what="the server to read all but the last chunk header",
    )
    bob.send(encode_message([b"bob"], b"sync"))  # the server has gone round its loop since
    bob.expect(delivery(b"bob", b"sync"))
    alice.sock.setblocking(False)
    with pytest.raises(BlockingIOError):  # no ERROR before the end of the body
        alice.sock.recv(1)
    alice.send(b"C0\n")
    alice.expect(b"ERROR\n")
    alice.send(encode_message([b"bob"], b"after the big one"))
    bob.expect(delivery(b"alice", b"after the big one"))
    bob.send(encode_message([b"alice"], b"got it"))
    alice.expect(delivery(b"bob", b"got it"))  # nothing else reached alice either


# -- 8. running out of file descriptors -------------------------------------------------------

OPEN_FILE_LIMIT = 64


def limit_open_files() -> None:
    """Set RLIMIT_NOFILE soft and hard to OPEN_FILE_LIMIT (runs in the server's child)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILE_LIMIT, OPEN_FILE_LIMIT))


def test_server_out_of_file_descriptors_survives_and_serves_afterwards(start_server, tcp, capsys):
    """With 64 fds and 100 connections the server stays up and serves new clients afterwards."""
    port = free_port()
    server = start_server([port], preexec_fn=limit_open_files)
    pid = server.process.pid
    first = tcp(port)
    first.login(b"first")
    baseline_fds = open_fd_count(pid) - 1  # without first's connection
    first.close()

    clients: list[TcpClient] = []
    outcomes: list[bytes] = []
    logged_in = 0
    try:
        for number in range(100):
            clients.append(TcpClient(port))
            clients[-1].send(b"ME IS crowd%d\n" % number)
        for client in clients:
            data, closed = client.recv_until(b"OK\n", max_bytes=64)
            outcomes.append(b"closed" if closed else data)
            assert data in (b"OK\n", b""), data
        logged_in = outcomes.count(b"OK\n")
        # The server really ran out of descriptors: some connections were turned away.
        assert OPEN_FILE_LIMIT - baseline_fds - 2 <= logged_in < 100, outcomes
        assert server.process.poll() is None
    finally:
        for client in clients:
            client.close()
    report(
        capsys,
        f"EMFILE: of 100 connections {logged_in} logged in, {100 - logged_in} were closed "
        f"by the server (baseline {baseline_fds} fds)",
    )

    wait_until(lambda: open_fd_count(pid) <= baseline_fds, what="the server to close them all")
    alice, bob = tcp(port), tcp(port)
    login_when_free(alice, b"alice")
    login_when_free(bob, b"bob")
    alice.send(encode_message([b"bob"], b"anyone there?"))
    bob.expect(delivery(b"alice", b"anyone there?"))
    bob.send(encode_message([b"alice"], b"yes"))
    alice.expect(delivery(b"bob", b"yes"))


# -- 9. a UDP recipient whose port has gone ---------------------------------------------------


def test_udp_recipient_gone_does_not_disturb_tcp_delivery(start_server, tcp, udp):
    """Messages to a UDP user whose socket is closed are dropped; TCP users chat on."""
    port = free_port()
    server = start_server([port])
    carol = udp(port)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")
    carol.close()  # its port is unreachable now: the server's datagrams draw ICMP errors
    alice, bob = tcp(port), tcp(port)
    alice.login(b"alice")
    bob.login(b"bob")
    for number in range(10):
        text = b"message %d" % number
        alice.send(encode_message([b"carol"], text))
        alice.send(encode_message([b"carol", b"bob"], text))
        bob.expect(delivery(b"alice", text))
        bob.send(encode_message([b"carol"], text))
        bob.send(encode_message([b"alice"], text))
        alice.expect(delivery(b"bob", text))
    assert server.process.poll() is None


# -- 10. a half-closed client --------------------------------------------------------------


def test_half_closed_client_gets_reply_and_delivery_then_is_closed(start_server, tcp):
    """A client that shuts down its sending side gets OK, its message goes out, then EOF."""
    port = free_port()
    start_server([port])
    b = tcp(port)
    b.login(b"b")
    a = tcp(port)
    a.send(b"ME IS a\nSEND b\n2\nhi")
    a.sock.shutdown(socket.SHUT_WR)
    assert a.recv_until_closed(max_bytes=64) == b"OK\n"
    b.expect(delivery(b"a", b"hi"))


# -- 11. clean shutdown -----------------------------------------------------------------------


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_mid_message_exits_0_silently_and_leaves_spool_empty(
    signal_number, start_server, tcp, tmp_path
):
    """SIGTERM or SIGINT mid-message: exit 0, no output, clients closed, spool dir empty."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    port = free_port()
    server = start_server([port], "--spool-dir", str(spool_dir))
    pid = server.process.pid
    alice, bob = tcp(port), tcp(port)
    alice.login(b"alice")
    bob.login(b"bob")
    body = random.Random(11).randbytes(4 * MIB)
    frame = encode_message([b"bob"], body, chunked=True)
    alice.send(frame[: len(frame) // 2])
    wait_until(
        lambda: any(target.startswith(f"{spool_dir}/") for target in fd_targets(pid)),
        what="the half-sent body to spill into the spool",
    )

    server.process.send_signal(signal_number)
    status = server.process.wait(timeout=TIMEOUT_S)
    assert alice.recv_until_closed(max_bytes=64) == b""
    assert bob.recv_until_closed(max_bytes=64) == b""
    assert (status, server.stdout, server.stderr, os.listdir(spool_dir)) == (0, b"", b"", [])
