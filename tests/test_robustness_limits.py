"""Robustness tests 6-11: resource limits, vanished and half-closed peers, shutdown.

The connection, spool and file descriptor limits, a UDP recipient whose port
has gone, a half-closed client, and a clean exit on a signal. Each test starts
its own real ``chat_server`` on loopback (``--interface 127.0.0.1
--no-random``, through the ``start_server`` fixture of ``tests/conftest.py``)
and checks one way it must hold up (PROTOCOL.md §4 and §7). Every wait is for
exact bytes or a condition, with a deadline; every loop is bounded (see
``tests/e2e_support.py``).
"""

import os
import random
import resource
import signal
import socket

import pytest

from chatproto.limits import MIB
from chatproto.wire.encode import encode_message
from tests.e2e_support import TIMEOUT_S, free_port, wait_until
from tests.procfs import fd_targets, open_fd_count, server_receive_queue
from tests.robustness_support import delivery, report
from tests.sockets import TcpClient, login_when_free

pytestmark = pytest.mark.e2e  # every test here starts a process


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
