"""Tests of :mod:`chatproto.client.terminal`: the interactive session over a fake connection."""

import os
from pathlib import Path

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatproto.client.cli import (
    HELP_TEXT,
    TerminalSession,
    TextMessage,
    clock_text,
)
from tests.client_support import NOW, FakeConnection, clock_at


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


def test_file_command_sends_the_file_to_a_comma_list(tmp_path: Path) -> None:
    """``/file bob,carol PATH`` hands the open file to the connection for both."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x00\x01")
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived(f"/file bob,carol {path}\n".encode())
    assert connection.files == [([b"bob", b"carol"], b"\x00\x01", 2)]
    assert connection.headers == [b"\x00chatproto-file\x00f.bin\x00"]


def test_file_path_is_the_rest_of_the_line_spaces_included(tmp_path: Path) -> None:
    """After the recipients, the whole rest of the line is the path, without quoting."""
    path = tmp_path / "my holiday  photo.jpg"
    path.write_bytes(b"jpg")
    session, _, connection, _ = terminal(tmp_path)
    session.dataReceived(f"/file bob   {path}  \n".encode())
    assert connection.files == [([b"bob"], b"jpg", 3)]


def test_file_with_recipients_separated_by_spaces_is_explained(tmp_path: Path) -> None:
    """``/file bob a.bin b.txt`` with no file ``a.bin b.txt``: the comma form is shown."""
    (tmp_path / "b.txt").write_bytes(b"b")
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/file bob a.bin b.txt\n")
    assert connection.files == []
    assert transport.value() == (
        b"/file: no file 'a.bin b.txt'; recipients go in one comma-separated word:"
        b" /file bob,a.bin b.txt\n"
    )


def test_file_without_a_path_shows_the_usage(tmp_path: Path) -> None:
    """``/file bob`` alone shows the one form of the command."""
    session, transport, connection, _ = terminal(tmp_path)
    session.dataReceived(b"/file bob \n")
    assert connection.files == []
    assert transport.value() == b"usage: /file USER[,USER...] PATH\n"


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
