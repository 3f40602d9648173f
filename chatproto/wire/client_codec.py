"""The server-to-client direction of the wire format as a pure codec: bytes in, events out.

A chat client reads two kinds of frames from the server (PROTOCOL.md §2, §4):
the replies ``OK\\n`` and ``ERROR\\n``, and deliveries, ``FROM <sender>\\n``
followed by a short or chunked body. :class:`ClientDecoder` turns that byte
stream into the events of :mod:`chatproto.wire.events`, the body and refusal
events being the server decoder's own (one event module for both
directions); :func:`decode_server_datagram` does the same for one UDP
datagram. No sockets, no clock, no logging and no Twisted: the client's
protocols feed whatever a read returned and act on the events.

Bodies stream: a delivery is one :class:`DeliveryStart`, a
:class:`BodyData` per chunk (or one for a whole short body) and a
:class:`MessageEnd`, so a client can write a big file to disk without
holding it. The decoder holds at most one line or one chunk beyond what it
has reported, and refuses a body larger than the limit it is given.

Server mistakes are data, not exceptions: a line that is no reply and no
delivery is a non-fatal :class:`Rejected` (the decoder goes on at the next
line); a frame that cannot be delimited is a fatal one, which every later
call repeats. An exception escaping :meth:`ClientDecoder.next_event` is a bug.
"""

from typing import Any, Final

from chatproto.limits import Limits
from chatproto.wire.body import BODY_END, BodyError
from chatproto.wire.buffer import LINE_TOO_LONG
from chatproto.wire.events import (
    LINE_TOO_LONG_REASON,
    NEED_DATA,
    BodyData,
    DeliveryStart,
    ErrorReply,
    OkReply,
    Rejected,
    ServerEvent,
    _NeedData,
)
from chatproto.wire.grammar import ERROR, FROM_PREFIX, OK, is_valid_userid
from chatproto.wire.stream import BODY, FIRST_LINE, MESSAGE_END, StreamDecoder

_OK_LINE = OK.rstrip(b"\n")
_ERROR_LINE = ERROR.rstrip(b"\n")


_OK_REPLY: Final = OkReply()
_ERROR_REPLY: Final = ErrorReply()
#: The decoder's first line is a reply (OK, ERROR) or a FROM line.
_LINE: Final = FIRST_LINE


class ClientDecoder(StreamDecoder):
    """Parse the server's byte stream into events (PROTOCOL §2, §4).

    Feed bytes with :meth:`feed`, say the input ended with :meth:`eof`, and
    call :meth:`next_event` until it returns :data:`~chatproto.wire.events.NEED_DATA`.
    Blank lines between frames are ignored, and a ``\\r`` before a line's
    ``\\n`` is tolerated, as the server tolerates them from clients. The
    reply and ``FROM`` lines are parsed here; the body after a ``FROM`` line is
    framed by the :class:`~chatproto.wire.body.BodyReader` the server's decoder
    uses too.

    Args:
        limits: ``max_message_bytes`` bounds a delivery's body (a bigger one
            is a fatal :class:`Rejected`), ``max_line_bytes`` bounds a line.
            The server's defaults when omitted.
    """

    __slots__ = ("_sender",)

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits if limits is not None else Limits())
        self._sender = b""  # the current delivery's sender

    @property
    def is_mid_delivery(self) -> bool:
        """Whether a ``FROM`` line has been read but not yet its whole body."""
        return self._state == BODY

    def next_event(self) -> ServerEvent | _NeedData:
        """Return the next event, or ``NEED_DATA`` if none is complete yet."""
        while True:
            state = self._state
            if state == _LINE:
                event = self._read_line()
                if event is not None:
                    return event
            elif state == BODY:
                event = self._read_body()
                if event is not None:
                    return event
            else:
                assert self._failure is not None
                return self._failure

    def _read_line(self) -> ServerEvent | _NeedData | None:
        """Read a reply or ``FROM`` line; ``None`` means go on (blank line, body follows)."""
        buffer = self._buffer
        max_line = self._limits.max_line_bytes
        line = buffer.take_line(max_line)
        if line is None:
            if not (self._at_eof and len(buffer)):
                return NEED_DATA
            line = buffer.take_rest(max_line)
        if line is LINE_TOO_LONG:
            return self._fail(LINE_TOO_LONG_REASON)
        assert isinstance(line, bytes)
        if not line:  # blank lines between frames are ignored
            return None
        if line == _OK_LINE:
            return _OK_REPLY
        if line == _ERROR_LINE:
            return _ERROR_REPLY
        if line.startswith(FROM_PREFIX):
            sender = line[len(FROM_PREFIX) :]
            if not is_valid_userid(sender):
                # A body follows that cannot be told from the next frame: give up.
                return self._fail("FROM names an invalid userid", line)
            self._sender = sender
            self._body.start()
            self._state = BODY
            return None
        return Rejected("unknown line", False, line)

    def _read_body(self) -> ServerEvent | _NeedData | None:
        """Turn the body reader's next result into an event; ``None`` means go on."""
        # Dispatched on its class by identity, which a type checker cannot follow.
        piece: Any = self._body.read(self._buffer, self._at_eof)
        kind = piece.__class__
        if kind is BodyData or piece is NEED_DATA:
            return piece
        if kind is bytes:  # the whole short body; an empty one has no data event
            return BodyData(piece) if piece else None
        if piece is BODY_END:
            self._state = _LINE
            return MESSAGE_END
        if kind is BodyError:
            return self._fail(piece.reason, piece.line)
        return DeliveryStart(self._sender)  # SHORT_START or CHUNKED_START


def decode_server_datagram(datagram: bytes, limits: Limits | None = None) -> list[ServerEvent]:
    """Decode one datagram from the server (PROTOCOL §4, §6).

    Returns:
        Every event in the datagram, usually one reply or one whole delivery
        (``DeliveryStart``, ``BodyData``, ``MessageEnd``). A datagram
        that ends inside a delivery ends with a fatal ``Rejected``; for UDP
        that only means this datagram is spoiled.
    """
    decoder = ClientDecoder(limits)
    decoder.feed(datagram)
    decoder.eof()
    events: list[ServerEvent] = []
    while (event := decoder.next_event()) is not NEED_DATA:
        assert not isinstance(event, _NeedData)
        events.append(event)
        if isinstance(event, Rejected) and event.fatal:
            break
    return events
