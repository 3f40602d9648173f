"""Tests of ``chat_client``: its parts over fake transports, then the program with a real server.

The unit tests need no reactor: protocols run over ``StringTransport`` (or a
small UDP fake) with a ``Clock``. The end-to-end tests start one
``chat_server`` process for the module and run ``chat_client`` as
subprocesses, on loopback only, reading their output with deadlines.
"""

import hashlib
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure

from chatproto.client.cli import (
    CLOSE_TIMEOUT_S,
    HELP_TEXT,
    LOGIN_TIMEOUT_S,
    ChatClientProtocol,
    ChatDatagramClient,
    ChunkedFileSender,
    Console,
    Inbox,
    LoginRefusedError,
    NoLoginReplyError,
    Options,
    ProgressReporter,
    Received,
    SavedFile,
    TerminalSession,
    TextMessage,
    UnsavedFile,
    claim_file_name,
    clock_text,
    json_record,
    main,
    render_message,
    safe_file_stem,
)
from chatproto.wire.client_codec import ClientDecoder, DeliveryData, DeliveryEnd, DeliveryStart
from chatproto.wire.codec import encode_message
from chatproto.wire.events import NEED_DATA
from tests.e2e_support import HOST, TIMEOUT_S, Deadline, Server, free_port
from tests.sockets import TcpClient

CHAT_CLIENT = Path(sys.executable).parent / "chat_client"
#: A fixed moment for message stamps in the unit tests.
NOW = 1_800_000_000.0
STAMP = re.escape("[") + r"\d\d:\d\d:\d\d" + re.escape("]")


# -- fakes ------------------------------------------------------------------------


class HalfCloseTransport(StringTransport):
    """A StringTransport that also records ``loseWriteConnection``."""

    is_write_closed = False

    def loseWriteConnection(self) -> None:
        self.is_write_closed = True


