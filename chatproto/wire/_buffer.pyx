# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The receive buffer, compiled: the twin of :mod:`chatproto.wire.buffer` (STYLE §9).

:mod:`chatproto.wire.buffer` is the reference; this module has the same
:class:`ReceiveBuffer`, method for method, with the same results (the same
:data:`~chatproto.wire.buffer.LINE_TOO_LONG` object, ``bytes``, the same
tuples, ``None``) and the same consumption and ``consumed`` accounting, so
either may be used. Every change goes to both files, and
``tests/test_buffer_twins.py`` drives both with the same random operations.

Where the pure twin matches a pattern of :mod:`chatproto.wire.grammar`, this
one reads the bytes in a C loop with the same grammar (each loop names its
pattern); the digit caps are derived from ``MAX_SHORT_BODY`` and ``MAX_CHUNK``
as grammar.py derives them. The bytes live in one block of memory of our own
with a read offset: consuming moves the offset, :meth:`ReceiveBuffer.feed`
drops the consumed prefix once per call (as the pure twin does), and each
result is one ``bytes`` made straight from the block.

The directives: no bounds or negative-index checks (nothing indexed is a
Python object: every index into the block is checked against its size by
hand), and C division for the capacity arithmetic (positive operands only).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memchr, memcmp, memcpy, memmove

from chatproto.wire.buffer import LINE_TOO_LONG
from chatproto.wire.grammar import LAST_CHUNK, MAX_CHUNK, MAX_SHORT_BODY

# The digit caps of grammar.py's patterns, derived as it derives them.
cdef Py_ssize_t _SHORT_DIGITS = len(str(MAX_SHORT_BODY))  # 0..99: 2
cdef Py_ssize_t _CHUNK_DIGITS = len(str(MAX_CHUNK))  # 0..999: 3

# grammar.LAST_CHUNK (b"C0\n"), compared with memcmp.
cdef bytes _LAST_CHUNK = LAST_CHUNK
cdef const unsigned char* _LAST_CHUNK_BYTES = _LAST_CHUNK
cdef Py_ssize_t _LAST_CHUNK_SIZE = len(_LAST_CHUNK)

# Below this capacity the block is never shrunk (it is not worth a reallocation). Small: an
# idle connection keeps its block, and ten thousand of them should cost little (issue 16).
cdef Py_ssize_t _MIN_CAPACITY = 16

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


# -- The grammar, by hand --------------------------------------------------------------------
# Each reader takes the block, a position and the size, and returns where what it read ends,
# or -1 if the bytes at the position are not that (or not all there yet).


cdef inline Py_ssize_t _line_end(
    const unsigned char* data, Py_ssize_t pos, Py_ssize_t size
) noexcept nogil:
    """``\\r?\\n``."""
    if pos < size and data[pos] == c"\n":
        return pos + 1
    if pos + 1 < size and data[pos] == c"\r" and data[pos + 1] == c"\n":
        return pos + 2
    return -1


cdef inline Py_ssize_t _number(
    const unsigned char* data,
    Py_ssize_t pos,
    Py_ssize_t size,
    Py_ssize_t max_digits,
    bint is_canonical,
    Py_ssize_t* value,
) noexcept nogil:
    """``[0-9]{1,max_digits}`` followed by no further digit; canonical: no leading zero.

    In every pattern of grammar.py a number is followed by a line end, which
    is not a digit, so the greedy match backtracking cannot help: the run of
    digits at ``pos`` is the number, and a run longer than ``max_digits`` (or
    one reaching the end of the block) matches none of them.
    """
    cdef Py_ssize_t end = pos
    cdef Py_ssize_t number = 0
    cdef unsigned char digit
    while end < size and end - pos <= max_digits:
        digit = data[end] - c"0"  # wraps around below "0": one comparison
        if digit > 9:
            break
        number = number * 10 + digit
        end += 1
    if end == pos or end - pos > max_digits:
        return -1
    if is_canonical and end - pos > 1 and data[pos] == c"0":
        return -1
    value[0] = number
    return end


