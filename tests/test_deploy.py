"""End-to-end tests of the deployment features: daemon mode, other listeners, metrics.

Daemonised ``twistd chat`` with its pidfile and logfile (operator log lines,
a refused second start, log rotation), ``--listen`` endpoints (TLS with a
certificate made here, IPv6 loopback, a UNIX socket), the Prometheus page
of ``--metrics-port`` checked against the traffic sent, and the systemd unit
file. Every server binds loopback only; every wait is bounded (see
``tests/e2e_support.py``).
"""

import configparser
import os
import pwd
import shlex
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from twisted.internet.endpoints import quoteStringArgument

from chatproto.wire.encode import encode_message
from tests.daemons import Daemon, daemon_command, read_pid, twistd_log_entries, wait_for_log_text
from tests.e2e_support import (
    CHAT_SERVER,
    HOST,
    REPO_ROOT,
    TIMEOUT_S,
    Deadline,
    Server,
    free_port,
    free_ports,
    server_env,
    wait_for_port,
    wait_for_stream,
)
from tests.metrics_page import samples_named, scrape_metrics
from tests.sockets import TcpClient, UdpClient, tcp_connector, unix_connector
from tests.tls_support import make_certificate, ssl_endpoint

IPV6_LOOPBACK = "::1"
UNIT_FILE = REPO_ROOT / "contrib" / "chatproto.service"

#: twistd's refusal when the pidfile names a live process (twisted/scripts/_twistd_unix.py).
ANOTHER_TWISTD = """\
Another twistd server is running, PID {}\n
This could either be a previously started instance of your application or a
different application entirely. To start a new one, either run it in some other
directory, or use the --pidfile and --logfile parameters to avoid clashes.

"""

#: twistd's LogFile rotates past this many bytes (twisted.python.logfile.LogFile).
ROTATE_LENGTH = 1_000_000


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemonised servers on demand; SIGKILL any still alive at teardown."""
    started: list[Daemon] = []

    def start(port: int, *extra: str, name: str = "chat") -> Daemon:
        daemon = Daemon(tmp_path, port, extra, name)
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def chat_server(launch: Callable[..., Server]) -> Callable[..., Server]:
    """Start ``chat_server`` with exactly these arguments through ``launch``, not waited on."""

    def start(port: int, *args: str) -> Server:
        return launch("chat_server", [port], command=[str(CHAT_SERVER), *args], wait=None)

    return start


@pytest.fixture
def clients() -> Iterator[Callable[[object], object]]:
    """Track clients (stream or datagram) and close them all at teardown."""
    opened: list[TcpClient | UdpClient] = []

    def track(client):  # type: ignore[no-untyped-def]
        opened.append(client)
        return client

    yield track
    for client in opened:
        client.close()


# -- helpers ----------------------------------------------------------------------------------


def tls_connect(port: int, cert_path: Path) -> TcpClient:
    """Connect over TLS to 127.0.0.1:``port``, trusting only the test certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert_path))
    raw = socket.create_connection((HOST, port), timeout=TIMEOUT_S)
    return TcpClient.from_socket(context.wrap_socket(raw, server_hostname=HOST))


