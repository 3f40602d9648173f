"""End to end: ``chat_client`` over TLS (``--tls``) and a unix socket (``unix:PATH``).

One ``chat_server`` listens on a TCP port, a TLS port with a throwaway
self-signed certificate for 127.0.0.1 (``tests/tls_support.py``) and a unix
socket in ``tmp_path``; the clients are ``chat_client`` processes and a raw
TCP client, all on loopback, read with deadlines.
"""

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from twisted.internet.endpoints import quoteStringArgument

from chatproto.client.file_header import encode_file_header
from chatproto.wire.encode import encode_message
from tests.client_support import STAMP, ClientProcess
from tests.e2e_support import HOST, Server, free_ports, wait_for_stream
from tests.sockets import TcpClient, tcp_connector, unix_connector
from tests.tls_support import make_certificate, ssl_endpoint

pytestmark = pytest.mark.e2e


@dataclass
class Listeners:
    """The server and where it listens: TCP ``port``, TLS ``tls_port``, ``unix`` socket."""

    server: Server
    port: int
    tls_port: int
    unix: Path
    cert: Path


@pytest.fixture
def listeners(tmp_path: Path, launch: Callable[..., Server]) -> Listeners:
    """A ``chat_server --no-random`` on TCP, TLS and a unix socket, all accepting."""
    cert, key = make_certificate(tmp_path)
    port, tls_port = free_ports(2)
    unix = tmp_path / "chat.sock"
    assert len(str(unix)) < 100  # sun_path holds 108 bytes
    extra = [
        "--no-random",
        "--listen",
        ssl_endpoint(tls_port, cert, key),
        "--listen",
        f"unix:{quoteStringArgument(str(unix))}",
    ]
    server = launch("chat_server", [port], extra, workdir=tmp_path / "server")
    wait_for_stream(tcp_connector(tls_port), server.process, what="the TLS listener")
    wait_for_stream(unix_connector(unix), server.process, what="the unix socket")
    return Listeners(server, port, tls_port, unix, cert)


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Callable[..., ClientProcess]]:
    """Start ``chat_client`` processes with these arguments; kill them at teardown."""
    started: list[ClientProcess] = []

    def start(*args: str) -> ClientProcess:
        client = ClientProcess(list(args), tmp_path)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture
def raw(listeners: Listeners) -> Iterator[Callable[[bytes], TcpClient]]:
    """Raw-protocol TCP clients logged in on the plain port; closed at teardown."""
    opened: list[TcpClient] = []

    def connect(user: bytes) -> TcpClient:
        client = TcpClient(listeners.port)
        opened.append(client)
        client.login(user)
        return client

    yield connect
    for client in opened:
        client.close()


def test_tls_client_trusting_the_certificate_chats_both_ways(listeners, clients, raw) -> None:  # type: ignore[no-untyped-def]
    """With ``--tls --ca CERT``, a user on the TLS port and one on TCP message each other."""
    tcp_user = raw(b"tom")
    tls = clients("--tls", "--ca", str(listeners.cert), HOST, str(listeners.tls_port), "tia")
    assert tls.line() == (
        f"logged in as tia at {HOST}:{listeners.tls_port} over TLS; type /help for commands"
    )
    tls.type("/send tom over tls")
    assert tcp_user.recv_delivery() == (b"tia", b"over tls", False)
    tcp_user.send(encode_message([b"tia"], b"back over tcp"))
    tls.wait_for(STAMP + re.escape(" tom: back over tcp"))


def test_tls_send_file_arrives_whole_and_exits_zero(listeners, clients, raw, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``--tls --send --file`` delivers the whole named file before closing; status 0."""
    data = os.urandom(50_000)
    (tmp_path / "f.bin").write_bytes(data)
    tcp_user = raw(b"uma")
    args = ["--tls", "--ca", str(listeners.cert), HOST, str(listeners.tls_port), "ugo"]
    sender = clients(*args, "--send", "uma", "--file", "f.bin")
    assert tcp_user.recv_delivery() == (b"ugo", encode_file_header("f.bin") + data, True)
    assert sender.wait() == 0
    assert sender.rest("out") == "sent f.bin (50000 bytes) to uma\n"


def test_tls_without_ca_fails_on_a_self_signed_certificate(listeners, clients) -> None:  # type: ignore[no-untyped-def]
    """Without ``--ca``, the self-signed certificate is refused in one line: status 1."""
    client = clients("--tls", HOST, str(listeners.tls_port), "val")
    assert client.wait() == 1
    assert client.rest("err") == (
        f"chat_client: cannot connect to {HOST}:{listeners.tls_port} over TLS: the server's "
        "certificate is not trusted (certificate verify failed); --ca FILE trusts its CA or "
        "self-signed certificate, --insecure skips the check\n"
    )
    assert client.rest("out") == ""


def test_tls_to_a_plain_port_says_it_is_no_tls_port(listeners, clients) -> None:  # type: ignore[no-untyped-def]
    """``--tls`` against the plain TCP port fails the handshake, in one line: status 1."""
    client = clients("--tls", "--ca", str(listeners.cert), HOST, str(listeners.port), "wes")
    assert client.wait() == 1
    assert re.fullmatch(
        rf"chat_client: cannot connect to {HOST}:{listeners.port} over TLS: the TLS handshake"
        rf" failed \(.+\); is {HOST}:{listeners.port} a TLS port\?\n",
        client.rest("err"),
    )


def test_insecure_logs_in_and_says_the_certificate_is_not_checked(listeners, clients) -> None:  # type: ignore[no-untyped-def]
    """``--tls --insecure`` connects to the self-signed port and its banner warns."""
    client = clients("--tls", "--insecure", HOST, str(listeners.tls_port), "xia")
    assert client.line() == (
        f"logged in as xia at {HOST}:{listeners.tls_port} over TLS, certificate NOT checked"
        " (--insecure); type /help for commands"
    )
    client.close_input()
    assert client.wait() == 0


def test_unix_socket_client_chats_both_ways(listeners, clients, raw) -> None:  # type: ignore[no-untyped-def]
    """``unix:PATH USERID`` logs in on the unix socket and messages a TCP user both ways."""
    tcp_user = raw(b"yan")
    local = clients(f"unix:{listeners.unix}", "yul")
    assert local.line() == (
        f"logged in as yul at unix:{listeners.unix} over a unix socket; type /help for commands"
    )
    local.type("/send yan over the socket")
    assert tcp_user.recv_delivery() == (b"yul", b"over the socket", False)
    tcp_user.send(encode_message([b"yul"], b"back"))
    local.wait_for(STAMP + re.escape(" yan: back"))


def test_unix_socket_send_file_arrives_whole(listeners, clients, raw, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``unix:PATH ... --send --file`` delivers the named file, then exits 0."""
    data = os.urandom(20_000)
    (tmp_path / "g.bin").write_bytes(data)
    tcp_user = raw(b"zed")
    sender = clients(f"unix:{listeners.unix}", "zoe", "--send", "zed", "--file", "g.bin")
    assert tcp_user.recv_delivery() == (b"zoe", encode_file_header("g.bin") + data, True)
    assert sender.wait() == 0


def test_unix_socket_nobody_listens_on_is_one_line(clients, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A ``unix:PATH`` with no socket there fails in one line, status 1."""
    client = clients(f"unix:{tmp_path}/none.sock", "amy")
    assert client.wait() == 1
    assert client.rest("err") == (
        f"chat_client: cannot connect to unix:{tmp_path}/none.sock: No such file or directory\n"
    )