cdef inline Py_ssize_t _short_length_line(
    const unsigned char* data, Py_ssize_t pos, Py_ssize_t size, Py_ssize_t* value
) noexcept nogil:
    """grammar.SHORT_LENGTH_LINE_RE: ``\\r?\\n([0-9]{1,2})\\r?\\n``."""
    pos = _line_end(data, pos, size)
    if pos < 0:
        return -1
    pos = _number(data, pos, size, _SHORT_DIGITS, False, value)
    if pos < 0:
        return -1
    return _line_end(data, pos, size)


cdef inline Py_ssize_t _chunk_header_line(
    const unsigned char* data, Py_ssize_t pos, Py_ssize_t size, Py_ssize_t* value
) noexcept nogil:
    """grammar.CHUNK_HEADER_LINE_RE: ``C([0-9]{1,3})\\r?\\n``."""
    if pos >= size or data[pos] != c"C":
        return -1
    pos = _number(data, pos + 1, size, _CHUNK_DIGITS, False, value)
    if pos < 0:
        return -1
    return _line_end(data, pos, size)


cdef inline Py_ssize_t _canonical_chunk_header(
    const unsigned char* data, Py_ssize_t pos, Py_ssize_t size, Py_ssize_t* value
) noexcept nogil:
    """grammar.CANONICAL_CHUNK_HEADER_RE: ``C([1-9][0-9]{0,2})\\n``."""
    if pos + 1 >= size or data[pos] != c"C" or data[pos + 1] == c"0":
        return -1
    pos = _number(data, pos + 1, size, _CHUNK_DIGITS, True, value)
    if pos < 0 or pos >= size or data[pos] != c"\n":
        return -1
    return pos + 1


cdef inline Py_ssize_t _canonical_short_length(
    const unsigned char* data, Py_ssize_t pos, Py_ssize_t size, Py_ssize_t* value
) noexcept nogil:
    """grammar.CANONICAL_SHORT_LENGTH_RE: ``(0|[1-9][0-9]?)\\n``."""
    pos = _number(data, pos, size, _SHORT_DIGITS, True, value)
    if pos < 0 or pos >= size or data[pos] != c"\n":
        return -1
    return pos + 1


cdef inline Py_ssize_t _blank_lines_end(
    const unsigned char* data, Py_ssize_t pos, Py_ssize_t size
) noexcept nogil:
    """Past the blank lines (``\\n`` or ``\\r\\n``) at ``pos``: PROTOCOL §3, they are skipped."""
    cdef Py_ssize_t end = _line_end(data, pos, size)
    while end >= 0:
        pos = end
        end = _line_end(data, pos, size)
    return pos


