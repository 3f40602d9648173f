"""End-to-end tests: real server processes on loopback, driven by blocking sockets.

The main scenarios run under both launchers, ``chat_server`` and
``twistd -n chat``. Every server binds 127.0.0.1 only; every wait is bounded
(see ``tests/e2e_support.py``).
"""

import hashlib
import os
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatproto.server.service import CANNED_LINES
from chatproto.wire.encode import encode_message
from tests.daemons import Daemon
from tests.e2e_support import (
    CHAT_SERVER,
    HOST,
    LAUNCHERS,
    TIMEOUT_S,
    Server,
    free_port,
    free_ports,
    server_env,
)
from tests.sockets import login_when_free

pytestmark = pytest.mark.e2e  # every test here starts a process

GOLDEN = Path(__file__).parent / "golden"

StartServer = Callable[..., Server]


@pytest.fixture
def start_server(launch) -> StartServer:  # type: ignore[no-untyped-def]
    """Start servers on demand: ``start(launcher, ports, *extra)``, ready to use."""
    return lambda launcher, ports, *extra: launch(launcher, ports, extra)


# -- 1. login, duplicate, SEND, BROADCAST across two ports ---------------------------------


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_login_on_two_ports_gets_ok(launcher, start_server, tcp):
    """Users logging in over TCP on two different ports each get exactly OK."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    alice, bob = tcp(port_a), tcp(port_b)
    alice.send(b"ME IS alice\n")
    bob.send(b"ME IS bob\n")
    alice.expect(b"OK\n")
    bob.expect(b"OK\n")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_duplicate_userid_on_other_port_gets_error(launcher, start_server, tcp):
    """A userid already online on port A is refused with ERROR on port B."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    tcp(port_a).login(b"alice")
    impostor = tcp(port_b)
    impostor.send(b"ME IS alice\n")
    impostor.expect(b"ERROR\n")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_send_between_ports_delivers_both_ways(launcher, start_server, tcp):
    """SEND reaches a user on another port, with FROM and the body, in both directions."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    alice, bob = tcp(port_a), tcp(port_b)
    alice.login(b"alice")
    bob.login(b"bob")
    alice.send(encode_message([b"bob"], b"You suck!"))
    bob.expect(b"FROM alice\n9\nYou suck!")
    bob.send(encode_message([b"alice"], b"No, you do."))
    alice.expect(b"FROM bob\n11\nNo, you do.")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_broadcast_reaches_everyone_including_sender(launcher, start_server, tcp):
    """BROADCAST is delivered to every logged-in user on every port, the sender too."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    alice, bob, dave = tcp(port_a), tcp(port_b), tcp(port_b)
    alice.login(b"alice")
    bob.login(b"bob")
    dave.login(b"dave")
    bob.send(encode_message(None, b"Leave me alone!"))
    for client in (alice, bob, dave):
        client.expect(b"FROM bob\n15\nLeave me alone!")


# -- 2. TCP <-> UDP ------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_udp_login_gets_ok_datagram_from_server_port(launcher, start_server, udp):
    """A datagram ME IS carol (no newline) is answered by one datagram OK from that port."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    carol = udp(port_b)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_tcp_send_reaches_udp_user_as_one_datagram(launcher, start_server, tcp, udp):
    """A TCP user's SEND to a UDP user arrives as one datagram FROM alice, length, body."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    carol = udp(port_b)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")
    alice = tcp(port_a)
    alice.login(b"alice")
    alice.send(encode_message([b"carol"], b"Hi carol"))
    carol.expect(b"FROM alice\n8\nHi carol")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_udp_send_reaches_tcp_user(launcher, start_server, tcp, udp):
    """A UDP user's SEND datagram is delivered to a TCP user as FROM carol and the body."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    alice = tcp(port_a)
    alice.login(b"alice")
    carol = udp(port_b)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")
    carol.send(b"SEND alice\n12\nWho is this?")
    alice.expect(b"FROM carol\n12\nWho is this?")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_udp_user_logged_in_on_one_port_sends_through_another(launcher, start_server, tcp, udp):
    """PROTOCOL §6: one socket is one UDP user, whichever server port it writes to."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b])
    alice = tcp(port_a)
    alice.login(b"alice")
    carol = udp(port_a)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")
    carol.server = ("127.0.0.1", port_b)  # the same socket, to the other port
    carol.send(b"SEND alice\n5\nvia B")
    alice.expect(b"FROM carol\n5\nvia B")
    carol.send(b"ME IS carol")
    carol.expect(b"ERROR\n")  # already logged in: the answer comes from port B


