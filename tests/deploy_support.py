"""Constants and helpers shared by the deployment tests (``test_deploy_*``).

Their fixtures, ``daemons``, ``chat_server`` and ``clients``, are in ``tests/conftest.py``.
"""

import socket
import ssl
from pathlib import Path

import pytest

from chatproto.wire.encode import encode_message
from tests.e2e_support import HOST, REPO_ROOT, TIMEOUT_S
from tests.sockets import TcpClient, UdpClient

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
