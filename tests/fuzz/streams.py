"""What every decoder run must satisfy, for both stream decoders: feeding, grammar, accounting.

The fuzz targets (``targets.py``) feed a payload whole and in pieces and
compare the results; this module holds the parts they share:

- :func:`decode` feeds pieces, drains the events after each piece, checks
  the receive buffer stays bounded, that a fatal ``Rejected`` ends the
  stream (it repeats, nothing follows, later bytes are ignored), and that
  after ``eof()`` no byte is left unaccounted for;
- :func:`normalized` joins a message's body pieces (``BodyData`` and
  ``BodyFrames``, which cuts and ``coalesce_chunks`` group differently), so
  that event lists compare as messages;
- :func:`check_client_events` and :func:`check_server_events` check the
  event grammar of ``chatproto.wire.events`` and that the events stand for
  no more bytes than the payload has;
- :func:`check_resumes` checks that a frame after a payload that ended
  between frames parses as it would alone (the decoder resynchronises).

Only ``chatproto`` and the standard library are imported: the fuzz runner's
environment has atheris, not the test requirements.
"""

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatproto.limits import Limits
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.encode import split_frames
from chatproto.wire.events import (
    NEED_DATA,
    BodyData,
    BodyFrames,
    DeliveryStart,
    ErrorReply,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    OkReply,
    Rejected,
    ServerEvent,
    ShortMessage,
)
from chatproto.wire.grammar import (
    CANONICAL_CHUNK_HEADER_RE,
    LOGIN_PREFIX,
    MAX_CHUNK,
    MAX_SHORT_BODY,
    is_valid_userid,
)

#: What the server's decoder may report, and the client's.
SERVER_EVENT_TYPES = typing.get_args(Event)
CLIENT_EVENT_TYPES = typing.get_args(ServerEvent)

#: Bytes fed after a fatal ``Rejected``: a valid command, which must not parse.
AFTER_FATAL = b"ME IS zed\nOK\n"

#: The reasons of a refused SEND/BROADCAST (framed whole, then refused, PROTOCOL §3).
_REFUSALS = frozenset(
    {
        "SEND names no recipient",
        "too many recipients",
        "invalid recipient userid",
        "BROADCAST takes no arguments",
    }
)


def is_fatal(event: object) -> bool:
    """Whether ``event`` is a fatal ``Rejected``."""
    return isinstance(event, Rejected) and event.fatal


@dataclass
class Decoded:
    """What one run of a decoder reported.

    Attributes:
        before_eof: the events reported once every piece was fed.
        events: every event, those after ``eof()`` included.
        at_boundary: whether, before ``eof()``, the decoder stood between
            frames: not failed, not in a frame, nothing buffered.
    """

    before_eof: list[Any]
    events: list[Any]
    at_boundary: bool


def buffer_bound(limits: Limits) -> int:
    """The most a drained decoder may hold: an unfinished line (and its ``\\r``) or chunk."""
    return max(limits.max_line_bytes + 1, MAX_CHUNK - 1)


def decode(decoder: Any, pieces: Sequence[bytes], limits: Limits) -> Decoded:
    """Feed ``pieces`` to ``decoder``, then ``eof()``, draining after each; check the stream.

    Raises:
        AssertionError: the buffer grew past :func:`buffer_bound`, a fatal
            ``Rejected`` did not end the stream, or bytes were left after eof.
    """
    events: list[Any] = []
    bound = buffer_bound(limits)
    for number, piece in enumerate(pieces):
        decoder.feed(piece)
        _drain(decoder, events, can_feed=True)
        buffered = decoder.buffered_bytes
        assert buffered <= bound, f"{buffered} bytes buffered after piece {number} (> {bound})"
    before_eof = list(events)
    failed = bool(events) and is_fatal(events[-1])
    at_boundary = not failed and not _is_mid_frame(decoder) and decoder.buffered_bytes == 0
    decoder.eof()
    _drain(decoder, events, can_feed=False)
    assert decoder.buffered_bytes == 0, f"{decoder.buffered_bytes} bytes left after eof"
    assert not _is_mid_frame(decoder), "still in a frame after eof"
    return Decoded(before_eof, events, at_boundary)


