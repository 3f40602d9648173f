"""What a client sent, cut into frames where the decoder found them, for ``-v`` (PROTOCOL §8).

``-v`` shows every frame exactly as it was received. The decoder's events
cannot say that: they are normalized (``05`` is 5, ``\\r\\n`` is a line end,
blank lines are skipped) and a refused command's body is not in them. So
with ``-v`` a client's bytes are kept as they came and cut at the stream
offset where the decoder's last event ended
(:attr:`~chatproto.wire.stream.StreamDecoder.consumed_bytes`): everything
from the end of the previous frame to there is the frame just completed.

Memory stays bounded: of each frame only its first ``shown_bytes`` are kept
(``-v`` abbreviates the rest anyway) and the others are only counted; the
bytes not yet cut are what the decoder holds too.

Only the server's ``-v`` path uses this; without ``-v`` no bytes are kept.
"""

from typing import Protocol

from chatproto.server.verbose import DEFAULT_SHOWN_BYTES

#: A frame as shown: its first bytes, and its size in all.
ReceivedFrame = tuple[bytes, int]


class Consuming(Protocol):
    """What a :class:`ReceivedStream` reads of its decoder."""

    @property
    def consumed_bytes(self) -> int:
        """Where the decoder's last event ended, as an offset in the stream."""
        ...


class ReceivedStream:
    """The bytes a stream client (TCP, TLS, UNIX) sent, cut into frames.

    Args:
        decoder: the client's decoder; its ``consumed_bytes`` is read when a
            frame is taken, which is right after the event that ended it.
        shown_bytes: how much of a frame is kept for display.
    """

    __slots__ = ("_decoder", "_shown_bytes", "_data", "_base", "_head", "_size")

    def __init__(self, decoder: Consuming, shown_bytes: int = DEFAULT_SHOWN_BYTES) -> None:
        self._decoder = decoder
        self._shown_bytes = shown_bytes
        self._data = bytearray()  # received, not yet cut, from stream offset _base
        self._base = 0
        self._head = bytearray()  # the current frame's first bytes
        self._size = 0  # the current frame's bytes so far

    @property
    def unread_bytes(self) -> int:
        """Bytes received that the decoder has not consumed (yet, or ever, after a failure)."""
        return self._base + len(self._data) - self._decoder.consumed_bytes

    def feed(self, data: bytes) -> None:
        """Add bytes as received (before the decoder is fed them)."""
        # What is consumed so far belongs to the current frame.
        self._cut(self._decoder.consumed_bytes)
        self._data += data

    def take(self, through_line: bool = False) -> ReceivedFrame:
        """Return the frame that just ended, and start the next one.

        Args:
            through_line: the frame ends with the line the decoder stopped at
                without consuming it (a line over the limit): add what was
                received of it, up to its ``\\n``.
        """
        end = self._decoder.consumed_bytes
        if through_line:
            newline = self._data.find(b"\n", end - self._base)
            end = self._base + (newline + 1 if newline >= 0 else len(self._data))
        self._cut(end)
        frame = bytes(self._head), self._size
        self._head.clear()
        self._size = 0
        return frame

    def take_rest(self) -> ReceivedFrame:
        """Return everything received since the last frame ended (the client is gone)."""
        self._cut(self._base + len(self._data))
        return self.take()

    def _cut(self, end: int) -> None:
        """Move the bytes up to stream offset ``end`` into the current frame."""
        count = end - self._base
        if count <= 0:
            return
        room = self._shown_bytes - len(self._head)
        if room > 0:
            self._head += self._data[: min(count, room)]
        del self._data[:count]  # cheap: a bytearray drops its front without moving the rest
        self._size += count
        self._base = end


class ReceivedDatagram:
    """The datagram a UDP client's session is handling: one datagram is one frame."""

    __slots__ = ("_datagram", "_shown_bytes")

    def __init__(self, shown_bytes: int = DEFAULT_SHOWN_BYTES) -> None:
        self._datagram = b""
        self._shown_bytes = shown_bytes

    unread_bytes = 0

    def feed(self, datagram: bytes) -> None:
        """Say which datagram the next events come from."""
        self._datagram = datagram

    def take(self, through_line: bool = False) -> ReceivedFrame:
        """Return the datagram (once)."""
        datagram, self._datagram = self._datagram, b""
        return datagram[: self._shown_bytes], len(datagram)

    take_rest = take
