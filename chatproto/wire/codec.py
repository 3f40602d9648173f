"""The server side of the wire format: a client's bytes in, events out (PROTOCOL §2, §3).

:class:`Decoder` parses the command lines (``ME IS``, ``SEND``, ``BROADCAST``)
and leaves the body after them to the shared :class:`~chatproto.wire.body.BodyReader`;
:func:`decode_datagram` decodes one UDP datagram. The grammar is in
:mod:`chatproto.wire.grammar`, the frames the server writes in
:mod:`chatproto.wire.encode`.

No sockets, no clock, no logging and no Twisted here: the TCP protocol feeds
whatever a read returned, the UDP protocol feeds one datagram and then
:meth:`Decoder.eof`, and both get the same events (``chatproto.wire.events``).
Every rule cited as ``PROTOCOL §n`` comes from PROTOCOL.md.

Peer mistakes are data, not exceptions: the decoder reports them as
:class:`~chatproto.wire.events.Rejected` and, where the contract allows, carries on
at the next command. An exception escaping :meth:`Decoder.next_event` is a bug.
"""

from typing import Any, Final

from chatproto.limits import Limits
from chatproto.wire.body import BODY_END, CHUNKED_START, BodyError
from chatproto.wire.buffer import LINE_TOO_LONG
from chatproto.wire.events import (
    LINE_TOO_LONG_REASON,
    NEED_DATA,
    BodyData,
    BodyFrames,
    Event,
    Login,
    MessageEnd,
    MessageRun,
    MessageStart,
    Rejected,
    ShortMessage,
    _NeedData,
)
from chatproto.wire.grammar import LOGIN_PREFIX, USERID_RE
from chatproto.wire.stream import BODY, FIRST_LINE, MESSAGE_END, StreamDecoder

#: The decoder's first line is a command (ME IS, SEND, BROADCAST).
_COMMAND: Final = FIRST_LINE