class RecordingView:
    """A ChatView that records what it hears."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refusals = 0
        self.lost: list[tuple[bool, str]] = []

    def message_received(self, message: Received) -> None:
        self.messages.append(message)

    def message_refused(self) -> None:
        self.refusals += 1

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        self.lost.append((is_expected, reason))


class FakeConnection:
    """A ChatConnection that records what a front end asks of it."""

    transport_name = "TCP"

    def __init__(
        self, *, can_send_files: bool = True, is_datagram: bool = False, max_body_bytes: int = 1000
    ) -> None:
        self.can_send_files = can_send_files
        self.is_datagram = is_datagram
        self.max_body_bytes = max_body_bytes
        self.is_sending_file = False
        self.view: object = None
        self.texts: list[tuple[list[bytes] | None, bytes]] = []
        self.files: list[tuple[list[bytes], bytes, int]] = []
        self.file_done: Deferred[int] = Deferred()
        self.finished = 0

    def attach(self, view: object) -> None:
        self.view = view

    def send_text(self, recipients: list[bytes] | None, body: bytes) -> None:
        self.texts.append((recipients, body))

    def send_file(self, recipients, source, size, on_progress=None) -> Deferred[int]:  # type: ignore[no-untyped-def]
        self.files.append((list(recipients), source.read(), size))
        source.close()
        return self.file_done

    def finish(self) -> None:
        self.finished += 1


class FakeUdpTransport:
    """Just enough of a connected UDP port for ``ChatDatagramClient``."""

    def __init__(self) -> None:
        self.connected_to: tuple[str, int] | None = None
        self.datagrams: list[bytes] = []
        self.is_listening = True
        self.protocol: ChatDatagramClient | None = None

    def connect(self, host: str, port: int) -> None:
        self.connected_to = (host, port)

    def write(self, datagram: bytes, address: object = None) -> None:
        self.datagrams.append(datagram)

    def stopListening(self) -> None:
        self.is_listening = False
        assert self.protocol is not None
        self.protocol.doStop()


def clock_at(seconds: float = NOW) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


def tcp_client(
    tmp_path: Path, user: bytes = b"alice", clock: Clock | None = None
) -> tuple[ChatClientProtocol, HalfCloseTransport]:
    """A ChatClientProtocol connected to a fake transport, its login line cleared."""
    protocol = ChatClientProtocol(user, Inbox(tmp_path), clock or clock_at())
    transport = HalfCloseTransport()
    protocol.makeConnection(transport)
    transport.clear()
    return protocol, transport


def logged_in_client(
    tmp_path: Path, clock: Clock | None = None
) -> tuple[ChatClientProtocol, HalfCloseTransport, RecordingView]:
    """A TCP client past ``OK``, reporting to a RecordingView."""
    protocol, transport = tcp_client(tmp_path, clock=clock)
    protocol.dataReceived(b"OK\n")
    view = RecordingView()
    protocol.attach(view)
    return protocol, transport, view


def pull_all(sender: ChunkedFileSender, transport: StringTransport, limit: int = 10_000) -> None:
    """Act as the transport: pull from ``sender`` until it unregisters (bounded)."""
    for _ in range(limit):
        if transport.producer is not sender:
            return
        sender.resumeProducing()
    raise AssertionError(f"sender still registered after {limit} pulls")


def decode_body(frames: bytes) -> tuple[list[int], bytes]:
    """Decode a chunked body as a client would; return chunk sizes and the bytes."""
    decoder = ClientDecoder()
    decoder.feed(b"FROM x\n" + frames)
    decoder.eof()
    sizes: list[int] = []
    events = []
    while (event := decoder.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, DeliveryData):
            sizes.append(len(event.data))
        if isinstance(event, DeliveryEnd):
            break
    assert events[0] == DeliveryStart(b"x", True) and events[-1] == DeliveryEnd()
    return sizes, b"".join(e.data for e in events if isinstance(e, DeliveryData))


def receive(inbox: Inbox, sender: bytes, *pieces: bytes) -> Received:
    inbox.start(sender)
    for piece in pieces:
        inbox.add(piece)
    return inbox.finish()


# -- Inbox: text or file ----------------------------------------------------------


def test_utf8_body_becomes_a_text_message(tmp_path: Path) -> None:
    """A UTF-8 body is a TextMessage with its decoded text and byte size."""
    message = receive(Inbox(tmp_path), b"alice", "héllo".encode())
    assert message == TextMessage("alice", "héllo", 6)


def test_utf8_character_split_across_chunks_stays_text(tmp_path: Path) -> None:
    """A multi-byte character cut between two chunks still decodes as text."""
    encoded = "é".encode()
    message = receive(Inbox(tmp_path), b"alice", b"caf" + encoded[:1], encoded[1:])
    assert message == TextMessage("alice", "café", 5)


def test_empty_body_is_an_empty_text(tmp_path: Path) -> None:
    """An empty body (e.g. ``C0`` at once) is an empty text message."""
    assert receive(Inbox(tmp_path), b"alice") == TextMessage("alice", "", 0)


def test_non_utf8_body_is_saved_byte_for_byte(tmp_path: Path) -> None:
    """A body that is not UTF-8 is saved under the download dir, named after the sender."""
    body = bytes(range(256))
    message = receive(Inbox(tmp_path), b"alice", body[:100], body[100:])
    assert message == SavedFile("alice", tmp_path / "alice.bin", 256)
    assert (tmp_path / "alice.bin").read_bytes() == body


def test_body_with_terminal_escape_is_saved_as_a_file(tmp_path: Path) -> None:
    """Valid UTF-8 holding a control character (ESC) is not shown as text."""
    message = receive(Inbox(tmp_path), b"alice", b"\x1b[2Jgotcha")
    assert message == SavedFile("alice", tmp_path / "alice.bin", 10)


def test_text_over_the_text_limit_is_saved_as_a_file(tmp_path: Path) -> None:
    """A UTF-8 body larger than ``max_text_bytes`` is saved, not printed."""
    message = receive(Inbox(tmp_path, max_text_bytes=10), b"alice", b"a" * 6, b"b" * 6)
    assert message == SavedFile("alice", tmp_path / "alice.bin", 12)
    assert (tmp_path / "alice.bin").read_bytes() == b"a" * 6 + b"b" * 6


def test_partial_file_never_appears_under_its_final_name(tmp_path: Path) -> None:
    """While a binary body arrives, only a hidden ``.part`` file exists."""
    inbox = Inbox(tmp_path)
    inbox.start(b"alice")
    inbox.add(b"\xff" * 10)
    names = [path.name for path in tmp_path.iterdir()]
    assert len(names) == 1
    assert re.fullmatch(r"\.alice-.+\.part", names[0])


def test_taken_name_gets_a_numbered_suffix(tmp_path: Path) -> None:
    """An existing ``alice.bin`` is kept; the new file becomes ``alice-1.bin``."""
    (tmp_path / "alice.bin").write_bytes(b"old")
    message = receive(Inbox(tmp_path), b"alice", b"\xff")
    assert message == SavedFile("alice", tmp_path / "alice-1.bin", 1)
    assert (tmp_path / "alice.bin").read_bytes() == b"old"


def test_sender_name_cannot_escape_the_download_dir(tmp_path: Path) -> None:
    """Slashes and dots in a sender's userid become underscores in the file name."""
    message = receive(Inbox(tmp_path), b"../x/.y", b"\xff")
    assert message == SavedFile("../x/.y", tmp_path / "___x__y.bin", 1)


def test_aborted_delivery_leaves_no_file(tmp_path: Path) -> None:
    """A delivery cut short removes its temporary file."""
    inbox = Inbox(tmp_path)
    inbox.start(b"alice")
    inbox.add(b"\xff" * 10)
    inbox.abort()
    assert list(tmp_path.iterdir()) == []