def check_resumes(
    decoder: Any, payload: bytes, decoded: Decoded, trailer: tuple[bytes, Any]
) -> None:
    """Check that a frame after ``payload`` parses as it would alone (resynchronisation).

    Only when ``payload`` ended between frames: ``decoded`` is the run of
    ``payload``, ``decoder`` a fresh decoder, ``trailer`` the frame's bytes
    and its event.
    """
    if not decoded.at_boundary:
        return
    data, event = trailer
    decoder.feed(payload + data)
    events = []
    _drain(decoder, events, can_feed=False)
    assert events == [*decoded.before_eof, event], f"{data!r} after the input"


def _is_mid_frame(decoder: Any) -> bool:
    """Whether ``decoder`` has read a frame's first line but not its body's end."""
    if isinstance(decoder, ClientDecoder):
        return decoder.is_mid_delivery
    return bool(decoder.is_mid_message)


def _drain(decoder: Any, events: list[Any], can_feed: bool) -> None:
    """Append events until ``NEED_DATA``; once failed, check the failure is all there is.

    ``can_feed``: ``eof()`` has not been called yet, so more bytes may be fed.
    """
    if events and is_fatal(events[-1]):
        _check_failed(decoder, events[-1])
        return
    while (event := decoder.next_event()) is not NEED_DATA:
        events.append(event)
        if is_fatal(event):
            _check_failed(decoder, event)
            if can_feed:  # the terminal state ignores what comes after
                decoder.feed(AFTER_FATAL)
                _check_failed(decoder, event)
            return


def _check_failed(decoder: Any, failure: Rejected) -> None:
    again = decoder.next_event()
    assert again == failure, f"after {failure!r}, next_event gave {again!r}"
    assert decoder.buffered_bytes == 0, "a failed decoder keeps bytes"
    assert not _is_mid_frame(decoder), "a failed decoder is still in a frame"


def unframe(wire: bytes) -> bytes:
    """The body bytes of a ``BodyFrames``'s wire, checking it is whole canonical chunks."""
    parts = split_frames(wire)
    assert len(parts) % 2 == 0, f"BodyFrames ends inside a chunk: {wire[:80]!r}"
    for header, chunk in zip(parts[::2], parts[1::2], strict=True):
        match = CANONICAL_CHUNK_HEADER_RE.fullmatch(header)
        assert match is not None, f"BodyFrames header {header!r} is not canonical"
        assert int(match.group(1)) == len(chunk), f"BodyFrames chunk cut short: {header!r}"
    return b"".join(parts[1::2])


def normalized(events: list[Any]) -> list[Any]:
    """The events with each run of ``BodyData``/``BodyFrames`` joined as ``("body", bytes)``."""
    result: list[Any] = []
    for event in events:
        if isinstance(event, BodyData | BodyFrames):
            data = event.data if isinstance(event, BodyData) else unframe(event.wire)
            if result and isinstance(result[-1], tuple):
                result[-1] = ("body", result[-1][1] + data)
            else:
                result.append(("body", data))
        else:
            result.append(event)
    return result


def _check_accepted(recipients: tuple[bytes, ...] | None, line: bytes, limits: Limits) -> None:
    """Check a message that was not refused against its command line (PROTOCOL §3)."""
    verb, _, rest = line.partition(b" ")
    if recipients is None:
        assert verb == b"BROADCAST" and not rest.strip(b" "), f"BROADCAST from {line!r}"
        return
    assert verb == b"SEND", f"recipients from {line!r}"
    named = tuple(dict.fromkeys(name for name in rest.split(b" ") if name))
    assert recipients == named, f"recipients {recipients!r} from {line!r}"
    assert 1 <= len(recipients) <= limits.max_recipients, f"{len(recipients)} recipients"
    assert all(map(is_valid_userid, recipients)), f"invalid recipient in {line!r}"


def _check_fatal_last(events: list[Any]) -> None:
    for event in events[:-1]:
        assert not is_fatal(event), f"events after the fatal {event!r}"


