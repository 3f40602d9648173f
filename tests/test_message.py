"""MessageBody and Delivery: wire frames, spilling to the spool, references."""

import errno
import os

import pytest

from chatproto.server.message import (
    PREVIEW_BYTES,
    SPOOL_WRITE_BYTES,
    Delivery,
    FramedOnDraw,
    MessageBody,
    ShortBody,
)
from chatproto.server.spool import Spool


def chunked_body(spool: Spool | None, threshold: int, *chunks: bytes) -> MessageBody:
    body = MessageBody(spool, threshold)
    for chunk in chunks:
        body.append(chunk)
    body.finish()
    return body


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_short_body_frames() -> None:
    """A short body is its length line and its bytes."""
    assert ShortBody(b"You suck!").frames() == [b"9\n", b"You suck!"]


def test_empty_short_body_frames() -> None:
    """An empty short body is the length line 0 alone."""
    assert ShortBody(b"").frames() == [b"0\n"]


def test_chunked_body_keeps_chunk_sizes() -> None:
    """Chunks keep the sizes they arrived with and end with C0."""
    body = chunked_body(None, 0, b"abc", b"de")
    assert body.frames() == [b"C3\n", b"abc", b"C2\n", b"de", b"C0\n"]
    assert (body.size, body.wire_size) == (5, 14)


def test_small_body_stays_in_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A body under the threshold never touches the spool."""
    spool = Spool(10**6, str(tmp_path))
    body = chunked_body(spool, 1000, b"x" * 500)
    assert body.is_in_memory and spool.files_open == 0


def test_big_body_spills_and_reads_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Past the threshold the body moves to a spool file and reads back byte for byte."""
    spool = Spool(10**7, str(tmp_path))
    chunks = [bytes([i % 256]) * 999 for i in range(50)]
    body = chunked_body(spool, 10_000, *chunks)
    assert not body.is_in_memory
    assert spool.files_open == 1 and spool.bytes_in_use == body.wire_size
    assert body.read() == b"".join(chunks)
    wire = b"".join(b"C999\n" + chunk for chunk in chunks) + b"C0\n"
    assert body.read_wire(0, body.wire_size) == wire
    assert body.read_wire(7, 100) == wire[7:107]


def test_spool_files_have_no_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Spool files are unlinked at once, so the spool directory stays empty."""
    spool = Spool(10**7, str(tmp_path))
    chunked_body(spool, 100, b"x" * 999)
    assert os.listdir(tmp_path) == []


def test_spooled_body_keeps_a_preview(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spooled body keeps its first frames in memory for display."""
    spool = Spool(10**7, str(tmp_path))
    body = chunked_body(spool, 100, *[b"y" * 999] * 20)
    preview = body.preview_frames()
    assert preview[:2] == [b"C999\n", b"y" * 999]
    assert PREVIEW_BYTES <= sum(map(len, preview)) < PREVIEW_BYTES + 1000


def test_last_release_closes_the_spool_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The spool file closes and its bytes are given back when the last reference goes."""
    spool = Spool(10**7, str(tmp_path))
    before = open_fds()
    body = chunked_body(spool, 100, b"z" * 999)
    body.acquire()
    body.release()
    assert spool.files_open == 1 and open_fds() == before + 1
    body.release()
    assert (spool.files_open, spool.bytes_in_use) == (0, 0)
    assert open_fds() == before


def test_body_over_the_spool_limit_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A body that would pass the spool limit gets an error and gives its bytes back."""
    spool = Spool(5000, str(tmp_path))
    body = chunked_body(spool, 100, *[b"x" * 999] * 10)
    assert body.error == "spool limit reached"
    assert (spool.files_open, spool.bytes_in_use) == (0, 0)
    assert body.size == 9990


