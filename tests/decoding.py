"""Helpers shared by the decoder tests: feed bytes in pieces and drain every event.

Both sans-I/O decoders, the server's ``codec.Decoder`` and the client's
``client_codec.ClientDecoder``, have one shape: ``feed``/``eof``/``next_event``,
``NEED_DATA`` when nothing is complete, and a fatal event (one with
``fatal`` true) that every later call repeats.
"""

from typing import Any

from hypothesis import strategies as st

from chatproto.wire.events import NEED_DATA


def is_fatal(events: list[Any]) -> bool:
    """Whether the last event is a fatal one."""
    return bool(events) and getattr(events[-1], "fatal", False) is True


def drain(decoder: Any, events: list[Any]) -> None:
    """Append events until ``NEED_DATA``; after a fatal one, check it repeats and stop."""
    while True:
        if is_fatal(events):
            assert decoder.next_event() == events[-1]
            return
        event = decoder.next_event()
        if event is NEED_DATA:
            return
        events.append(event)


def feed_pieces(decoder: Any, pieces: list[bytes], eof: bool = False) -> list[Any]:
    """Feed ``pieces`` to ``decoder``, draining after each (and after ``eof``); return events."""
    events: list[Any] = []
    for piece in pieces:
        decoder.feed(piece)
        drain(decoder, events)
    if eof:
        decoder.eof()
        drain(decoder, events)
    return events


def cut_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces at ``cuts`` (any order, repeats and overshoot allowed)."""
    bounds = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def streams_of(frames: st.SearchStrategy[tuple[bytes, list[Any]]]) -> st.SearchStrategy:
    """Streams of up to 5 frames: ``(bytes, expected events)`` joined end to end."""
    return st.lists(frames, max_size=5).map(
        lambda drawn: (
            b"".join(data for data, _ in drawn),
            [event for _, events in drawn for event in events],
        )
    )
