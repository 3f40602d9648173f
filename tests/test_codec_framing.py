"""Codec tests, PROTOCOL.md §3: broken framing is fatal; and the end of input."""

import pytest

from chatproto.limits import Limits
from chatproto.wire.codec import Decoder
from chatproto.wire.events import BodyData, Event, Login, MessageEnd, Rejected
from tests.codec_support import (
    DEFAULT,
    FATAL,
    REFUSED,
    SMALL_LINES,
    TRAILER,
    TRAILER_EVENT,
    _broadcast,
    _broadcast_start,
    _kinds,
    _send,
    _send_start,
    decode_all_ways,
    decode_kinds,
)

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- PROTOCOL §3: broken framing is fatal -----------------------------------


#: Length lines that are neither a short length 0..99 nor a chunk header: too many
#: digits, signs, spaces, letters, control bytes, and digits outside ASCII (superscript
#: two in Latin-1 and UTF-8, Arabic-Indic three, fullwidth five), which only a Unicode
#: digit test would take.
BAD_LENGTH_LINES = [
    b"100",
    b"007",
    b"000",
    b"099",
    b"-1",
    b"+5",
    b"-0",
    b"x",
    b"5 ",
    b" 5",
    b"\t5",
    b"5\t",
    b"1 0",
    b"5\r\r",
    b"5\x00",
    b"\x005",
    b"1a",
    b"0x",
    b"\xb2",
    b"\xc2\xb2",
    b"\xd9\xa3",
    b"\xef\xbc\x95",
    b"C1000",
    b"C-1",
    b"c5",
    b"C 5",
]


@pytest.mark.parametrize("line", BAD_LENGTH_LINES)
def test_bad_length_line_is_fatal(line: bytes) -> None:
    """A length line that is neither 0..99 nor a valid chunk header ends the stream."""
    assert decode_kinds(b"SEND bob\n" + line + b"\n" + TRAILER) == [FATAL]


@pytest.mark.parametrize("line", BAD_LENGTH_LINES)
def test_bad_length_line_of_broadcast_is_fatal(line: bytes) -> None:
    """The length line of a ``BROADCAST`` follows the same rule; the failure shows it."""
    events = decode_all_ways(b"BROADCAST\n" + line + b"\n" + TRAILER)
    assert _kinds(events) == [FATAL]
    assert isinstance(events[0], Rejected)
    assert events[0].line == line.removesuffix(b"\r")


@pytest.mark.parametrize(
    "line", [b"C1000", b"C-1", b"C+5", b"c5", b"C 5", b"C", b"Cx", b"5", b"C5 "]
)
def test_bad_chunk_header_after_a_chunk_is_fatal(line: bytes) -> None:
    """A chunk header with a sign, letters, spaces or over 999 ends the stream."""
    assert decode_kinds(b"SEND bob\nC2\nhi" + line + b"\n" + TRAILER) == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        FATAL,
    ]


@pytest.mark.parametrize("line", [b"100", b"007", b"-1", b"+5", b" 5", b"\xd9\xa3"])
def test_bad_length_line_of_refused_send_gives_one_fatal_rejection(line: bytes) -> None:
    """A refused ``SEND`` whose framing breaks gives the fatal rejection only."""
    assert decode_kinds(b"SEND\n" + line + b"\n" + TRAILER) == [FATAL]


def test_line_over_max_line_bytes_is_fatal() -> None:
    """A command line one byte over the line limit ends the stream."""
    assert decode_kinds(b"ME IS " + b"u" * 11 + b"\n" + TRAILER, SMALL_LINES) == [FATAL]


def test_line_over_max_line_bytes_is_fatal_without_newline() -> None:
    """A line is too long as soon as more bytes arrived than the limit allows, newline or not."""
    assert decode_kinds(b"x" * 18, SMALL_LINES) == [FATAL]


