"""The chat wire format as a pure codec: bytes in, events out; events in, bytes out.

No sockets, no clock, no logging and no Twisted here: the TCP protocol feeds
whatever a read returned, the UDP protocol feeds one datagram and then
:meth:`Decoder.eof`, and both get the same events (``chatproto.wire.events``).
Every rule cited as ``PROTOCOL §n`` comes from PROTOCOL.md.

Peer mistakes are data, not exceptions: the decoder reports them as
:class:`~chatproto.wire.events.Rejected` and, where the contract allows, carries on
at the next command. An exception escaping :meth:`Decoder.next_event` is a bug.
"""

import re
from collections.abc import Iterable, Sequence
from typing import Final

from chatproto.limits import Limits
from chatproto.wire.events import (
    NEED_DATA,
    BodyData,
    BodyFrames,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
    _NeedData,
)

#: Reply to an accepted ``ME IS``.
OK: Final = b"OK\n"
#: Reply to anything refused (PROTOCOL §2, §3).
ERROR: Final = b"ERROR\n"
#: Largest short body: its length is one or two decimal digits.
MAX_SHORT_BODY: Final = 99
#: Largest chunk: its size is one to three decimal digits.
MAX_CHUNK: Final = 999
#: Longest userid (PROTOCOL §2).
MAX_USERID: Final = 32

# PROTOCOL §2: 1 to 32 bytes of printable ASCII without space.
_USERID_RE = re.compile(rb"[\x21-\x7e]{1,32}")
# What follows a command line when a short body comes at once: the line end,
# a short length 0..99 (PROTOCOL §3), its line end.
_SHORT_LENGTH_LINE_RE = re.compile(rb"\r?\n([0-9]{1,2})\r?\n")
# A whole chunk header line, as it comes in the common case.
_CHUNK_HEADER_LINE_RE = re.compile(rb"C([0-9]{1,3})\r?\n")
# PROTOCOL §3: chunk size C0..C999 (leading zeros allowed).
_CHUNK_HEADER_RE = re.compile(rb"C([0-9]{1,3})")
# A chunk header in the form the server itself writes: C1..C999, plain \n.
_CANONICAL_CHUNK_HEADER_RE = re.compile(rb"C([1-9][0-9]{0,2})\n")
_LOGIN_PREFIX = b"ME IS "


def is_valid_userid(name: bytes) -> bool:
    """Tell whether ``name`` may be a userid: 1-32 bytes of 0x21-0x7E (PROTOCOL §2)."""
    return _USERID_RE.fullmatch(name) is not None


class _LineTooLong:
    __slots__ = ()


#: Returned by :meth:`ReceiveBuffer.take_line` for a line over the limit.
LINE_TOO_LONG: Final = _LineTooLong()