# -- 3. a big binary chunked message ---------------------------------------------------------


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_5mb_binary_chunked_message_arrives_intact(launcher, start_server, tcp):
    """A 5 MiB random binary message in 999-byte chunks arrives whole, chunked, unchanged."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b], "--no-random")
    alice, bob = tcp(port_a), tcp(port_b)
    alice.login(b"alice")
    bob.login(b"bob")
    body = os.urandom(5 * 1024 * 1024)
    assert len(body) % 999 not in (0, len(body))  # a last, smaller chunk
    frame = encode_message([b"bob"], body, chunked=True)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            alice.send(frame)
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender_name, received, chunked = bob.recv_delivery()
    sender.join(TIMEOUT_S)
    assert not sender.is_alive() and not errors
    assert (sender_name, chunked, len(received)) == (b"alice", True, len(body))
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(body).hexdigest()


# -- 4. a sender killed mid-message ----------------------------------------------------------


@pytest.mark.parametrize("kill", ["close", "reset"])
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_sender_killed_mid_message_delivers_nothing(launcher, kill, start_server, tcp):
    """A message cut off by the sender's close or reset never reaches its recipient."""
    port_a, port_b = free_ports(2)
    start_server(launcher, [port_a, port_b], "--no-random")
    alice, bob = tcp(port_a), tcp(port_b)
    alice.login(b"alice")
    bob.login(b"bob")
    alice.send(b"SEND bob\nC999\n" + b"x" * 999 + b"C999\n" + b"y" * 500)
    if kill == "close":
        alice.close()
    else:
        alice.reset()
    alice_again = tcp(port_a)
    login_when_free(alice_again, b"alice")
    alice_again.send(encode_message([b"bob"], b"marker"))
    bob.expect(b"FROM alice\n6\nmarker")


# -- 5. verbose output against a golden transcript ------------------------------------------

TURF = b"step off my turf!\n" * 6


def run_golden_session(port_a: int, port_b: int, tcp, udp) -> None:
    """Drive the scripted session of ``golden/verbose_session.txt``, one step at a time."""
    alice = tcp(port_a)
    alice.login(b"alice")
    bob = tcp(port_b)
    bob.login(b"bob")
    carol = udp(port_a)
    carol.send(b"ME IS carol\n")
    carol.expect(b"OK\n")
    impostor = tcp(port_b)
    impostor.send(b"ME IS alice\n")
    impostor.expect(b"ERROR\n")
    impostor.close()

    alice.send(b"SEND bob\n9\nYou suck!")
    bob.expect(b"FROM alice\n9\nYou suck!")
    chunks = b"C108\n" + TURF + b"C8\ngot it?!C0\n"
    alice.send(b"SEND bob\n" + chunks)
    bob.expect(b"FROM alice\n" + chunks)
    carol.send(b"SEND bob\n12\nWho is this?")
    bob.expect(b"FROM carol\n12\nWho is this?")
    # Third delivery to bob: a random message from one of his last three senders.
    sender, text, chunked = bob.recv_delivery()
    assert sender in (b"alice", b"carol") and text in CANNED_LINES and not chunked

    bob.send(b"BROADCAST\n15\nLeave me alone!")
    alice.expect(b"FROM bob\n15\nLeave me alone!")
    bob.expect(b"FROM bob\n15\nLeave me alone!")
    carol.expect(b"FROM bob\n15\nLeave me alone!")
    alice.send(b"HELLO\n")
    alice.expect(b"ERROR\n")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_verbose_output_matches_golden(launcher, start_server, tcp, udp):
    """With -v and --random-seed 1 a scripted session prints exactly the golden transcript."""
    port_a, port_b = free_ports(2)
    server = start_server(launcher, [port_a, port_b], "-v", "--random-seed", "1")
    run_golden_session(port_a, port_b, tcp, udp)
    status = server.stop()  # the whole output is there only once the server is gone
    golden = (GOLDEN / "verbose_session.txt").read_text("ascii")
    if launcher == "chat_server":
        assert (status, server.stdout.decode("ascii"), server.stderr) == (0, golden, b"")
    else:
        # twistd re-raises SIGTERM on exit (its status is -SIGTERM by design).
        assert server.verbose_lines() == golden.splitlines()
        assert (b"Traceback" in server.stdout, server.stderr) == (False, b"")


def test_twistd_log_keeps_a_login_and_its_answer_together(start_server, tcp):
    """Under twistd -v, the operator's "logged in" line follows SENT OK (PROTOCOL §8)."""
    (port,) = free_ports(1)
    server = start_server("twistd", [port], "-v")
    tcp(port).login(b"alice")
    server.stop()
    lines = [line for line in server.stdout.decode("ascii").splitlines() if line.strip()]
    received = next(
        i for i, line in enumerate(lines) if line.endswith("RCVD from 127.0.0.1: ME IS alice\\n")
    )
    assert lines[received + 1].endswith("SENT to 127.0.0.1: OK\\n")
    assert "alice logged in from 127.0.0.1" in lines[received + 2]


