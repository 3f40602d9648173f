"""The receive buffer: bytes received but not yet parsed, consumed without quadratic copies.

One ``bytearray`` and a read offset (STYLE §2): both decoders parse from a
:class:`ReceiveBuffer`, line by line or, in the common cases, a whole short
frame or chunk in one step. The patterns come from :mod:`chatproto.wire.grammar`.
"""

from typing import Final

from chatproto.wire.grammar import (
    CANONICAL_CHUNK_HEADER_RE,
    CANONICAL_SHORT_LENGTH_RE,
    CHUNK_HEADER_LINE_RE,
    LAST_CHUNK,
    SHORT_LENGTH_LINE_RE,
)


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

    __slots__ = ("_data", "_start", "_scan", "_dropped")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0  # first unconsumed byte
        self._scan = 0  # no newline in _data[_start:_scan]
        self._dropped = 0  # consumed bytes no longer in _data

    def __len__(self) -> int:
        return len(self._data) - self._start

    @property
    def consumed(self) -> int:
        """Bytes consumed since the buffer was made (where the next one starts in the stream)."""
        return self._dropped + self._start

    def feed(self, data: bytes) -> None:
        """Append ``data``, first dropping what has been consumed."""
        if self._start:
            del self._data[: self._start]
            self._scan -= self._start
            self._dropped += self._start
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
        length_line = SHORT_LENGTH_LINE_RE.match(data, start + len(line))
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
        header = CHUNK_HEADER_LINE_RE.match(self._data, self._start)
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
        match = CANONICAL_CHUNK_HEADER_RE.match
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

    def take_body(self, max_body: int) -> tuple[bytes, int, bool] | None:
        """Consume a whole body in canonical form at the front, for a message run.

        A short body (``<n>\\n`` without leading zero, then the bytes) or a
        chunked one (``C<n>\\n`` chunks without leading zero, ``\\r`` or blank
        line, then ``C0\\n``) of at most ``max_body`` body bytes. Returns
        ``(wire, body bytes, is chunked)``, ``wire`` being the body as framed,
        or ``None`` (consuming nothing) for anything else, incomplete or not.
        """
        found = self._body_at(self._start, max_body)
        if found is None:
            return None
        end, size, is_chunked = found
        wire = bytes(self._data[self._start : end])
        self._start = end
        if self._scan < end:
            self._scan = end
        return wire, size, is_chunked

    def take_message_run(
        self, line: bytes, max_body: int, max_count: int
    ) -> tuple[list[bytes], int, int] | None:
        """Consume up to ``max_count`` whole messages at the front that all start with ``line``.

        Each is ``line``, its line end (``\\n`` or ``\\r\\n``) and a body as
        :meth:`take_body` takes it; blank lines before each are skipped.
        Returns ``(bodies, body bytes, chunked count)`` with each body as
        framed, or ``None`` (consuming nothing) if not even one is buffered so.
        """
        data = self._data
        available = len(data)
        line_size = len(line)
        body_at = self._body_at
        position = self._start
        bodies: list[bytes] = []
        body_bytes = chunked = 0
        while len(bodies) < max_count:
            start = position
            while data.startswith(b"\n", start) or data.startswith(b"\r\n", start):
                start = data.index(b"\n", start) + 1  # PROTOCOL §3: blank lines are skipped
            if not data.startswith(line, start):
                break
            start += line_size
            if data.startswith(b"\n", start):
                start += 1
            elif data.startswith(b"\r\n", start):
                start += 2
            else:
                break
            if start >= available:
                break
            found = body_at(start, max_body)
            if found is None:
                break
            position, size, is_chunked = found
            bodies.append(bytes(data[start:position]))
            body_bytes += size
            chunked += is_chunked
        if not bodies:
            return None
        self._start = position
        if self._scan < position:
            self._scan = position
        return bodies, body_bytes, chunked

    def _body_at(self, start: int, max_body: int) -> tuple[int, int, bool] | None:
        """Where a whole canonical body at ``start`` ends: ``(end, body bytes, is chunked)``."""
        data = self._data
        available = len(data)
        length = CANONICAL_SHORT_LENGTH_RE.match(data, start)
        if length is not None:
            size = int(length.group(1))
            end = length.end() + size
            if size > max_body or end > available:
                return None
            return end, size, False
        match = CANONICAL_CHUNK_HEADER_RE.match
        position, size = start, 0
        while header := match(data, position):
            chunk = int(header.group(1))
            size += chunk
            position = header.end() + chunk
            if size > max_body or position > available:
                return None
        if not data.startswith(LAST_CHUNK, position):
            return None
        return position + len(LAST_CHUNK), size, True

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
