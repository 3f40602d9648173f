"""Every frame this side writes, built in one place: events in, bytes out (PROTOCOL §2-§4).

Login and command lines, ``FROM`` lines, short and chunked bodies, and the
splitting of chunked wire frames back into headers and chunks for display.
Encoders validate before they encode: a short body over 99 bytes or a chunk
over 999 is a caller bug (``ValueError``), never sent.
"""

from collections.abc import Iterable, Sequence

from chatproto.wire.grammar import (
    LAST_CHUNK,
    LOGIN_PREFIX,
    MAX_CHUNK,
    MAX_SHORT_BODY,
)


def encode_login(user: bytes) -> bytes:
    """Return the ``ME IS`` line for ``user``."""
    return LOGIN_PREFIX + user + b"\n"


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


def encode_chunks(chunks: Iterable[bytes]) -> list[bytes]:
    """Frame chunks (1-999 bytes each) as ``C<n>`` frames, without the closing ``C0``.

    For a body sent in several writes: the last one adds :data:`LAST_CHUNK`.

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
    return frames


def encode_chunked_body(chunks: Iterable[bytes]) -> list[bytes]:
    """Frame chunks (1-999 bytes each) as ``C<n>`` frames ending with ``C0``.

    Raises:
        ValueError: a chunk is empty or longer than 999 bytes.
    """
    frames = encode_chunks(chunks)
    frames.append(LAST_CHUNK)
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

    ``chunked=None`` picks a short body when ``body`` fits in a short body (99 bytes).
    """
    if chunked is None:
        chunked = len(body) > MAX_SHORT_BODY
    frames = encode_chunked_body(split_chunks(body)) if chunked else encode_short_body(body)
    return encode_command(recipients) + b"".join(frames)


def split_frames(wire: bytes) -> list[bytes]:
    """Split chunked wire frames into headers and chunks (the last may be cut short)."""
    parts: list[bytes] = []
    offset = 0
    while offset < len(wire):
        newline = wire.find(b"\n", offset, offset + 6)
        digits = wire[offset + 1 : newline]
        if newline < 0 or wire[offset : offset + 1] != b"C" or not digits.isdigit():
            parts.append(wire[offset:])  # not a whole header: shown as it is
            break
        size = int(digits)
        parts.append(wire[offset : newline + 1])
        offset = newline + 1
        if size:
            parts.append(wire[offset : offset + size])
            offset += size
    return parts