# -- 6. silence without -v -------------------------------------------------------------------


def test_chat_server_without_v_prints_nothing(start_server, tcp):
    """Without -v chat_server writes nothing to stdout or stderr and exits 0 on SIGTERM."""
    port = free_port()
    server = start_server("chat_server", [port])
    alice, bob = tcp(port), tcp(port)
    alice.login(b"alice")
    bob.login(b"bob")
    impostor = tcp(port)
    impostor.send(b"ME IS alice\n")
    impostor.expect(b"ERROR\n")
    alice.send(encode_message([b"bob"], b"psst"))
    bob.expect(b"FROM alice\n4\npsst")
    alice.send(b"HELLO\n")
    alice.expect(b"ERROR\n")
    assert (server.stop(), server.stdout, server.stderr) == (0, b"", b"")


# -- daemon mode (twistd) --------------------------------------------------------------------


def read_pid(pidfile: Path) -> int | None:
    """Return the pid in ``pidfile``, or None while it is missing or incomplete."""
    try:
        text = pidfile.read_text()
    except FileNotFoundError:
        return None
    return int(text) if re.fullmatch(r"\d+\s*", text) else None


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_twistd_daemon_serves_and_cleans_up(verbose, tmp_path, tcp):
    """Daemonised twistd serves chat, logs to its logfile and removes its pidfile on SIGTERM."""
    daemon = Daemon(tmp_path, free_port(), ["-v"] if verbose else [])
    daemon.start()
    try:
        alice, bob = tcp(daemon.port), tcp(daemon.port)
        alice.login(b"alice")
        bob.login(b"bob")
        alice.send(encode_message([b"bob"], b"You suck!"))
        bob.expect(b"FROM alice\n9\nYou suck!")
        daemon.terminate()
    finally:
        daemon.kill()
    assert not daemon.pidfile.exists()
    log = daemon.log_text()
    assert re.search(r"\] twistd \S+ \(.*\) starting up\.$", log, re.MULTILINE)
    has_rcvd = "[chatproto.verbose#info] RCVD from 127.0.0.1: ME IS alice\\n\n" in log
    assert has_rcvd == verbose


# -- chat_server command line ----------------------------------------------------------------


def run_chat_server(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run chat_server with ``args`` to completion (bounded) and capture its output."""
    return subprocess.run(
        [str(CHAT_SERVER), *args],
        cwd=tmp_path,
        env=server_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT_S,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, status: int) -> None:
    """Assert exit ``status``, nothing on stdout, one line on stderr, no traceback."""
    assert result.returncode == status
    assert result.stdout == b""
    assert result.stderr.endswith(b"\n") and result.stderr.count(b"\n") == 1, result.stderr
    assert b"Traceback" not in result.stderr


def test_chat_server_without_port_exits_2_with_one_line(tmp_path):
    """chat_server with no port exits 2 and prints one line on stderr only."""
    assert_one_line_error(run_chat_server(tmp_path), 2)


@pytest.mark.parametrize("port", ["70000", "abc"])
def test_chat_server_bad_port_exits_2_with_one_line(tmp_path, port):
    """chat_server with an invalid port number exits 2 and prints one line on stderr only."""
    assert_one_line_error(run_chat_server(tmp_path, port, "--interface", HOST), 2)


@contextmanager
def holding_tcp_port(port: int) -> Iterator[socket.socket]:
    """Hold a listening TCP socket on 127.0.0.1:``port`` for the ``with`` block."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, port))
        sock.listen()
        yield sock


def test_chat_server_port_in_use_exits_1_with_one_line(tmp_path):
    """chat_server on a TCP port already bound exits 1 with one line and no traceback."""
    port = free_port()
    with holding_tcp_port(port):
        result = run_chat_server(tmp_path, str(port), "--interface", HOST)
    assert_one_line_error(result, 1)


@pytest.mark.parametrize("order", ["options_first", "ports_first"])
def test_chat_server_accepts_options_before_or_after_ports(order, launch, tcp):
    """chat_server -v P and chat_server P -v both start and print RCVD lines."""
    port = free_port()
    options = ["-v", "--interface", HOST]
    args = [*options, str(port)] if order == "options_first" else [str(port), *options]
    server = launch("chat_server", [port], command=[str(CHAT_SERVER), *args])
    tcp(port).login(b"alice")
    server.stop()
    assert b"RCVD from 127.0.0.1: ME IS alice\\n\n" in server.stdout


def test_chat_server_help_exits_0_and_mentions_no_random(tmp_path):
    """chat_server --help exits 0 and documents --no-random."""
    result = run_chat_server(tmp_path, "--help")
    assert result.returncode == 0
    assert b"--no-random" in result.stdout
