"""A message body in transit, and its delivery framed once for every recipient.

A body is kept as its wire frames (length line and bytes, or ``C<n>`` chunks
and ``C0``), so delivering it is a copy, never a re-encoding, and chunked
bodies keep the sender's chunk sizes (PROTOCOL §4). It grows in memory up to
``Limits.spill_threshold_bytes`` and then moves into a spool file, so a big
message never sits whole in RAM. The service and the protocols use only the
small interface below (``append``/``finish``/``size``/``read``, ``frames`` or
``read_wire``, ``acquire``/``release``), so storage can change behind it.
"""

import os
from collections.abc import Callable, Sequence
from typing import IO, overload

from chatproto.server.spool import Spool, SpoolFullError
from chatproto.wire.encode import encode_from, encode_short_body, split_frames

#: Bytes of a spooled body's wire frames kept in memory for ``-v`` display.
PREVIEW_BYTES = 4096

#: Wire bytes a spooled body gathers in memory before one write to its file.
#: The file itself is unbuffered: a body waiting in a queue then holds no
#: buffer at all, only its preview (issue 14: a 256 KiB write buffer per open
#: spool file made a queue of big messages cost their size in RAM).
SPOOL_WRITE_BYTES = 64 * 1024


class MessageBody:
    """A chunked body, from its first byte until every recipient has it.

    Whoever keeps a body past the call that handed it over takes a reference
    with :meth:`acquire` and gives it back with :meth:`release`; the spool
    file closes (and disappears) when the last reference goes. A new body
    starts with one reference, its receiver's.

    Once spooled, a body holds in memory only a copy of its first
    :data:`PREVIEW_BYTES` wire bytes and, until :meth:`finish`, at most
    :data:`SPOOL_WRITE_BYTES` not yet written: a finished spooled body costs
    one descriptor and a few KiB, whatever its size.

    Short bodies are :class:`ShortBody`: they arrive whole and never spill.

    Attributes:
        is_chunked: always True: the body travels as ``C<n>`` chunks.
        size: body bytes received so far (not counting framing).
        wire_size: bytes of its wire frames (in memory, or reserved in the spool).
        error: why the body could not be kept (spool full), or None.
    """

    __slots__ = (
        "size",
        "wire_size",
        "error",
        "_frames",
        "_unwritten",
        "_preview",
        "_file",
        "_spool",
        "_spill_threshold",
        "_references",
    )

    is_chunked = True

    def __init__(self, spool: Spool | None = None, spill_threshold: int = 0) -> None:
        self.size = 0
        self.wire_size = 0
        self.error: str | None = None
        # All frames while in memory; once spooled, those not yet written.
        self._frames: list[bytes] = []
        self._unwritten = 0  # bytes in _frames once spooled
        self._preview = b""  # the first wire bytes, once spooled
        self._file: IO[bytes] | None = None
        self._spool = spool
        self._spill_threshold = spill_threshold
        self._references = 1

    @property
    def is_in_memory(self) -> bool:
        """Whether all frames are in memory (else they are in a spool file)."""
        return self._file is None

    def append(self, chunk: bytes) -> None:
        """Add the next chunk (1 to 999 bytes).

        If the spool has no room the body fails: :attr:`error` is set and
        later chunks are ignored; the sender is to be refused at the end.
        """
        size = len(chunk)
        self.size += size
        if self.error is None:
            self._add_frames((b"C%d\n" % size, chunk), size + 3 + (size > 9) + (size > 99))

    def finish(self, add_terminator: bool = True) -> None:
        """Mark the body complete: it gets its ``C0``, and a spooled one is written out.

        ``add_terminator`` is False for frames that came with their ``C0``
        (see :meth:`add_wire`).
        """
        if self.error is None and add_terminator:
            self._add_frames((b"C0\n",), 3)
        if self._file is not None:
            self._write_out()

    def add_wire(self, wire: bytes, body_bytes: int = 0) -> None:
        """Add wire frames that arrive already framed: runs of chunks, or another node's.

        ``wire`` is any run of the sender's frames (a piece may end inside a
        chunk); ``body_bytes`` adds to :attr:`size`. The frames were checked
        by whoever decoded them. Frames from another node end with their
        ``C0``: such a body is finished with ``finish(add_terminator=False)``.
        """
        self.size += body_bytes
        if self.error is None and wire:
            self._add_frames((wire,), len(wire))

    def _add_frames(self, frames: tuple[bytes, ...], added: int) -> None:
        """Append ``frames`` (``added`` bytes in all), spilling to the spool when due."""
        if self._file is not None:
            self._reserve(added)
            if self.error is None:
                missing = PREVIEW_BYTES - len(self._preview)
                if missing > 0:  # a low spill threshold: the preview fills up after
                    self._preview += b"".join(frames)[:missing]
                self._frames += frames
                self._unwritten += added
                if self._unwritten >= SPOOL_WRITE_BYTES:
                    self._write_out()
            return
        self._frames += frames
        self.wire_size += added
        if self.wire_size > self._spill_threshold and self._spool is not None:
            self._spill()

    def _spill(self) -> None:
        """Move the frames into a spool file, keeping a copy of their start for display."""
        assert self._spool is not None
        size, self.wire_size = self.wire_size, 0
        try:
            self._file = self._spool.open()
        except SpoolFullError as error:
            self._fail(str(error))
            return
        start, kept = [], 0
        for frame in self._frames:
            start.append(frame)
            kept += len(frame)
            if kept >= PREVIEW_BYTES:
                break
        # A slice is a copy: the preview keeps no big frame alive.
        self._preview = b"".join(start)[:PREVIEW_BYTES]
        self._reserve(size)
        if self.error is None:
            self._unwritten = size
            self._write_out()

    def _reserve(self, size: int) -> None:
        """Count ``size`` more bytes in the spool; on no room, fail."""
        assert self._spool is not None
        try:
            self._spool.reserve(size)
        except SpoolFullError as error:
            self._fail(str(error))
            return
        self.wire_size += size

    def _write_out(self) -> None:
        """Write the gathered frames to the spool file; on a write error, fail."""
        assert self._file is not None
        data = b"".join(self._frames)
        self._frames, self._unwritten = [], 0
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(data):  # a regular file may take less at once
                    written += self._file.write(view[written:]) or 0
        except OSError as error:  # disk full, I/O error
            self._fail(f"spool write failed: {error}")

    def _fail(self, reason: str) -> None:
        self.error = reason
        self._close_file()
        self._frames, self._unwritten, self._preview = [], 0, b""

    def frames(self) -> list[bytes]:
        """Return the wire frames of an in-memory body (see :attr:`is_in_memory`)."""
        if self._file is not None:
            raise ValueError("a spooled body is read with read_wire()")
        return self._frames

    def preview_frames(self) -> list[bytes]:
        """Return the first frames (all of them for an in-memory body), for display.

        One part per chunk header and one per chunk, however the frames were
        stored (runs of chunks come whole from the decoder and from other
        nodes), so ``-v`` shows every header on a line of its own.
        """
        if self._file is not None:
            return split_frames(self._preview)
        return split_frames(b"".join(self._frames))

    def read_wire(self, offset: int, size: int) -> bytes:
        """Return up to ``size`` bytes of the wire frames, from ``offset``."""
        if self._file is None:
            return b"".join(self._frames)[offset : offset + size]
        if self._frames:
            self._write_out()
        return os.pread(self._file.fileno(), size, offset)

    def read(self) -> bytes:
        """Return the whole body's bytes, without framing (for tests and tools)."""
        wire = self.read_wire(0, self.wire_size)
        pieces, offset = [], 0
        while offset < len(wire):
            newline = wire.index(b"\n", offset)
            length = int(wire[offset + 1 : newline])
            pieces.append(wire[newline + 1 : newline + 1 + length])
            offset = newline + 1 + length
        return b"".join(pieces)

    def acquire(self) -> None:
        """Take a reference: the body stays readable until :meth:`release`."""
        self._references += 1

    def release(self) -> None:
        """Give a reference back; the last one closes the spool file."""
        self._references -= 1
        if self._references <= 0:
            self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            assert self._spool is not None
            spool_file, self._file = self._file, None
            self._spool.close(spool_file)
            self._spool.release(self.wire_size)


