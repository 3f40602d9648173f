"""The events the wire decoder reports: one class per thing a peer did.

The decoder (``chatproto.wire.codec.Decoder``) turns bytes into these; the
protocols turn them into service calls. A message with a short body (at most
99 bytes) arrives as one :class:`ShortMessage` once its last byte is in. A
chunked message streams: one :class:`MessageStart`, a :class:`BodyData` per
chunk (or, from a decoder asked to, a :class:`BodyFrames` per run of whole
chunks), then :class:`MessageEnd`. A refused command is framed all the same and
reported as a :class:`Rejected` where its message would end (PROTOCOL.md §3).

Events are values: nothing changes one after it is made. They are not
``frozen`` dataclasses all the same, because one is made per message and a
frozen one costs about three times as much to make (timeit here: 0.28 s
against 0.10 s for 500,000 three-field events), which showed in the relay
profile.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Final


class _NeedData(Enum):
    """The type of :data:`NEED_DATA`.

    An enum of one member, so that a type checker narrows ``event is NEED_DATA``
    as it does ``is None``; at run time it is a plain identity test.
    """

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``Decoder.next_event`` when no complete event is buffered.
NEED_DATA: Final = _NeedData.NEED_DATA


@dataclass(slots=True)
class Login:
    """``ME IS <user>`` with a valid userid."""

    user: bytes


@dataclass(slots=True)
class ShortMessage:
    """A whole ``SEND``/``BROADCAST`` with a short body (0-99 bytes).

    Attributes:
        recipients: the distinct recipients in the order named, or ``None``
            for ``BROADCAST``.
        body: the body's bytes.
        line: the command line as received, without its line end (for display).
    """

    recipients: tuple[bytes, ...] | None
    body: bytes
    line: bytes


@dataclass(slots=True)
class MessageRun:
    """Consecutive whole messages under one command line, as one event.

    A decoder asked for runs (``Decoder.next_event(max_frames)`` with
    ``max_frames`` over 1) reports the complete messages of one read that
    repeat an accepted ``SEND``/``BROADCAST`` line, their bodies already in
    the wire form a delivery carries, so that a client's read costs one event
    and one routing decision, not one of each per message (issue 16). Only
    bodies in canonical form come this way (a short ``<n>\\n`` length line
    without leading zero; ``C<n>\\n`` chunks ending with ``C0\\n``, no ``\\r``
    and no blank line), each within the decoder's run body limit; anything
    else is reported message by message, with the same result.

    Attributes:
        recipients: the distinct recipients in the order named, or ``None``
            for ``BROADCAST``.
        line: the command line as received, without its line end.
        bodies: each message's body as framed on the wire: ``b"<n>\\n<data>"``,
            or ``b"C<n>\\n<data>...C0\\n"``.
        body_bytes: the body bytes of all of them (not counting framing).
        chunked: how many of ``bodies`` are chunked.
    """

    recipients: tuple[bytes, ...] | None
    line: bytes
    bodies: list[bytes]
    body_bytes: int
    chunked: int


@dataclass(slots=True)
class MessageStart:
    """A ``SEND`` or ``BROADCAST`` line and its first chunk header were read.

    Only chunked bodies start this way: a short body comes whole, as a
    :class:`ShortMessage`.

    Attributes:
        recipients: the distinct recipients in the order named, or ``None``
            for ``BROADCAST``.
        line: the command line as received, without its line end (for display).
    """

    recipients: tuple[bytes, ...] | None
    line: bytes


@dataclass(slots=True)
class BodyData:
    """One piece of a body: a chunk (or, in a delivery to a client, a whole short body)."""

    data: bytes


@dataclass(slots=True)
class BodyFrames:
    """Several whole chunks of a chunked body, as they came on the wire.

    Reported instead of one :class:`BodyData` per chunk by a decoder made
    with ``coalesce_chunks=True``, when the chunk headers are in canonical
    form (``C<n>\n``, no leading zero, no ``\r``): the frames can then be
    kept and relayed as they are, with no work per chunk.

    Attributes:
        wire: the chunks with their headers (never ``C0``).
        size: the body bytes in them.
    """

    wire: bytes
    size: int


@dataclass(slots=True)
class MessageEnd:
    """The body's last byte has arrived: the message (or delivery) is complete."""


@dataclass(slots=True)
class Rejected:
    """The peer sent something the protocol does not allow.

    The server answers a client's with ``ERROR``; the client reports the
    server's and, when it is fatal, closes.

    Attributes:
        reason: why, in a few words (for logs).
        fatal: the frame cannot be skipped, so the connection must close; the
            decoder then returns this same event for ever.
        line: the offending line, when there is one (for display).
    """

    reason: str
    fatal: bool
    line: bytes = b""


#: The :attr:`Rejected.reason` of a line over the limit: the decoder stops
#: before that line, which it never consumes.
LINE_TOO_LONG_REASON: Final = "line too long"


Event = (
    Login
    | ShortMessage
    | MessageRun
    | MessageStart
    | BodyData
    | BodyFrames
    | MessageEnd
    | Rejected
)
"""What the server's decoder reports of a client's bytes."""


# -- the server-to-client direction (chatproto.wire.client_codec) -------------


@dataclass(slots=True)
class OkReply:
    """The server answered ``OK``: the login was accepted (PROTOCOL §2)."""


@dataclass(slots=True)
class ErrorReply:
    """The server answered ``ERROR``: the login or a message was refused (PROTOCOL §2, §3)."""


@dataclass(slots=True)
class DeliveryStart:
    """A ``FROM`` line and the first length line of its body (short or chunked) were read.

    Its body follows as :class:`BodyData` pieces and a :class:`MessageEnd`.

    Attributes:
        sender: the sender's userid (valid by PROTOCOL §2).
    """

    sender: bytes


ServerEvent = OkReply | ErrorReply | DeliveryStart | BodyData | MessageEnd | Rejected
"""What the client's decoder reports of the server's bytes."""
