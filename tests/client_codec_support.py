"""Helpers shared by the tests of the client's decoder (``test_client_codec_*``)."""

import typing

from chatproto.limits import Limits
from chatproto.wire import events
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.events import (
    BodyData,
    DeliveryStart,
    MessageEnd,
    OkReply,
    Rejected,
    ServerEvent,
)
from tests.decoding import feed_pieces, is_fatal

DEFAULT = Limits()
SMALL = Limits(max_line_bytes=16, max_message_bytes=1000)
#: Bytes of a next frame, appended to every input (helper way (d)).
TRAILER = b"OK\n"
TRAILER_EVENT = OkReply()

#: Stand-ins for a ``Rejected`` in expected event lists: the reason is for logs only.
SKIPPED = "non-fatal Rejected"
FATAL = "fatal Rejected"

#: Every event type the client decoder reports (``chatproto.wire.events.ServerEvent``).
EVENT_TYPES = typing.get_args(events.ServerEvent)


# -- helpers ----------------------------------------------------------------


def _feed_pieces(
    pieces: list[bytes], limits: Limits, eof: bool = False
) -> tuple[list[ServerEvent], ClientDecoder]:
    """Feed ``pieces`` to a fresh decoder, draining after each; return events and decoder."""
    decoder = ClientDecoder(limits)
    return feed_pieces(decoder, pieces, eof), decoder


def decode_all_ways(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[ServerEvent]:
    """Decode ``data`` whole, byte by byte, split at every index and with a trailer.

    All ways must give identical event lists, with no merging of
    ``BodyData``: each is exactly one chunk or a whole short body.
    """
    expected, _ = _feed_pieces([data], limits, eof)
    by_byte, _ = _feed_pieces([data[i : i + 1] for i in range(len(data))], limits, eof)
    assert by_byte == expected, "byte by byte"
    for i in range(len(data) + 1):
        split, _ = _feed_pieces([data[:i], data[i:]], limits, eof)
        assert split == expected, f"split at {i}"
    base, decoder = _feed_pieces([data], limits)
    longer, _ = _feed_pieces([data + TRAILER], limits)
    assert longer[: len(base)] == base, "with a next frame appended"
    at_boundary = not decoder.is_mid_delivery and decoder.buffered_bytes == 0
    if at_boundary and not is_fatal(base):
        assert longer == [*base, TRAILER_EVENT], "the next frame parses after the input"
    assert all(event.data for event in expected if isinstance(event, BodyData))
    return expected


def decode_kinds(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[object]:
    """Decode ``data`` every way and replace each ``Rejected`` by ``SKIPPED`` or ``FATAL``."""
    return [
        (FATAL if event.fatal else SKIPPED) if isinstance(event, Rejected) else event
        for event in decode_all_ways(data, limits, eof)
    ]


def _delivery(sender: bytes, *pieces: bytes) -> list[ServerEvent]:
    """The events of one whole delivery."""
    return [DeliveryStart(sender), *map(BodyData, pieces), MessageEnd()]
