"""Tests of named files: a body with a file-name header, received and sent.

The receiving side is :class:`~chatproto.client.inbox.Inbox` (saved under the
sender's name for the file, written as it arrives, the header in any number
of pieces); the sending side is :class:`~chatproto.client.sending.ChunkedFileSender`
with a header. No reactor: files go to ``tmp_path``, chunks to a
``StringTransport``.
"""

import io
from pathlib import Path

import pytest
from twisted.internet.testing import StringTransport

from chatproto.client.cli import ChunkedFileSender, Inbox, SavedFile, TextMessage, json_record
from chatproto.client.file_header import MAGIC, MAX_HEADER_BYTES, encode_file_header
from chatproto.client.sending import file_header_for
from tests.client_support import decode_body, pull_all, receive


def test_text_file_with_a_header_is_saved_under_its_name(tmp_path: Path) -> None:
    """A UTF-8 text file sent with its name arrives as that file, not as a chat line."""
    body = encode_file_header("notes.txt") + b"line one\nline two\n"
    message = receive(Inbox(tmp_path), b"alice", body)
    assert message == SavedFile("alice", tmp_path / "notes.txt", 18, "notes.txt")
    assert (tmp_path / "notes.txt").read_bytes() == b"line one\nline two\n"


def test_header_split_at_every_index_gives_the_same_file(tmp_path: Path) -> None:
    """However the first bytes are cut (inside the magic, the name, at the NUL), same file."""
    data = b"x" * 40
    body = encode_file_header("a.txt") + data
    for cut in range(1, len(body)):
        directory = tmp_path / str(cut)
        directory.mkdir()
        message = receive(Inbox(directory), b"bob", body[:cut], body[cut:])
        assert message == SavedFile("bob", directory / "a.txt", 40, "a.txt"), cut
        assert (directory / "a.txt").read_bytes() == data


def test_header_one_byte_at_a_time_gives_the_file(tmp_path: Path) -> None:
    """Fed a byte at a time, the header is still found and the rest saved."""
    body = encode_file_header("b.bin") + bytes(range(256))
    message = receive(Inbox(tmp_path), b"bob", *(body[i : i + 1] for i in range(len(body))))
    assert message == SavedFile("bob", tmp_path / "b.bin", 256, "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == bytes(range(256))


def test_empty_file_with_a_header_is_saved_empty(tmp_path: Path) -> None:
    """A header and nothing after it is an empty file of that name."""
    message = receive(Inbox(tmp_path), b"bob", encode_file_header("empty.txt"))
    assert message == SavedFile("bob", tmp_path / "empty.txt", 0, "empty.txt")
    assert (tmp_path / "empty.txt").read_bytes() == b""


def test_named_file_never_replaces_an_existing_one(tmp_path: Path) -> None:
    """A taken name gets a number before its extension; the old file is untouched."""
    (tmp_path / "report.pdf").write_bytes(b"mine")
    message = receive(Inbox(tmp_path), b"bob", encode_file_header("report.pdf") + b"theirs")
    assert message == SavedFile("bob", tmp_path / "report-1.pdf", 6, "report.pdf")
    assert (tmp_path / "report.pdf").read_bytes() == b"mine"


def test_name_with_directories_is_saved_as_its_base_name(tmp_path: Path) -> None:
    """``../../x`` in a header (from another client) saves ``x`` in the download dir."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    body = MAGIC + b"../../x\x00data"
    message = receive(Inbox(downloads), b"mallory", body)
    assert message == SavedFile("mallory", downloads / "x", 4, "../../x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads"]


def test_name_with_nothing_usable_is_saved_after_the_sender(tmp_path: Path) -> None:
    """A header naming ``..`` saves the file's bytes as ``<sender>.bin``."""
    message = receive(Inbox(tmp_path), b"eve", MAGIC + b"..\x00data")
    assert message == SavedFile("eve", tmp_path / "eve.bin", 4, "..")
    assert (tmp_path / "eve.bin").read_bytes() == b"data"


@pytest.mark.parametrize(
    "body",
    [MAGIC + b"\xff.txt\x00data", MAGIC + b"x" * 300, MAGIC[:10], MAGIC + b"half"],
    ids=["not-utf8", "no-nul-in-reach", "cut-in-magic", "cut-in-name"],
)
def test_malformed_or_cut_header_is_a_plain_binary_body(tmp_path: Path, body: bytes) -> None:
    """A header that is broken or cut short: the whole body, as sent, is ``<sender>.bin``."""
    message = receive(Inbox(tmp_path), b"eve", body)
    assert message == SavedFile("eve", tmp_path / "eve.bin", len(body))
    assert (tmp_path / "eve.bin").read_bytes() == body


def test_header_wait_is_bounded_then_the_body_is_written(tmp_path: Path) -> None:
    """Bytes that might be a header are held only up to the longest header, then spooled."""
    inbox = Inbox(tmp_path)
    inbox.start(b"eve")
    inbox.add(MAGIC)
    for _ in range(MAX_HEADER_BYTES - len(MAGIC) - 1):
        inbox.add(b"x")
    assert list(tmp_path.iterdir()) == []  # still could be a header: held in memory
    inbox.add(b"x")
    (part,) = tmp_path.iterdir()  # decided: no header, now written as it arrives
    assert part.name.endswith(".part")
    inbox.add(b"y" * 10_000)
    inbox.finish()
    assert (tmp_path / "eve.bin").read_bytes() == MAGIC + b"x" * 256 + b"y" * 10_000


def test_text_starting_like_no_header_stays_text(tmp_path: Path) -> None:
    """Ordinary text, even ``chatproto-file`` itself, is a chat line as before."""
    message = receive(Inbox(tmp_path), b"bob", b"chatproto-file", b"\x00? no: text")
    assert isinstance(message, SavedFile)  # a NUL in it: not text, but no header
    assert receive(Inbox(tmp_path), b"bob", b"chatproto-file") == TextMessage(
        "bob", "chatproto-file", 14
    )


def test_json_record_of_a_named_file_has_the_name_as_sent(tmp_path: Path) -> None:
    """``--listen`` shows a named file's ``name`` next to where it was saved."""
    record = json_record(SavedFile("bob", tmp_path / "a-1.txt", 3, "a.txt"))
    assert record == {
        "sender": "bob",
        "size": 3,
        "path": str(tmp_path / "a-1.txt"),
        "name": "a.txt",
    }


# -- sending -----------------------------------------------------------------------------


def test_sender_puts_the_header_in_the_first_chunk() -> None:
    """The header and the file's first bytes share the first chunk; the body is header+file."""
    header = encode_file_header("f.bin")
    data = bytes(range(256)) * 8
    sender = ChunkedFileSender(io.BytesIO(data), len(data), header=header)
    transport = StringTransport()
    sender.start(transport)
    pull_all(sender, transport)
    sizes, body = decode_body(transport.value())
    assert body == header + data
    assert sizes == [999, 999, len(header) + len(data) - 2 * 999]
    assert (sender.sent, sender.done.result) == (len(data), len(data))


def test_empty_file_is_sent_as_its_header_alone() -> None:
    """An empty file still goes out named: one chunk holding the header."""
    header = encode_file_header("empty")
    sender = ChunkedFileSender(io.BytesIO(b""), 0, header=header)
    transport = StringTransport()
    sender.start(transport)
    pull_all(sender, transport)
    assert decode_body(transport.value()) == ([len(header)], header)


def test_file_header_for_uses_the_base_name() -> None:
    """The header names the file by its base name, not its directories."""
    assert file_header_for(Path("/home/al/my notes.txt")) == MAGIC + b"my notes.txt\x00"
