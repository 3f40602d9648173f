"""The file-name header: how chat clients mark a message body as a named file.

PROTOCOL.md carries bodies as opaque bytes, with no type or name, so a text
file and a typed line look the same. ``chat_client`` (and the web page) agree
on one convention on top of the protocol: a body that is a file starts with

    MAGIC, the file's name in UTF-8, one NUL byte, then the file's bytes

where ``MAGIC`` is the 16 bytes ``\\x00chatproto-file\\x00`` and the name is 1
to 255 bytes with no NUL. A sender gives a base name (no ``/``); a receiver
must still treat the name as untrusted (see
:func:`chatproto.client.naming.saved_name_parts`). No text message can start
like this: text never holds a NUL. A body that starts with ``MAGIC`` but
breaks the rest of the layout is a plain binary body, header bytes included.

Pure: bytes and strings in, values out; no I/O. The receiver sees the body
in pieces, so :func:`parse_file_header` takes the body's first bytes and
says :data:`NEED_MORE` while they could still be the start of a header;
it never needs more than :data:`MAX_HEADER_BYTES`.
"""

from dataclasses import dataclass
from typing import Final

#: What every file body starts with: NUL, ``chatproto-file``, NUL.
MAGIC: Final = b"\x00chatproto-file\x00"
#: Longest file name in a header, in UTF-8 bytes (a Linux file name's limit).
MAX_NAME_BYTES: Final = 255
#: Longest header: ``MAGIC``, the longest name and its NUL.
MAX_HEADER_BYTES: Final = len(MAGIC) + MAX_NAME_BYTES + 1

_NUL: Final = b"\x00"


@dataclass(frozen=True, slots=True)
class FileHeader:
    """A complete, well-formed header at the start of a body.

    Attributes:
        name: the file name the sender gave (untrusted: any UTF-8 but NUL).
        length: the header's size in bytes; the file's bytes start there.
    """

    name: str
    length: int


class _NeedMore:
    """The type of :data:`NEED_MORE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


#: :func:`parse_file_header`'s answer while the bytes so far may still be a header.
NEED_MORE: Final = _NeedMore()


def encode_file_header(name: str) -> bytes:
    """Return the header that marks a body as the file ``name``.

    Raises:
        ValueError: ``name`` is empty, over :data:`MAX_NAME_BYTES` in UTF-8,
            holds a NUL or a ``/``, or cannot be encoded (a lone surrogate).
            :func:`fit_file_name` makes any base name acceptable.
    """
    raw = name.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        raise ValueError(f"a file name has 1 to {MAX_NAME_BYTES} bytes, not {len(raw)}")
    if _NUL in raw or b"/" in raw:
        raise ValueError(f"not a base file name: {name!r}")
    return MAGIC + raw + _NUL


def parse_file_header(head: bytes) -> FileHeader | _NeedMore | None:
    """Read a header from ``head``, the first bytes of a body (all of them, or more).

    Returns:
        the :class:`FileHeader` if ``head`` starts with a complete, well-formed
        one; :data:`NEED_MORE` if ``head`` is shorter than a header and could
        still become one (a body that ends there has none); ``None`` if the
        body has no header (it does not start with ``MAGIC``, or the name is
        empty, over :data:`MAX_NAME_BYTES` or not UTF-8).
    """
    known = min(len(head), len(MAGIC))
    if head[:known] != MAGIC[:known]:
        return None
    if len(head) == known:
        return NEED_MORE  # all of it (perhaps nothing) matches the start of MAGIC
    end = head.find(_NUL, len(MAGIC), MAX_HEADER_BYTES)
    if end < 0:
        return NEED_MORE if len(head) < MAX_HEADER_BYTES else None
    if end == len(MAGIC):
        return None  # an empty name
    try:
        name = head[len(MAGIC) : end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return FileHeader(name, end + 1)


def fit_file_name(name: str) -> str:
    """Return a base name ``encode_file_header`` accepts, as close to ``name`` as it can.

    Bytes that were not UTF-8 in the file system's name (surrogate escapes)
    become U+FFFD, NUL and ``/`` become ``_``, an empty name is ``file``,
    and a name over :data:`MAX_NAME_BYTES` loses the end of its stem, keeping
    its extension.
    """
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    name = name.replace("\x00", "_").replace("/", "_") or "file"
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension
    if not stem or len(suffix.encode("utf-8")) > MAX_NAME_BYTES // 2:
        stem, suffix = name, ""
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix
