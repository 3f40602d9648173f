"""``--web`` end to end: real server processes on loopback, a Python WebSocket client (wsproto).

WebSocket, TCP and UDP users in one namespace; big chunked bodies both
ways, sha256-checked; the Origin check; an oversized frame; a browser
killed mid-message; TLS (``wss:``); ``twistd chat --web``. Every read is
bounded (``tests/e2e_support.py``).
"""

import hashlib
import os
import ssl
import urllib.request
from collections.abc import Callable

import pytest

from chatproto.server.service import CANNED_LINES
from tests.e2e_support import HOST, Server, free_port, free_ports
from tests.metrics_page import samples_named, scrape_metrics
from tests.sockets import TcpClient, UdpClient, login_when_free
from tests.tls_support import make_certificate, ssl_endpoint
from tests.web_support import (
    RefusedError,
    WebSocketClient,
    binary_frame_header,
    launch_web,
    wait_for_port_tcp,
)

pytestmark = pytest.mark.e2e  # every test here starts a server

Launch = Callable[..., Server]
FIVE_MIB = 5 * 1024 * 1024


def own_origin(web_port: int) -> str:
    return f"http://{HOST}:{web_port}"


def browser(web_port: int, user: bytes | None = None) -> WebSocketClient:
    """A WebSocket client with the page's own origin, logged in as ``user`` if given."""
    client = WebSocketClient(web_port, origin=own_origin(web_port))
    if user is not None:
        client.login(user)
    return client


def chunked_message(command: bytes, body: bytes, chunk: int = 999) -> bytes:
    parts = [command]
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        parts += [b"C%d\n" % len(piece), piece]
    parts.append(b"C0\n")
    return b"".join(parts)


def read_chunked(client: TcpClient | WebSocketClient) -> bytes:
    """Read one chunked body (after its FROM line) from either kind of client."""
    body = bytearray()
    while (header := client.recv_line(seconds=30)) != b"C0\n":
        assert header.startswith(b"C"), header
        body += client.recv_exactly(int(header[1:]), seconds=30)
    return bytes(body)


def test_login_and_duplicates_across_transports(launch: Launch) -> None:
    """A browser logs in; its userid is then taken for TCP and other browsers, and vice versa."""
    _, chat_port, web_port = launch_web(launch)
    alice = browser(web_port, b"alice")
    other = browser(web_port)
    other.send(b"ME IS alice\n")
    other.expect(b"ERROR\n")
    tcp = TcpClient(chat_port)
    tcp.send(b"ME IS alice\n")
    assert tcp.recv_line() == b"ERROR\n"
    tcp.login(b"bob")
    other.send(b"ME IS bob\n")
    other.expect(b"ERROR\n")
    alice.close()


def test_send_and_broadcast_between_websocket_tcp_and_udp(launch: Launch) -> None:
    """A browser, a TCP user and a UDP user reach each other with SEND and BROADCAST."""
    _, chat_port, web_port = launch_web(launch)
    alice = browser(web_port, b"alice")
    bob = TcpClient(chat_port)
    bob.login(b"bob")
    carol = UdpClient(chat_port)
    carol.send(b"ME IS carol")
    carol.expect(b"OK\n")

    alice.send(b"SEND carol\n8\nhi carol")
    carol.expect(b"FROM alice\n8\nhi carol")
    carol.send(b"SEND alice\n8\nhi alice")
    alice.expect(b"FROM carol\n8\nhi alice")
    bob.send(b"BROADCAST\n9\nhello all")
    for client in (alice, bob):
        client.expect(b"FROM bob\n9\nhello all")
    carol.expect(b"FROM bob\n9\nhello all")
    alice.send(b"BROADCAST\n3\nyo!")
    for client in (alice, bob):
        client.expect(b"FROM alice\n3\nyo!")
    carol.expect(b"FROM alice\n3\nyo!")


