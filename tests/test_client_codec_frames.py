"""Tests of the client's sans-I/O decoder of server frames (PROTOCOL.md §2, §4, §6): bytes only.

Replies, deliveries, framing errors and the end of input, and datagrams.
"""

import pytest

from chatproto.limits import Limits
from chatproto.wire.client_codec import ClientDecoder, decode_server_datagram
from chatproto.wire.events import (
    NEED_DATA,
    BodyData,
    DeliveryStart,
    ErrorReply,
    MessageEnd,
    OkReply,
    Rejected,
    ServerEvent,
)
from chatproto.wire.grammar import ERROR, OK
from tests.client_codec_support import (
    DEFAULT,
    FATAL,
    SKIPPED,
    SMALL,
    _delivery,
    _feed_pieces,
    decode_kinds,
)
from tests.decoding import drain

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- replies (PROTOCOL §2) ----------------------------------------------------


def test_ok_is_an_ok_reply() -> None:
    """``OK\\n`` gives ``OkReply``."""
    assert decode_kinds(OK) == [OkReply()]


def test_error_is_an_error_reply() -> None:
    """``ERROR\\n`` gives ``ErrorReply``."""
    assert decode_kinds(ERROR) == [ErrorReply()]


def test_reply_with_crlf_is_accepted() -> None:
    """A ``\\r`` before a reply's ``\\n`` is tolerated."""
    assert decode_kinds(b"OK\r\nERROR\r\n") == [OkReply(), ErrorReply()]


def test_blank_lines_between_frames_are_ignored() -> None:
    """Blank lines between frames give no events."""
    assert decode_kinds(b"\n\r\nOK\n\nERROR\n") == [OkReply(), ErrorReply()]


def test_reply_without_newline_waits_for_more_data() -> None:
    """Without end of input, ``OK`` lacking its ``\\n`` is not reported yet."""
    assert decode_kinds(b"OK") == []


def test_reply_without_newline_at_eof_is_accepted() -> None:
    """``OK`` followed by end of input gives ``OkReply``."""
    assert decode_kinds(b"OK", eof=True) == [OkReply()]


@pytest.mark.parametrize("line", [b"ok", b"OKAY", b"ERR", b"HELLO", b"\xff\x00"])
def test_unknown_line_is_skipped_and_parsing_resumes(line: bytes) -> None:
    """A line that is no reply and no ``FROM`` is reported non-fatally and skipped."""
    assert decode_kinds(line + b"\nOK\n") == [SKIPPED, OkReply()]


def test_unknown_line_is_reported_with_its_bytes() -> None:
    """The skipped line is carried by the event, for the log."""
    events, _ = _feed_pieces([b"HELLO\n"], DEFAULT)
    assert events == [Rejected("unknown line", False, b"HELLO")]


# -- deliveries (PROTOCOL §4) ---------------------------------------------------


def test_short_delivery() -> None:
    """``FROM alice`` with a short body gives start, the body and end."""
    assert decode_kinds(b"FROM alice\n9\nYou suck!") == _delivery(b"alice", b"You suck!")


def test_empty_short_delivery_has_no_data() -> None:
    """A short body of length 0 gives start and end only."""
    assert decode_kinds(b"FROM alice\n0\n") == _delivery(b"alice")


def test_short_length_with_leading_zero_is_accepted() -> None:
    """``09`` is a length of nine."""
    assert decode_kinds(b"FROM a\n09\nYou suck!") == _delivery(b"a", b"You suck!")


def test_short_delivery_of_99_bytes() -> None:
    """The largest short body arrives as one piece."""
    body = bytes(range(99))
    assert decode_kinds(b"FROM a\n99\n" + body) == _delivery(b"a", body)


def test_body_is_binary() -> None:
    """Newlines, NUL and high bytes in a body are data, even when they look like frames."""
    body = b"\nOK\n\x00\xff"
    assert decode_kinds(b"FROM a\n6\n" + body) == _delivery(b"a", body)