def test_file_that_cannot_be_written_is_reported_unsaved(tmp_path: Path) -> None:
    """When the download dir is gone, the message says why it was not saved."""
    inbox = Inbox(tmp_path / "gone")
    message = receive(inbox, b"alice", b"\xff" * 3)
    assert message == UnsavedFile("alice", 3, "No such file or directory")


def test_safe_file_stem_keeps_letters_digits_dash_underscore() -> None:
    """Only ``[A-Za-z0-9_-]`` survive in a stem."""
    assert safe_file_stem(b"Al-ice_9~!") == "Al-ice_9__"


def test_claim_file_name_links_and_removes_the_source(tmp_path: Path) -> None:
    """The complete file gets the first free name and its temporary name disappears."""
    source = tmp_path / ".tmp"
    source.write_bytes(b"data")
    assert claim_file_name(tmp_path, "bob", source) == tmp_path / "bob.bin"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bob.bin"]


# -- showing messages ---------------------------------------------------------------


def test_text_message_renders_with_time_and_sender() -> None:
    """Text shows as ``[HH:MM:SS] sender: text``."""
    line = render_message(TextMessage("alice", "hi", 2), NOW)
    assert line == f"[{clock_text(NOW)}] alice: hi"


def test_multi_line_text_indents_its_continuation_lines() -> None:
    """Lines after the first are indented, so they cannot pass for other messages."""
    line = render_message(TextMessage("alice", "a\r\n[00:00:00] bob: b", 20), NOW)
    assert line == f"[{clock_text(NOW)}] alice: a\n  [00:00:00] bob: b"


def test_saved_file_renders_its_path_and_size() -> None:
    """A saved file shows as ``sender sent a file: NAME (SIZE bytes)``."""
    line = render_message(SavedFile("alice", Path("dl/alice.bin"), 5), NOW)
    assert line == f"[{clock_text(NOW)}] alice sent a file: dl/alice.bin (5 bytes)"


def test_json_record_of_a_file_has_its_absolute_path() -> None:
    """``--listen`` names a saved file by its absolute path."""
    record = json_record(SavedFile("alice", Path("alice.bin"), 5))
    assert record == {"sender": "alice", "size": 5, "path": os.path.abspath("alice.bin")}


def test_json_record_of_a_text_has_sender_size_and_text() -> None:
    """``--listen`` shows text with its sender and byte size."""
    assert json_record(TextMessage("bob", "é", 2)) == {"sender": "bob", "size": 2, "text": "é"}


def test_progress_on_a_terminal_is_rewritten_in_place() -> None:
    """On a terminal, progress lines overwrite each other and the next line starts afresh."""
    output = io.StringIO()
    console = Console(output.write, is_terminal=True)
    console.progress("10%")
    console.progress("20%")
    console.line("done")
    assert output.getvalue() == "\r10%\r20%\ndone\n"


def test_progress_shows_every_ten_percent_for_big_files() -> None:
    """A file over 1 MiB shows a progress line at each 10% step reached."""
    output = io.StringIO()
    report = ProgressReporter(Console(output.write, is_terminal=False), "f")
    size = 2_000_000
    for sent in (100_000, 250_000, 420_000, size):
        report(sent, size)
    assert output.getvalue() == (
        "sending f: 10% (250000 of 2000000 bytes)\n"
        "sending f: 20% (420000 of 2000000 bytes)\n"
        "sending f: 100% (2000000 of 2000000 bytes)\n"
    )


def test_progress_is_silent_for_small_files() -> None:
    """A file of 1 MiB or less shows no progress."""
    output = io.StringIO()
    ProgressReporter(Console(output.write, is_terminal=False), "f")(1000, 1000)
    assert output.getvalue() == ""


# -- ChunkedFileSender ------------------------------------------------------------------


def test_file_is_streamed_as_chunks_of_at_most_999_bytes() -> None:
    """A 2500-byte file goes out as C999, C999, C502 and C0, and decodes back whole."""
    data = os.urandom(2500)
    transport = StringTransport()
    sender = ChunkedFileSender(io.BytesIO(data), len(data))
    sender.start(transport)
    pull_all(sender, transport)
    assert decode_body(transport.value()) == ([999, 999, 502], data)


def test_each_pull_reads_a_bounded_number_of_chunks() -> None:
    """One pull writes at most ``chunks_per_pull`` chunks, so the file is never read whole."""
    transport = StringTransport()
    sender = ChunkedFileSender(io.BytesIO(b"x" * 5000), 5000, chunks_per_pull=2)
    sender.start(transport)
    sender.resumeProducing()
    assert transport.value() == b"C999\n" + b"x" * 999 + b"C999\n" + b"x" * 999


