"""What the two decoders share around the body reader: the buffer, feed and eof, the failure.

The server's :class:`~chatproto.wire.codec.Decoder` and the client's
:class:`~chatproto.wire.client_codec.ClientDecoder` are one state machine
with a different first line: each reads its own (a command; a reply or a
``FROM`` line), then hands the stream to a
:class:`~chatproto.wire.body.BodyReader` until the body ends, and both enter
the same terminal state when the stream cannot be delimited any more.
:class:`StreamDecoder` holds that common part; a subclass writes
``next_event`` and the parsing of its first line.
"""

from typing import Final

from chatproto.limits import Limits
from chatproto.wire import compiled
from chatproto.wire.body import BodyReader
from chatproto.wire.buffer import ReceiveBuffer
from chatproto.wire.events import MessageEnd, Rejected

# The states every decoder has.
FIRST_LINE: Final = 0  # expecting the decoder's own first line
BODY: Final = 1  # the body reader has the stream
FAILED: Final = 2  # terminal: the stream cannot be resynchronised

#: The one ``MessageEnd`` a decoder reports (events carry no state).
MESSAGE_END: Final = MessageEnd()


class StreamDecoder:
    """A decoder's buffer, its input calls and its terminal failure (see the module docstring).

    Args:
        limits: ``max_line_bytes`` bounds a line, ``max_message_bytes`` a body.
        coalesce_chunks: see :class:`~chatproto.wire.body.BodyReader`.

    Attributes:
        buffer_type: the class a decoder makes its receive buffers from: the
            twin :mod:`chatproto.wire.compiled` chose. The tests set it to run
            a decoder over each twin.
    """

    __slots__ = ("_limits", "_body", "_buffer", "_state", "_at_eof", "_failure", "_lost")

    buffer_type: type[ReceiveBuffer] = compiled.ReceiveBuffer

    def __init__(self, limits: Limits, coalesce_chunks: bool = False) -> None:
        self._limits = limits
        self._body = BodyReader(limits, coalesce_chunks=coalesce_chunks)
        self._buffer = self.buffer_type()
        self._state = FIRST_LINE
        self._at_eof = False
        self._failure: Rejected | None = None
        self._lost = 0  # bytes consumed before the failure dropped the buffer

    @property
    def buffered_bytes(self) -> int:
        """Bytes fed but not yet consumed by an event (bounded by a line or a chunk)."""
        return len(self._buffer)

    @property
    def consumed_bytes(self) -> int:
        """Bytes of the stream the events so far were made of.

        Read after an event, it is where that event's bytes end: ``-v`` cuts
        what a client sent at these points to show each frame as received.
        After a failure it stays where the stream broke.
        """
        return self._lost + self._buffer.consumed

    def feed(self, data: bytes) -> None:
        """Add received bytes. Feeding after :meth:`eof` is a caller bug (``RuntimeError``)."""
        if self._at_eof:
            raise RuntimeError("feed() after eof()")
        if self._state != FAILED:
            self._buffer.feed(data)

    def eof(self) -> None:
        """Say no more bytes will come.

        A last line may then lack its ``\\n`` (a command or an ``OK`` in a
        datagram, PROTOCOL §6); a frame without its last byte becomes a fatal
        ``Rejected("eof mid-message")``.
        """
        self._at_eof = True

    def _fail(self, reason: str, line: bytes = b"") -> Rejected:
        """Enter the terminal state: the stream cannot be delimited any more."""
        self._failure = Rejected(reason, True, line)
        self._state = FAILED
        self._lost = self._buffer.consumed
        self._buffer = self.buffer_type()  # release what was buffered
        return self._failure
