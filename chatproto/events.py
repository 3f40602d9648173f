"""The events the wire decoder reports: one class per thing a peer did.

The decoder (``chatproto.codec.Decoder``) turns bytes into these; the
protocols turn them into service calls. A message arrives as one
:class:`MessageStart`, zero or more :class:`BodyData` (each exactly one chunk,
or the whole short body) and then :class:`MessageEnd`, or :class:`Rejected` in
its place when the command was refused (PROTOCOL.md §3).
"""

from dataclasses import dataclass


class _NeedData:
    """The type of :data:`NEED_DATA`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``Decoder.next_event`` when no complete event is buffered.
NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class Login:
    """``ME IS <user>`` with a valid userid."""

    user: bytes


@dataclass(frozen=True, slots=True)
class MessageStart:
    """A ``SEND`` or ``BROADCAST`` line and its first length line were read.

    Attributes:
        recipients: the distinct recipients in the order named, or ``None``
            for ``BROADCAST``.
        chunked: whether the body is chunked (``C<n>`` frames).
        line: the command line as received, without its line end (for display).
    """

    recipients: tuple[bytes, ...] | None
    chunked: bool
    line: bytes


@dataclass(frozen=True, slots=True)
class BodyData:
    """One piece of the body: a whole chunk, or the whole short body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """The body's last byte has arrived: the message is complete."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The peer sent something the protocol does not allow; answer ``ERROR``.

    Attributes:
        reason: why, in a few words (for logs).
        fatal: the frame cannot be skipped, so the connection must close; the
            decoder then returns this same event for ever.
        line: the offending line, when there is one (for display).
    """

    reason: str
    fatal: bool
    line: bytes = b""


Event = Login | MessageStart | BodyData | MessageEnd | Rejected