def test_finished_sender_unregisters_and_reports_the_size() -> None:
    """After ``C0`` the sender unregisters and ``done`` fires with the bytes sent."""
    transport = StringTransport()
    sender = ChunkedFileSender(io.BytesIO(b"abc"), 3)
    results: list[int] = []
    sender.done.addCallback(results.append)
    sender.start(transport)
    pull_all(sender, transport)
    assert (transport.producer, results) == (None, [3])


def test_sender_sends_no_more_than_the_size_it_was_given() -> None:
    """A file that grew after it was measured is sent up to the measured size."""
    transport = StringTransport()
    sender = ChunkedFileSender(io.BytesIO(b"abcdef"), 4)
    sender.start(transport)
    pull_all(sender, transport)
    assert transport.value() == b"C4\nabcdC0\n"


def test_stopped_sender_fails_and_closes_the_file() -> None:
    """When the transport stops the sender, ``done`` fails and the file is closed."""
    source = io.BytesIO(b"x" * 5000)
    sender = ChunkedFileSender(source, 5000)
    failures: list[Failure] = []
    sender.done.addErrback(failures.append)
    sender.start(StringTransport())
    sender.stopProducing()
    assert len(failures) == 1 and failures[0].check(ConnectionLost)
    assert source.closed


# -- the TCP protocol ---------------------------------------------------------------


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


# -- the UDP protocol -------------------------------------------------------------------


def udp_client(tmp_path: Path) -> tuple[ChatDatagramClient, FakeUdpTransport]:
    protocol = ChatDatagramClient(b"gina", ("127.0.0.1", 9000), Inbox(tmp_path), clock_at())
    transport = FakeUdpTransport()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


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


# -- the terminal session ---------------------------------------------------------------


def terminal(
    tmp_path: Path, connection: FakeConnection | None = None
) -> tuple[TerminalSession, StringTransport, FakeConnection, list[int]]:
    """A TerminalSession over a StringTransport, its banner cleared."""
    connection = connection or FakeConnection()
    exits: list[int] = []
    session = TerminalSession(
        connection, clock_at(), exits.append, "logged in", is_terminal=False, download_dir=tmp_path
    )
    transport = StringTransport()
    session.makeConnection(transport)
    transport.clear()
    return session, transport, connection, exits


def test_session_shows_its_banner_and_attaches(tmp_path: Path) -> None:
    """On start the session prints its banner and becomes the connection's view."""
    connection = FakeConnection()
    session = TerminalSession(connection, Clock(), [].append, "hello", False, tmp_path)
    transport = StringTransport()
    session.makeConnection(transport)
    assert (transport.value(), connection.view) == (b"hello\n", session)


def test_typed_line_is_a_broadcast(tmp_path: Path) -> None:
    """A plain line goes to everyone."""
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived("hi all ✓\n".encode())
    assert connection.texts == [(None, "hi all ✓".encode())]


def test_crlf_typed_line_loses_its_cr(tmp_path: Path) -> None:
    """A ``\\r`` before the typed newline is not part of the message."""
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived(b"hi\r\n")
    assert connection.texts == [(None, b"hi")]


def test_double_slash_sends_a_line_starting_with_slash(tmp_path: Path) -> None:
    """``//x`` broadcasts ``/x``."""
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived(b"//etc is a dir\n")
    assert connection.texts == [(None, b"/etc is a dir")]


def test_send_command_names_recipients_and_echoes(tmp_path: Path) -> None:
    """``/send bob,carol hi there`` sends to both and shows what was sent."""
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/send bob,carol hi there\n")
    assert connection.texts == [([b"bob", b"carol"], b"hi there")]
    assert transport.value() == f"[{clock_text(NOW)}] -> bob,carol: hi there\n".encode()


def test_send_without_text_shows_usage(tmp_path: Path) -> None:
    """``/send bob`` alone sends nothing and shows the usage."""
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/send bob\n")
    assert (connection.texts, transport.value()) == ([], b"usage: /send USER[,USER...] TEXT\n")


def test_send_to_invalid_userid_is_refused_locally(tmp_path: Path) -> None:
    """A recipient that cannot be a userid is reported without sending."""
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/send bob,,carol hi\n")
    assert (connection.texts, transport.value()) == ([], b"/send: not a valid userid: ''\n")


def test_file_command_sends_the_file(tmp_path: Path) -> None:
    """``/file bob carol PATH`` hands the open file to the connection."""
    path = tmp_path / "my file.bin"
    path.write_bytes(b"\x00\x01")
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived(f"/file bob carol '{path}'\n".encode())
    assert connection.files == [([b"bob", b"carol"], b"\x00\x01", 2)]