def test_next_frame_starts_right_after_the_body() -> None:
    """There is no newline after a body: the next frame follows at once."""
    assert decode_kinds(b"FROM a\n2\nhiFROM b\n2\nyo") == [
        *_delivery(b"a", b"hi"),
        *_delivery(b"b", b"yo"),
    ]


def test_chunked_delivery_gives_one_piece_per_chunk() -> None:
    """Chunks of varying sizes stream out one ``BodyData`` each."""
    first, second = b"x" * 999, b"yz"
    data = b"FROM bob\nC999\n" + first + b"C2\n" + second + b"C0\n"
    assert decode_kinds(data) == _delivery(b"bob", first, second)


@pytest.mark.parametrize("end", [b"C0", b"C00", b"C000"])
def test_zero_chunk_with_any_zeros_ends_the_delivery(end: bytes) -> None:
    """``C0``, ``C00`` and ``C000`` all end a chunked body."""
    assert decode_kinds(b"FROM a\nC1\nx" + end + b"\n") == _delivery(b"a", b"x")


def test_empty_chunked_delivery() -> None:
    """``C0`` at once is a complete, empty chunked delivery."""
    assert decode_kinds(b"FROM a\nC0\n") == _delivery(b"a")


def test_blank_lines_between_chunk_frames_are_ignored() -> None:
    """Blank lines before a length line or chunk header are skipped."""
    data = b"FROM a\n\nC1\nx\r\nC0\n"
    assert decode_kinds(data) == _delivery(b"a", b"x")


def test_sender_may_use_every_printable_byte() -> None:
    """A ``FROM`` line names any valid userid, slashes and dots included."""
    assert decode_kinds(b"FROM ../x\\y\n1\n!") == _delivery(b"../x\\y", b"!")


def test_mid_delivery_flag_follows_the_frame() -> None:
    """``is_mid_delivery`` is true from the ``FROM`` line until the body's end."""
    decoder = ClientDecoder()
    decoder.feed(b"FROM a\nC1\n")
    assert decoder.next_event() == DeliveryStart(b"a")
    assert decoder.is_mid_delivery
    decoder.feed(b"xC0\n")
    assert decoder.next_event() == BodyData(b"x")
    assert decoder.next_event() == MessageEnd()
    assert not decoder.is_mid_delivery


# -- framing errors -------------------------------------------------------------


@pytest.mark.parametrize("sender", [b"", b"a b", b"a\x00", b"u" * 33])
def test_from_with_invalid_sender_is_fatal(sender: bytes) -> None:
    """A ``FROM`` line without a valid userid cannot be skipped: its body would follow."""
    assert decode_kinds(b"FROM " + sender + b"\n1\nx") == [FATAL]


@pytest.mark.parametrize("line", [b"100", b"-1", b"x", b"C1000", b"C-1", b"C 1", b"9 "])
def test_bad_length_line_is_fatal(line: bytes) -> None:
    """A first length line that is neither 0..99 nor a chunk header is fatal."""
    assert decode_kinds(b"FROM a\n" + line + b"\n") == [FATAL]


@pytest.mark.parametrize("line", [b"5", b"C1000", b"Cx", b"OK"])
def test_bad_chunk_header_after_a_chunk_is_fatal(line: bytes) -> None:
    """After a chunk only another chunk header may follow."""
    assert decode_kinds(b"FROM a\nC1\nx" + line + b"\n") == [
        DeliveryStart(b"a"),
        BodyData(b"x"),
        FATAL,
    ]


def test_short_body_over_the_limit_is_fatal_at_its_length_line() -> None:
    """A short body larger than ``max_message_bytes`` is refused before its bytes arrive."""
    limits = Limits(max_message_bytes=5)
    assert decode_kinds(b"FROM a\n6\n", limits) == [FATAL]


def test_body_of_exactly_the_limit_is_accepted() -> None:
    """A chunked body of exactly ``max_message_bytes`` is accepted."""
    limits = Limits(max_message_bytes=5)
    data = b"FROM a\nC3\nabcC2\ndeC0\n"
    assert decode_kinds(data, limits) == _delivery(b"a", b"abc", b"de")