class ShortBody:
    """A complete short body (0-99 bytes): :class:`MessageBody`'s interface, for less.

    Short messages are the bulk of chat traffic; they never spill and are
    never appended to, so they need none of a growing body's machinery.
    """

    __slots__ = ("data", "size", "wire_size")

    is_chunked = False
    is_in_memory = True
    error: str | None = None

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.wire_size = self.size + 2 + (self.size > 9)  # "<len>\n" and the data

    def frames(self) -> list[bytes]:
        """Return the length line and the data (validated: at most 99 bytes)."""
        return encode_short_body(self.data)

    preview_frames = frames

    def read(self) -> bytes:
        return self.data

    def read_wire(self, offset: int, size: int) -> bytes:
        return b"".join(self.frames())[offset : offset + size]

    def acquire(self) -> None:
        """Nothing to hold: the body lives as long as someone refers to it."""

    def release(self) -> None:
        """Nothing to free."""


Body = MessageBody | ShortBody


class Delivery:
    """One message on its way to its recipients: ``FROM <sender>`` and the body.

    ``count`` is 1: a recipient's ``deliver`` takes a :class:`DeliveryRun` too,
    and answers how many messages it took.

    Attributes:
        sender: the sender's userid.
        body: the message body.
        head: the ``FROM`` line, built once for all recipients.
        size: bytes of the whole delivery on the wire.
        frames: the whole delivery's wire parts, built once for all recipients
            (a short one is a single joined ``bytes``, ready for a write or a
            datagram); None for a spooled body, which is read piece by piece.
    """

    __slots__ = ("sender", "body", "head", "size", "frames")

    count = 1

    def __init__(self, sender: bytes, body: Body) -> None:
        self.sender = sender
        self.body = body
        self.head = head = encode_from(sender)
        self.size = len(head) + body.wire_size
        self.frames: list[bytes] | None
        if isinstance(body, ShortBody):
            self.frames = [b"%b%d\n%b" % (head, body.size, body.data)]
        elif body.is_in_memory:
            self.frames = [head, *body.frames()]
        else:
            self.frames = None

    def preview(self) -> list[bytes]:
        """The first wire parts, for display."""
        return [self.head, *self.body.preview_frames()]

    @property
    def datagram(self) -> bytes:
        """The delivery as one datagram (short bodies only; PROTOCOL §4)."""
        if self.frames is None or self.body.is_chunked:
            raise ValueError("a chunked message cannot go in a datagram")
        return self.frames[0]