def test_a_five_mib_chunked_body_both_ways(launch: Launch) -> None:
    """5 MiB chunked from a browser to a TCP user and back arrive intact (sha256)."""
    _, chat_port, web_port = launch_web(launch)
    alice = browser(web_port, b"alice")
    bob = TcpClient(chat_port)
    bob.login(b"bob")
    data = os.urandom(FIVE_MIB)
    wire = chunked_message(b"SEND bob\n", data)
    for start in range(0, len(wire), 64 * 1024):  # as the page sends: ~64 KiB messages
        alice.send(wire[start : start + 64 * 1024])
    assert bob.recv_line(seconds=30) == b"FROM alice\n"
    assert hashlib.sha256(read_chunked(bob)).digest() == hashlib.sha256(data).digest()

    back = os.urandom(FIVE_MIB)
    bob.send(chunked_message(b"SEND alice\n", back))
    assert alice.recv_line(seconds=30) == b"FROM bob\n"
    assert hashlib.sha256(read_chunked(alice)).digest() == hashlib.sha256(back).digest()


def test_a_foreign_origin_is_refused_with_403(launch: Launch) -> None:
    """A page of another site cannot open the chat; --web-origin lets a named one in."""
    _, _, web_port = launch_web(launch, ["--web-origin", "https://chat.example.org"])
    with pytest.raises(RefusedError) as refused:
        WebSocketClient(web_port, origin="http://evil.example")
    assert refused.value.status == 403
    WebSocketClient(web_port, origin="https://chat.example.org").login(b"alice")
    browser(web_port, b"bob")


def test_an_oversized_frame_closes_that_connection_and_nothing_else(launch: Launch) -> None:
    """A frame over --max-web-message closes its connection (1009) before it ends; others go on."""
    _, chat_port, web_port = launch_web(launch, ["--max-web-message", "65536"])
    alice = browser(web_port, b"alice")
    mallory = browser(web_port, b"mallory")
    bob = TcpClient(chat_port)
    bob.login(b"bob")
    # A frame announcing 1 GiB, of which 256 KiB are sent: more is never needed to refuse
    # it. Blank lines, which the chat decoder skips: only the WebSocket limit can stop them.
    mallory.send_raw(binary_frame_header(1 << 30) + b"\n" * (256 * 1024))
    assert mallory.wait_closed().code == 1009
    bob.send(b"BROADCAST\n5\nstill")
    alice.expect(b"FROM bob\n5\nstill")
    bob.expect(b"FROM bob\n5\nstill")
    login_when_free(bob_second := TcpClient(chat_port), b"mallory")
    bob_second.close()


def test_a_browser_killed_mid_message_leaves_no_trace(launch: Launch) -> None:
    """A message cut short by a reset reaches no one and the userid is freed."""
    _, chat_port, web_port = launch_web(launch)
    alice = browser(web_port, b"alice")
    bob = TcpClient(chat_port)
    bob.login(b"bob")
    alice.send(b"BROADCAST\nC999\n" + b"p" * 500)
    alice.kill()
    again = TcpClient(chat_port)
    login_when_free(again, b"alice")  # freed: the connection's loss was handled
    again.send(b"SEND bob\n6\nmarker")
    bob.expect(b"FROM alice\n6\nmarker")  # the first thing bob gets: no part of the cut one


def test_a_text_message_closes_with_1003(launch: Launch) -> None:
    """PROTOCOL §9: a text message closes the connection with 1003."""
    _, _, web_port = launch_web(launch)
    alice = browser(web_port, b"alice")
    alice.send_text("BROADCAST\n2\nhi")
    assert alice.wait_closed().code == 1003


def test_the_page_and_its_settings_are_served(launch: Launch) -> None:
    """/ is the page (with its security headers), /config.json the limits it keeps to."""
    _, _, web_port = launch_web(launch, ["--max-message", "1048576"])
    with urllib.request.urlopen(f"http://{HOST}:{web_port}/", timeout=10) as answer:
        page = answer.read()
        assert b'<script type="module" src="chat.mjs">' in page
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    with urllib.request.urlopen(f"http://{HOST}:{web_port}/protocol.mjs", timeout=10) as answer:
        assert answer.headers["content-type"].startswith("text/javascript")
    with urllib.request.urlopen(f"http://{HOST}:{web_port}/config.json", timeout=10) as answer:
        assert b'"maxMessageBytes": 1048576' in answer.read()


