"""Tests of the body reader both decoders share (``chatproto.wire.body``): bytes only.

The reader alone is driven through a :class:`ReceiveBuffer`; then a property
test puts the same body bytes after ``SEND x`` (server decoder) and after
``FROM x`` (client decoder), cut at the same random points, and checks that
both decoders frame it alike: the same body bytes and the same accept/refuse
decision (what follows the body is a next frame, parsed by each side's own
grammar, so only the first message is compared).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.body import (
    BODY_END,
    CHUNKED_START,
    SHORT_START,
    BodyError,
    BodyReader,
)
from chatproto.wire.buffer import ReceiveBuffer
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.codec import Decoder
from chatproto.wire.events import NEED_DATA, BodyData, MessageEnd, Rejected, ShortMessage
from tests.decoding import cut_at, feed_pieces

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

SMALL = Limits(max_line_bytes=16, max_message_bytes=50)


def read_all(data: bytes, limits: Limits = SMALL, at_eof: bool = False) -> list[object]:
    """Feed ``data`` byte by byte to a reader and collect its results until the end."""
    buffer = ReceiveBuffer()
    reader = BodyReader(limits)
    reader.start()
    results: list[object] = []
    for i in range(len(data) + 1):
        if i:
            buffer.feed(data[i - 1 : i])
        while True:
            result = reader.read(buffer, at_eof and i == len(data))
            if result is NEED_DATA:
                break
            results.append(result)
            if result is BODY_END or isinstance(result, BodyError):
                return results
    return results


def test_short_body_is_one_piece() -> None:
    """A short length line gives SHORT_START, the bytes whole, then BODY_END."""
    assert read_all(b"3\nabc") == [SHORT_START, b"abc", BODY_END]


def test_empty_short_body() -> None:
    """``0`` is an empty short body."""
    assert read_all(b"0\n") == [SHORT_START, b"", BODY_END]


def test_chunked_body_gives_one_piece_per_chunk() -> None:
    """Chunks come as data events, ``C0`` ends the body."""
    assert read_all(b"C2\nabC1\r\nc\nC00\n") == [
        CHUNKED_START,
        BodyData(b"ab"),
        BodyData(b"c"),
        BODY_END,
    ]


def test_reader_leaves_the_next_frame_in_the_buffer() -> None:
    """Only the body is consumed."""
    buffer = ReceiveBuffer()
    buffer.feed(b"1\nxOK\n")
    reader = BodyReader(SMALL)
    reader.start()
    assert [reader.read(buffer, False) for _ in range(3)] == [SHORT_START, b"x", BODY_END]
    assert buffer.take_line(16) == b"OK"


def test_body_over_the_limit_is_an_error_at_its_header() -> None:
    """The limit is checked before the bytes come."""
    assert read_all(b"C40\n" + b"x" * 40 + b"C11\n") == [
        CHUNKED_START,
        BodyData(b"x" * 40),
        BodyError("message too large", b"C11"),
    ]


def test_bad_first_length_line_is_an_error() -> None:
    """A length of three digits is no short body."""
    assert read_all(b"100\n") == [BodyError("bad length line", b"100")]


def test_short_length_after_a_chunk_is_an_error() -> None:
    """After a chunk only a chunk header may come."""
    assert read_all(b"C1\nx2\n") == [
        CHUNKED_START,
        BodyData(b"x"),
        BodyError("bad chunk header", b"2"),
    ]


def test_eof_mid_body_is_an_error() -> None:
    """A body cut short by the end of input cannot be delimited."""
    assert read_all(b"C3\nab", at_eof=True) == [CHUNKED_START, BodyError("eof mid-message")]


def test_error_repeats() -> None:
    """After an error every read returns it again."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x\n")
    reader = BodyReader(SMALL)
    reader.start()
    error = reader.read(buffer, False)
    assert isinstance(error, BodyError)
    assert reader.read(buffer, False) is error


def test_coalescing_gives_a_run_of_chunks() -> None:
    """With ``coalesce_chunks`` the whole chunks buffered come as one BodyFrames."""
    buffer = ReceiveBuffer()
    buffer.feed(b"C2\nabC1\ncC3\ndefC0\n")
    reader = BodyReader(SMALL, coalesce_chunks=True)
    reader.start()
    assert reader.read(buffer, False) is CHUNKED_START
    # The first chunk's header came as a line; it is framed again, with the run after it.
    run = reader.read(buffer, False)
    assert (run.wire, run.size) == (b"C2\nabC1\ncC3\ndef", 6)
    assert reader.read(buffer, False) is BODY_END


def test_coalescing_frames_a_non_canonical_first_header_canonically() -> None:
    """A first header read as a line (``C02``, ``C2\\r``) joins the run as ``C2\\n``."""
    for header in (b"C02\n", b"C2\r\n"):
        buffer = ReceiveBuffer()
        buffer.feed(header + b"abC1\ncC0\n")
        reader = BodyReader(SMALL, coalesce_chunks=True)
        reader.start()
        assert reader.read(buffer, False) is CHUNKED_START
        run = reader.read(buffer, False)
        assert (run.wire, run.size) == (b"C2\nabC1\nc", 3)


# -- both decoders frame a body alike -------------------------------------------

_header = st.sampled_from([b"C%d\n", b"C%d\r\n", b"C0%d\n", b"\nC%d\n"])
_chunked = st.builds(
    lambda chunks, end: b"".join(header % len(data) + data for data, header in chunks) + end,
    st.lists(st.tuples(st.binary(min_size=1, max_size=30), _header), max_size=4),
    st.sampled_from([b"C0\n", b"C000\r\n", b""]),
)
_short = st.binary(max_size=30).map(lambda data: b"%d\n" % len(data) + data)
#: Valid bodies, bodies cut short, and arbitrary bytes.
bodies = st.one_of(_chunked, _short, st.binary(max_size=40))


def _first_message(events: list[object]) -> list[object]:
    """The events up to the first message's end (or the first fatal event)."""
    for i, event in enumerate(events):
        ends = isinstance(event, ShortMessage | MessageEnd | MessageEnd)
        if ends or getattr(event, "fatal", False):
            return events[: i + 1]
    return events


def _server_view(body: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    """The body bytes the server decoder gives for ``SEND x`` + ``body``, and if it refused."""
    data = b"SEND x\n" + body
    events = _first_message(feed_pieces(Decoder(SMALL), cut_at(data, cuts), eof=True))
    got = b"".join(
        event.body if isinstance(event, ShortMessage) else event.data
        for event in events
        if isinstance(event, ShortMessage | BodyData)
    )
    refused = any(isinstance(event, Rejected) and event.fatal for event in events)
    return got, refused


def _client_view(body: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    """The body bytes the client decoder gives for ``FROM x`` + ``body``, and if it refused."""
    data = b"FROM x\n" + body
    events = _first_message(feed_pieces(ClientDecoder(SMALL), cut_at(data, cuts), eof=True))
    got = b"".join(event.data for event in events if isinstance(event, BodyData))
    refused = any(isinstance(event, Rejected) and event.fatal for event in events)
    return got, refused


@given(bodies, st.lists(st.integers(min_value=0, max_value=80), max_size=4))
def test_property_both_decoders_frame_a_body_alike(body: bytes, cuts: list[int]) -> None:
    """The same body after SEND and after FROM gives the same bytes and the same verdict."""
    cuts_after_line = [cut + len(b"SEND x\n") for cut in cuts] + cuts
    server = _server_view(body, cuts_after_line)
    client = _client_view(body, cuts_after_line)
    assert server == client