def test_file_command_reports_when_the_file_is_sent(tmp_path: Path) -> None:
    """Once the transfer is done the session says so."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(f"/file bob {path}\n".encode())
    connection.file_done.callback(3)
    assert transport.value() == f"sent {path} (3 bytes) to bob\n".encode()


def test_file_command_reports_a_missing_file(tmp_path: Path) -> None:
    """A path that cannot be opened is reported and nothing is sent."""
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(f"/file bob {tmp_path}/nope\n".encode())
    assert connection.files == []
    assert (
        transport.value() == f"cannot send {tmp_path}/nope: No such file or directory\n".encode()
    )


def test_file_command_over_udp_explains_files_need_tcp(tmp_path: Path) -> None:
    """Over UDP, ``/file`` says that files need TCP."""
    session, transport, _, _ = terminal(tmp_path, FakeConnection(can_send_files=False))
    session.dataReceived(b"/file bob x\n")
    assert transport.value() == b"files need TCP: run chat_client without --udp to send files\n"


def test_text_too_long_for_udp_is_explained(tmp_path: Path) -> None:
    """Over UDP, a line over 99 bytes is not sent and the limit is explained."""
    udp = FakeConnection(can_send_files=False, is_datagram=True, max_body_bytes=99)
    session, transport, connection, _ = terminal(tmp_path, udp)
    session.dataReceived(b"x" * 100 + b"\n")
    assert connection.texts == []
    assert transport.value() == (
        b"message too long: 100 bytes, at most 99; longer messages need TCP (run without --udp)\n"
    )


def test_text_over_a_small_tcp_limit_does_not_suggest_tcp(tmp_path: Path) -> None:
    """Over TCP with a small ``--max-message``, a too long line names the limit, not UDP."""
    session, transport, connection, _ = terminal(tmp_path, FakeConnection(max_body_bytes=50))
    session.dataReceived(b"x" * 51 + b"\n")
    assert connection.texts == []
    assert transport.value() == b"message too long: 51 bytes, at most 50\n"


def test_only_the_udp_connection_is_a_datagram_connection(tmp_path: Path) -> None:
    """``is_datagram`` is True for the UDP connection and False for the TCP one."""
    tcp_connection, _ = tcp_client(tmp_path)
    udp_connection, _ = udp_client(tmp_path)
    assert (tcp_connection.is_datagram, udp_connection.is_datagram) == (False, True)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    """``/help`` prints the help text naming the download dir."""
    session, transport, _, _ = terminal(tmp_path)
    session.dataReceived(b"/help\n")
    expected = HELP_TEXT.format(download_dir=os.path.abspath(tmp_path)) + "\n"
    assert transport.value() == expected.encode()


def test_unknown_command_is_reported(tmp_path: Path) -> None:
    """An unknown ``/word`` is not sent as text."""
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/nick bob\n")
    assert connection.texts == []
    assert transport.value() == b"unknown command /nick; /help lists the commands\n"


def test_quit_finishes_the_connection(tmp_path: Path) -> None:
    """``/quit`` asks the connection to finish."""
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/quit\n")
    assert connection.finished == 1


def test_end_of_input_is_quit(tmp_path: Path) -> None:
    """End of input (Ctrl-D) finishes the connection like ``/quit``."""
    session, _, connection, _ = terminal(tmp_path)
    session.readConnectionLost()
    assert connection.finished == 1


def test_session_ending_as_asked_exits_zero_after_flushing(tmp_path: Path) -> None:
    """After ``/quit`` and the server's close, output is closed, then the exit status is 0."""
    session, transport, _, exits = terminal(tmp_path)
    session.dataReceived(b"/quit\n")
    session.connection_lost(True, "")
    assert (transport.disconnecting, exits) == (True, [])
    session.connectionLost(Failure(ConnectionDone()))
    assert exits == [0]


def test_server_going_away_is_shown_and_exits_one(tmp_path: Path) -> None:
    """An unexpected end is shown and gives exit status 1."""
    session, transport, _, exits = terminal(tmp_path)
    session.connection_lost(False, "the server closed the connection")
    session.connectionLost(Failure(ConnectionDone()))
    assert transport.value() == b"connection lost: the server closed the connection\n"
    assert exits == [1]


def test_received_message_is_printed(tmp_path: Path) -> None:
    """A message from the connection is printed with its time and sender."""
    session, transport, _, _ = terminal(tmp_path)
    session.message_received(TextMessage("bob", "yo", 2))
    assert transport.value() == f"[{clock_text(NOW)}] bob: yo\n".encode()


# -- options ------------------------------------------------------------------------


def test_options_may_follow_the_arguments(tmp_path: Path) -> None:
    """``HOST PORT USERID --udp --download-dir D`` parses in that order."""
    options = Options()
    options.parseOptions(["localhost", "9000", "alice", "--udp", "--download-dir", str(tmp_path)])
    assert (options["host"], options["port"], options["user"]) == ("localhost", 9000, b"alice")
    assert (options["udp"], options["listen"], options["download-dir"]) == (
        True,
        False,
        str(tmp_path),
    )
    assert (options["send"], options["file"]) == ([], None)