def test_spool_limit_is_shared_between_bodies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The limit counts every body in the spool at once."""
    spool = Spool(15000, str(tmp_path))
    first = chunked_body(spool, 100, *[b"x" * 999] * 10)
    second = chunked_body(spool, 100, *[b"x" * 999] * 10)
    assert first.error is None and second.error == "spool limit reached"
    first.release()
    third = chunked_body(spool, 100, *[b"x" * 999] * 10)
    assert third.error is None


def test_disk_full_fails_the_body(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A write error (disk full) fails the body and releases the spool file."""
    spool = Spool(10**7, str(tmp_path))
    body = MessageBody(spool, 100)
    body.append(b"x" * 999)
    assert not body.is_in_memory

    def full(data):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(body._file, "write", full)
    body.append(b"y" * 999)
    assert body.error is None  # gathered, not written yet
    body.finish()
    assert body.error is not None and "No space left" in body.error
    assert (spool.files_open, spool.bytes_in_use) == (0, 0)


def test_spooled_body_is_written_in_gathered_pieces_and_holds_none_once_finished(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Chunks go to the unbuffered spool file SPOOL_WRITE_BYTES at a time, the rest at finish.

    A finished body waiting in queues then holds only its preview in memory.
    """
    spool = Spool(10**8, str(tmp_path))
    body = MessageBody(spool, 100)
    body.append(b"x" * 999)
    writes: list[int] = []
    real_write = body._file.write

    def write(data):  # type: ignore[no-untyped-def]
        writes.append(len(data))
        return real_write(data)

    monkeypatch.setattr(body._file, "write", write)
    for _ in range(200):
        body.append(b"y" * 999)
    assert writes and all(size >= SPOOL_WRITE_BYTES for size in writes)
    body.finish()
    assert sum(writes) + 1004 == body.wire_size  # the first chunk went at the spill
    assert (body._frames, body._unwritten) == ([], 0)
    assert len(body._preview) == PREVIEW_BYTES
    assert body.read() == b"x" * 999 + b"y" * 999 * 200


def test_spool_directory_missing_fails_the_body(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spool file that cannot be created fails the body, nothing raises."""
    spool = Spool(10**7, str(tmp_path / "missing"))
    body = chunked_body(spool, 100, b"x" * 999)
    assert body.error is not None and body.error.startswith("cannot create a spool file")


def test_delivery_frames_and_datagram() -> None:
    """A short delivery is the FROM line and the framed body, joined once; it fits a datagram."""
    delivery = Delivery(b"alice", ShortBody(b"hi"))
    assert delivery.frames == [b"FROM alice\n2\nhi"]
    assert delivery.datagram == b"FROM alice\n2\nhi"
    assert delivery.size == len(delivery.datagram)


def test_chunked_delivery_has_no_datagram() -> None:
    """A chunked delivery refuses to become a datagram."""
    with pytest.raises(ValueError):
        _ = Delivery(b"alice", chunked_body(None, 0, b"x")).datagram


def test_preview_shows_each_header_and_chunk_apart_however_stored() -> None:
    """-v shows one part per header and per chunk, also for runs stored whole."""
    from chatproto.wire.encode import split_frames

    body = MessageBody()
    body.add_wire(b"C3\nabcC2\nde", 5)  # a run, as the coalescing decoder gives it
    body.append(b"xyz")
    body.finish()
    assert body.preview_frames() == [b"C3\n", b"abc", b"C2\n", b"de", b"C3\n", b"xyz", b"C0\n"]
    assert body.read() == b"abcdexyz"
    # A preview cut inside a chunk or a header is shown as far as it goes.
    assert split_frames(b"C5\nab") == [b"C5\n", b"ab"]
    assert split_frames(b"C2\nabC9") == [b"C2\n", b"ab", b"C9"]
    assert split_frames(b"junk") == [b"junk"]


def test_framed_on_draw_is_the_framed_list_it_stands_for() -> None:
    """Index for index (and slice for slice) what framing every body at once gives."""
    head, bodies = b"FROM alice\n", (b"2\nhi", b"0\n", b"3\nyes")
    framed = [head + body for body in bodies]
    lazy = FramedOnDraw(head, bodies)
    assert len(lazy) == len(framed)
    assert [lazy[index] for index in range(len(lazy))] == framed
    assert lazy[-1] == framed[-1] and lazy[1:] == framed[1:]
    assert list(lazy) == framed