cdef class ReceiveBuffer:
    """Bytes received but not yet parsed, consumed from the front without copying.

    Data lives in one block of memory with a read offset; consuming moves the
    offset, and the consumed prefix is dropped once per :meth:`feed`. A line
    search resumes where the previous one stopped and never looks further
    than the line limit, so a line arriving a byte at a time, or thousands of
    frames in one read, cost time linear in the bytes received.
    """

    cdef unsigned char* _data
    cdef Py_ssize_t _capacity  # bytes allocated at _data
    cdef Py_ssize_t _size  # bytes held: _data[:_size]
    cdef Py_ssize_t _start  # first unconsumed byte
    cdef Py_ssize_t _scan  # no newline in _data[_start:_scan]
    cdef Py_ssize_t _dropped  # consumed bytes no longer in _data

    def __cinit__(self):
        self._data = <unsigned char*>PyMem_Malloc(_MIN_CAPACITY)
        if self._data == NULL:
            raise MemoryError()
        self._capacity = _MIN_CAPACITY
        self._size = self._start = self._scan = self._dropped = 0

    def __dealloc__(self):
        PyMem_Free(self._data)

    def __len__(self):
        return self._size - self._start

    @property
    def consumed(self):
        """Bytes consumed since the buffer was made (where the next one starts in the stream)."""
        return self._dropped + self._start

    def feed(self, data):
        """Append ``data``, first dropping what has been consumed."""
        cdef Py_buffer view
        cdef Py_ssize_t start, kept, needed, capacity
        cdef unsigned char* block
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except (TypeError, BufferError):
            # As bytearray's += refuses it, and after the drop, as in the pure twin.
            self._drop()
            raise TypeError(f"can't concat {type(data).__name__} to bytearray") from None
        # Read only now: getting a buffer may run Python code, which may use this one.
        start = self._start
        kept = self._size - start
        try:
            if view.len > PY_SSIZE_T_MAX // 2 - kept:
                raise MemoryError()
            needed = kept + view.len
            if needed > self._capacity or (
                needed < self._capacity // 2 and self._capacity > _MIN_CAPACITY
            ):
                # Grown (or shrunk) as bytearray is: an eighth over what is needed. The kept
                # bytes move once, into the new block.
                capacity = max(needed + (needed >> 3) + 6, _MIN_CAPACITY)
                block = <unsigned char*>PyMem_Malloc(capacity)
                if block == NULL:
                    raise MemoryError()
                memcpy(block, self._data + start, kept)
                PyMem_Free(self._data)
                self._data = block
                self._capacity = capacity
            elif start:
                memmove(self._data, self._data + start, kept)
            memcpy(self._data + kept, view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        self._forget(start)
        self._size = needed

    cdef inline void _drop(self) noexcept:
        """Drop the consumed prefix in place."""
        cdef Py_ssize_t start = self._start
        if start:
            memmove(self._data, self._data + start, self._size - start)
            self._size -= start
            self._forget(start)

    cdef inline void _forget(self, Py_ssize_t start) noexcept:
        """Account for the first ``start`` bytes having left the block."""
        self._scan -= start
        self._dropped += start
        self._start = 0

    cdef inline void _consume(self, Py_ssize_t end) noexcept:
        """Consume up to ``end``: the next newline search starts there at the earliest."""
        self._start = end
        if self._scan < end:
            self._scan = end

    def take_line(self, Py_ssize_t max_line):
        """Consume and return the next line without its ``\\n`` or ``\\r\\n``.

        Returns:
            The line; ``None`` if no complete line is buffered yet; or
            :data:`LINE_TOO_LONG` if the line is (or will be) longer than
            ``max_line`` bytes, decided without buffering the rest of it.
        """
        cdef const unsigned char* data = self._data
        cdef Py_ssize_t size = self._size
        cdef Py_ssize_t start = self._start
        cdef Py_ssize_t scan = self._scan
        cdef Py_ssize_t limit, stop, end
        cdef Py_ssize_t newline = -1
        cdef const unsigned char* found
        if max_line > size:
            max_line = size  # the same answers (no line here is longer), and no overflow
        limit = start + max_line + 2  # the line, an optional \r, the \n
        stop = limit if limit < size else size
        if stop > scan:
            found = <const unsigned char*>memchr(data + scan, c"\n", stop - scan)
            if found != NULL:
                newline = found - data
        if newline < 0:
            if size >= limit:
                return LINE_TOO_LONG
            self._scan = size
            return None
        end = newline - 1 if newline > start and data[newline - 1] == c"\r" else newline
        if end - start > max_line:
            return LINE_TOO_LONG
        line = PyBytes_FromStringAndSize(<char*>data + start, end - start)
        self._start = self._scan = newline + 1
        return line

    def take_short_frame(self, line, Py_ssize_t max_body):
        """Consume ``line``, a short length line and the body, if all are buffered as such.

        This is the common case of a client repeating a command line, read in
        one step. Returns the body, or ``None`` (consuming nothing) when the
        buffer does not start with exactly that: the caller then parses line
        by line, with the same result (also for a body over ``max_body``).
        """
        cdef Py_ssize_t body_start = self._past(line)
        cdef const unsigned char* data = self._data  # read after _past (see there)
        cdef Py_ssize_t size = self._size
        cdef Py_ssize_t end
        cdef Py_ssize_t length = 0
        if body_start < 0:
            return None
        body_start = _short_length_line(data, body_start, size, &length)
        if body_start < 0:
            return None
        end = body_start + length
        if size < end or length > max_body:
            return None
        body = PyBytes_FromStringAndSize(<char*>data + body_start, length)
        self._consume(end)
        return body

    cdef Py_ssize_t _past(self, line) except -2:
        """Where ``line`` (bytes-like) ends if the buffer starts with it, else -1.

        Getting the buffer of a ``line`` that is not ``bytes`` may run Python
        code: read the state again after this call.
        """
        cdef Py_buffer view
        cdef Py_ssize_t pos, size
        cdef bint is_there
        if type(line) is bytes:  # the usual case, without a buffer request
            pos = self._start
            size = PyBytes_GET_SIZE(line)
            is_there = size <= self._size - pos and memcmp(
                self._data + pos, PyBytes_AS_STRING(line), size
            ) == 0
        else:
            PyObject_GetBuffer(line, &view, PyBUF_SIMPLE)
            pos = self._start
            size = view.len
            is_there = size <= self._size - pos and memcmp(self._data + pos, view.buf, size) == 0
            PyBuffer_Release(&view)
        return pos + size if is_there else -1

    def take_chunk(self, Py_ssize_t max_size):
        """Consume a chunk header and its data if both are buffered, as they usually are.

        Returns the chunk's data (empty for ``C0``), or ``None`` (consuming
        nothing) when the buffer does not start with a whole header and its
        data, or the size is over ``max_size``: the caller then reads the
        header as a line, with the same result.
        """
        cdef const unsigned char* data = self._data
        cdef Py_ssize_t chunk = 0
        cdef Py_ssize_t start = _chunk_header_line(data, self._start, self._size, &chunk)
        if start < 0:
            return None
        if chunk > max_size or self._size < start + chunk:
            return None
        piece = PyBytes_FromStringAndSize(<char*>data + start, chunk)
        self._consume(start + chunk)
        return piece

    def take_chunk_run(self, Py_ssize_t max_size):
        """Consume the whole chunks buffered at the front, headers and all, in one piece.

        Only chunks with canonical headers (``C<n>\\n``, ``n`` 1 to 999 without
        leading zero) are taken, at most ``max_size`` body bytes of them, and
        never ``C0``. Returns ``(wire, body bytes)``, or ``None`` (consuming
        nothing) when not even one such chunk is buffered whole.
        """
        cdef const unsigned char* data = self._data
        cdef Py_ssize_t available = self._size
        cdef Py_ssize_t start = self._start
        cdef Py_ssize_t position = start
        cdef Py_ssize_t total = 0
        cdef Py_ssize_t chunk = 0
        cdef Py_ssize_t end
        while True:
            end = _canonical_chunk_header(data, position, available, &chunk)
            if end < 0:
                break
            end += chunk
            if end > available or total + chunk > max_size:
                break
            total += chunk
            position = end
        if position == start:
            return None
        wire = PyBytes_FromStringAndSize(<char*>data + start, position - start)
        self._consume(position)
        return wire, total

    def take_body(self, Py_ssize_t max_body):
        """Consume a whole body in canonical form at the front, for a message run.

        A short body (``<n>\\n`` without leading zero, then the bytes) or a
        chunked one (``C<n>\\n`` chunks without leading zero, ``\\r`` or blank
        line, then ``C0\\n``) of at most ``max_body`` body bytes. Returns
        ``(wire, body bytes, is chunked)``, ``wire`` being the body as framed,
        or ``None`` (consuming nothing) for anything else, incomplete or not.
        """
        cdef Py_ssize_t start = self._start
        cdef Py_ssize_t end = 0
        cdef Py_ssize_t body_bytes = 0
        cdef int kind = self._body_at(start, max_body, &end, &body_bytes)
        if kind < 0:
            return None
        wire = PyBytes_FromStringAndSize(<char*>self._data + start, end - start)
        self._consume(end)
        return wire, body_bytes, kind == 1

    def take_message_run(self, line, Py_ssize_t max_body, Py_ssize_t max_count):
        """Consume up to ``max_count`` whole messages at the front that all start with ``line``.

        Each is ``line``, its line end (``\\n`` or ``\\r\\n``) and a body as
        :meth:`take_body` takes it; blank lines before each are skipped.
        Returns ``(bodies, body bytes, chunked count)`` with each body as
        framed, or ``None`` (consuming nothing) if not even one is buffered so.
        """
        cdef const unsigned char* data
        cdef Py_ssize_t available, position
        cdef Py_ssize_t count = 0
        cdef Py_ssize_t body_bytes = 0
        cdef Py_ssize_t chunked = 0
        cdef Py_ssize_t start, end, size
        cdef const unsigned char* expected
        cdef Py_ssize_t line_size
        cdef int kind
        cdef Py_buffer view
        cdef list bodies = []
        PyObject_GetBuffer(line, &view, PyBUF_SIMPLE)
        # Read only now: making the list or getting a buffer may run Python code. Nothing in
        # the loop does (bytes objects are not tracked by the garbage collector).
        data = self._data
        available = self._size
        position = self._start
        expected = <const unsigned char*>view.buf
        line_size = view.len
        try:
            while count < max_count:
                start = _blank_lines_end(data, position, available)
                if line_size > available - start or memcmp(data + start, expected, line_size) != 0:
                    break
                start = _line_end(data, start + line_size, available)
                if start < 0 or start >= available:
                    break
                kind = self._body_at(start, max_body, &end, &size)
                if kind < 0:
                    break
                bodies.append(PyBytes_FromStringAndSize(<char*>data + start, end - start))
                count += 1
                body_bytes += size
                chunked += kind
                position = end
        finally:
            PyBuffer_Release(&view)
        if not count:
            return None
        self._consume(position)
        return bodies, body_bytes, chunked

    cdef int _body_at(
        self, Py_ssize_t start, Py_ssize_t max_body, Py_ssize_t* end, Py_ssize_t* body_bytes
    ) noexcept:
        """Where a whole canonical body at ``start`` ends (in ``end``, its size in ``body_bytes``).

        Returns 0 for a short body, 1 for a chunked one, -1 for none.
        """
        cdef const unsigned char* data = self._data
        cdef Py_ssize_t available = self._size
        cdef Py_ssize_t size = 0
        cdef Py_ssize_t chunk = 0
        cdef Py_ssize_t position = _canonical_short_length(data, start, available, &size)
        if position >= 0:
            position += size
            if size > max_body or position > available:
                return -1
            end[0] = position
            body_bytes[0] = size
            return 0
        position = start
        while True:
            start = _canonical_chunk_header(data, position, available, &chunk)
            if start < 0:
                break
            size += chunk
            position = start + chunk
            if size > max_body or position > available:
                return -1
        if (
            available - position < _LAST_CHUNK_SIZE
            or memcmp(data + position, _LAST_CHUNK_BYTES, _LAST_CHUNK_SIZE) != 0
        ):
            return -1
        end[0] = position + _LAST_CHUNK_SIZE
        body_bytes[0] = size
        return 1

    def take_rest(self, Py_ssize_t max_line):
        """Consume everything buffered as one last line (at end of input).

        A trailing ``\\r`` is dropped; more than ``max_line`` bytes is
        :data:`LINE_TOO_LONG`.
        """
        cdef Py_ssize_t size = self._size
        cdef Py_ssize_t start = self._start
        # The last byte held, consumed or not, as the pure twin's data.endswith(b"\r").
        cdef Py_ssize_t end = size - 1 if size and self._data[size - 1] == c"\r" else size
        if end - start > max_line:
            return LINE_TOO_LONG
        line = PyBytes_FromStringAndSize(
            <char*>self._data + start, end - start if end > start else 0
        )
        self._start = self._scan = size
        return line

    def take(self, Py_ssize_t size):
        """Consume exactly ``size`` bytes, or return ``None`` if fewer are buffered.

        Raises:
            ValueError: ``size`` is negative (the pure twin then moves its read
                offset backwards).
        """
        if size < 0:
            raise ValueError(f"negative size: {size}")
        if size > self._size - self._start:
            return None
        piece = PyBytes_FromStringAndSize(<char*>self._data + self._start, size)
        self._consume(self._start + size)
        return piece