def test_line_of_exactly_max_line_bytes_is_accepted() -> None:
    """A line of exactly ``max_line_bytes`` bytes plus ``\\n`` is fine."""
    user = b"u" * 10
    assert decode_kinds(b"ME IS " + user + b"\n", SMALL_LINES) == [Login(user)]


def test_line_of_exactly_max_line_bytes_with_crlf_is_accepted() -> None:
    """The ``\\r\\n`` ending a line does not count toward ``max_line_bytes``."""
    user = b"u" * 10
    assert decode_kinds(b"ME IS " + user + b"\r\n", SMALL_LINES) == [Login(user)]


def test_send_line_over_max_line_bytes_is_fatal() -> None:
    """A ``SEND`` line over the line limit is an over-long line, not a refused message."""
    assert decode_kinds(b"SEND bob carol dave\n2\nhi", SMALL_LINES) == [FATAL]


def test_length_line_over_max_line_bytes_is_fatal() -> None:
    """An over-long length line ends the stream."""
    assert decode_kinds(b"SEND bob\n" + b"0" * 17 + b"\n", SMALL_LINES) == [FATAL]


def test_many_blank_lines_are_not_one_long_line() -> None:
    """Many blank lines in a row are each a short line, not one long one."""
    assert decode_kinds(b"\n" * 40 + TRAILER, SMALL_LINES) == [TRAILER_EVENT]


def test_short_body_over_max_message_bytes_is_fatal_at_its_length_line() -> None:
    """A short body over the message limit is refused at its length, before its data."""
    assert decode_kinds(b"SEND bob\n11\n", Limits(max_message_bytes=10)) == [FATAL]


def test_short_body_of_exactly_max_message_bytes_is_accepted() -> None:
    """A short body of exactly ``max_message_bytes`` bytes is fine."""
    assert decode_kinds(b"SEND bob\n10\n0123456789", Limits(max_message_bytes=10)) == [
        _send(b"bob", body=b"0123456789")
    ]


def test_message_limit_applies_to_each_message_alone() -> None:
    """Messages each within ``max_message_bytes`` pass, however many bytes they add up to."""
    data = (
        b"SEND bob\n10\n0123456789"
        + b"SEND bob\nC6\nabcdefC4\nghijC0\n"
        + b"SEND bob\n10\n0123456789"
        + b"BROADCAST\n10\n0123456789"
    )
    assert decode_kinds(data, Limits(max_message_bytes=10)) == [
        _send(b"bob", body=b"0123456789"),
        _send_start(b"bob"),
        BodyData(b"abcdef"),
        BodyData(b"ghij"),
        MessageEnd(),
        _send(b"bob", body=b"0123456789"),
        _broadcast(b"0123456789"),
    ]


def test_refused_short_body_over_max_message_bytes_is_fatal() -> None:
    """A refused message over the message limit gives the fatal rejection only."""
    assert decode_kinds(b"SEND\n11\n" + TRAILER, Limits(max_message_bytes=10)) == [FATAL]


def test_chunked_body_over_max_message_bytes_is_fatal_at_the_chunk_header() -> None:
    """The chunk header that takes a message over the limit is fatal before its data."""
    assert decode_kinds(b"SEND bob\nC6\nabcdefC5\n", Limits(max_message_bytes=10)) == [
        _send_start(b"bob"),
        BodyData(b"abcdef"),
        FATAL,
    ]


def test_first_chunk_over_max_message_bytes_is_fatal() -> None:
    """A first chunk larger than the message limit is fatal at its header."""
    assert decode_kinds(b"SEND bob\nC11\n", Limits(max_message_bytes=10)) == [FATAL]


def test_chunked_body_of_exactly_max_message_bytes_is_accepted() -> None:
    """Chunks adding up to exactly ``max_message_bytes`` are fine."""
    assert decode_kinds(b"SEND bob\nC6\nabcdefC4\nghijC0\n", Limits(max_message_bytes=10)) == [
        _send_start(b"bob"),
        BodyData(b"abcdef"),
        BodyData(b"ghij"),
        MessageEnd(),
    ]


