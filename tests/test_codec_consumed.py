"""The decoder says where each event's bytes end: ``-v`` shows frames as received from that."""

import pytest

from chatproto.limits import Limits
from chatproto.wire.codec import Decoder
from chatproto.wire.events import NEED_DATA

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")


def ends(stream: bytes, cuts: list[int], coalesce: bool = True) -> list[tuple[str, int]]:
    """Each event's class name and ``consumed_bytes`` after it, feeding ``stream`` at ``cuts``."""
    decoder = Decoder(Limits(max_line_bytes=16), coalesce_chunks=coalesce)
    seen = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoder.feed(stream[start:end])
        while (event := decoder.next_event()) is not NEED_DATA:
            seen.append((type(event).__name__, decoder.consumed_bytes))
            if getattr(event, "fatal", False):
                return seen  # every later call repeats the failure
    return seen


def test_each_event_ends_where_its_bytes_end() -> None:
    """A login, blank line, short message and chunked message, whole or a byte at a time."""
    stream = b"ME IS a\n\nSEND a\n02\nhiBROADCAST\nC3\nabcC0\n"
    expected = [
        ("Login", 8),
        ("ShortMessage", 21),
        ("MessageStart", 34),
        ("BodyData", 37),
        ("MessageEnd", 40),
    ]
    assert ends(stream, [], coalesce=False) == expected
    assert ends(stream, list(range(1, len(stream))), coalesce=False) == expected


def test_a_failure_stays_where_the_stream_broke() -> None:
    """A bad length line: consumed stops after it, however much follows."""
    stream = b"SEND a\nxyz\nME IS b\n"
    assert ends(stream, []) == [("Rejected", 11)]
