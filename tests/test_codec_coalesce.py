"""The decoder's ``coalesce_chunks`` mode: runs of whole chunks as one BodyFrames event.

Whatever the split of the input, the mode must give the same messages as the
default one-event-per-chunk mode: same commands, same bodies, same refusals
at the same places. Only the grouping of a chunked body's bytes may differ.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.codec import Decoder
from chatproto.wire.encode import split_frames
from chatproto.wire.events import BodyData, BodyFrames, Event, Rejected
from tests.decoding import cut_at, feed_pieces

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")


def decode(data: bytes, cuts: list[int], coalesce: bool, limits: Limits) -> list[Event]:
    """Feed ``data`` cut at ``cuts``, then end it; return every event."""
    return feed_pieces(Decoder(limits, coalesce_chunks=coalesce), cut_at(data, cuts), eof=True)


def messages(events: list[Event]) -> list[object]:
    """The events with each chunked body's pieces joined into one ``("body", bytes)``."""
    result: list[object] = []
    for event in events:
        if isinstance(event, BodyData | BodyFrames):
            data = event.data if isinstance(event, BodyData) else unframe(event.wire)
            if result and isinstance(result[-1], tuple) and result[-1][0] == "body":
                result[-1] = ("body", result[-1][1] + data)
            else:
                result.append(("body", data))
        else:
            result.append(event)
    return result


def unframe(wire: bytes) -> bytes:
    """The body bytes of whole chunks (headers dropped)."""
    parts = split_frames(wire)
    assert all(header.startswith(b"C") for header in parts[::2])
    return b"".join(parts[1::2])


chunk_headers = st.sampled_from([b"C%d\n", b"C%d\r\n", b"C0%d\n", b"C%d\n\n"])
chunks = st.lists(st.tuples(st.binary(min_size=1, max_size=40), chunk_headers), max_size=6)
frames = st.one_of(
    st.builds(
        lambda body_chunks, end: (
            b"SEND bob\n"
            + b"".join(header % len(data) + data for data, header in body_chunks)
            + end
        ),
        chunks,
        st.sampled_from([b"C0\n", b"C0\r\n", b"C000\n", b""]),
    ),
    st.just(b"BROADCAST\nC3\nabcC0\n"),
    st.just(b"SEND bob\n2\nhi"),
    st.just(b"ME IS bob\n"),
    st.just(b"SEND bob\nC9999\n"),  # a chunk over 999: fatal
    st.binary(max_size=20),
)


@given(
    stream=st.lists(frames, max_size=6).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    max_message=st.sampled_from([10, 64, 10_000]),
)
def test_coalescing_gives_the_same_messages_however_the_input_is_cut(
    stream: bytes, cuts: list[int], max_message: int
) -> None:
    limits = Limits(max_message_bytes=max_message)
    one_by_one = decode(stream, [], coalesce=False, limits=limits)
    coalesced = decode(stream, cuts, coalesce=True, limits=limits)
    assert messages(coalesced) == messages(one_by_one)


def test_a_read_of_whole_chunks_is_one_event_without_c0() -> None:
    """The first chunk (read after its header line) and the whole ones after it: one event."""
    data = b"SEND bob\nC1\nzC3\nabcC2\nde"
    events = decode(data + b"C0\n", [], coalesce=True, limits=Limits())
    assert events[1:] == [BodyFrames(b"C1\nzC3\nabcC2\nde", 6), events[-1]]


@pytest.mark.parametrize("header", [b"C03\n", b"C3\r\n"])
def test_headers_not_in_canonical_form_come_chunk_by_chunk(header: bytes) -> None:
    data = b"SEND bob\nC1\nzC2\nab" + header + b"xyzC1\nqC0\n"
    events = decode(data, [], coalesce=True, limits=Limits())
    assert events[1:4] == [
        BodyFrames(b"C1\nzC2\nab", 3),
        BodyData(b"xyz"),
        BodyFrames(b"C1\nq", 1),
    ]


def test_a_run_stops_at_the_message_limit() -> None:
    data = b"SEND bob\nC1\nzC3\nabcC3\ndefC0\n"
    events = decode(data, [], coalesce=True, limits=Limits(max_message_bytes=5))
    assert events[1] == BodyFrames(b"C1\nzC3\nabc", 4)
    assert events[2] == Rejected("message too large", True, b"C3")