def test_send_option_is_repeatable_and_takes_lists() -> None:
    """``--send`` accumulates, commas split, duplicates drop."""
    options = Options()
    options.parseOptions(["h", "1", "a", "--send", "bob,carol", "--send", "bob", "--file", "x"])
    assert options["send"] == [b"bob", b"carol"]


@pytest.mark.parametrize(
    "argv",
    [
        ["h", "0", "alice"],
        ["h", "x", "alice"],
        ["h", "1", "al ice"],
        ["h", "1"],
        ["h", "1", "alice", "--send", "bob"],
        ["h", "1", "alice", "--file", "f"],
        ["h", "1", "alice", "--send", "bob", "--file", "f", "--listen"],
        ["h", "1", "alice", "--send", "bob", "--file", "f", "--udp"],
        ["h", "1", "alice", "--download-dir", "/nonexistent/dir"],
    ],
    ids=[
        "port-0",
        "port-text",
        "bad-userid",
        "missing-userid",
        "send-without-file",
        "file-without-send",
        "send-and-listen",
        "file-over-udp",
        "missing-download-dir",
    ],
)
def test_bad_command_line_is_a_usage_error(argv: list[str]) -> None:
    """Bad arguments and option mixes raise UsageError."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(argv)


def test_main_reports_bad_usage_with_status_2() -> None:
    """``main`` answers a usage error with one line on stderr and status 2."""
    out, err = io.StringIO(), io.StringIO()
    assert main(["h", "1", "alice", "--file", "f"], stdout=out, stderr=err) == 2
    assert err.getvalue() == "chat_client: --file needs --send USER (see chat_client --help)\n"
    assert out.getvalue() == ""


# -- end to end: chat_client processes against a real chat_server -----------------------


class ClientProcess:
    """A ``chat_client`` subprocess on pipes or a pseudo-terminal, read with deadlines."""

    def __init__(self, args: list[str], cwd: Path, use_pty: bool = False) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [str(CHAT_CLIENT), *args]
        self._buffers = {"out": bytearray(), "err": bytearray()}
        if use_pty:
            primary, secondary = pty.openpty()
            self.process = subprocess.Popen(
                command, stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd, env=env
            )
            os.close(secondary)
            self._pty_fd: int | None = primary
            self._fds = {"out": primary}
            self._input_fd: int | None = primary
        else:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
            )
            assert self.process.stdout and self.process.stderr and self.process.stdin
            self._pty_fd = None
            self._fds = {"out": self.process.stdout.fileno(), "err": self.process.stderr.fileno()}
            self._input_fd = self.process.stdin.fileno()
        self._open = dict(self._fds)

    def type(self, line: str) -> None:
        """Type ``line`` and a newline."""
        assert self._input_fd is not None
        os.write(self._input_fd, line.encode() + b"\n")

    def close_input(self) -> None:
        """Close the client's standard input (end of input)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self._input_fd = None

    def _read_some(self, deadline: Deadline) -> None:
        """Read what is available on any open stream, waiting until the deadline."""
        if not self._open:
            raise AssertionError(f"all output closed; got {self._buffers!r}")
        ready, _, _ = select.select(list(self._open.values()), [], [], deadline.remaining())
        if not ready:
            raise AssertionError(f"timed out; got {self._buffers!r}")
        for name, fd in list(self._open.items()):
            if fd in ready:
                try:
                    data = os.read(fd, 1 << 16)
                except OSError:  # EIO from a pseudo-terminal whose child is gone
                    data = b""
                if not data:
                    del self._open[name]
                self._buffers[name] += data.replace(b"\r\n", b"\n")

    def line(self, stream: str = "out", seconds: float = TIMEOUT_S) -> str:
        """Return the next complete line of ``stream`` without its newline."""
        deadline = Deadline(seconds)
        buffer = self._buffers[stream]
        for _ in range(10_000):
            end = buffer.find(b"\n")
            if end >= 0:
                text = buffer[:end].decode()
                del buffer[: end + 1]
                return text
            if deadline.expired():
                break
            self._read_some(deadline)
        raise AssertionError(f"no line on {stream} within {seconds} s: {bytes(buffer)!r}")

    def wait_for(self, pattern: str, stream: str = "out", max_lines: int = 100) -> re.Match:
        """Skip lines until one matches ``pattern`` in full; fail after ``max_lines``."""
        seen = []
        for _ in range(max_lines):
            text = self.line(stream)
            if match := re.fullmatch(pattern, text):
                return match
            seen.append(text)
        raise AssertionError(f"no line matched {pattern!r} in {seen!r}")

    def rest(self, stream: str, seconds: float = TIMEOUT_S) -> str:
        """Return everything on ``stream`` until it closes."""
        deadline = Deadline(seconds)
        for _ in range(10_000):
            if self._fds[stream] not in self._open.values():
                break
            self._read_some(deadline)
        text = self._buffers[stream].decode()
        self._buffers[stream].clear()
        return text

    def wait(self, seconds: float = TIMEOUT_S) -> int:
        """Wait for the process to exit and return its status."""
        return self.process.wait(timeout=seconds)

    def stop(self) -> None:
        """Kill the process if it still runs and release its pipes or terminal."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        if self._pty_fd is not None:
            os.close(self._pty_fd)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``chat_server --no-random`` on a free loopback port for this module."""
    workdir = tmp_path_factory.mktemp("server")
    chat_server = Server.launch("chat_server", [free_port()], ["--no-random"], workdir)
    try:
        chat_server.wait_ready()
        yield chat_server
    finally:
        chat_server.stop()


