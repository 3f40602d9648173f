"""Property tests of the client's sans-I/O decoder: encoded frames, split points and noise."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.encode import encode_chunked_body, encode_from, encode_short_body
from chatproto.wire.events import ErrorReply, OkReply, ServerEvent
from chatproto.wire.grammar import ERROR, OK
from tests.client_codec_support import DEFAULT, EVENT_TYPES, _delivery, _feed_pieces
from tests.decoding import cut_at, drain, streams_of

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- property tests -------------------------------------------------------------

_userids = st.binary(min_size=1, max_size=32).map(
    lambda raw: bytes(0x21 + byte % 94 for byte in raw)
)


@st.composite
def _frames(draw: st.DrawFn) -> tuple[bytes, list[ServerEvent]]:
    """One random valid server frame, built with the server's encoders."""
    kind = draw(st.sampled_from(["ok", "error", "short", "chunked"]))
    if kind == "ok":
        return OK, [OkReply()]
    if kind == "error":
        return ERROR, [ErrorReply()]
    sender = draw(_userids)
    if kind == "short":
        body = draw(st.binary(max_size=99))
        frames = [encode_from(sender), *encode_short_body(body)]
        return b"".join(frames), _delivery(sender, *([body] if body else []))
    sizes = draw(st.lists(st.integers(1, 999), max_size=3))
    chunks = [draw(st.binary(min_size=size, max_size=size)) for size in sizes]
    frames = [encode_from(sender), *encode_chunked_body(chunks)]
    return b"".join(frames), _delivery(sender, *chunks)


_streams = streams_of(_frames())


@settings(max_examples=150)
@given(_streams)
def test_property_server_frames_decode_to_what_they_encode(
    stream: tuple[bytes, list[ServerEvent]],
) -> None:
    """Frames built with ``encode_from`` and the body encoders decode back to their events."""
    data, expected = stream
    events, decoder = _feed_pieces([data], DEFAULT, eof=True)
    assert events == expected
    assert decoder.buffered_bytes == 0


@settings(max_examples=150)
@given(_streams, st.data())
def test_property_random_split_points_give_identical_events(
    stream: tuple[bytes, list[ServerEvent]], data: st.DataObject
) -> None:
    """Server frames fed in pieces cut at random points decode to the same events."""
    raw, expected = stream
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    events, _ = _feed_pieces(cut_at(raw, cuts), DEFAULT, eof=True)
    assert events == expected


_FRAGMENTS = [b"FROM a\n", b"FROM \n", b"OK\n", b"ERROR\n", b"C999\n", b"C5\n", b"C0\n"]
_noise = st.lists(
    st.one_of(
        st.sampled_from(_FRAGMENTS),
        st.sampled_from([b"\n", b"\r\n", b"99\n", b"0\n", b"C", b" "]),
        st.integers(0, 10**30).map(lambda n: str(n).encode() + b"\n"),
        st.binary(max_size=8),
        st.binary(min_size=1, max_size=1100),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=3000), _noise), st.data())
def test_property_arbitrary_bytes_never_break_the_decoder(raw: bytes, data: st.DataObject) -> None:
    """Any bytes, cut anywhere, never raise, give only known events and keep the buffer bounded."""
    limits = Limits(max_line_bytes=64, max_message_bytes=4096)
    bound = limits.max_line_bytes + 2 + 999
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    decoder = ClientDecoder(limits)
    events: list[ServerEvent] = []
    for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        decoder.feed(raw[i:j])
        drain(decoder, events)
        assert decoder.buffered_bytes <= bound
    decoder.eof()
    drain(decoder, events)
    assert all(isinstance(event, EVENT_TYPES) for event in events)