def test_chunked_body_over_the_limit_is_fatal_at_the_chunk_header() -> None:
    """The chunk that would pass the limit is refused at its header."""
    limits = Limits(max_message_bytes=5)
    assert decode_kinds(b"FROM a\nC3\nabcC3\ndef", limits) == [
        DeliveryStart(b"a"),
        BodyData(b"abc"),
        FATAL,
    ]


def test_default_limit_is_the_servers_64_mib() -> None:
    """Without limits, a body may reach 64 MiB and the chunk that passes it is fatal."""
    decoder = ClientDecoder()
    decoder.feed(b"FROM a\n")
    frame = b"C999\n" + b"x" * 999
    full_chunks, rest = divmod(64 * 1024 * 1024, 999)
    for _ in range(full_chunks):
        decoder.feed(frame)
        while decoder.next_event() is not NEED_DATA:
            pass
    decoder.feed(b"C%d\n" % rest + b"x" * rest + b"C1\n")
    events: list[ServerEvent] = []
    drain(decoder, events)
    assert events == [BodyData(b"x" * rest), Rejected("message too large", True, b"C1")]


def test_line_over_the_limit_is_fatal_without_its_newline() -> None:
    """A line longer than ``max_line_bytes`` is fatal before its end arrives."""
    assert decode_kinds(b"X" * 18, SMALL) == [FATAL]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    """A line of exactly ``max_line_bytes`` is read (here: an unknown one, skipped)."""
    assert decode_kinds(b"X" * 16 + b"\nOK\n", SMALL) == [SKIPPED, OkReply()]


def test_fatal_error_repeats_for_ever_and_ignores_new_bytes() -> None:
    """After a fatal event, every call returns it again, whatever is fed."""
    decoder = ClientDecoder()
    decoder.feed(b"FROM a\nzz\n")
    failure = decoder.next_event()
    assert failure == Rejected("bad length line", True, b"zz")
    decoder.feed(b"OK\n")
    assert [decoder.next_event() for _ in range(3)] == [failure] * 3


def test_fatal_error_releases_the_buffer() -> None:
    """A fatal event drops what was buffered."""
    decoder = ClientDecoder()
    decoder.feed(b"FROM a\nzz\n" + b"x" * 500)
    decoder.next_event()
    assert decoder.buffered_bytes == 0


@pytest.mark.parametrize(
    "data",
    [b"FROM a", b"FROM a\n", b"FROM a\n5\nab", b"FROM a\nC3\nab", b"FROM a\nC3\nabc"],
    ids=["from-line", "before-length", "short-body", "in-chunk", "before-end"],
)
def test_eof_mid_delivery_is_fatal(data: bytes) -> None:
    """End of input inside a delivery is a fatal ``eof mid-message``."""
    events, _ = _feed_pieces([data], DEFAULT, eof=True)
    assert events[-1] == Rejected("eof mid-message", True)


def test_eof_at_frame_boundary_adds_nothing() -> None:
    """End of input after a complete frame gives no more events."""
    assert decode_kinds(b"FROM a\n1\nx", eof=True) == _delivery(b"a", b"x")


def test_feed_after_eof_is_a_caller_error() -> None:
    """Feeding after ``eof()`` raises ``RuntimeError``."""
    decoder = ClientDecoder()
    decoder.eof()
    with pytest.raises(RuntimeError):
        decoder.feed(b"OK\n")


# -- datagrams (PROTOCOL §6) --------------------------------------------------


def test_datagram_reply() -> None:
    """A datagram ``OK\\n`` is one ``OkReply``."""
    assert decode_server_datagram(b"OK\n") == [OkReply()]


def test_datagram_delivery() -> None:
    """A datagram holds one whole short delivery."""
    assert decode_server_datagram(b"FROM alice\n9\nYou suck!") == _delivery(b"alice", b"You suck!")


def test_truncated_datagram_ends_with_a_fatal_event() -> None:
    """A datagram that stops inside its body ends with ``eof mid-message``."""
    assert decode_server_datagram(b"FROM a\n5\nab") == [
        DeliveryStart(b"a"),
        Rejected("eof mid-message", True),
    ]
