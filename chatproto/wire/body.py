"""The body reader both decoders share: everything after the command or ``FROM`` line.

PROTOCOL §3 and §4 frame a body the same way in both directions: a first
length line, either a short length (0-99, the bytes follow) or a chunk
header ``C<n>``; then, for a chunked body, ``C<n>`` frames until ``C0``;
blank lines between frames ignored, a ``\\r`` before a ``\\n`` tolerated, and
the body bounded by ``Limits.max_message_bytes``. :class:`BodyReader` reads
that much from a :class:`~chatproto.wire.buffer.ReceiveBuffer` and nothing
more, as h11's ``ChunkedReader`` serves its client and its server: the
server's :class:`~chatproto.wire.codec.Decoder` and the client's
:class:`~chatproto.wire.client_codec.ClientDecoder` each parse their own first
line and turn what the reader returns into their own events.

What :meth:`BodyReader.read` returns, one at a time:

- :data:`~chatproto.wire.events.NEED_DATA`: nothing more is complete;
- :data:`SHORT_START` or :data:`CHUNKED_START`: the first length line was read;
- ``bytes``: the whole short body (possibly empty);
- a chunk's data, made by the ``data_event`` class the reader was given;
- :class:`~chatproto.wire.events.BodyFrames`: a run of whole chunks (only
  with ``coalesce_chunks``);
- :data:`BODY_END`: the body is complete;
- :class:`BodyError`: the body cannot be delimited; the stream is lost.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from chatproto.limits import Limits
from chatproto.wire.buffer import LINE_TOO_LONG, ReceiveBuffer
from chatproto.wire.events import LINE_TOO_LONG_REASON, NEED_DATA, BodyData, BodyFrames, _NeedData
from chatproto.wire.grammar import CHUNK_HEADER_RE, MAX_SHORT_BODY

#: Digits of a short length line (``SHORT_LENGTH_RE``): 0 to 99.
_SHORT_DIGITS = len(str(MAX_SHORT_BODY))


class _Marker:
    """A named sentinel returned by :meth:`BodyReader.read`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: The first length line was a short length: the body's bytes come next, whole.
SHORT_START: Final = _Marker("SHORT_START")
#: The first length line was a chunk header: chunks follow until ``C0``.
CHUNKED_START: Final = _Marker("CHUNKED_START")
#: The body's last byte (or its ``C0``) has been read.
BODY_END: Final = _Marker("BODY_END")


@dataclass(slots=True)
class BodyError:
    """The body cannot be delimited: the stream must be given up (a fatal error).

    Attributes:
        reason: why, in a few words (``"message too large"``, ``"eof mid-message"``...).
        line: the offending line, when there is one.
    """

    reason: str
    line: bytes = b""


BodyResult = _NeedData | _Marker | bytes | BodyFrames | BodyError | Any
"""What :meth:`BodyReader.read` returns (``Any``: the ``data_event`` instances)."""

# Reader states.
_LENGTH = 0  # expecting the first length line
_SHORT_BODY = 1  # expecting the short body's bytes
_CHUNK_HEADER = 2  # expecting C<n>
_CHUNK_DATA = 3  # expecting the chunk's bytes
_END = 4  # the body is complete
_FAILED = 5  # terminal: the body cannot be delimited