def ipv6_loopback_or_skip() -> None:
    """Skip the test unless TCP and UDP can bind ::1 here."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 loopback on this machine")
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        try:
            with socket.socket(socket.AF_INET6, kind) as probe:
                probe.bind((IPV6_LOOPBACK, 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")


def exchange(first: TcpClient | UdpClient, second: TcpClient | UdpClient) -> None:
    """Alice (``first``) and bob (``second``), logged in, message each other both ways."""
    first.send(encode_message([b"bob"], b"over to you"))
    second.expect(b"FROM alice\n11\nover to you")
    second.send(encode_message([b"alice"], b"and back"))
    first.expect(b"FROM bob\n8\nand back")


def login_udp(client: UdpClient, user: bytes) -> None:
    """Log a UDP client in and assert the OK datagram."""
    client.send(b"ME IS " + user)
    client.expect(b"OK\n")


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


# -- 4. TLS -----------------------------------------------------------------------------------


def test_tls_listener_carries_login_and_messages_with_tcp_user(tmp_path, chat_server, clients):
    """A TLS user, verified against the test certificate, and a TCP user message both ways."""
    cert_path, key_path = make_certificate(tmp_path)
    port, tls_port = free_ports(2)
    endpoint = ssl_endpoint(tls_port, cert_path, key_path)
    server = chat_server(port, str(port), "--interface", HOST, "--listen", endpoint)
    server.wait_ready()
    wait_for_stream(tcp_connector(tls_port), server.process, what="the TLS listener")
    bob = clients(tls_connect(tls_port, cert_path))
    bob.login(b"bob")
    alice = clients(TcpClient(port))
    alice.login(b"alice")
    assert bob.sock.version() in ("TLSv1.2", "TLSv1.3")
    exchange(alice, bob)


# -- 5. IPv6 ----------------------------------------------------------------------------------


def test_ipv6_interface_carries_tcp_and_udp_login_and_messages(chat_server, clients):
    """With --interface ::1, a TCP and a UDP user on ::1 log in and message each other."""
    ipv6_loopback_or_skip()
    port = free_port(host=IPV6_LOOPBACK)
    server = chat_server(port, str(port), "--interface", IPV6_LOOPBACK)
    wait_for_port(port, server.process, host=IPV6_LOOPBACK)
    alice = clients(
        TcpClient.from_socket(socket.create_connection((IPV6_LOOPBACK, port), TIMEOUT_S))
    )
    alice.login(b"alice")
    bob = clients(UdpClient(port, host=IPV6_LOOPBACK))
    login_udp(bob, b"bob")
    exchange(alice, bob)


def test_tcp6_listen_endpoint_carries_login_and_messages(chat_server, clients):
    """A user on --listen tcp6:PORT:interface=\\:\\:1 and a TCP user message both ways."""
    ipv6_loopback_or_skip()
    port = free_port()
    port6 = free_port(host=IPV6_LOOPBACK)
    endpoint = f"tcp6:{port6}:interface={quoteStringArgument(IPV6_LOOPBACK)}"
    server = chat_server(port, str(port), "--interface", HOST, "--listen", endpoint)
    server.wait_ready()
    wait_for_stream(tcp_connector(port6, IPV6_LOOPBACK), server.process, what="tcp6 listener")
    alice = clients(TcpClient(port))
    alice.login(b"alice")
    bob = clients(
        TcpClient.from_socket(socket.create_connection((IPV6_LOOPBACK, port6), TIMEOUT_S))
    )
    bob.login(b"bob")
    exchange(alice, bob)


# -- 6. UNIX socket ---------------------------------------------------------------------------


def test_unix_socket_listener_carries_login_and_messages(tmp_path, chat_server, clients):
    """A user on --listen unix:PATH and a TCP user message both ways."""
    path = tmp_path / "chat.sock"
    assert len(str(path)) < 100  # sun_path holds 108 bytes
    port = free_port()
    endpoint = f"unix:{quoteStringArgument(str(path))}"
    server = chat_server(port, str(port), "--interface", HOST, "--listen", endpoint)
    server.wait_ready()
    wait_for_stream(unix_connector(path), server.process, what="the UNIX socket")
    alice = clients(TcpClient(port))
    alice.login(b"alice")
    bob = clients(TcpClient.from_socket(unix_connector(path)(TIMEOUT_S)))
    bob.login(b"bob")
    exchange(alice, bob)


# -- 7. metrics -------------------------------------------------------------------------------


def start_with_metrics(chat_server, *extra: str) -> tuple[int, int, Server]:
    """Start chat_server with --metrics-port; return (chat port, metrics port, server)."""
    port, metrics_port = free_ports(2)
    args = [str(port), "--interface", HOST, "--metrics-port", str(metrics_port), *extra]
    server = chat_server(port, *args)
    server.wait_ready()
    wait_for_stream(tcp_connector(metrics_port), server.process, what="the metrics page")
    return port, metrics_port, server


SHORT_BODIES = [b"msg %d" % i for i in range(5)]
CHUNKED_BODY = bytes(range(256)) * 6  # 1536 bytes: chunks of 999 and 537


def test_metrics_page_counts_match_traffic_sent(chat_server, clients):
    """The /metrics page shows exactly the users, messages, deliveries and errors sent."""
    port, metrics_port, _ = start_with_metrics(chat_server, "--no-random")
    alice, bob = clients(TcpClient(port)), clients(TcpClient(port))
    alice.login(b"alice")
    bob.login(b"bob")
    carol = clients(UdpClient(port))
    login_udp(carol, b"carol")
    impostor = clients(TcpClient(port))
    impostor.send(b"ME IS alice\n")  # duplicate login: error "userid taken"
    impostor.expect(b"ERROR\n")
    delivered: list[bytes] = []

    for body in SHORT_BODIES:
        alice.send(encode_message([b"bob"], body))
        delivery = b"FROM alice\n5\n" + body
        bob.expect(delivery)
        delivered.append(delivery)
    alice.send(encode_message(None, CHUNKED_BODY, chunked=True))
    chunked = b"FROM alice\nC999\n" + CHUNKED_BODY[:999] + b"C537\n" + CHUNKED_BODY[999:] + b"C0\n"
    alice.expect(chunked)
    bob.expect(chunked)
    delivered += [chunked, chunked]  # not to carol: chunked cannot go over UDP
    carol.send(b"SEND bob\n5\nhello")
    bob.expect(b"FROM carol\n5\nhello")
    delivered.append(b"FROM carol\n5\nhello")
    alice.send(b"HELLO\n")  # error "unknown command"
    alice.expect(b"ERROR\n")

    samples = scrape_metrics(metrics_port)
    assert samples_named(samples, "chat_users_online") == {("tcp",): 2, ("udp",): 1}
    assert samples_named(samples, "chat_tcp_connections") == {(): 3}
    assert samples_named(samples, "chat_messages_received_total") == {
        ("send", "short"): 6,
        ("send", "chunked"): 0,  # every command and framing is there from the start
        ("broadcast", "short"): 0,
        ("broadcast", "chunked"): 1,
    }
    assert samples_named(samples, "chat_deliveries_total") == {("short",): 6, ("chunked",): 2}
    assert samples_named(samples, "chat_errors_total") == {
        ("userid taken",): 1,
        ("unknown command",): 1,
    }
    assert samples_named(samples, "chat_delivered_bytes_total") == {(): sum(map(len, delivered))}
    assert samples_named(samples, "chat_delivery_latency_seconds_count") == {(): 8}


def test_metrics_latency_histogram_counts_udp_deliveries(chat_server, clients):
    """A delivery to a UDP user is counted in the latency histogram as in chat_deliveries_total."""
    port, metrics_port, _ = start_with_metrics(chat_server, "--no-random")
    alice = clients(TcpClient(port))
    alice.login(b"alice")
    carol = clients(UdpClient(port))
    login_udp(carol, b"carol")
    alice.send(encode_message([b"carol"], b"hi carol"))
    carol.expect(b"FROM alice\n8\nhi carol")

    samples = scrape_metrics(metrics_port)
    assert samples_named(samples, "chat_deliveries_total") == {("short",): 1, ("chunked",): 0}
    assert samples_named(samples, "chat_delivery_latency_seconds_count") == {(): 1}


# -- 8. silence -------------------------------------------------------------------------------


def test_chat_server_with_metrics_port_without_v_prints_nothing(chat_server, clients):
    """With --metrics-port and no -v, chat_server prints nothing through a scrape and SIGTERM."""
    port, metrics_port, server = start_with_metrics(chat_server)
    alice, bob = clients(TcpClient(port)), clients(TcpClient(port))
    alice.login(b"alice")
    bob.login(b"bob")
    alice.send(encode_message([b"bob"], b"psst"))
    bob.expect(b"FROM alice\n4\npsst")
    alice.send(b"HELLO\n")
    alice.expect(b"ERROR\n")
    bob.send(b"SEND alice\nxx\n")
    assert bob.recv_until_closed() == b"ERROR\n"
    assert samples_named(scrape_metrics(metrics_port), "chat_users_online") == {
        ("tcp",): 1,
        ("udp",): 0,
    }
    assert (server.stop(), server.stdout, server.stderr) == (0, b"", b"")


# -- 9. the systemd unit ------------------------------------------------------------------------


def read_unit() -> configparser.ConfigParser:
    """Parse contrib/chatproto.service, keeping the keys' case."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT_FILE.read_text("utf-8"))
    return unit


