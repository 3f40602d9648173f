"""Helpers shared by the codec tests: limits, expected-event builders and ``decode_all_ways``."""

import typing

from chatproto.limits import Limits
from chatproto.wire import events as events_module
from chatproto.wire.codec import Decoder
from chatproto.wire.events import (
    BodyData,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
)
from tests.decoding import feed_pieces, is_fatal

DEFAULT = Limits()
SMALL_LINES = Limits(max_line_bytes=16)
#: Bytes of a next command, appended to every framing input (helper way (d)).
TRAILER = b"ME IS zed\n"
TRAILER_EVENT = Login(b"zed")

#: Stand-ins for a ``Rejected`` in expected event lists: the reason text is for logs only.
REFUSED = "non-fatal Rejected"
FATAL = "fatal Rejected"

#: Every event type ``chatproto.wire.events`` defines.
EVENT_TYPES = typing.get_args(events_module.Event)


# -- helpers ----------------------------------------------------------------


def _feed_pieces(
    pieces: list[bytes], limits: Limits, eof: bool = False
) -> tuple[list[Event], Decoder]:
    """Feed ``pieces`` to a fresh decoder, draining after each; return events and decoder."""
    decoder = Decoder(limits)
    return feed_pieces(decoder, pieces, eof), decoder


def _assert_well_formed(events: list[Event]) -> None:
    """Check the event grammar of ``chatproto.wire.events``.

    Outside a message: ``Login``, ``ShortMessage``, ``MessageStart`` (always
    chunked) or ``Rejected``. Inside a chunked message: ``BodyData`` (one
    non-empty chunk each), then ``MessageEnd`` or a ``Rejected`` in its place.
    Nothing follows a fatal ``Rejected``.
    """
    in_message = False
    for i, event in enumerate(events):
        assert not is_fatal(events[:i]), f"event {i} after a fatal Rejected"
        if in_message:
            assert isinstance(event, (BodyData, MessageEnd, Rejected)), f"event {i} mid-message"
            if isinstance(event, BodyData):
                assert event.data, f"empty BodyData at {i}"
            else:
                in_message = False
        else:
            assert isinstance(event, (Login, ShortMessage, MessageStart, Rejected)), f"event {i}"
            if isinstance(event, MessageStart):
                in_message = True


def decode_all_ways(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[Event]:
    """Decode ``data`` whole, byte by byte, split at every index and with a trailer.

    All ways must give identical event lists, with no merging of ``BodyData``
    (each is exactly one chunk, never empty), and the events must be well formed
    (see ``_assert_well_formed``).
    """
    expected, _ = _feed_pieces([data], limits, eof)
    by_byte, _ = _feed_pieces([data[i : i + 1] for i in range(len(data))], limits, eof)
    assert by_byte == expected, "byte by byte"
    for i in range(len(data) + 1):
        split, _ = _feed_pieces([data[:i], data[i:]], limits, eof)
        assert split == expected, f"split at {i}"
    base, decoder = _feed_pieces([data], limits)
    longer, _ = _feed_pieces([data + TRAILER], limits)
    assert longer[: len(base)] == base, "with a next command appended"
    at_boundary = not decoder.is_mid_message and decoder.buffered_bytes == 0
    if at_boundary and not is_fatal(base):
        assert longer == [*base, TRAILER_EVENT], "the next command parses after the input"
    _assert_well_formed(expected)
    return expected


def _kinds(events: list[Event]) -> list[object]:
    """Replace each ``Rejected`` by ``REFUSED`` or ``FATAL``; keep the other events."""
    return [
        (FATAL if event.fatal else REFUSED) if isinstance(event, Rejected) else event
        for event in events
    ]


def decode_kinds(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[object]:
    """Decode ``data`` every way (see ``decode_all_ways``) and summarise ``Rejected``."""
    return _kinds(decode_all_ways(data, limits, eof))


def _send(*names: bytes, body: bytes, line: bytes | None = None) -> ShortMessage:
    """The ``ShortMessage`` of ``SEND <names>`` with a short ``body`` (``line`` as received)."""
    if line is None:
        line = b"SEND " + b" ".join(names)
    return ShortMessage(tuple(dict.fromkeys(names)), body, line)


def _send_start(*names: bytes, line: bytes | None = None) -> MessageStart:
    """The ``MessageStart`` of ``SEND <names>`` with a chunked body (``line`` as received)."""
    if line is None:
        line = b"SEND " + b" ".join(names)
    return MessageStart(tuple(dict.fromkeys(names)), line)


def _broadcast(body: bytes) -> ShortMessage:
    """The ``ShortMessage`` of ``BROADCAST`` with a short ``body``."""
    return ShortMessage(None, body, b"BROADCAST")


def _broadcast_start() -> MessageStart:
    """The ``MessageStart`` of ``BROADCAST`` with a chunked body."""
    return MessageStart(None, b"BROADCAST")
