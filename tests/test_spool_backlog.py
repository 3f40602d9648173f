"""Spooled backlogs end to end: a reader that never reads costs bounded memory, disk and fds.

Issue 14: a recipient that logs in with a 4 KiB receive buffer and never
reads is flooded, through a real server on loopback, with chunked messages
just over the spill threshold (300 KiB) and with 5 MiB ones, 400 MB in all,
while another recipient of the same sender checks every message (sha256).
The server must cut the non-reader before ``--max-backlog`` +
``--max-spool-backlog`` + 16 MiB have been queued for it, with its RSS under
64 MB above the start at every sample, under 100 descriptors above it, and
its RSS back within 32 MB of the start afterwards. The same for two such
readers at once, for a TLS non-reader, and for one on another node of a
cluster, fed by bodies relayed through Redis. The flood itself is
``tests/flood_support.py``.
"""

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from chatproto.limits import KIB, MIB, Limits
from tests.e2e_support import (
    HOST,
    LAUNCHERS,
    Server,
    free_port,
    free_ports,
    wait_for_stream,
    wait_until,
)
from tests.flood_support import FloodReport, connect_non_reader, login, run_flood
from tests.procfs import open_fd_count
from tests.sockets import TcpClient, login_when_free, tcp_connector
from tests.tls_support import make_certificate, ssl_endpoint

pytestmark = pytest.mark.e2e  # every test here starts a process

FLOOD_BYTES = 400 * 1000 * 1000
#: Queued for a non-reader before it must have been cut (the issue's bound).
CUT_BOUND_BYTES = Limits().max_backlog_bytes + Limits().max_spool_backlog_bytes + 16 * MIB
RSS_GROWTH_BOUND_KIB = 64 * 1000 * 1000 // KIB
RSS_RETURN_BOUND_KIB = 32 * 1000 * 1000 // KIB
FD_GROWTH_BOUND = 100


def report(capsys: pytest.CaptureFixture[str], what: str, figures: FloodReport) -> None:
    """Print the measured figures so that they show even with ``-q``."""
    with capsys.disabled():
        print(f"\n[spool backlog] {what}: {figures.summary()}")


def check_bounded(figures: FloodReport, server: Server) -> None:
    """The issue's bounds: every non-reader cut in time, memory and fds bounded and given back."""
    assert figures.delivered == figures.messages  # the reader got every message intact
    assert None not in figures.cut_after, f"a non-reader was never cut: {figures.summary()}"
    assert max(figures.cut_after) < CUT_BOUND_BYTES, figures.summary()  # type: ignore[type-var]
    assert figures.rss_peak_kib - figures.rss_start_kib < RSS_GROWTH_BOUND_KIB, figures.summary()
    assert figures.fds_peak - figures.fds_start < FD_GROWTH_BOUND, figures.summary()
    assert figures.rss_end_kib - figures.rss_start_kib < RSS_RETURN_BOUND_KIB, figures.summary()
    pid = server.process.pid
    # Every spool file is closed once the non-readers are gone (the clients closed too).
    wait_until(lambda: open_fd_count(pid) <= figures.fds_start, what="descriptors given back")


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("message_kib", [300, 5 * 1024])
def test_a_non_reader_flooded_with_spooled_messages_is_cut_in_bounded_memory(
    launch, launcher: str, message_kib: int, capsys
) -> None:  # type: ignore[no-untyped-def]
    """400 MB of 300 KiB or 5 MiB messages at a non-reader: cut in time, RSS and fds bounded."""
    port = free_port()
    server = launch(launcher, [port], ["--no-random"])
    slow = login(connect_non_reader(port), b"slow0")
    try:
        figures = run_flood(port, server.process.pid, message_kib * KIB, FLOOD_BYTES, [slow])
    finally:
        slow.close()
    report(capsys, f"{launcher}, one non-reader", figures)
    check_bounded(figures, server)


def test_two_non_readers_at_once_are_both_cut_in_bounded_memory(launch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Two non-readers named by every message: both cut, one spool file per body between them."""
    port = free_port()
    server = launch("chat_server", [port], ["--no-random"])
    slow = [login(connect_non_reader(port), b"slow%d" % i) for i in range(2)]
    try:
        figures = run_flood(port, server.process.pid, 300 * KIB, FLOOD_BYTES, slow)
    finally:
        for sock in slow:
            sock.close()
    report(capsys, "two non-readers", figures)
    check_bounded(figures, server)


def test_spool_limits_are_the_options(launch, capsys) -> None:  # type: ignore[no-untyped-def]
    """--max-spool-messages 4 cuts a non-reader of 300 KiB messages after about 4 of them."""
    port = free_port()
    server = launch("chat_server", [port], ["--no-random", "--max-spool-messages", "4"])
    slow = login(connect_non_reader(port), b"slow0")
    try:
        figures = run_flood(port, server.process.pid, 300 * KIB, 40 * 1000 * 1000, [slow])
    finally:
        slow.close()
    report(capsys, "--max-spool-messages 4", figures)
    cut = figures.cut_after[0]
    # Four queued, plus what the kernel's buffers and one sample's delay let through.
    assert cut is not None and cut < 12 * MIB, figures.summary()
    assert figures.delivered == figures.messages


def connect_tls_non_reader(port: int, cert_path: Path) -> socket.socket:
    """A TLS socket with a 4 KiB receive buffer, trusting only the test certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert_path))
    return context.wrap_socket(connect_non_reader(port), server_hostname=HOST)


def test_a_tls_non_reader_is_cut_in_bounded_memory(launch, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A non-reader over TLS: its transport buffers through TLS, and it is cut the same way."""
    cert_path, key_path = make_certificate(tmp_path)
    port, tls_port = free_ports(2)
    endpoint = ssl_endpoint(tls_port, cert_path, key_path)
    server = launch("chat_server", [port], ["--no-random", "--listen", endpoint])
    wait_for_stream(tcp_connector(tls_port), server.process, what="the TLS listener")
    slow = login(connect_tls_non_reader(tls_port, cert_path), b"slow0")
    try:
        figures = run_flood(port, server.process.pid, 300 * KIB, FLOOD_BYTES, [slow])
    finally:
        slow.close()
    report(capsys, "TLS non-reader", figures)
    check_bounded(figures, server)


def test_a_non_reader_of_relayed_messages_is_cut_in_bounded_memory(launch, redis, capsys) -> None:  # type: ignore[no-untyped-def]
    """Bodies relayed in from another node go to a non-reader there: cut, bounded on that node.

    The sender and the reader are on node A, the non-reader on node B, so
    every body reaches B in pieces through Redis and is assembled in B's
    spool; the figures are B's.
    """
    options = ["--no-random", "--cluster", redis.url]
    node_a = launch("chat_server", [free_port()], options)
    node_b = launch("chat_server", [free_port()], options)
    port_a, port_b = node_a.ports[0], node_b.ports[0]
    for port in (port_a, port_b):  # a node answers logins once it is in the cluster
        probe = TcpClient(port)
        login_when_free(probe, b"probe%d" % port)
        probe.close()
    slow = connect_non_reader(port_b)
    login_when_free(TcpClient.from_socket(slow), b"slow0")
    connect: Callable[[], socket.socket] = lambda: socket.create_connection((HOST, port_a), 10)  # noqa: E731
    try:
        figures = run_flood(
            port_a, node_b.process.pid, 300 * KIB, 100 * 1000 * 1000, [slow], connect=connect
        )
    finally:
        slow.close()
    report(capsys, "non-reader on another node", figures)
    check_bounded(figures, node_b)
