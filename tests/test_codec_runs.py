"""``Decoder.next_event(max_frames)``: message runs carry exactly the messages one by one would.

A run is an optimisation of the event stream, never a change of what it
says: for any input, cut anywhere, the messages (recipients, line, body),
the logins, the refusals and where the decoder stopped are the same whether
it is drained with ``next_event()`` or with ``next_event(n)`` for any ``n``.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.codec import Decoder
from chatproto.wire.encode import split_frames
from chatproto.wire.events import (
    NEED_DATA,
    BodyData,
    BodyFrames,
    MessageEnd,
    MessageRun,
    MessageStart,
    ShortMessage,
)
from tests.decoding import cut_at
from tests.test_codec_properties import _FRAGMENTS, PROPERTY_LIMITS

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")


def _messages(pieces: list[bytes], limits: Limits, max_frames: int, eof: bool) -> list[object]:
    """Decode ``pieces`` into whole messages and other events, then where the stream stood."""
    decoder = Decoder(limits, coalesce_chunks=True)
    out: list[object] = []
    body: bytearray | None = None
    start: MessageStart | None = None

    def drain() -> None:
        nonlocal body, start
        while (event := decoder.next_event(max_frames)) is not NEED_DATA:
            if isinstance(event, MessageRun):
                assert 1 <= len(event.bodies) <= max_frames
                sizes = 0
                for wire in event.bodies:
                    if wire.startswith(b"C"):
                        data = b"".join(split_frames(wire)[1::2])
                    else:
                        data = wire[wire.index(b"\n") + 1 :]
                    sizes += len(data)
                    out.append(("message", event.recipients, event.line, data))
                assert sizes == event.body_bytes
                assert event.chunked == sum(wire.startswith(b"C") for wire in event.bodies)
            elif isinstance(event, ShortMessage):
                out.append(("message", event.recipients, event.line, event.body))
            elif isinstance(event, MessageStart):
                start, body = event, bytearray()
            elif isinstance(event, BodyData):
                assert body is not None
                body += event.data
            elif isinstance(event, BodyFrames):
                assert body is not None
                body += b"".join(split_frames(event.wire)[1::2])
            elif isinstance(event, MessageEnd):
                assert start is not None and body is not None
                out.append(("message", start.recipients, start.line, bytes(body)))
                start = body = None
            else:
                out.append(event)
                if getattr(event, "fatal", False):
                    return

    for piece in pieces:
        decoder.feed(piece)
        drain()
    if eof:
        decoder.eof()
        drain()
    out.append(("end", decoder.consumed_bytes, decoder.buffered_bytes))
    return out


_RUN_FRAGMENTS = [
    *_FRAGMENTS,
    b"SEND a\n3\nabc",
    b"SEND a\n0\n",
    b"SEND a\n03\nabc",
    b"SEND a\r\n3\r\nabc",
    b"SEND a\nC3\nabcC0\n",
    b"SEND a\nC03\nabcC0\n",
    b"SEND a\nC3\r\nabcC0\n",
    b"SEND a\nC0\n",
    b"BROADCAST\n2\nhi",
    b"BROADCAST\nC2\nhiC1\n!C0\n",
]
# Sizes around the limits below (5, 99) come often.
_sizes = st.one_of(st.integers(1, 120), st.sampled_from([4, 5, 6, 98, 99]))
_inputs = st.lists(
    st.one_of(
        st.sampled_from(_RUN_FRAGMENTS),
        st.sampled_from(_RUN_FRAGMENTS[-10:]),
        st.binary(max_size=6),
        _sizes.map(lambda size: b"SEND a\n%d\n" % size + b"y" * size),
        _sizes.map(lambda size: b"SEND a\nC%d\n" % size + b"z" * size + b"C0\n"),
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(
    _inputs,
    st.lists(st.integers(0, 4000), max_size=8),
    st.integers(2, 300),
    st.booleans(),
    st.sampled_from(
        [PROPERTY_LIMITS, Limits(), Limits(spill_threshold_bytes=5), Limits(max_message_bytes=5)]
    ),
)
def test_runs_carry_the_messages_one_by_one_decoding_gives(
    data: bytes, cuts: list[int], max_frames: int, eof: bool, limits: Limits
) -> None:
    """For any input cut anywhere: the same messages, events and stream positions."""
    pieces = cut_at(b"ME IS a\n" + data, cuts)
    assert _messages(pieces, limits, max_frames, eof) == _messages(pieces, limits, 1, eof)


def test_a_run_stops_at_its_limit_and_at_a_frame_in_another_form() -> None:
    """A run holds at most ``max_frames``, and stops before a frame that is not canonical."""
    decoder = Decoder(Limits())
    decoder.feed(b"SEND a\n1\nx" * 5 + b"SEND a\n01\nx" + b"SEND a\n1\nx")
    first = decoder.next_event(3)
    assert isinstance(first, MessageRun) and first.bodies == [b"1\nx"] * 3
    second = decoder.next_event(3)
    assert isinstance(second, MessageRun) and second.bodies == [b"1\nx"] * 2
    assert decoder.next_event(3) == ShortMessage((b"a",), b"x", b"SEND a")  # 01: one by one
    third = decoder.next_event(3)
    assert isinstance(third, MessageRun) and third.bodies == [b"1\nx"]
    assert decoder.next_event(3) is NEED_DATA


def test_a_refused_command_never_runs() -> None:
    """``SEND`` to too many recipients is refused message by message, as without runs."""
    decoder = Decoder(Limits(max_recipients=1))
    decoder.feed(b"SEND a b\n1\nx" * 3)
    events = [decoder.next_event(10) for _ in range(4)]
    assert [getattr(event, "reason", None) for event in events[:3]] == ["too many recipients"] * 3
    assert events[3] is NEED_DATA


def test_a_body_over_the_spill_threshold_streams() -> None:
    """A run keeps bodies in memory: one bigger than ``spill_threshold_bytes`` streams instead."""
    decoder = Decoder(Limits(spill_threshold_bytes=4), coalesce_chunks=True)
    decoder.feed(b"SEND a\nC4\nabcdC0\nSEND a\nC5\nabcdeC0\n")
    run = decoder.next_event(10)
    assert isinstance(run, MessageRun) and run.bodies == [b"C4\nabcdC0\n"] and run.chunked == 1
    assert isinstance(decoder.next_event(10), MessageStart)
