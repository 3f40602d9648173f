"""Tests of the client's connections (:mod:`chatproto.client.tcp`, :mod:`chatproto.client.udp`).

No reactor: the protocols run over ``StringTransport`` (or a small UDP fake)
with a ``Clock``.
"""

import io
from pathlib import Path

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import directlyProvides

from chatproto.client.cli import (
    CLOSE_TIMEOUT_S,
    LOGIN_TIMEOUT_S,
    ChatClientProtocol,
    ChunkedFileSender,
    Inbox,
    LoginRefusedError,
    NoLoginReplyError,
    SavedFile,
    TextMessage,
)
from chatproto.wire.encode import encode_message
from tests.client_support import (
    HalfCloseTransport,
    RecordingView,
    logged_in_client,
    pull_all,
    tcp_client,
    udp_client,
)


def test_tcp_client_logs_in_on_connect(tmp_path: Path) -> None:
    """On connecting, the client sends ``ME IS <user>``."""
    protocol = ChatClientProtocol(b"alice", Inbox(tmp_path), Clock())
    transport = HalfCloseTransport()
    protocol.makeConnection(transport)
    assert transport.value() == b"ME IS alice\n"


def test_ok_fires_logged_in(tmp_path: Path) -> None:
    """``OK`` fires ``logged_in``."""
    protocol, _ = tcp_client(tmp_path)
    results: list[object] = []
    protocol.logged_in.addCallback(results.append)
    protocol.dataReceived(b"OK\n")
    assert (results, protocol.is_logged_in) == ([None], True)


def test_error_to_login_fails_with_login_refused(tmp_path: Path) -> None:
    """``ERROR`` to ``ME IS`` fails ``logged_in`` with LoginRefusedError and closes."""
    protocol, transport = tcp_client(tmp_path)
    failures: list[Failure] = []
    protocol.logged_in.addErrback(failures.append)
    protocol.dataReceived(b"ERROR\n")
    assert failures[0].check(LoginRefusedError)
    assert failures[0].getErrorMessage() == "userid alice is already in use"
    assert transport.disconnecting


def test_no_login_reply_in_time_fails_login(tmp_path: Path) -> None:
    """Without a reply within the login timeout, ``logged_in`` fails and the client closes."""
    clock = Clock()
    protocol, transport = tcp_client(tmp_path, clock=clock)
    failures: list[Failure] = []
    protocol.logged_in.addErrback(failures.append)
    clock.advance(LOGIN_TIMEOUT_S)
    assert failures[0].check(NoLoginReplyError) and transport.disconnecting


def test_connection_closed_before_login_reply_fails_login(tmp_path: Path) -> None:
    """A connection lost before ``OK`` fails ``logged_in`` with NoLoginReplyError."""
    protocol, _ = tcp_client(tmp_path)
    failures: list[Failure] = []
    protocol.logged_in.addErrback(failures.append)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert failures[0].check(NoLoginReplyError)


def test_connection_failing_before_login_reports_its_own_error(tmp_path: Path) -> None:
    """A connection lost before ``OK`` for a reason of its own (a TLS error) fails with it."""
    protocol, _ = tcp_client(tmp_path)
    failures: list[Failure] = []
    protocol.logged_in.addErrback(failures.append)
    protocol.connectionLost(Failure(OSError("certificate verify failed")))
    assert failures[0].check(OSError) and failures[0].getErrorMessage() == (
        "certificate verify failed"
    )


def test_delivery_reaches_the_view_as_text(tmp_path: Path) -> None:
    """A short delivery is reported to the attached view."""
    protocol, _, view = logged_in_client(tmp_path)
    protocol.dataReceived(b"FROM bob\n2\nhi")
    assert view.messages == [TextMessage("bob", "hi", 2)]


def test_deliveries_before_attach_are_replayed(tmp_path: Path) -> None:
    """A delivery in the same read as ``OK`` reaches the view once it is attached."""
    protocol, _ = tcp_client(tmp_path)
    protocol.dataReceived(b"OK\nFROM bob\n2\nhi")
    view = RecordingView()
    protocol.attach(view)
    assert view.messages == [TextMessage("bob", "hi", 2)]