class ReceiveBuffer:
    """Bytes received but not yet parsed, consumed from the front without copying.

    Data lives in one ``bytearray`` with a read offset; consuming moves the
    offset, and the consumed prefix is dropped once per :meth:`feed`. A line
    search resumes where the previous one stopped and never looks further
    than the line limit, so a line arriving a byte at a time, or thousands of
    frames in one read, cost time linear in the bytes received.
    """

    __slots__ = ("_data", "_start", "_scan")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0  # first unconsumed byte
        self._scan = 0  # no newline in _data[_start:_scan]

    def __len__(self) -> int:
        return len(self._data) - self._start

    def feed(self, data: bytes) -> None:
        """Append ``data``, first dropping what has been consumed."""
        if self._start:
            del self._data[: self._start]
            self._scan -= self._start
            self._start = 0
        self._data += data

    def take_line(self, max_line: int) -> bytes | _LineTooLong | None:
        """Consume and return the next line without its ``\\n`` or ``\\r\\n``.

        Returns:
            The line; ``None`` if no complete line is buffered yet; or
            :data:`LINE_TOO_LONG` if the line is (or will be) longer than
            ``max_line`` bytes, decided without buffering the rest of it.
        """
        data = self._data
        start = self._start
        limit = start + max_line + 2  # the line, an optional \r, the \n
        newline = data.find(b"\n", self._scan, limit)
        if newline < 0:
            if len(data) >= limit:
                return LINE_TOO_LONG
            self._scan = len(data)
            return None
        end = newline - 1 if newline > start and data[newline - 1] == 0x0D else newline
        if end - start > max_line:
            return LINE_TOO_LONG
        line = bytes(data[start:end])
        self._start = self._scan = newline + 1
        return line

    def take_short_frame(self, line: bytes, max_body: int) -> bytes | None:
        """Consume ``line``, a short length line and the body, if all are buffered as such.

        This is the common case of a client repeating a command line, read in
        one step. Returns the body, or ``None`` (consuming nothing) when the
        buffer does not start with exactly that: the caller then parses line
        by line, with the same result (also for a body over ``max_body``).
        """
        data = self._data
        start = self._start
        if not data.startswith(line, start):
            return None
        length_line = _SHORT_LENGTH_LINE_RE.match(data, start + len(line))
        if length_line is None:
            return None
        body_start = length_line.end()
        size = int(length_line.group(1))
        end = body_start + size
        if len(data) < end or size > max_body:
            return None
        body = bytes(data[body_start:end])
        self._start = end
        if self._scan < end:
            self._scan = end
        return body

    def take_chunk(self, max_size: int) -> bytes | None:
        """Consume a chunk header and its data if both are buffered, as they usually are.

        Returns the chunk's data (empty for ``C0``), or ``None`` (consuming
        nothing) when the buffer does not start with a whole header and its
        data, or the size is over ``max_size``: the caller then reads the
        header as a line, with the same result.
        """
        header = _CHUNK_HEADER_LINE_RE.match(self._data, self._start)
        if header is None:
            return None
        size = int(header.group(1))
        start = header.end()
        end = start + size
        if size > max_size or len(self._data) < end:
            return None
        with memoryview(self._data) as view:
            data = view[start:end].tobytes()
        self._start = end
        if self._scan < end:
            self._scan = end
        return data

    def take_chunk_run(self, max_size: int) -> tuple[bytes, int] | None:
        """Consume the whole chunks buffered at the front, headers and all, in one piece.

        Only chunks with canonical headers (``C<n>\\n``, ``n`` 1 to 999 without
        leading zero) are taken, at most ``max_size`` body bytes of them, and
        never ``C0``. Returns ``(wire, body bytes)``, or ``None`` (consuming
        nothing) when not even one such chunk is buffered whole.
        """
        data = self._data
        match = _CANONICAL_CHUNK_HEADER_RE.match
        start = position = self._start
        available = len(data)
        size = 0
        while header := match(data, position):
            chunk = int(header.group(1))
            end = header.end() + chunk
            if end > available or size + chunk > max_size:
                break
            size += chunk
            position = end
        if position == start:
            return None
        wire = bytes(data[start:position])
        self._start = position
        if self._scan < position:
            self._scan = position
        return wire, size

    def take_rest(self, max_line: int) -> bytes | _LineTooLong:
        """Consume everything buffered as one last line (at end of input).

        A trailing ``\\r`` is dropped; more than ``max_line`` bytes is
        :data:`LINE_TOO_LONG`.
        """
        data = self._data
        end = len(data) - 1 if data.endswith(b"\r") else len(data)
        if end - self._start > max_line:
            return LINE_TOO_LONG
        line = bytes(data[self._start : end])
        self._start = self._scan = len(data)
        return line

    def take(self, size: int) -> bytes | None:
        """Consume exactly ``size`` bytes, or return ``None`` if fewer are buffered."""
        start = self._start
        end = start + size
        if len(self._data) < end:
            return None
        with memoryview(self._data) as view:
            piece = view[start:end].tobytes()
        self._start = end
        if self._scan < end:
            self._scan = end
        return piece


# Decoder states.
_COMMAND = 0  # expecting a command line
_LENGTH = 1  # after SEND/BROADCAST: expecting the first length line
_SHORT_BODY = 2  # expecting the short body's bytes
_CHUNK_HEADER = 3  # expecting C<n>
_CHUNK_DATA = 4  # expecting the chunk's bytes
_END = 5  # the body is complete: report MessageEnd (or the refusal)
_FAILED = 6  # terminal: the stream cannot be resynchronised

