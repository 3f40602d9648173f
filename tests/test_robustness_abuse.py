"""Robustness tests 4-5: garbage on every port (TCP and UDP), connection churn.

Each test starts its own real ``chat_server`` on loopback (``--interface
127.0.0.1 --no-random``, through the ``start_server`` fixture of
``tests/conftest.py``), abuses it through real sockets and checks one way it
must hold up (PROTOCOL.md §4 and §7). Every wait is for exact bytes or a
condition, with a deadline; every loop is bounded (see ``tests/e2e_support.py``).
"""

import random
import re
from collections.abc import Callable, Iterator

import pytest

from chatproto.limits import KIB, MIB
from chatproto.wire.encode import encode_message
from tests.e2e_support import Deadline, free_port, free_ports, wait_until
from tests.procfs import memory_kib, open_fd_count
from tests.robustness_support import delivery, report, send_tolerating_close, start_thread
from tests.sockets import TcpClient, UdpClient, login_when_free

pytestmark = pytest.mark.e2e  # every test here starts a process


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


def check_udp_garbage(
    port: int, names: Iterator[bytes], rng: random.Random, open_client: Callable[[int], UdpClient]
) -> None:
    """Send garbage datagrams to ``port``, each from a fresh socket; each gets ERROR or nothing.

    Each socket stays open until the test ends (``open_client`` is the ``udp``
    fixture): a closed one's port could be given to a later socket, which
    would then be the same UDP user (PROTOCOL §6), already logged in. That
    made this test fail about once in eighty runs.
    """
    garbage = UDP_GARBAGE + [rng.randbytes(size) for size in (1, 50, 1500, 65507)]
    for datagram in garbage:
        client = open_client(port)
        client.send(datagram)
        name = next(names)
        client.send(b"ME IS " + name)  # in order after the garbage: its OK ends the replies
        replies = []
        for _ in range(3):
            try:
                data, source = client.recv()
            except AssertionError as error:
                raise AssertionError(f"{error} after {datagram[:50]!r}, {replies}") from None
            assert source == client.server
            if data == b"OK\n":
                break
            replies.append(data)
        assert replies in ([], [b"ERROR\n"]), (datagram[:50], replies)


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
        check_udp_garbage(port, udp_names, rng, udp)
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