def check_server_events(events: list[Any], payload: bytes, limits: Limits) -> None:
    """Check the server decoder's events: their types, grammar, limits and accounting.

    Outside a message: ``Login`` (a valid userid), ``ShortMessage`` (accepted,
    at most 99 bytes and the message limit), ``MessageStart`` or ``Rejected``.
    Inside a chunked one: non-empty ``BodyData``/``BodyFrames`` within the
    message limit, then ``MessageEnd`` (the message accepted) or a
    ``Rejected``. A fatal ``Rejected`` is last. And the events stand for no
    more bytes than ``payload`` holds (each counted at its fewest wire bytes).
    """
    _check_fatal_last(events)
    start: MessageStart | None = None  # while inside a chunked message
    body_bytes = 0  # of that message
    accounted = 0
    for number, event in enumerate(events):
        assert isinstance(event, SERVER_EVENT_TYPES), f"event {number}: {event!r}"
        if start is not None:
            if isinstance(event, BodyData | BodyFrames):
                if isinstance(event, BodyData):
                    size = len(event.data)
                else:
                    size = len(unframe(event.wire))
                    assert event.size == size, f"BodyFrames of {size} bytes says {event.size}"
                assert size > 0, f"empty body piece at {number}"
                body_bytes += size
                accounted += size
                assert body_bytes <= limits.max_message_bytes, f"{body_bytes} body bytes"
            elif isinstance(event, MessageEnd):
                _check_accepted(start.recipients, start.line, limits)
                start = None
            else:
                assert isinstance(event, Rejected), f"event {number} mid-message: {event!r}"
                start = None
                if event.fatal:  # its bad line; a refusal's line is the MessageStart's
                    accounted += len(event.line)
        elif isinstance(event, Login):
            assert is_valid_userid(event.user), f"Login of {event.user!r}"
            accounted += len(LOGIN_PREFIX) + len(event.user)
        elif isinstance(event, ShortMessage):
            assert len(event.body) <= min(MAX_SHORT_BODY, limits.max_message_bytes)
            _check_accepted(event.recipients, event.line, limits)
            accounted += len(event.line) + len(b"\n0\n") + len(event.body)
        elif isinstance(event, MessageStart):
            start, body_bytes = event, 0
            accounted += len(event.line) + len(b"\nC0\n")
        else:
            assert isinstance(event, Rejected), f"event {number} outside a message: {event!r}"
            framed = not event.fatal and event.reason in _REFUSALS  # a refused short message
            accounted += len(event.line) + (len(b"\n0\n") if framed else 0)
    assert accounted <= len(payload), f"events stand for {accounted} of {len(payload)} bytes"


def check_client_events(events: list[Any], payload: bytes, limits: Limits) -> None:
    """Check the client decoder's events: their types, grammar, limits and accounting.

    Outside a delivery: ``OkReply``, ``ErrorReply``, ``DeliveryStart`` (a
    valid sender) or ``Rejected``. Inside one: non-empty ``BodyData`` within
    the message limit, then ``MessageEnd`` or a fatal ``Rejected``. A fatal
    ``Rejected`` is last, and the events stand for no more bytes than
    ``payload`` holds.
    """
    _check_fatal_last(events)
    in_delivery = False
    body_bytes = 0
    accounted = 0
    for number, event in enumerate(events):
        assert isinstance(event, CLIENT_EVENT_TYPES), f"event {number}: {event!r}"
        if in_delivery:
            if isinstance(event, BodyData):
                assert event.data, f"empty BodyData at {number}"
                body_bytes += len(event.data)
                assert body_bytes <= limits.max_message_bytes, f"{body_bytes} body bytes"
            else:
                assert isinstance(event, MessageEnd) or is_fatal(event), f"event {number}"
                in_delivery = False
        elif isinstance(event, DeliveryStart):
            assert is_valid_userid(event.sender), f"delivery from {event.sender!r}"
            in_delivery, body_bytes = True, 0
            accounted += len(b"FROM \n0\n") + len(event.sender)
        else:
            kinds = (OkReply, ErrorReply, Rejected)
            assert isinstance(event, kinds), f"event {number} outside a delivery: {event!r}"
        if isinstance(event, OkReply | ErrorReply):
            accounted += len(b"OK") if isinstance(event, OkReply) else len(b"ERROR")
        elif isinstance(event, Rejected):
            accounted += len(event.line)
        elif isinstance(event, BodyData):
            accounted += len(event.data)
    assert accounted <= len(payload), f"events stand for {accounted} of {len(payload)} bytes"