_MESSAGE_END: Final = MessageEnd()


class Decoder:
    """Parse one client's byte stream into events (PROTOCOL §2, §3).

    Feed bytes with :meth:`feed`, say the input ended with :meth:`eof`, and
    call :meth:`next_event` until it returns :data:`~chatproto.wire.events.NEED_DATA`.
    A short message is reported whole (it is at most 99 bytes); a chunked body
    streams, one :class:`~chatproto.wire.events.BodyData` per chunk, so the decoder
    never holds more than one line or one chunk beyond what it was fed. With
    ``coalesce_chunks`` the whole chunks of each read come as one
    :class:`~chatproto.wire.events.BodyFrames` where their headers allow (the TCP
    protocol asks for this: it saves an event and a copy per chunk).

    A refused ``SEND``/``BROADCAST`` (no or bad recipients, too many, arguments
    to ``BROADCAST``) is still framed, and reported as a non-fatal
    :class:`~chatproto.wire.events.Rejected` where its ``MessageEnd`` would be, so
    the refusal is answered after the body (PROTOCOL §3). A frame that cannot
    be delimited gives a fatal ``Rejected``, which every later call repeats.
    """

    __slots__ = (
        "_limits",
        "_coalesce_chunks",
        "_buffer",
        "_state",
        "_at_eof",
        "_need",
        "_line",
        "_recipients",
        "_refusal",
        "_body_bytes",
        "_failure",
        "_last_line",
        "_last_parse",
    )

    def __init__(self, limits: Limits, coalesce_chunks: bool = False) -> None:
        self._limits = limits
        self._coalesce_chunks = coalesce_chunks
        self._buffer = ReceiveBuffer()
        self._state = _COMMAND
        self._at_eof = False
        self._need = 0  # bytes of the short body or current chunk
        self._line = b""  # the current message's command line
        self._recipients: tuple[bytes, ...] | None = None
        self._refusal: str | None = None
        self._body_bytes = 0
        self._failure: Rejected | None = None
        # The last SEND/BROADCAST line and its parse: clients repeat them.
        self._last_line = b""
        self._last_parse: tuple[tuple[bytes, ...] | None, str | None] = (None, None)

    @property
    def buffered_bytes(self) -> int:
        """Bytes fed but not yet consumed by an event (bounded by a line or a chunk)."""
        return len(self._buffer)

    @property
    def is_mid_message(self) -> bool:
        """Whether a command line has been read but not yet its whole body."""
        return _LENGTH <= self._state <= _END

    def feed(self, data: bytes) -> None:
        """Add received bytes. Feeding after :meth:`eof` is a caller bug."""
        if self._at_eof:
            raise RuntimeError("feed() after eof()")
        if self._state != _FAILED:
            self._buffer.feed(data)

    def eof(self) -> None:
        """Say no more bytes will come.

        A last command line may then lack its ``\\n`` (PROTOCOL §6); a message
        without its last byte becomes a fatal ``Rejected("eof mid-message")``.
        """
        self._at_eof = True

    def next_event(self) -> Event | _NeedData:
        """Return the next event, or ``NEED_DATA`` if none is complete yet."""
        buffer = self._buffer
        limits = self._limits
        while True:
            state = self._state
            if state == _COMMAND:
                if self._last_parse[1] is None and self._last_line:
                    # The last accepted SEND/BROADCAST line again, with a short body.
                    body = buffer.take_short_frame(self._last_line, limits.max_message_bytes)
                    if body is not None:
                        return ShortMessage(self._last_parse[0], body, self._last_line)
                line = buffer.take_line(limits.max_line_bytes)
                if line is None:
                    if not (self._at_eof and len(buffer)):
                        return NEED_DATA
                    line = buffer.take_rest(limits.max_line_bytes)
                if line is LINE_TOO_LONG:
                    return self._fail("line too long")
                assert isinstance(line, bytes)
                if line:
                    event = self._parse_command(line)
                    if event is not None:
                        return event
            elif state == _SHORT_BODY:
                data = buffer.take(self._need)
                if data is None:
                    return self._fail("eof mid-message") if self._at_eof else NEED_DATA
                self._state = _COMMAND
                if self._refusal is not None:
                    return Rejected(self._refusal, False, self._line)
                return ShortMessage(self._recipients, data, self._line)
            elif state == _CHUNK_DATA:
                data = buffer.take(self._need)
                if data is None:
                    return self._fail("eof mid-message") if self._at_eof else NEED_DATA
                self._state = _CHUNK_HEADER
                return BodyData(data)
            elif state == _LENGTH or state == _CHUNK_HEADER:
                if state == _CHUNK_HEADER:
                    room = limits.max_message_bytes - self._body_bytes
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
                        return BodyData(data)
                    if data is not None:  # C0: the end
                        self._state = _END
                        continue
                line = buffer.take_line(limits.max_line_bytes)
                if line is None:
                    return self._fail("eof mid-message") if self._at_eof else NEED_DATA
                if line is LINE_TOO_LONG:
                    return self._fail("line too long")
                assert isinstance(line, bytes)
                if line:  # PROTOCOL §3: blank lines between frames are ignored
                    started = self._parse_length(line, state == _LENGTH)
                    if started is not None:
                        return started
            elif state == _END:
                self._state = _COMMAND
                if self._refusal is not None:
                    return Rejected(self._refusal, False, self._line)
                return _MESSAGE_END
            else:
                assert self._failure is not None
                return self._failure

    def _parse_command(self, line: bytes) -> Login | Rejected | None:
        """Parse a command line; ``None`` means a message body follows."""
        if line.startswith(_LOGIN_PREFIX):
            user = line[len(_LOGIN_PREFIX) :]
            if _USERID_RE.fullmatch(user):
                return Login(user)
            return Rejected("invalid userid", False, line)
        if line == self._last_line:
            self._recipients, self._refusal = self._last_parse
        elif not self._parse_message_line(line):
            return Rejected("unknown command", False, line)
        self._line = line
        self._body_bytes = 0
        self._state = _LENGTH
        return None

    def _parse_message_line(self, line: bytes) -> bool:
        """Parse a SEND/BROADCAST line into recipients and refusal; False if it is neither."""
        verb, _, rest = line.partition(b" ")
        if verb == b"SEND":
            # PROTOCOL §3: runs of spaces tolerated; a name given twice counts once.
            names = tuple(dict.fromkeys(name for name in rest.split(b" ") if name))
            if not names:
                self._refusal = "SEND names no recipient"
            elif len(names) > self._limits.max_recipients:
                self._refusal = "too many recipients"
            elif not all(map(_USERID_RE.fullmatch, names)):
                self._refusal = "invalid recipient userid"
            else:
                self._refusal = None
            self._recipients = names
        elif verb == b"BROADCAST":
            self._recipients = None
            self._refusal = "BROADCAST takes no arguments" if rest.strip(b" ") else None
        else:
            return False
        self._last_line = line
        self._last_parse = (self._recipients, self._refusal)
        return True

    def _parse_length(self, line: bytes, is_first: bool) -> MessageStart | Rejected | None:
        """Parse a length line (first frame) or chunk header; ``None`` means go on."""
        chunk = None
        if is_first and len(line) <= 2 and line.isdigit():  # short: 0..99
            size = int(line)
        elif chunk := _CHUNK_HEADER_RE.fullmatch(line):
            size = int(chunk.group(1))
        else:
            return self._fail("bad length line" if is_first else "bad chunk header", line)
        if self._body_bytes + size > self._limits.max_message_bytes:
            return self._fail("message too large", line)
        self._body_bytes += size
        self._need = size
        if chunk is None:
            self._state = _SHORT_BODY  # reported whole, as a ShortMessage
            return None
        self._state = _CHUNK_DATA if size else _END
        if is_first:
            return MessageStart(self._recipients, True, self._line)
        return None

    def _fail(self, reason: str, line: bytes = b"") -> Rejected:
        """Enter the terminal state: the stream cannot be delimited any more."""
        self._failure = Rejected(reason, True, line)
        self._state = _FAILED
        self._buffer = ReceiveBuffer()  # release what was buffered
        return self._failure