#: The body of a :class:`DeliveryRun`: its frames hold everything, nothing to hold or release.
_NO_BODY = ShortBody(b"")


class DeliveryRun:
    """Several whole messages from one sender, framed once for all their recipients.

    What a client's read of many messages under one command line becomes
    (``chatproto.wire.events.MessageRun``): each frame is one whole delivery,
    the ``FROM`` line and the body as it came, in canonical form. To a
    stream client's outbox it is one delivery of ``count`` messages.

    Attributes:
        sender: the sender's userid.
        head: the ``FROM`` line.
        frames: one bytes object per message, ``FROM`` line included.
        count: how many messages (``len(frames)``).
        size: bytes of all the frames.
        chunked: how many of them have a chunked body.
    """

    __slots__ = ("sender", "head", "frames", "count", "size", "chunked")

    body = _NO_BODY

    def __init__(
        self, sender: bytes, head: bytes, frames: list[bytes], chunked: int, size: int = -1
    ) -> None:
        self.sender = sender
        self.head = head
        self.frames = frames
        self.count = len(frames)
        self.size = size if size >= 0 else sum(map(len, frames))
        self.chunked = chunked

    @classmethod
    def of_bodies(cls, sender: bytes, bodies: list[bytes], chunked: int) -> "DeliveryRun":
        """Frame ``bodies`` (each as it came on the wire) as deliveries from ``sender``."""
        head = encode_from(sender)
        return cls(sender, head, [head + body for body in bodies], chunked)


class FramedOnDraw(Sequence[bytes]):
    """Bodies as deliveries from one sender, each framed only when it is drawn.

    The random-message rule draws a canned line for a run's recipient; a
    fan-out run, drawing hundreds, frames them all once (a list), but a run
    to one recipient draws one or two of twenty, and framing twenty cost it
    more than its own messages (issue 16, relay at a fixed rate).
    """

    __slots__ = ("_head", "_bodies")

    def __init__(self, head: bytes, bodies: Sequence[bytes]) -> None:
        self._head = head
        self._bodies = bodies

    def __len__(self) -> int:
        return len(self._bodies)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self._head + body for body in self._bodies[index]]
        return self._head + self._bodies[index]


def body_from_wire(wire: bytes, new_body: "Callable[[], MessageBody]") -> Body:
    """Make the body of one message of a run, for the message-by-message path.

    ``wire`` is a body as a ``MessageRun`` carries it; a chunked one is put in
    a new body from ``new_body`` (whose reference the caller releases).
    """
    if not wire.startswith(b"C"):  # a short body's length line starts with a digit
        return ShortBody(wire[wire.index(b"\n") + 1 :])
    body = new_body()
    body.add_wire(wire, sum(map(len, split_frames(wire)[1::2])))  # headers, then chunks
    body.finish(add_terminator=False)
    return body
