"""Codec tests, PROTOCOL.md §3: short and chunked bodies, a repeated command line."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.events import BodyData, Event, MessageEnd, Rejected
from tests.codec_support import (
    DEFAULT,
    REFUSED,
    TRAILER,
    TRAILER_EVENT,
    _broadcast,
    _broadcast_start,
    _feed_pieces,
    _kinds,
    _send,
    _send_start,
    decode_all_ways,
    decode_kinds,
)

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- PROTOCOL §3: short bodies ----------------------------------------------


@pytest.mark.parametrize("length", [b"0", b"00"])
def test_empty_short_body_is_a_message(length: bytes) -> None:
    """A short body of length 0 is a complete, empty message, reported at its length line."""
    assert decode_kinds(b"SEND bob\n" + length + b"\n" + TRAILER) == [
        _send(b"bob", body=b""),
        TRAILER_EVENT,
    ]


@pytest.mark.parametrize("length", [b"0", b"00"])
def test_empty_short_broadcast_is_a_message(length: bytes) -> None:
    """An empty short ``BROADCAST`` is one ``ShortMessage`` with an empty body."""
    assert decode_kinds(b"BROADCAST\n" + length + b"\n" + TRAILER) == [
        _broadcast(b""),
        TRAILER_EVENT,
    ]


def test_short_length_with_leading_zero_is_accepted() -> None:
    """``09`` is the length 9."""
    assert decode_kinds(b"SEND bob\n09\nYou suck!") == [_send(b"bob", body=b"You suck!")]


def test_every_short_length_is_accepted() -> None:
    """Every short length 0..99 frames exactly that many bytes.

    Each is written in plain decimal, and 0..9 also with a leading zero.
    """
    lengths = [b"%d" % n for n in range(100)] + [b"0%d" % n for n in range(10)]
    for length in lengths:
        body = bytes(range(int(length)))
        data = b"SEND bob\n" + length + b"\n" + body + TRAILER
        events, decoder = _feed_pieces([data], DEFAULT, eof=True)
        assert events == [_send(b"bob", body=body), TRAILER_EVENT], length
        assert decoder.buffered_bytes == 0


def test_short_body_of_99_bytes_is_accepted() -> None:
    """The largest short body, 99 bytes, is one ``ShortMessage``."""
    body = bytes(range(99))
    assert decode_kinds(b"SEND bob\n99\n" + body) == [_send(b"bob", body=body)]


def test_short_body_is_binary() -> None:
    """A short body may hold ``\\n``, ``\\r``, NUL and high bytes."""
    body = b"a\nb\x00c\r\n\xff"
    assert decode_kinds(b"SEND bob\n8\n" + body) == [_send(b"bob", body=body)]


def test_short_body_may_hold_every_byte_value() -> None:
    """Short bodies carry all 256 byte values unchanged."""
    everything = bytes(range(256))
    bodies = [everything[i : i + 99] for i in range(0, 256, 99)]
    data = b"".join(b"BROADCAST\n%d\n" % len(body) + body for body in bodies)
    assert decode_kinds(data) == [_broadcast(body) for body in bodies]


def test_newline_right_after_length_line_belongs_to_the_body() -> None:
    """The body starts right after the length line, so a ``\\n`` there is body data."""
    assert decode_kinds(b"SEND bob\n3\n\nab") == [_send(b"bob", body=b"\nab")]


def test_body_that_looks_like_a_command_is_data() -> None:
    """Command text inside a body is not parsed as a command."""
    assert decode_kinds(b"SEND bob\n10\nME IS eve\n") == [_send(b"bob", body=b"ME IS eve\n")]


def test_refused_body_that_looks_like_a_command_is_skipped() -> None:
    """The body of a refused message is framed and skipped, never parsed as commands."""
    assert decode_kinds(b"SEND\n10\nME IS eve\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


def test_next_command_starts_right_after_the_body() -> None:
    """No newline follows a body: the next command starts at its next byte."""
    assert decode_kinds(b"SEND bob\n2\nhi" + TRAILER) == [
        _send(b"bob", body=b"hi"),
        TRAILER_EVENT,
    ]


# -- PROTOCOL §3: chunked bodies --------------------------------------------


def test_chunked_body_with_varying_chunk_sizes() -> None:
    """Each chunk, whatever its size, is one ``BodyData``."""
    chunks = [b"abc", b"x", b"\n" * 5, b"y" * 999, b"z" * 12]
    data = b"SEND bob\n" + b"".join(b"C%d\n" % len(c) + c for c in chunks) + b"C0\n"
    assert decode_kinds(data) == [
        _send_start(b"bob"),
        *[BodyData(c) for c in chunks],
        MessageEnd(),
    ]


def test_chunk_size_with_leading_zeros_is_accepted() -> None:
    """``C007`` is a chunk of 7 bytes."""
    assert decode_kinds(b"SEND bob\nC007\nabcdefgC0\n") == [
        _send_start(b"bob"),
        BodyData(b"abcdefg"),
        MessageEnd(),
    ]


@pytest.mark.parametrize("end", [b"C0", b"C00", b"C000"])
def test_zero_chunk_with_any_zeros_ends_the_body(end: bytes) -> None:
    """``C0``, ``C00`` and ``C000`` all end a chunked body."""
    assert decode_kinds(b"SEND bob\nC2\nhi" + end + b"\n" + TRAILER) == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_empty_chunked_body_is_a_message() -> None:
    """``C0`` right after the command line is a valid, empty chunked message."""
    assert decode_kinds(b"BROADCAST\nC0\n" + TRAILER) == [
        _broadcast_start(),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_chunk_data_is_binary() -> None:
    """A chunk may hold bytes that look like chunk headers and newlines."""
    chunk = b"\nC0\n\x00\xff"
    assert decode_kinds(b"SEND bob\nC6\n" + chunk + b"C0\n") == [
        _send_start(b"bob"),
        BodyData(chunk),
        MessageEnd(),
    ]


# -- PROTOCOL §3: a repeated command line parses as if new ------------------

#: Limits under which ``SEND a b c d e`` names too many recipients.
REPEAT_LIMITS = Limits(max_recipients=4)
#: Whole frames, keyed by name. The decoder reuses the parse of the last
#: ``SEND``/``BROADCAST`` line when the next command line is byte-identical, so
#: several frames share a command line (short and chunked, with ``\r\n``) and
#: others differ from it only slightly (a prefix, a tab, a trailing space).
REPEAT_FRAMES = {
    "accepted": b"SEND bob carol bob\n2\nhi",
    "accepted-crlf": b"SEND bob carol bob\r\n\n1\nx",
    "accepted-chunked": b"SEND bob carol bob\nC2\nhiC0\n",
    "accepted-prefix": b"SEND bob carol\n0\n",
    "accepted-trailing-space": b"SEND bob carol bob \n1\ny",
    "refused-tab": b"SEND bob carol bob\t\n2\nhi",
    "refused-name": b"SEND bob b\x00b\n2\nhi",
    "refused-name-chunked": b"SEND bob b\x00b\nC1\nxC0\n",
    "too-many": b"SEND a b c d e\n3\nabc",
    "four": b"SEND a b c d\n3\nabc",
    "no-recipient": b"SEND \n0\n",
    "broadcast": b"BROADCAST\n0\n",
    "broadcast-chunked": b"BROADCAST\nC1\nzC0\n",
    "broadcast-argument": b"BROADCAST bob\n1\nz",
    "login": b"ME IS bob\n",
    "bad-login": b"ME IS b b\n",
    "unknown-tab": b"SEND\tbob carol bob\n",
    "unknown-leading-space": b" SEND bob carol bob\n",
}


def _fresh_events(names: list[str]) -> list[Event]:
    """The events of each named frame decoded by a decoder of its own, one after another."""
    events: list[Event] = []
    for name in names:
        frame_events, decoder = _feed_pieces([REPEAT_FRAMES[name]], REPEAT_LIMITS)
        assert not decoder.is_mid_message and decoder.buffered_bytes == 0, name
        events += frame_events
    return events


@pytest.mark.parametrize(
    "names",
    [
        ["accepted", "accepted"],
        ["accepted", "accepted", "accepted"],
        ["refused-name", "refused-name"],
        ["too-many", "too-many"],
        ["no-recipient", "no-recipient"],
        ["broadcast", "broadcast"],
        ["broadcast-argument", "broadcast-argument"],
        ["accepted", "refused-name", "accepted"],
        ["refused-name", "accepted", "refused-name"],
        ["too-many", "four", "too-many"],
        ["four", "too-many", "four"],
        ["broadcast", "broadcast-argument", "broadcast"],
        ["broadcast-argument", "broadcast", "broadcast-argument"],
        ["accepted", "accepted-prefix", "accepted"],
        ["accepted", "accepted-trailing-space", "accepted"],
        ["accepted", "refused-tab", "accepted"],
        ["refused-tab", "accepted", "refused-tab"],
        ["accepted", "accepted-crlf", "accepted-chunked", "accepted"],
        ["refused-name", "refused-name-chunked", "refused-name"],
        ["broadcast-chunked", "broadcast", "broadcast-chunked"],
        ["accepted", "login", "accepted"],
        ["refused-name", "bad-login", "refused-name"],
        ["accepted", "unknown-tab", "accepted"],
        ["refused-name", "unknown-tab", "refused-name"],
        ["accepted", "unknown-leading-space", "accepted"],
    ],
    ids="+".join,
)
def test_repeated_command_line_gives_the_events_of_a_fresh_decoder(names: list[str]) -> None:
    """A repeated command line gives exactly the events of a fresh decoder.

    The decoder reuses the parse of a byte-identical ``SEND``/``BROADCAST`` line:
    the same accepted or refused line twice in a row, or with another line
    between, must give the events each frame gives on a decoder of its own.
    """
    data = b"".join(REPEAT_FRAMES[name] for name in names)
    assert decode_all_ways(data, REPEAT_LIMITS) == _fresh_events(names)


def test_repeated_refused_and_accepted_lines_give_the_right_events() -> None:
    """A refused line, an accepted one and the refused one again, spelled out."""
    data = b"SEND a b c d e\n2\nhiSEND a b\n2\nhiSEND a b c d e\n2\nhiSEND a b\n2\nhi"
    accepted = _send(b"a", b"b", body=b"hi")
    events = decode_all_ways(data, REPEAT_LIMITS)
    assert _kinds(events) == [REFUSED, accepted, REFUSED, accepted]
    for refusal in events[0::2]:
        assert isinstance(refusal, Rejected)
        assert refusal.line == b"SEND a b c d e"


@settings(max_examples=150)
@given(st.lists(st.sampled_from(sorted(REPEAT_FRAMES)), max_size=8), st.data())
def test_property_command_line_reuse_never_changes_events(
    names: list[str], data: st.DataObject
) -> None:
    """Any sequence of frames, cut anywhere, gives the events of fresh decoders."""
    raw = b"".join(REPEAT_FRAMES[name] for name in names)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[i:j] for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    events, _ = _feed_pieces(pieces, REPEAT_LIMITS, eof=True)
    assert events == _fresh_events(names)
