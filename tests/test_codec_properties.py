"""Property tests of the sans-I/O codec: random valid frames, random split points and noise."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.codec import Decoder, decode_datagram
from chatproto.wire.encode import (
    encode_chunked_body,
    encode_command,
    encode_login,
    encode_short_body,
)
from chatproto.wire.events import (
    BodyData,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
)
from tests.codec_support import (
    DEFAULT,
    EVENT_TYPES,
    FATAL,
    TRAILER,
    TRAILER_EVENT,
    _assert_well_formed,
    _feed_pieces,
    _kinds,
    _send,
    _send_start,
)
from tests.decoding import cut_at, drain, streams_of

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- property tests ---------------------------------------------------------

_userids = st.binary(min_size=1, max_size=32).map(
    lambda raw: bytes(0x21 + byte % 94 for byte in raw)
)
_line_end = st.sampled_from([b"\n", b"\r\n"])
_blank_lines = st.lists(_line_end, max_size=2).map(b"".join)


@st.composite
def _frames(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """One random valid frame (built with the encoders), with blank lines and ``\\r``."""

    def line(raw: bytes) -> bytes:
        return raw[:-1] + draw(_line_end)

    prefix = draw(_blank_lines)
    if draw(st.booleans()):
        user = draw(_userids)
        return prefix + line(encode_login(user)), [Login(user)]
    if draw(st.booleans()):
        recipients = None
    else:
        recipients = draw(st.lists(_userids, min_size=1, max_size=4))
    command = encode_command(recipients)
    distinct = None if recipients is None else tuple(dict.fromkeys(recipients))
    if draw(st.booleans()):
        body = draw(st.binary(max_size=99))
        length_line, *data = encode_short_body(body)
        frames = line(command) + draw(_blank_lines) + line(length_line) + b"".join(data)
        return prefix + frames, [ShortMessage(distinct, body, command[:-1])]
    sizes = draw(st.lists(st.integers(1, 999), max_size=3))
    chunks = [draw(st.binary(min_size=size, max_size=size)) for size in sizes]
    encoded = encode_chunked_body(chunks)
    frames = line(command)
    for header, chunk in zip(encoded[0::2], [*encoded[1::2], b""], strict=True):
        frames += draw(_blank_lines) + line(header) + chunk
    start = MessageStart(distinct, command[:-1])
    return prefix + frames, [start, *[BodyData(chunk) for chunk in chunks], MessageEnd()]


_streams = streams_of(_frames())


@settings(max_examples=150)
@given(_streams)
def test_property_valid_frames_decode_to_expected_events(
    stream: tuple[bytes, list[Event]],
) -> None:
    """Valid frames built with the encoders decode back to the events they encode."""
    data, expected = stream
    events, decoder = _feed_pieces([data], DEFAULT, eof=True)
    assert events == expected
    assert decoder.buffered_bytes == 0


@settings(max_examples=150)
@given(_streams, st.data())
def test_property_random_split_points_give_identical_events(
    stream: tuple[bytes, list[Event]], data: st.DataObject
) -> None:
    """Valid frames fed in pieces cut at random points decode to the same events."""
    raw, expected = stream
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    events, _ = _feed_pieces(cut_at(raw, cuts), DEFAULT, eof=True)
    assert events == expected


PROPERTY_LIMITS = Limits(max_line_bytes=64, max_message_bytes=4096, max_recipients=4)
_FRAGMENTS = [
    b"SEND a\n",
    b"SEND a\n5\n",
    b"SEND a\nC999\n",
    b"SEND a b c d e\n",
    b"SEND \n",
    b"BROADCAST\n",
    b"BROADCAST\nC3\n",
    b"BROADCAST x\n",
    b"ME IS a\n",
    b"ME IS ",
    b"C999\n",
    b"C5\n",
    b"C0\n",
    b"C",
    b"\n",
    b"\r",
    b"\r\n",
    b"99\n",
    b"0\n",
    b" ",
    b"-",
]
_fragments = st.sampled_from(_FRAGMENTS)
_numbers = st.integers(0, 10**30).map(lambda n: str(n).encode())
_noise = st.lists(
    st.one_of(
        _fragments,
        _fragments,
        _fragments,
        _numbers,
        _numbers.map(lambda digits: b"C" + digits + b"\n"),
        st.binary(max_size=8),
        st.binary(min_size=1, max_size=1100),
        st.integers(1, 1100).map(lambda size: b"x" * size),
    ),
    max_size=30,
).map(b"".join)


def _check_decoder_survives(pieces: list[bytes], limits: Limits) -> None:
    """Feed ``pieces``: no exception, only known events, buffer bounded after each drain."""
    bound = limits.max_line_bytes + 2 + 999
    decoder = Decoder(limits)
    events: list[Event] = []
    for piece in pieces:
        decoder.feed(piece)
        drain(decoder, events)
        assert decoder.buffered_bytes <= bound
    decoder.eof()
    drain(decoder, events)
    assert decoder.buffered_bytes <= bound
    assert all(isinstance(event, EVENT_TYPES) for event in events)
    _assert_well_formed(events)


@settings(max_examples=200)
@given(st.lists(st.binary(), max_size=6))
def test_property_arbitrary_bytes_never_break_the_decoder(pieces: list[bytes]) -> None:
    """Arbitrary bytes never raise, give only protocol events and keep the buffer bounded."""
    _check_decoder_survives(pieces, PROPERTY_LIMITS)


@settings(max_examples=200)
@given(_noise, st.data())
def test_property_protocol_like_noise_never_breaks_the_decoder(
    raw: bytes, data: st.DataObject
) -> None:
    """Protocol-like fragments and huge numbers never raise and keep the buffer bounded."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[i:j] for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    _check_decoder_survives(pieces, PROPERTY_LIMITS)


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=200), _noise))
def test_property_datagrams_never_raise(datagram: bytes) -> None:
    """Any datagram decodes to exactly one event without raising, and nothing in it is fatal."""
    events = decode_datagram(datagram, PROPERTY_LIMITS)
    assert len(events) == 1
    assert isinstance(events[0], (Login, ShortMessage, Rejected))
    assert not any(isinstance(event, Rejected) and event.fatal for event in events)


