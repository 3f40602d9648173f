"""Tests of ``ReceiveBuffer`` (``chatproto/wire/buffer.py``): lines and sized reads."""

import pytest

from chatproto.wire.buffer import LINE_TOO_LONG, ReceiveBuffer

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- ReceiveBuffer ----------------------------------------------------------


def test_receive_buffer_take_line_across_feeds() -> None:
    """A line split over several feeds is returned once its ``\\n`` arrived."""
    buffer = ReceiveBuffer()
    buffer.feed(b"ab")
    assert buffer.take_line(16) is None
    buffer.feed(b"c\r")
    assert buffer.take_line(16) is None
    buffer.feed(b"\nde")
    assert buffer.take_line(16) == b"abc"
    assert buffer.take_line(16) is None
    assert len(buffer) == 2


def test_receive_buffer_take_line_keeps_inner_cr() -> None:
    """Only one ``\\r`` right before the ``\\n`` is dropped."""
    buffer = ReceiveBuffer()
    buffer.feed(b"a\rb\r\r\n")
    assert buffer.take_line(16) == b"a\rb\r"


def test_receive_buffer_take_line_of_exactly_max_line() -> None:
    """A line of exactly ``max_line`` bytes is returned, with or without ``\\r``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 16 + b"\r\n" + b"y" * 16 + b"\n")
    assert buffer.take_line(16) == b"x" * 16
    assert buffer.take_line(16) == b"y" * 16


def test_receive_buffer_line_over_max_line_is_too_long() -> None:
    """A complete line one byte over ``max_line`` is ``LINE_TOO_LONG``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 17 + b"\n")
    assert buffer.take_line(16) is LINE_TOO_LONG


def test_receive_buffer_too_long_decided_without_newline() -> None:
    """``max_line + 2`` bytes without ``\\n`` are ``LINE_TOO_LONG`` before the newline comes."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 17)
    assert buffer.take_line(16) is None
    buffer.feed(b"x")
    assert buffer.take_line(16) is LINE_TOO_LONG


def test_receive_buffer_max_line_and_cr_waits_for_newline() -> None:
    """``max_line`` bytes and a ``\\r`` may still be a valid line, so it waits."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 16 + b"\r")
    assert buffer.take_line(16) is None
    buffer.feed(b"\n")
    assert buffer.take_line(16) == b"x" * 16


def test_receive_buffer_take_exact_size() -> None:
    """``take`` returns ``None`` until ``size`` bytes are buffered, then exactly those."""
    buffer = ReceiveBuffer()
    buffer.feed(b"abc")
    assert buffer.take(5) is None
    buffer.feed(b"de\nf")
    assert buffer.take(5) == b"abcde"
    assert buffer.take(0) == b""
    assert buffer.take_line(16) == b""
    assert len(buffer) == 1


def test_receive_buffer_take_skips_newlines_in_data() -> None:
    """A newline consumed by ``take`` is not found by the next ``take_line``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"a\nbc\n")
    assert buffer.take(3) == b"a\nb"
    assert buffer.take_line(16) == b"c"


def test_receive_buffer_take_rest_drops_trailing_cr() -> None:
    """``take_rest`` returns everything left, less one trailing ``\\r``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"ME IS al")
    buffer.feed(b"ice\r")
    assert buffer.take_rest(16) == b"ME IS alice"
    assert len(buffer) == 0


def test_receive_buffer_take_rest_over_max_line_is_too_long() -> None:
    """``take_rest`` on more than ``max_line`` bytes is ``LINE_TOO_LONG``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 17)
    assert buffer.take_rest(16) is LINE_TOO_LONG


def test_consumed_counts_from_the_start_across_feeds() -> None:
    """``consumed`` is a stream offset: it keeps counting when consumed bytes are dropped."""
    buffer = ReceiveBuffer()
    buffer.feed(b"ab\ncd")
    assert buffer.take_line(10) == b"ab" and buffer.consumed == 3
    buffer.feed(b"\nef")
    assert buffer.take_line(10) == b"cd" and buffer.consumed == 6
    assert buffer.take(2) == b"ef" and buffer.consumed == 8
