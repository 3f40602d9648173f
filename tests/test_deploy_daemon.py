"""End-to-end tests of daemon mode: daemonised ``twistd chat`` with its pidfile and logfile.

Operator log lines, a refused second start, log rotation. Every server binds
loopback only; every wait is bounded (see ``tests/e2e_support.py``).
"""

import socket
import subprocess

import pytest

from chatproto.wire.encode import encode_message
from tests.daemons import daemon_command, read_pid, twistd_log_entries, wait_for_log_text
from tests.deploy_support import ANOTHER_TWISTD, ROTATE_LENGTH, login_udp
from tests.e2e_support import (
    HOST,
    TIMEOUT_S,
    Deadline,
    free_port,
    free_ports,
    server_env,
    wait_until,
)
from tests.sockets import TcpClient, UdpClient

# -- 1. daemon: operator log lines ------------------------------------------------------------


def test_daemon_log_has_one_line_per_login_logout_and_close_without_v(daemons, clients):
    """Without -v the daemon's logfile has one line per login, logout and close, no traffic."""
    daemon = daemons(free_port())
    alice, bob = clients(TcpClient(daemon.port)), clients(TcpClient(daemon.port))
    alice.login(b"alice")
    bob.login(b"bob")
    alice.send(encode_message([b"bob"], b"You suck!"))
    bob.expect(b"FROM alice\n9\nYou suck!")
    carol = clients(UdpClient(daemon.port))
    login_udp(carol, b"carol")
    impostor = clients(TcpClient(daemon.port))
    impostor.send(b"ME IS alice\n")
    impostor.expect(b"ERROR\n")
    alice.send(b"HELLO\n")
    alice.expect(b"ERROR\n")
    bob.send(b"SEND alice\nxx\n")  # a bad length line: fatal, the server closes bob
    assert bob.recv_until_closed() == b"ERROR\n"
    wait_for_log_text(daemon.logfile, "bob (127.0.0.1) logged out")
    alice.close()
    wait_for_log_text(daemon.logfile, "alice (127.0.0.1) logged out")
    daemon.terminate()  # carol is logged out as the server stops

    entries = twistd_log_entries(daemon.log_text())
    ours = [text for namespace, text in entries if namespace.startswith("chatproto")]
    assert ours == [
        "chat service started (random messages on, verbose off)",
        "alice logged in from 127.0.0.1 over TCP",
        "bob logged in from 127.0.0.1 over TCP",
        "carol logged in from 127.0.0.1 over UDP",
        "closing bob (127.0.0.1): bad length line",
        "bob (127.0.0.1) logged out",
        "alice (127.0.0.1) logged out",
        "carol (127.0.0.1) logged out",
    ]
    assert "Traceback" not in daemon.log_text()


# -- 2. daemon: a second start with a live pidfile ----------------------------------------------


def test_second_daemon_with_live_pidfile_fails_and_first_keeps_serving(tmp_path, daemons):
    """A second twistd on the same pidfile exits 1 with twistd's message; the first serves on."""
    first_port, second_port = free_ports(2)
    first = daemons(first_port)
    second = subprocess.run(
        daemon_command(tmp_path / "second.log", first.pidfile, second_port, []),
        cwd=tmp_path,
        env=server_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    assert (second.returncode, second.stdout) == (1, b"")
    assert second.stderr.decode("ascii") == ANOTHER_TWISTD.format(first.pid)
    assert read_pid(first.pidfile) == first.pid
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, second_port), timeout=TIMEOUT_S).close()
    alice, bob = TcpClient(first_port), TcpClient(first_port)
    try:
        alice.login(b"alice")
        bob.login(b"bob")
        alice.send(encode_message([b"bob"], b"still here"))
        bob.expect(b"FROM alice\n10\nstill here")
    finally:
        alice.close()
        bob.close()


# -- 3. daemon: log rotation ------------------------------------------------------------------

#: A message whose -v lines are long: every body byte is shown as ``\x00``.
LOUD_BODY = b"\x00" * 1998
LOUD_FRAME = encode_message([b"bob"], LOUD_BODY, chunked=True)
LOUD_DELIVERY = b"FROM alice\nC999\n" + b"\x00" * 999 + b"C999\n" + b"\x00" * 999 + b"C0\n"


def test_verbose_daemon_log_rotates_and_server_keeps_serving(daemons, clients):
    """With -v, traffic past twistd's rotate length moves the log to L.1; serving goes on."""
    daemon = daemons(free_port(), "-v", "--no-random")
    rotated = daemon.logfile.with_name(daemon.logfile.name + ".1")
    alice, bob = clients(TcpClient(daemon.port)), clients(TcpClient(daemon.port))
    alice.login(b"alice")
    bob.login(b"bob")
    batch, max_batches, deadline = 10, 100, Deadline(30)
    sent = 0
    for _ in range(max_batches):
        if rotated.exists() or deadline.expired():
            break
        alice.send(LOUD_FRAME * batch)
        bob.expect(LOUD_DELIVERY * batch)
        sent += batch
    assert rotated.exists(), f"no {rotated.name} after {sent} messages"
    assert rotated.stat().st_size >= ROTATE_LENGTH

    carol = clients(TcpClient(daemon.port))
    carol.login(b"carol")
    carol.send(encode_message([b"bob"], b"after rotation"))
    bob.expect(b"FROM carol\n14\nafter rotation")
    wait_for_log_text(daemon.logfile, "RCVD from 127.0.0.1: ME IS carol\\n")
    assert "ME IS carol" not in rotated.read_text("ascii")


# -- 4. daemon: a port in use ------------------------------------------------------------------


def test_daemon_on_a_port_in_use_exits_1_with_twistds_message_and_one_log_line(tmp_path, launch):
    """A daemon that cannot listen: the launcher exits 1; the log has one line, no traceback."""
    port = free_port()
    logfile, pidfile = tmp_path / "chat.log", tmp_path / "chat.pid"
    text = f"cannot listen on TCP {HOST}:{port}: Address already in use"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, port))
        holder.listen()
        command = daemon_command(logfile, pidfile, port, [])
        launcher = launch("twistd", [port], command=command, wait=None)
        launcher.process.wait(timeout=TIMEOUT_S)
        assert (launcher.stop(), launcher.stdout) == (1, b"")
    assert launcher.stderr.decode() == (
        f"An error has occurred: b'chatproto.serving.ListenError: {text}'\n"
        "Please look at log file for more information.\n"
    )
    wait_for_log_text(logfile, text)
    wait_until(lambda: not pidfile.exists(), what="twistd to remove its pidfile")
    log = logfile.read_text("ascii")
    assert ("chatproto.serving.ServerService", text) in twistd_log_entries(log)
    assert log.count("cannot listen") == 1 and "Traceback" not in log