def decode_datagram(datagram: bytes, limits: Limits) -> list[Event]:
    """Decode a datagram that must hold exactly one command (PROTOCOL §6).

    Returns:
        The one event of that frame (``Login``, ``ShortMessage``, or a
        non-fatal ``Rejected`` for a refused command), or a single non-fatal
        ``Rejected`` when the datagram is malformed, carries a chunked body,
        or holds more or less than one frame. Nothing in a datagram is fatal:
        there is no stream to lose.
    """
    decoder = Decoder(limits)
    decoder.feed(datagram)
    decoder.eof()
    events: list[Event] = []
    frames = 0
    while (event := decoder.next_event()) is not NEED_DATA:
        assert not isinstance(event, _NeedData)
        if frames:
            return [Rejected("more than one command in a datagram", False, datagram)]
        if isinstance(event, MessageStart):  # only chunked bodies stream
            return [Rejected("chunked body over UDP", False, event.line)]
        if isinstance(event, Rejected) and event.fatal:
            return [Rejected(event.reason, False, event.line or datagram)]
        events.append(event)
        if isinstance(event, (Login, ShortMessage, MessageEnd, Rejected)):
            frames += 1
    if not frames:
        return [Rejected("no command in datagram", False, datagram)]
    return events


# -- encoding ---------------------------------------------------------------