@pytest.fixture
def clients(tmp_path: Path, server: Server) -> Iterator:
    """Start ``chat_client`` processes logged in to the server; kill them at teardown."""
    started: list[ClientProcess] = []

    def start(*args: str, use_pty: bool = False, port: int | None = None) -> ClientProcess:
        argv = [HOST, str(port or server.ports[0]), *args]
        client = ClientProcess(argv, tmp_path, use_pty=use_pty)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture
def raw_clients(server: Server) -> Iterator:
    """Open blocking raw-protocol TCP clients; close them at teardown."""
    opened: list[TcpClient] = []

    def connect(user: bytes) -> TcpClient:
        client = TcpClient(server.ports[0])
        opened.append(client)
        client.login(user)
        return client

    yield connect
    for client in opened:
        client.close()


def banner(user: str, server: Server, transport: str = "TCP") -> str:
    return f"logged in as {user} at {HOST}:{server.ports[0]} over {transport}"


def test_two_clients_exchange_text(clients, server: Server) -> None:  # type: ignore[no-untyped-def]
    """A ``/send`` from one terminal client is shown by the other with time and sender."""
    ann, ben = clients("ann"), clients("ben")
    assert ann.line() == banner("ann", server) + "; type /help for commands"
    assert ben.line() == banner("ben", server) + "; type /help for commands"
    ann.type("/send ben hello ben")
    assert re.fullmatch(STAMP + r" -> ben: hello ben", ann.line())
    assert re.fullmatch(STAMP + r" ann: hello ben", ben.line())
    long_text = " ".join(["a reply over 99 bytes, so it goes out chunked"] * 3)
    ben.type("/send ann " + long_text)
    assert ben.line().endswith(" -> ann: " + long_text)
    assert ann.line().endswith(" ben: " + long_text)


def test_broadcast_reaches_everyone_and_quit_exits_zero(clients, server: Server) -> None:  # type: ignore[no-untyped-def]
    """A typed line reaches every user, the sender included; ``/quit`` exits with 0."""
    cal, dee = clients("cal"), clients("dee")
    cal.line(), dee.line()
    cal.type("hi everyone")
    assert re.fullmatch(STAMP + r" cal: hi everyone", cal.line())
    assert re.fullmatch(STAMP + r" cal: hi everyone", dee.line())
    cal.type("/quit")
    assert (cal.wait(), cal.rest("out"), cal.rest("err")) == (0, "", "")