class BodyReader:
    """Read one body at a time from a receive buffer (PROTOCOL §3, §4).

    Call :meth:`start` after each command or ``FROM`` line, then :meth:`read`
    until it returns :data:`BODY_END` or a :class:`BodyError`. The reader keeps
    no bytes itself: it consumes from the buffer it is handed, at most one line
    or one chunk (or one run of chunks) per call.

    Args:
        limits: ``max_message_bytes`` bounds the body, ``max_line_bytes`` a line.
        data_event: what a chunk's data is wrapped in (the decoder's own event).
        coalesce_chunks: report the whole chunks in the buffer, when their
            headers are canonical, as one :class:`~chatproto.wire.events.BodyFrames`.

    Attributes:
        is_short: whether the current body is a short one (known after the
            first length line).
    """

    __slots__ = (
        "_max_body",
        "_max_line",
        "_data_event",
        "_coalesce_chunks",
        "_state",
        "_need",
        "_body_bytes",
        "_failure",
        "is_short",
    )

    def __init__(
        self,
        limits: Limits,
        data_event: Callable[[bytes], Any] = BodyData,
        coalesce_chunks: bool = False,
    ) -> None:
        self._max_body = limits.max_message_bytes
        self._max_line = limits.max_line_bytes
        self._data_event = data_event
        self._coalesce_chunks = coalesce_chunks
        self._state = _END
        self._need = 0  # bytes of the short body or current chunk
        self._body_bytes = 0
        self._failure: BodyError | None = None
        self.is_short = False

    def start(self) -> None:
        """Begin a new body: the next line read is its first length line."""
        self._state = _LENGTH
        self._body_bytes = 0

    def read(self, buffer: ReceiveBuffer, at_eof: bool) -> BodyResult:
        """Consume the next piece of the body from ``buffer``; see the module docstring.

        Args:
            buffer: where the bytes are; only the body's own bytes are consumed.
            at_eof: no more bytes will come, so a body still short of its end
                is a :class:`BodyError` (``"eof mid-message"``).
        """
        while True:
            state = self._state
            if state == _CHUNK_HEADER:
                room = self._max_body - self._body_bytes
                if self._coalesce_chunks:
                    # Every whole chunk buffered, in one step.
                    run = buffer.take_chunk_run(room)
                    if run is not None:
                        self._body_bytes += run[1]
                        return BodyFrames(run[0], run[1])
                # The common case: a whole chunk, header and data, in one step.
                data = buffer.take_chunk(room)
                if data:
                    self._body_bytes += len(data)
                    return self._data_event(data)
                if data is not None:  # C0: the end
                    self._state = _END
                    return BODY_END
            elif state == _CHUNK_DATA or state == _SHORT_BODY:
                data = buffer.take(self._need)
                if data is None:
                    return self._error("eof mid-message") if at_eof else NEED_DATA
                if state == _SHORT_BODY:
                    self._state = _END
                    return data
                self._state = _CHUNK_HEADER
                if self._coalesce_chunks:
                    return self._with_run(buffer, data)
                return self._data_event(data)
            elif state == _END:
                return BODY_END
            elif state == _FAILED:
                return self._failure
            # _LENGTH, or _CHUNK_HEADER without a whole chunk buffered: a line.
            line = buffer.take_line(self._max_line)
            if line is None:
                return self._error("eof mid-message") if at_eof else NEED_DATA
            if line is LINE_TOO_LONG:
                return self._error(LINE_TOO_LONG_REASON)
            assert isinstance(line, bytes)
            if line:  # PROTOCOL §3: blank lines between frames are ignored
                result = self._parse_length(line, state == _LENGTH)
                if result is not None:
                    return result

    def _with_run(self, buffer: ReceiveBuffer, data: bytes) -> BodyFrames:
        """A chunk read after its own header line, and the whole chunks after it, as one run.

        Its header is written canonically (``C<n>\n``), as the body would
        frame it anyway: a message then costs one event for all its chunks.
        """
        wire = b"C%d\n%b" % (len(data), data)
        run = buffer.take_chunk_run(self._max_body - self._body_bytes)
        if run is None:
            return BodyFrames(wire, len(data))
        self._body_bytes += run[1]
        return BodyFrames(wire + run[0], len(data) + run[1])

    def _parse_length(self, line: bytes, is_first: bool) -> BodyResult | None:
        """Parse a length line (first frame) or chunk header; ``None`` means go on."""
        chunk = None
        # SHORT_LENGTH_RE's grammar ([0-9]{1,2}), tested without a regex call:
        # this runs for every message.
        if is_first and len(line) <= _SHORT_DIGITS and line.isdigit():  # short: 0..99
            size = int(line)
        elif chunk := CHUNK_HEADER_RE.fullmatch(line):
            size = int(chunk.group(1))
        else:
            return self._error("bad length line" if is_first else "bad chunk header", line)
        if self._body_bytes + size > self._max_body:
            return self._error("message too large", line)
        self._body_bytes += size
        self._need = size
        if chunk is None:
            assert size <= MAX_SHORT_BODY
            self._state = _SHORT_BODY
            self.is_short = True
            return SHORT_START
        self._state = _CHUNK_DATA if size else _END
        if is_first:
            self.is_short = False
            return CHUNKED_START
        return None if size else BODY_END

    def _error(self, reason: str, line: bytes = b"") -> BodyError:
        """Enter the terminal state: the body cannot be delimited any more."""
        self._failure = BodyError(reason, line)
        self._state = _FAILED
        return self._failure