def encode_login(user: bytes) -> bytes:
    """Return the ``ME IS`` line for ``user``."""
    return _LOGIN_PREFIX + user + b"\n"


def encode_command(recipients: Sequence[bytes] | None) -> bytes:
    """Return the ``SEND`` line for ``recipients``, or ``BROADCAST`` for ``None``."""
    if recipients is None:
        return b"BROADCAST\n"
    if not recipients:
        raise ValueError("SEND needs at least one recipient")
    return b"SEND " + b" ".join(recipients) + b"\n"


def encode_from(sender: bytes) -> bytes:
    """Return the ``FROM`` line that heads a delivery (PROTOCOL §4)."""
    return b"FROM " + sender + b"\n"


def encode_short_body(data: bytes) -> list[bytes]:
    """Frame a short body (0-99 bytes) as its length line and the bytes.

    Raises:
        ValueError: ``data`` is longer than a short body may be.
    """
    size = len(data)
    if size > MAX_SHORT_BODY:
        raise ValueError(f"a short body holds at most {MAX_SHORT_BODY} bytes, not {size}")
    return [b"%d\n" % size, data] if size else [b"0\n"]


def encode_chunked_body(chunks: Iterable[bytes]) -> list[bytes]:
    """Frame chunks (1-999 bytes each) as ``C<n>`` frames ending with ``C0``.

    Raises:
        ValueError: a chunk is empty or longer than 999 bytes.
    """
    frames: list[bytes] = []
    for chunk in chunks:
        size = len(chunk)
        if not 0 < size <= MAX_CHUNK:
            raise ValueError(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {size}")
        frames.append(b"C%d\n" % size)
        frames.append(chunk)
    frames.append(b"C0\n")
    return frames


def split_chunks(data: bytes, size: int = MAX_CHUNK) -> list[bytes]:
    """Cut ``data`` into chunks of at most ``size`` bytes (none for empty data)."""
    if not 0 < size <= MAX_CHUNK:
        raise ValueError(f"chunk size must be 1 to {MAX_CHUNK}")
    return [data[i : i + size] for i in range(0, len(data), size)]


def encode_message(
    recipients: Sequence[bytes] | None, body: bytes, *, chunked: bool | None = None
) -> bytes:
    """Return a whole ``SEND``/``BROADCAST`` frame, as a client sends it.

    ``chunked=None`` picks a short body when ``body`` fits in 99 bytes.
    """
    if chunked is None:
        chunked = len(body) > MAX_SHORT_BODY
    frames = encode_chunked_body(split_chunks(body)) if chunked else encode_short_body(body)
    return encode_command(recipients) + b"".join(frames)