def test_fatal_rejection_repeats_for_ever() -> None:
    """After a fatal ``Rejected`` every ``next_event`` returns it, even after more data."""
    decoder = Decoder(DEFAULT)
    decoder.feed(b"SEND bob\n100\n")
    failure = decoder.next_event()
    assert isinstance(failure, Rejected) and failure.fatal
    assert decoder.next_event() == failure
    decoder.feed(TRAILER)
    assert decoder.next_event() == failure
    decoder.eof()
    assert decoder.next_event() == failure


def test_fatal_rejection_releases_the_buffer() -> None:
    """After a fatal ``Rejected`` no received bytes are kept, whatever is fed."""
    decoder = Decoder(DEFAULT)
    decoder.feed(b"SEND bob\nC1000\n" + b"x" * 500)
    assert isinstance(decoder.next_event(), Rejected)
    decoder.feed(b"y" * 500)
    assert decoder.buffered_bytes == 0


# -- end of input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "before"),
    [
        (b"SEND bob", []),
        (b"SEND bob\n", []),
        (b"SEND bob\n\n", []),
        (b"SEND bob\n9", []),
        (b"SEND bob\n0", []),
        (b"SEND bob\n9\n", []),
        (b"SEND bob\n9\nYou", []),
        (b"SEND bob\n99\n" + b"x" * 98, []),
        (b"BROADCAST\n2\nh", []),
        (b"SEND\n2\nh", []),
        (b"SEND\n2\n", []),
        (b"BROADCAST x\n5\nab", []),
        (b"BROADCAST\nC5\nabc", [_broadcast_start()]),
        (b"BROADCAST\nC5\nabcde", [_broadcast_start(), BodyData(b"abcde")]),
        (b"BROADCAST\nC5\nabcdeC0", [_broadcast_start(), BodyData(b"abcde")]),
        (b"ME IS a\nSEND bob\n2\nh", [Login(b"a")]),
        (b"SEND bob\n2\nhiSEND bob\n2\nh", [_send(b"bob", body=b"hi")]),
    ],
)
def test_eof_mid_message_is_fatal(data: bytes, before: list[Event]) -> None:
    """End of input before a message's last byte gives ``Rejected("eof mid-message")``.

    Inside a short body nothing of the message was reported before the failure.
    """
    events = decode_all_ways(data, eof=True)
    assert events[:-1] == before
    failure = events[-1]
    assert isinstance(failure, Rejected)
    assert (failure.reason, failure.fatal) == ("eof mid-message", True)


def test_eof_at_command_boundary_adds_nothing() -> None:
    """End of input right after a complete message gives no further event."""
    assert decode_kinds(b"SEND bob\n2\nhi", eof=True) == [_send(b"bob", body=b"hi")]


def test_eof_right_after_empty_short_body_adds_nothing() -> None:
    """A length line ``0`` completes the message, so end of input after it is clean."""
    assert decode_kinds(b"SEND bob\n0\n", eof=True) == [_send(b"bob", body=b"")]


def test_eof_after_refused_short_message_adds_nothing() -> None:
    """End of input right after a refused message's body gives only its refusal."""
    assert decode_kinds(b"SEND\n2\nhi", eof=True) == [REFUSED]


def test_eof_after_partial_unknown_command_is_refused() -> None:
    """A last line without ``\\n`` that is no command is refused, not fatal."""
    assert decode_kinds(b"HEL", eof=True) == [REFUSED]


def test_feed_after_eof_is_a_caller_error() -> None:
    """Feeding after ``eof()`` raises, since it is the caller's bug, not the peer's."""
    decoder = Decoder(DEFAULT)
    decoder.eof()
    with pytest.raises(RuntimeError):
        decoder.feed(b"x")
