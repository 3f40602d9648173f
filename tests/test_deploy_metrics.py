"""Tests of ``--metrics-port``, of a silent server without ``-v``, and of the systemd unit.

The Prometheus page of ``--metrics-port`` checked against the traffic sent,
nothing printed without ``-v``, and the systemd unit file (with a daemon
started as root, when run as root). Every server binds loopback only; every
wait is bounded (see ``tests/e2e_support.py``).
"""

import configparser
import os
import pwd
import shlex
import tempfile
from pathlib import Path

import pytest

from chatproto.wire.encode import encode_message
from tests.daemons import Daemon
from tests.deploy_support import UNIT_FILE, login_udp
from tests.e2e_support import HOST, Server, free_port, free_ports, wait_for_stream
from tests.metrics_page import samples_named, scrape_metrics
from tests.sockets import TcpClient, UdpClient, tcp_connector

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
    assert samples_named(samples, "chat_users_online") == {
        ("tcp",): 2,
        ("udp",): 1,
        ("websocket",): 0,
    }
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
        ("websocket",): 0,
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