def test_unit_file_runs_twistd_nodaemon_chat():
    """The unit's ExecStart runs twistd --nodaemon with its options before the chat command."""
    argv = shlex.split(read_unit()["Service"]["ExecStart"])
    chat_at = argv.index("chat")
    assert os.path.basename(argv[0]) == "twistd"
    assert "--nodaemon" in argv[1:chat_at]


def test_unit_file_exec_start_parses_as_twistd_chat_options():
    """twistd's own option parser accepts the unit's ExecStart arguments, chat options too."""
    from twisted.scripts.twistd import ServerOptions

    argv = shlex.split(read_unit()["Service"]["ExecStart"])
    options = ServerOptions()
    options.parseOptions(argv[1:])
    assert (options["nodaemon"], options.subCommand) == (True, "chat")
    assert options.subOptions["ports"] == [9000, 9001]


def test_unit_file_sets_hardening_keys():
    """The unit sets NoNewPrivileges, ProtectSystem=strict and PrivateTmp."""
    service = read_unit()["Service"]
    hardening = {
        key: service.get(key) for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp")
    }
    assert hardening == {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
@pytest.mark.e2e
def test_daemon_started_as_root_serves_as_the_uid_and_gid_given() -> None:
    """With twistd's --uid/--gid the daemon binds as root, then serves and stops as that user."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")
    # A directory the unprivileged daemon can reach and write (pytest's tmp dirs are 0700).
    with tempfile.TemporaryDirectory(prefix="chatproto-uid-") as name:
        workdir = Path(name)
        workdir.chmod(0o777)  # not sticky: the daemon must remove root's pidfile
        twistd_options = ["--uid", str(nobody.pw_uid), "--gid", str(nobody.pw_gid)]
        daemon = Daemon(workdir, free_port(), twistd_options=twistd_options)
        daemon.start()
        try:
            status = Path(f"/proc/{daemon.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
            client = TcpClient(daemon.port)
            try:
                client.login(b"zed")
                client.send(encode_message([b"zed"], b"as nobody"))
                client.expect(b"FROM zed\n9\nas nobody")
            finally:
                client.close()
            daemon.terminate()
        finally:
            daemon.kill()
        assert not daemon.pidfile.exists()
        assert "Server Shut Down." in daemon.log_text()