def test_chunked_binary_delivery_is_saved(tmp_path: Path) -> None:
    """A chunked binary delivery is written to the download dir as it streams."""
    protocol, _, view = logged_in_client(tmp_path)
    protocol.dataReceived(b"FROM bob\nC2\n\xff\x00C1\n\x01C0\n")
    assert view.messages == [SavedFile("bob", tmp_path / "bob.bin", 3)]
    assert (tmp_path / "bob.bin").read_bytes() == b"\xff\x00\x01"


def test_error_after_login_is_a_refusal(tmp_path: Path) -> None:
    """``ERROR`` after login tells the view a message was refused."""
    protocol, _, view = logged_in_client(tmp_path)
    protocol.dataReceived(b"ERROR\n")
    assert view.refusals == 1


def test_short_text_goes_out_short(tmp_path: Path) -> None:
    """A body of up to 99 bytes is sent with a length line."""
    protocol, transport, _ = logged_in_client(tmp_path)
    protocol.send_text([b"bob"], b"hi")
    assert transport.value() == b"SEND bob\n2\nhi"


def test_text_over_99_bytes_goes_out_chunked(tmp_path: Path) -> None:
    """A body over 99 bytes is sent as chunks automatically."""
    protocol, transport, _ = logged_in_client(tmp_path)
    body = b"x" * 100
    protocol.send_text(None, body)
    assert transport.value() == b"BROADCAST\nC100\n" + body + b"C0\n"


def test_text_typed_during_a_file_transfer_waits_for_the_file(tmp_path: Path) -> None:
    """A message queued while a file streams is written after the file's ``C0``."""
    protocol, transport, _ = logged_in_client(tmp_path)
    data = b"f" * 3000
    protocol.send_file([b"bob"], io.BytesIO(data), len(data))
    protocol.send_text(None, b"hi")
    sender = transport.producer
    assert isinstance(sender, ChunkedFileSender)
    pull_all(sender, transport)
    expected = encode_message([b"bob"], data, chunked=True) + b"BROADCAST\n2\nhi"
    assert transport.value() == expected


def test_finish_half_closes_once_the_queue_is_empty(tmp_path: Path) -> None:
    """``finish`` during a transfer half-closes only after the file's last chunk."""
    protocol, transport, _ = logged_in_client(tmp_path)
    protocol.send_file([b"bob"], io.BytesIO(b"x" * 3000), 3000)
    protocol.finish()
    assert not transport.is_write_closed
    pull_all(transport.producer, transport)
    assert transport.is_write_closed


def test_server_closing_after_finish_is_expected(tmp_path: Path) -> None:
    """The server closing after ``finish`` ends the session as asked."""
    protocol, _, view = logged_in_client(tmp_path)
    protocol.finish()
    protocol.connectionLost(Failure(ConnectionDone()))
    assert view.lost == [(True, "the server closed the connection")]


def test_server_closing_unasked_is_reported(tmp_path: Path) -> None:
    """The server closing without ``finish`` is an unexpected end."""
    protocol, _, view = logged_in_client(tmp_path)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert view.lost == [(False, "the server closed the connection")]


def test_finish_after_the_connection_is_gone_writes_nothing(tmp_path: Path) -> None:
    """``finish`` once the connection is lost (at shutdown) leaves the dead transport alone."""
    protocol, transport, view = logged_in_client(tmp_path)
    protocol.connectionLost(Failure(ConnectionLost()))
    protocol.send_text(None, b"too late")
    protocol.finish()
    assert (transport.is_write_closed, transport.value()) == (False, b"")
    assert len(view.lost) == 1