def test_verbose_lines_show_the_browser_by_its_address(launch: Launch) -> None:
    """-v shows a browser's frames like a TCP client's, by its IP address."""
    server, _, web_port = launch_web(launch, ["-v"])
    alice = browser(web_port, b"alice")
    alice.send(b"BROADCAST\n2\nhi")
    alice.expect(b"FROM alice\n2\nhi")
    server.stop()
    lines = server.verbose_lines()
    assert "RCVD from 127.0.0.1: ME IS alice\\n" in lines
    assert "SENT to alice (127.0.0.1):" in lines


def test_over_tls_the_websocket_is_wss(launch: Launch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With an ssl: endpoint the WebSocket runs over TLS (what the page opens as wss:)."""
    cert, key = make_certificate(tmp_path)
    chat_port, web_port = free_ports(2)
    server = launch("chat_server", [chat_port], ["--web", ssl_endpoint(web_port, cert, key)])
    wait_for_port_tcp(web_port, server)
    context = ssl.create_default_context(cafile=str(cert))
    alice = WebSocketClient(web_port, origin=f"https://{HOST}:{web_port}", tls=context)
    alice.login(b"alice")
    bob = TcpClient(chat_port)
    bob.login(b"bob")
    bob.send(b"SEND alice\n3\nsec")
    alice.expect(b"FROM bob\n3\nsec")


def test_twistd_chat_web_logs_websocket_logins(launch: Launch) -> None:
    """Under twistd the log names the transport: 'alice logged in from ... over WebSocket'."""
    server, _, web_port = launch_web(launch, launcher="twistd")
    alice = browser(web_port, b"alice")
    alice.send(b"BROADCAST\n1\nx")
    alice.expect(b"FROM alice\n1\nx")
    server.stop()
    assert b"alice logged in from 127.0.0.1 over WebSocket" in server.stdout


def test_web_without_a_port_number_is_an_endpoint(launch: Launch) -> None:
    """--web tcp:PORT:interface=... is taken as a Twisted endpoint string."""
    chat_port, web_port = free_port(), free_port()
    server = launch("chat_server", [chat_port], ["--web", f"tcp:{web_port}:interface={HOST}"])
    wait_for_port_tcp(web_port, server)
    browser(web_port, b"alice")


def test_with_cluster_a_browser_reaches_users_on_other_nodes(launch: Launch, redis) -> None:  # type: ignore[no-untyped-def]
    """--cluster: a browser on one node and a TCP user on another message each other."""
    _, _, web_port = launch_web(launch, ["--cluster", redis.url])
    other = launch("chat_server", [free_port()], ["--no-random", "--cluster", redis.url])
    alice = browser(web_port)
    alice.send(b"ME IS alice\n")
    alice.expect(b"OK\n", seconds=20)  # the claim goes through Redis
    bob = TcpClient(other.ports[0])
    login_when_free(bob, b"bob")
    alice.send(b"SEND bob\n5\nhello")
    bob.expect(b"FROM alice\n5\nhello")
    bob.send(b"BROADCAST\n3\nhey")
    alice.expect(b"FROM bob\n3\nhey")


def test_the_metrics_count_browsers_as_websocket_users(launch: Launch) -> None:
    """chat_users_online{transport="websocket"} counts the browsers logged in."""
    metrics_port = free_port()
    _, chat_port, web_port = launch_web(launch, ["--metrics-port", str(metrics_port)])
    alice, bob = browser(web_port, b"alice"), browser(web_port, b"bob")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    samples = samples_named(scrape_metrics(metrics_port), "chat_users_online")
    assert samples == {("tcp",): 1, ("udp",): 0, ("websocket",): 2}
    assert (alice.closed, bob.closed) == (None, None)


def test_a_browser_gets_random_messages_like_anyone(launch: Launch) -> None:
    """PROTOCOL §5: after every third delivery, a random line "from" one of their senders."""
    _, chat_port, web_port = launch_web(launch, random_messages=True)
    alice = browser(web_port, b"alice")
    bob = TcpClient(chat_port)
    bob.login(b"bob")
    for text in (b"one", b"two", b"six"):
        bob.send(b"SEND alice\n3\n" + text)
        alice.expect(b"FROM bob\n3\n" + text)
    assert alice.recv_line() == b"FROM bob\n"
    length = int(alice.recv_line())
    assert alice.recv_exactly(length) in CANNED_LINES