class Decoder(StreamDecoder):
    """Parse one client's byte stream into events (PROTOCOL §2, §3).

    Feed bytes with :meth:`feed`, say the input ended with :meth:`eof`, and
    call :meth:`next_event` until it returns :data:`~chatproto.wire.events.NEED_DATA`.
    A short message is reported whole (it is at most 99 bytes); a chunked body
    streams, one :class:`~chatproto.wire.events.BodyData` per chunk, so the decoder
    never holds more than one line or one chunk beyond what it was fed. With
    ``coalesce_chunks`` the whole chunks of each read come as one
    :class:`~chatproto.wire.events.BodyFrames` where their headers allow (the TCP
    protocol asks for this: it saves an event and a copy per chunk).

    The command lines are parsed here; the body after them is framed by the
    :class:`~chatproto.wire.body.BodyReader` the client decoder uses too.

    A refused ``SEND``/``BROADCAST`` (no or bad recipients, too many, arguments
    to ``BROADCAST``) is still framed, and reported as a non-fatal
    :class:`~chatproto.wire.events.Rejected` where its ``MessageEnd`` would be, so
    the refusal is answered after the body (PROTOCOL §3). A frame that cannot
    be delimited gives a fatal ``Rejected``, which every later call repeats.
    """

    __slots__ = (
        "_line",
        "_recipients",
        "_refusal",
        "_last_line",
        "_last_parse",
        "_run_max_body",
    )

    def __init__(self, limits: Limits, coalesce_chunks: bool = False) -> None:
        super().__init__(limits, coalesce_chunks)
        # A run carries only bodies its receiver keeps in memory (a bigger one
        # streams, and may spill to the spool on the way).
        self._run_max_body = min(limits.max_message_bytes, limits.spill_threshold_bytes)
        self._line = b""  # the current message's command line
        self._recipients: tuple[bytes, ...] | None = None
        self._refusal: str | None = None
        # The last SEND/BROADCAST line and its parse: clients repeat them.
        self._last_line = b""
        self._last_parse: tuple[tuple[bytes, ...] | None, str | None] = (None, None)

    @property
    def is_mid_message(self) -> bool:
        """Whether a command line has been read but not yet its whole body."""
        return self._state == BODY

    def next_event(self, max_frames: int = 1) -> Event | _NeedData:
        """Return the next event, or ``NEED_DATA`` if none is complete yet.

        With ``max_frames`` over 1, the whole messages buffered under one
        accepted command line may come as one :class:`~chatproto.wire.events.MessageRun`
        of at most that many (see there); the same messages come otherwise one
        by one. A caller that shows each frame as received (``-v``) asks for 1.
        """
        buffer = self._buffer
        limits = self._limits
        while True:
            state = self._state
            if state == _COMMAND:
                if self._last_parse[1] is None and self._last_line:
                    # The last accepted SEND/BROADCAST line again.
                    if max_frames > 1:
                        taken = buffer.take_message_run(
                            self._last_line, self._run_max_body, max_frames
                        )
                        if taken is not None:
                            return MessageRun(self._last_parse[0], self._last_line, *taken)
                    body = buffer.take_short_frame(self._last_line, limits.max_message_bytes)
                    if body is not None:
                        return ShortMessage(self._last_parse[0], body, self._last_line)
                max_line = limits.max_line_bytes
                line = buffer.take_line(max_line)
                if line is None:
                    if not (self._at_eof and len(buffer)):
                        return NEED_DATA
                    line = buffer.take_rest(max_line)
                if line is LINE_TOO_LONG:
                    return self._fail(LINE_TOO_LONG_REASON)
                assert isinstance(line, bytes)
                if line:
                    event = self._parse_command(line)
                    if event is not None:
                        return event
                    if max_frames > 1 and self._refusal is None:
                        run = self._start_run(line, max_frames)
                        if run is not None:
                            return run
            elif state == BODY:
                # Dispatched on its class by identity (the fastest test), which a
                # type checker cannot follow: hence Any.
                piece: Any = self._body.read(buffer, self._at_eof)
                kind = piece.__class__
                if kind is BodyData or kind is BodyFrames or piece is NEED_DATA:
                    return piece
                if kind is bytes or piece is BODY_END:  # a short body, or the end
                    self._state = _COMMAND
                    if self._refusal is not None:
                        return Rejected(self._refusal, False, self._line)
                    if kind is bytes:
                        return ShortMessage(self._recipients, piece, self._line)
                    return MESSAGE_END
                if piece is CHUNKED_START:
                    return MessageStart(self._recipients, self._line)
                if kind is BodyError:
                    return self._fail(piece.reason, piece.line)
                # SHORT_START: the body's bytes come next, whole.
            else:
                assert self._failure is not None
                return self._failure

    def _start_run(self, line: bytes, max_frames: int) -> MessageRun | None:
        """A run from the message whose command ``line`` was just read, if its body is whole."""
        first = self._buffer.take_body(self._run_max_body)
        if first is None:
            return None  # the body reader takes it from here
        self._state = _COMMAND
        wire, body_bytes, is_chunked = first
        bodies = [wire]
        chunked = int(is_chunked)
        if max_frames > 1:
            more = self._buffer.take_message_run(line, self._run_max_body, max_frames - 1)
            if more is not None:
                bodies += more[0]
                body_bytes += more[1]
                chunked += more[2]
        return MessageRun(self._recipients, line, bodies, body_bytes, chunked)

    def _parse_command(self, line: bytes) -> Login | Rejected | None:
        """Parse a command line; ``None`` means a message body follows."""
        if line.startswith(LOGIN_PREFIX):
            user = line[len(LOGIN_PREFIX) :]
            if USERID_RE.fullmatch(user):
                return Login(user)
            return Rejected("invalid userid", False, line)
        if line == self._last_line:
            self._recipients, self._refusal = self._last_parse
        elif not self._parse_message_line(line):
            return Rejected("unknown command", False, line)
        self._line = line
        self._body.start()
        self._state = BODY
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
            elif not all(map(USERID_RE.fullmatch, names)):
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
