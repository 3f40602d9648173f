"""Tests of the client's files: what a delivery becomes, names, sending a file.

No reactor: files go to ``tmp_path``, chunks to a ``StringTransport``.
"""

import io
import os
import re
from pathlib import Path

from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatproto.client.cli import (
    ChunkedFileSender,
    Inbox,
    SavedFile,
    TextMessage,
    UnsavedFile,
    claim_file_name,
    safe_file_stem,
)
from tests.client_support import decode_body, pull_all, receive


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
