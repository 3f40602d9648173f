"""A message body in transit, and its delivery framed once for every recipient.

The service and the protocols only use :class:`MessageBody`'s small interface
(``append``, ``size``, ``read``, ``frames``), so where the bytes live (today in
memory, chunk by chunk) can change without touching them.
"""

from chatproto.codec import encode_chunked_body, encode_from, encode_short_body


class MessageBody:
    """The body of one message, from its first byte until every recipient has it.

    Chunked bodies keep the sender's chunk boundaries, so every recipient sees
    the frames the sender sent (PROTOCOL §4).

    Attributes:
        is_chunked: whether the body travels as ``C<n>`` chunks.
        size: body bytes held so far.
    """

    __slots__ = ("is_chunked", "size", "_pieces", "_frames")

    def __init__(self, is_chunked: bool) -> None:
        self.is_chunked = is_chunked
        self.size = 0
        self._pieces: list[bytes] = []
        self._frames: list[bytes] | None = None

    @classmethod
    def short(cls, data: bytes) -> "MessageBody":
        """Return a complete short body holding ``data`` (at most 99 bytes)."""
        body = cls(is_chunked=False)
        body.append(data)
        return body

    def append(self, data: bytes) -> None:
        """Add the next piece: one chunk, or the whole short body."""
        if self._frames is not None:
            raise RuntimeError("append() after the body was framed")
        self._pieces.append(data)
        self.size += len(data)

    def read(self) -> bytes:
        """Return the whole body's bytes."""
        return b"".join(self._pieces)

    def frames(self) -> list[bytes]:
        """Return the body's wire frames (length line and bytes, or chunks and ``C0``).

        Framed once and cached: every recipient is sent the same list.
        """
        if self._frames is None:
            if self.is_chunked:
                self._frames = encode_chunked_body(self._pieces)
            else:
                self._frames = encode_short_body(self.read())
        return self._frames


class Delivery:
    """One message on its way to its recipients: ``FROM <sender>`` and the body.

    Attributes:
        sender: the sender's userid.
        body: the message body.
        frames: the whole delivery's wire parts, built once for all recipients.
    """

    __slots__ = ("sender", "body", "frames", "_datagram")

    def __init__(self, sender: bytes, body: MessageBody) -> None:
        self.sender = sender
        self.body = body
        self.frames = [encode_from(sender), *body.frames()]
        self._datagram: bytes | None = None

    @property
    def datagram(self) -> bytes:
        """The delivery as one datagram (short bodies only; PROTOCOL §4)."""
        if self._datagram is None:
            if self.body.is_chunked:
                raise ValueError("a chunked message cannot go in a datagram")
            self._datagram = b"".join(self.frames)
        return self._datagram