def test_finish_over_tls_closes_tls_and_still_reads_the_answer(tmp_path: Path) -> None:
    """Over TLS, ``finish`` closes TLS (not half of TCP) and an ERROR after it still counts."""
    protocol, transport, view = logged_in_client(tmp_path)
    directlyProvides(transport, ISSLTransport)
    protocol.send_text([b"bob"], b"last words")
    protocol.finish()
    assert (transport.disconnecting, transport.is_write_closed) == (True, False)
    assert transport.value().endswith(b"last words")
    protocol.dataReceived(b"ERROR\n")
    assert view.refusals == 1


def test_server_that_never_closes_after_finish_is_aborted(tmp_path: Path) -> None:
    """If the server does not close within the close timeout, the client aborts."""
    clock = Clock()
    protocol, transport, _ = logged_in_client(tmp_path, clock=clock)
    protocol.finish()
    clock.advance(CLOSE_TIMEOUT_S)
    assert transport.disconnected


def test_garbled_frame_from_the_server_closes_the_connection(tmp_path: Path) -> None:
    """An unreadable frame ends the connection and the view hears why."""
    protocol, transport, view = logged_in_client(tmp_path)
    protocol.dataReceived(b"FROM bob\nzz\n")
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone()))
    assert view.lost == [(False, "the server sent something unreadable (bad length line)")]


def test_connection_lost_mid_file_fails_the_transfer(tmp_path: Path) -> None:
    """A file still streaming when the connection drops fails its ``done``."""
    protocol, _, view = logged_in_client(tmp_path)
    failures: list[Failure] = []
    protocol.send_file([b"bob"], io.BytesIO(b"x" * 3000), 3000).addErrback(failures.append)
    protocol.connectionLost(Failure(ConnectionLost()))
    assert len(failures) == 1 and failures[0].check(ConnectionLost)
    assert view.lost[0][0] is False


def test_udp_client_logs_in_to_the_connected_server(tmp_path: Path) -> None:
    """The UDP socket is connected to the server and the login is one datagram."""
    _, transport = udp_client(tmp_path)
    assert (transport.connected_to, transport.datagrams) == (
        ("127.0.0.1", 9000),
        [b"ME IS gina\n"],
    )


def test_udp_delivery_reaches_the_view(tmp_path: Path) -> None:
    """A delivery datagram is reported as a message."""
    protocol, _ = udp_client(tmp_path)
    protocol.datagramReceived(b"OK\n", ("127.0.0.1", 9000))
    view = RecordingView()
    protocol.attach(view)
    protocol.datagramReceived(b"FROM hank\n2\nyo", ("127.0.0.1", 9000))
    assert view.messages == [TextMessage("hank", "yo", 2)]


def test_udp_text_is_one_short_datagram(tmp_path: Path) -> None:
    """``send_text`` over UDP writes one datagram with a short body."""
    protocol, transport = udp_client(tmp_path)
    protocol.send_text([b"hank"], b"hello")
    assert transport.datagrams[-1] == b"SEND hank\n5\nhello"


def test_udp_refuses_files(tmp_path: Path) -> None:
    """A file cannot go over UDP: ``send_file`` raises and closes the file."""
    protocol, _ = udp_client(tmp_path)
    source = io.BytesIO(b"x")
    with pytest.raises(ValueError, match="files need TCP"):
        protocol.send_file([b"hank"], source, 1)
    assert source.closed


def test_udp_port_closing_before_login_means_refused(tmp_path: Path) -> None:
    """The port closing by itself (ICMP unreachable under epoll) fails the login as refused."""
    protocol, _ = udp_client(tmp_path)
    failures: list[Failure] = []
    protocol.logged_in.addErrback(failures.append)
    protocol.doStop()
    assert failures[0].check(ConnectionRefusedError)


def test_only_the_udp_connection_is_a_datagram_connection(tmp_path: Path) -> None:
    """``is_datagram`` is True for the UDP connection and False for the TCP one."""
    tcp_connection, _ = tcp_client(tmp_path)
    udp_connection, _ = udp_client(tmp_path)
    assert (tcp_connection.is_datagram, udp_connection.is_datagram) == (False, True)
