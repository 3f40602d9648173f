"""What chatproto processes say to each other through Redis pub/sub: a pure codec.

A cluster node publishes a message for users on another node to that node's
channel, and a BROADCAST to the broadcast channel every node listens on. What
it publishes is a *batch*: one or more relay messages, each after its length
line (``<length>\n<message>``), so that many messages cost one PUBLISH. Each
relay message is one header line, then a payload::

    S <origin> <id> <size> <sender> [<recipient> ...]\\n<body>    a short message
    R <origin> <id> <count> <sender> [<recipient> ...]\\n<bodies> a run of short ones
    C <origin> <id> <size> <sender> [<recipient> ...]\\n<frames>  a whole chunked one
    B <origin> <id> <size> <sender> [<recipient> ...]\\n          a big chunked one begins
    P <origin> <id>\\n<frames>                                     its next piece
    E <origin> <id>\\n                                             it is complete

``origin`` names the publishing node, ``id`` counts its messages, ``size`` is
the body's size in bytes and ``frames`` are the body's wire frames exactly as
the sender sent them (``C<n>`` chunks and ``C0``; a piece may end inside a
chunk). A *run* is ``count`` short messages from one sender to the same
users, as one client's read of them becomes (issue 16): its ``bodies`` are
each framed as on the client wire, ``<length>\\n<bytes>`` in canonical form,
one after the other, so that a run costs one header and one relay message
however many it holds. Recipients are named only on a node's channel.
Userids are printable ASCII without spaces (PROTOCOL §2), so spaces separate
the fields.

Nothing here does I/O; :mod:`chatproto.cluster.router` publishes and subscribes.
"""

from typing import NamedTuple

from chatproto.wire import compiled
from chatproto.wire.grammar import MAX_SHORT_BODY

SHORT = b"S"
RUN = b"R"
CHUNKED = b"C"
BEGIN = b"B"
PIECE = b"P"
END = b"E"

_WITH_MESSAGE = (SHORT, RUN, CHUNKED, BEGIN)


class RelayFormatError(ValueError):
    """A relay message that no chatproto node would publish."""


class RelayHeader(NamedTuple):
    """The header line of a relay message.

    Attributes:
        kind: one of :data:`SHORT`, :data:`RUN`, :data:`CHUNKED`, :data:`BEGIN`,
            :data:`PIECE`, :data:`END`.
        origin: the publishing node's id.
        message_id: the message's number at its origin (pieces name their message by it).
        size: the body's size in bytes (0 for pieces and ends); a run's count of messages.
        sender: the sender's userid (empty for pieces and ends).
        recipients: the recipients on the receiving node (none on the broadcast channel).

    A NamedTuple rather than a frozen dataclass: one is made per relayed
    message, and a tuple is made about three times faster (timeit here:
    0.10 s against 0.34 s for 300,000).
    """

    kind: bytes
    origin: bytes
    message_id: int
    size: int = 0
    sender: bytes = b""
    recipients: tuple[bytes, ...] = ()


def encode_message(
    kind: bytes,
    origin: bytes,
    message_id: int,
    size: int,
    sender: bytes,
    recipients: tuple[bytes, ...] | list[bytes] = (),
) -> bytes:
    """Return the header line of a message that names its sender and recipients.

    That is a :data:`SHORT`, :data:`RUN`, :data:`CHUNKED` or :data:`BEGIN`
    one; for a :data:`RUN`, ``size`` is how many messages it holds.
    """
    names = b"".join(b" " + name for name in recipients)
    return b"%b %b %d %d %b%b\n" % (kind, origin, message_id, size, sender, names)


def encode_run_bodies(bodies: list[bytes]) -> bytes:
    """Return the payload of a :data:`RUN`: ``bodies``, each framed ``<length>\\n<bytes>``."""
    return b"".join(bodies)


def decode_run_bodies(payload: bytes, count: int) -> list[bytes]:
    """Split a :data:`RUN`'s payload into its ``count`` bodies, each as framed.

    The bodies are read as a client's run is, by the receive buffer's
    ``take_body`` (the compiled twin where it runs).

    Raises:
        RelayFormatError: if the payload is not ``count`` short bodies in
            canonical form (a length of 0..99 without leading zeros).
    """
    buffer = compiled.ReceiveBuffer()
    buffer.feed(payload)
    take_body = buffer.take_body
    bodies: list[bytes] = []
    while len(buffer):
        taken = take_body(MAX_SHORT_BODY)
        if taken is None or taken[2]:  # not whole, not canonical, or chunked
            raise RelayFormatError("a run's payload is not short bodies in canonical form")
        bodies.append(taken[0])
    if len(bodies) != count or not count:
        raise RelayFormatError(f"a run of {len(bodies)} bodies says it holds {count}")
    return bodies


def encode_piece(origin: bytes, message_id: int, frames: bytes) -> bytes:
    """Return a :data:`PIECE` of a big message: the next run of its wire frames."""
    return b"P %b %d\n%b" % (origin, message_id, frames)


def encode_end(origin: bytes, message_id: int) -> bytes:
    """Return the :data:`END` of a big message."""
    return b"E %b %d\n" % (origin, message_id)


def encode_batch(messages: list[bytes]) -> bytes:
    """Return ``messages`` as one publishable batch."""
    return b"".join(b"%d\n%b" % (len(message), message) for message in messages)


def decode_batch(data: bytes) -> list[bytes]:
    """Split a published batch into its relay messages.

    Raises:
        RelayFormatError: if ``data`` is not a batch (what came before the
            fault is lost with it: a node never publishes such a thing).
    """
    messages: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end:
        newline = data.find(b"\n", offset, offset + 21)
        length_text = data[offset:newline]
        if newline < 0 or not length_text.isdigit():
            raise RelayFormatError("bad batch length line")
        start = newline + 1
        stop = start + int(length_text)
        if stop > end:
            raise RelayFormatError("batch shorter than its length line says")
        messages.append(data[start:stop])
        offset = stop
    return messages


def decode(data: bytes) -> tuple[RelayHeader, bytes]:
    """Split a relay message into its header and payload.

    Raises:
        RelayFormatError: if ``data`` is not a relay message.
    """
    newline = data.find(b"\n")
    if newline < 0:
        raise RelayFormatError("no header line")
    fields = data[:newline].split(b" ")
    kind = fields[0]
    try:
        if kind in _WITH_MESSAGE and len(fields) >= 5:
            header = RelayHeader(
                kind, fields[1], int(fields[2]), int(fields[3]), fields[4], tuple(fields[5:])
            )
        elif kind in (PIECE, END) and len(fields) == 3:
            header = RelayHeader(kind, fields[1], int(fields[2]))
        else:
            raise RelayFormatError(f"bad header {data[:newline][:80]!r}")
    except ValueError as error:  # int() of a non-number
        raise RelayFormatError(str(error)) from None
    if not header.origin or (kind in _WITH_MESSAGE and not header.sender):
        raise RelayFormatError("empty origin or sender")
    return header, data[newline + 1 :]
