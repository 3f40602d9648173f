"""End-to-end tests of the other listeners: ``--listen`` endpoints and ``--interface``.

TLS with a certificate made here, IPv6 loopback, a UNIX socket. Every server
binds loopback only; every wait is bounded (see ``tests/e2e_support.py``).
"""

import socket
import stat
from pathlib import Path

from twisted.internet.endpoints import quoteStringArgument

from tests.deploy_support import (
    IPV6_LOOPBACK,
    exchange,
    ipv6_loopback_or_skip,
    login_udp,
    tls_connect,
)
from tests.e2e_support import (
    HOST,
    TIMEOUT_S,
    free_port,
    free_ports,
    wait_for_port,
    wait_for_stream,
)
from tests.procfs import socket_inodes
from tests.sockets import TcpClient, UdpClient, tcp_connector, unix_connector
from tests.tls_support import make_certificate, ssl_endpoint

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


# -- 7. --interface applies to --listen; a unix socket's mode ---------------------------------


def listening_addresses(pid: int, port: int) -> set[str]:
    """Return the local addresses (/proc/net/tcp* hex) of pid's TCP listeners on port."""
    mine = socket_inodes(pid)
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port and fields[3] == "0A" and int(fields[9]) in mine:
                found.add(address)
    return found


def test_interface_applies_to_a_listen_endpoint_without_one(chat_server):
    """-i 127.0.0.1 --listen tcp:PORT binds 127.0.0.1 only, not every interface."""
    port = free_port()
    server = chat_server(port, "-i", HOST, "--listen", f"tcp:{port}")
    wait_for_stream(tcp_connector(port), server.process, what="the --listen endpoint")
    loopback = socket.inet_aton(HOST)[::-1].hex().upper()  # /proc shows it little-endian
    assert listening_addresses(server.process.pid, port) == {loopback}


def test_unix_socket_is_made_for_owner_and_group_only(tmp_path, chat_server):
    """A --listen unix: socket without mode= is created 0660, not Twisted's 0666."""
    path = tmp_path / "chat.sock"
    server = chat_server(free_port(), "--listen", f"unix:{quoteStringArgument(str(path))}")
    wait_for_stream(unix_connector(path), server.process, what="the UNIX socket")
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