# PROTOCOL §3 as regular expressions: the reference for what a first length line is.
_SHORT_LENGTH_REFERENCE = re.compile(rb"[0-9]{1,2}")
_CHUNK_HEADER_REFERENCE = re.compile(rb"C([0-9]{1,3})")
_length_lines = st.lists(
    st.one_of(st.sampled_from(list(b"0123456789C+- \t\x00\xb2\xb9")), st.integers(0, 255)),
    min_size=1,
    max_size=4,
).map(bytes)


@settings(max_examples=300)
@given(_length_lines.filter(lambda line: b"\n" not in line and b"\r" not in line))
def test_property_first_length_line_is_short_exactly_for_one_or_two_ascii_digits(
    line: bytes,
) -> None:
    """A first length line is a short length exactly when it is 1-2 ASCII digits.

    It is a chunk header exactly when it is ``C`` and 1-3 ASCII digits, and fatal
    otherwise, as the regular expressions of PROTOCOL §3 say.
    """
    head = b"SEND bob\n" + line + b"\n"
    if _SHORT_LENGTH_REFERENCE.fullmatch(line):
        body = b"y" * int(line)
        events, _ = _feed_pieces([head + body + TRAILER], DEFAULT, eof=True)
        assert events == [_send(b"bob", body=body), TRAILER_EVENT]
    elif chunk := _CHUNK_HEADER_REFERENCE.fullmatch(line):
        body = b"y" * int(chunk.group(1))
        events, _ = _feed_pieces([head + body + b"C0\n" + TRAILER], DEFAULT, eof=True)
        pieces = [BodyData(body)] if body else []
        assert events == [_send_start(b"bob"), *pieces, MessageEnd(), TRAILER_EVENT]
    else:
        events, _ = _feed_pieces([head + TRAILER], DEFAULT, eof=True)
        assert _kinds(events) == [FATAL]
        assert isinstance(events[0], Rejected)
        assert events[0].line == line