def test_five_mb_file_arrives_byte_for_byte(clients, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A 5 MB binary file sent with ``/file`` is saved by the recipient with the same sha256."""
    data = os.urandom(5 * 1024 * 1024)
    source = tmp_path / "five.bin"
    source.write_bytes(data)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    eve, fay = clients("eve"), clients("fay", "--download-dir", str(downloads))
    eve.line(), fay.line()
    eve.type(f"/file fay {source}")
    eve.wait_for(re.escape(f"sent {source} ({len(data)} bytes) to fay"))
    match = fay.wait_for(STAMP + r" eve sent a file: (.+) \((\d+) bytes\)", max_lines=1)
    saved = Path(match[1])
    assert (saved, int(match[2])) == (downloads / "eve.bin", len(data))
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [path.name for path in downloads.iterdir()] == ["eve.bin"]


def test_big_file_shows_progress_lines(clients, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A file over 1 MB shows progress in 10% steps up to 100%, then the sent line."""
    source = tmp_path / "two.bin"
    source.write_bytes(b"\x00" * 2_000_000)
    gus = clients("gus")
    gus.line()
    gus.type(f"/file gus {source}")
    lines = [gus.line() for _ in range(11)]
    percents = [int(re.fullmatch(rf"sending {source}: (\d+)% .*", text)[1]) for text in lines[:10]]
    assert percents == list(range(10, 101, 10))
    assert lines[10] == f"sent {source} (2000000 bytes) to gus"


def test_listen_prints_messages_as_json_lines(  # type: ignore[no-untyped-def]
    clients, raw_clients, tmp_path: Path
) -> None:
    """``--listen`` prints each message as a JSON object: text, or the saved file's path."""
    listener = clients("hal", "--listen")
    listener.wait_for(r"logged in as hal .*; listening \(Ctrl-C to stop\)", stream="err")
    ivy = raw_clients(b"ivy")
    ivy.send(encode_message([b"hal"], b"hi hal"))
    ivy.send(encode_message([b"hal"], b"\xff\xfe" * 600))
    first, second = json.loads(listener.line()), json.loads(listener.line())
    assert first == {"sender": "ivy", "size": 6, "text": "hi hal"}
    saved = os.path.join(os.path.realpath(tmp_path), "ivy.bin")
    assert second == {"sender": "ivy", "size": 1200, "path": saved}
    assert (tmp_path / "ivy.bin").read_bytes() == b"\xff\xfe" * 600


def test_listen_stops_cleanly_when_terminated(clients) -> None:  # type: ignore[no-untyped-def]
    """``--listen`` runs until interrupted (SIGTERM here) and then exits with 0."""
    listener = clients("jay", "--listen")
    listener.wait_for(r"logged in as jay .*", stream="err")
    listener.process.send_signal(signal.SIGTERM)
    assert (listener.wait(), listener.rest("out"), listener.rest("err")) == (0, "", "")


def test_send_option_sends_a_file_and_exits_zero(  # type: ignore[no-untyped-def]
    clients, raw_clients, tmp_path: Path
) -> None:
    """``--send USER --file PATH`` delivers the file as a chunked message and exits with 0."""
    data = os.urandom(3000)
    (tmp_path / "f.bin").write_bytes(data)
    kim = raw_clients(b"kim")
    sender = clients("lou", "--send", "kim", "--file", "f.bin")
    assert kim.recv_delivery() == (b"lou", data, True)
    assert sender.wait() == 0
    assert sender.rest("out") == "sent f.bin (3000 bytes) to kim\n"


def test_duplicate_login_reports_the_error_and_exits_one(clients, raw_clients) -> None:  # type: ignore[no-untyped-def]
    """Logging in with a userid in use prints one error line and exits with 1."""
    raw_clients(b"max")
    duplicate = clients("max")
    assert duplicate.wait() == 1
    assert (
        duplicate.rest("err")
        == "chat_client: cannot log in as max: userid max is already in use\n"
    )
    assert duplicate.rest("out") == ""


def test_server_down_reports_the_error_and_exits_one(clients) -> None:  # type: ignore[no-untyped-def]
    """Connecting to a port nobody listens on prints one error line and exits with 1."""
    port = free_port()
    client = clients("ned", port=port)
    assert client.wait() == 1
    assert client.rest("err") == (
        f"chat_client: cannot connect to {HOST}:{port}: connection refused"
        " (is the server running?)\n"
    )


def test_interactive_help_and_quit_through_a_pty(clients, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On a pseudo-terminal, ``/help`` lists the commands and ``/quit`` exits with 0."""
    terminal = clients("oli", use_pty=True)
    assert terminal.line() == banner("oli", server) + "; type /help for commands"
    terminal.type("/help")
    assert terminal.line() == "/help"  # the terminal's echo
    help_lines = HELP_TEXT.format(download_dir=os.path.realpath(tmp_path)).splitlines()
    assert [terminal.line() for _ in help_lines] == help_lines
    terminal.type("/quit")
    assert terminal.line() == "/quit"
    assert terminal.wait() == 0
    assert terminal.rest("out") == ""


def test_udp_client_sends_short_messages(clients, raw_clients, server: Server) -> None:  # type: ignore[no-untyped-def]
    """With ``--udp`` a typed ``/send`` goes out as a datagram and is delivered."""
    pat = raw_clients(b"pat")
    udp = clients("quin", "--udp")
    assert udp.line() == banner("quin", server, "UDP") + "; type /help for commands"
    udp.type("/send pat hello")
    assert pat.recv_delivery() == (b"quin", b"hello", False)


def test_udp_client_receives_messages(clients, raw_clients) -> None:  # type: ignore[no-untyped-def]
    """With ``--udp`` a message to the user is shown like any other."""
    udp = clients("ray", "--udp")
    udp.line()
    raw_clients(b"sam").send(encode_message([b"ray"], b"over udp"))
    assert re.fullmatch(STAMP + r" sam: over udp", udp.line())


def test_udp_client_explains_files_need_tcp(clients, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With ``--udp``, ``/file`` is refused with an explanation."""
    (tmp_path / "x.bin").write_bytes(b"x")
    udp = clients("tia", "--udp")
    udp.line()
    udp.type("/file tia x.bin")
    assert udp.line() == "files need TCP: run chat_client without --udp to send files"
    udp.close_input()
    assert udp.wait() == 0
