"""Tests of the encoders (``chatproto/wire/encode.py``), reply constants and userid check."""

import pytest

from chatproto.wire.encode import (
    encode_chunked_body,
    encode_command,
    encode_from,
    encode_login,
    encode_message,
    encode_short_body,
    split_chunks,
)
from chatproto.wire.grammar import ERROR, OK, is_valid_userid

# -- encoders ---------------------------------------------------------------


def test_reply_constants() -> None:
    """The login replies are exactly ``OK\\n`` and ``ERROR\\n``."""
    assert (OK, ERROR) == (b"OK\n", b"ERROR\n")


def test_encode_login() -> None:
    """``encode_login`` writes the ``ME IS`` line."""
    assert encode_login(b"alice") == b"ME IS alice\n"


def test_encode_command_send() -> None:
    """``encode_command`` writes ``SEND`` with space-separated recipients."""
    assert encode_command([b"bob", b"carol"]) == b"SEND bob carol\n"


def test_encode_command_broadcast() -> None:
    """``encode_command(None)`` writes ``BROADCAST``."""
    assert encode_command(None) == b"BROADCAST\n"


def test_encode_command_refuses_no_recipient() -> None:
    """A ``SEND`` to nobody cannot be encoded."""
    with pytest.raises(ValueError):
        encode_command([])


def test_encode_from() -> None:
    """``encode_from`` writes the delivery's ``FROM`` line."""
    assert encode_from(b"alice") == b"FROM alice\n"


def test_encode_short_body() -> None:
    """A short body is its decimal length line and its bytes."""
    assert b"".join(encode_short_body(b"You suck!")) == b"9\nYou suck!"


def test_encode_short_body_empty() -> None:
    """An empty short body is the length line ``0``."""
    assert b"".join(encode_short_body(b"")) == b"0\n"


def test_encode_short_body_of_99_bytes() -> None:
    """A 99-byte body is still short."""
    assert b"".join(encode_short_body(b"x" * 99)) == b"99\n" + b"x" * 99


def test_encode_short_body_refuses_100_bytes() -> None:
    """A short body over 99 bytes cannot be encoded."""
    with pytest.raises(ValueError):
        encode_short_body(b"x" * 100)


def test_encode_chunked_body() -> None:
    """Chunks become ``C<n>`` frames ending with ``C0``."""
    assert b"".join(encode_chunked_body([b"abc", b"x" * 999])) == (
        b"C3\nabcC999\n" + b"x" * 999 + b"C0\n"
    )


def test_encode_chunked_body_with_no_chunks() -> None:
    """No chunks is the empty chunked body ``C0``."""
    assert encode_chunked_body([]) == [b"C0\n"]


@pytest.mark.parametrize("chunk", [b"", b"x" * 1000])
def test_encode_chunked_body_refuses_bad_chunk(chunk: bytes) -> None:
    """An empty chunk or one over 999 bytes cannot be encoded."""
    with pytest.raises(ValueError):
        encode_chunked_body([b"ok", chunk])


def test_split_chunks_default_size() -> None:
    """``split_chunks`` cuts at 999 bytes and keeps the remainder."""
    data = bytes(range(256)) * 8
    assert split_chunks(data) == [data[:999], data[999:1998], data[1998:]]


def test_split_chunks_custom_size() -> None:
    """``split_chunks`` cuts at the size it is given."""
    assert split_chunks(b"abcdefg", 3) == [b"abc", b"def", b"g"]


def test_split_chunks_empty() -> None:
    """Empty data gives no chunks."""
    assert split_chunks(b"") == []


@pytest.mark.parametrize("size", [0, 1000])
def test_split_chunks_refuses_bad_size(size: int) -> None:
    """A chunk size outside 1..999 is refused."""
    with pytest.raises(ValueError):
        split_chunks(b"abc", size)


def test_encode_message_short_when_it_fits() -> None:
    """``encode_message`` uses a short body for up to 99 bytes."""
    assert encode_message([b"bob"], b"x" * 99) == b"SEND bob\n99\n" + b"x" * 99


def test_encode_message_chunked_when_too_long() -> None:
    """``encode_message`` chunks a body over 99 bytes."""
    assert encode_message(None, b"x" * 100) == b"BROADCAST\nC100\n" + b"x" * 100 + b"C0\n"


def test_encode_message_chunked_on_request() -> None:
    """``chunked=True`` chunks even a short body."""
    assert encode_message([b"bob"], b"hi", chunked=True) == b"SEND bob\nC2\nhiC0\n"


def test_encode_message_short_on_request_refuses_long_body() -> None:
    """``chunked=False`` with a body over 99 bytes is refused."""
    with pytest.raises(ValueError):
        encode_message([b"bob"], b"x" * 100, chunked=False)


def test_is_valid_userid() -> None:
    """``is_valid_userid`` accepts 1-32 printable bytes and nothing else."""
    assert is_valid_userid(b"!~" * 16)
    assert not any(map(is_valid_userid, [b"", b"u" * 33, b"a b", b"a\xff"]))
