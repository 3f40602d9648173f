"""What a delivery becomes, for ``chat_client``: text, or a file on disk.

:class:`Inbox` turns a streamed delivery into a :class:`TextMessage`, or
writes it to disk as it arrives and renames it when complete
(:class:`SavedFile`, or :class:`UnsavedFile` if it could not be written);
:data:`Received` is any of the three. A body with a file-name header
(:mod:`chatproto.client.file_header`) is a file of that name; names come
from :mod:`chatproto.client.naming`. Nothing here knows about connections
or front ends.
"""

import codecs
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from chatproto.client.file_header import NEED_MORE, FileHeader, parse_file_header
from chatproto.client.naming import (
    RECEIVED_FILE_SUFFIX,
    claim_file_name,
    safe_file_stem,
    saved_name_parts,
)
from chatproto.limits import KIB

#: Largest body shown as text; a bigger one is saved as a file.
MAX_TEXT_BYTES: Final = 64 * KIB

# Control characters that make a body "not text": C0 (but tab, LF, CR), DEL and C1.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A delivery whose body is UTF-8 text.

    Attributes:
        sender: the sender's userid.
        text: the decoded body.
        size: the body's size in bytes.
    """

    sender: str
    text: str
    size: int


@dataclass(frozen=True, slots=True)
class SavedFile:
    """A delivery saved as a file under the download directory: a named file, or not text.

    Attributes:
        sender: the sender's userid.
        path: where it was saved (the download directory joined with its name).
        size: the file's size in bytes (the body's, less a file-name header).
        name: the name the sender gave in a file-name header (untrusted), or
            None for a body without one.
    """

    sender: str
    path: Path
    size: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class UnsavedFile:
    """A delivery that should have been saved as a file but could not be.

    Attributes:
        sender: the sender's userid.
        size: the file's size in bytes (as for :class:`SavedFile`).
        reason: the error that prevented saving it.
        name: the name the sender gave, or None (as for :class:`SavedFile`).
    """

    sender: str
    size: int
    reason: str
    name: str | None = None


Received = TextMessage | SavedFile | UnsavedFile


class _Incoming:
    """The delivery being received: its text so far, or the file it is written to."""

    __slots__ = (
        "sender",
        "size",
        "pieces",
        "text_parts",
        "utf8",
        "spool",
        "spool_path",
        "error",
        "header",
        "is_header_pending",
    )

    def __init__(self, sender: bytes) -> None:
        self.sender = sender
        self.size = 0
        # Raw bytes held while the body may be text, or may start with a header.
        self.pieces: list[bytes] = []
        self.text_parts: list[str] = []
        self.utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()
        self.spool: BinaryIO | None = None
        self.spool_path: Path | None = None
        self.error: str | None = None
        self.header: FileHeader | None = None
        self.is_header_pending = True  # the first bytes could still be a file-name header

    @property
    def file_size(self) -> int:
        """The bytes of the file: the body's, less its header."""
        return self.size - (self.header.length if self.header is not None else 0)


class Inbox:
    """Assemble streamed deliveries into text messages or files on disk.

    A body that starts with a file-name header is the file of that name: its
    bytes after the header are saved under the name (made safe by
    :func:`saved_name_parts`). Otherwise, a body is text if it is valid UTF-8
    of at most ``max_text_bytes`` with no control character but tab, CR and
    LF; it is held in memory and becomes a :class:`TextMessage`. Any other
    body is saved under a name derived from the sender, ``<sender>.bin``.
    Saved bodies are written, as they arrive, to a hidden temporary file in
    the download directory and, once complete, linked to a free name
    (:func:`claim_file_name`), so a partial file never appears under its
    final name. Memory stays bounded: at most ``max_text_bytes``, or a
    header's :data:`~chatproto.client.file_header.MAX_HEADER_BYTES` and one
    piece, is held. A body that cannot be written becomes an
    :class:`UnsavedFile`; the rest of it is discarded.

    Args:
        download_dir: where files are saved.
        max_text_bytes: the largest body shown as text.

    Attributes:
        download_dir: where files are saved.
    """

    def __init__(self, download_dir: Path, max_text_bytes: int = MAX_TEXT_BYTES) -> None:
        self.download_dir = download_dir
        self._max_text_bytes = max_text_bytes
        self._incoming: _Incoming | None = None

    @property
    def is_receiving(self) -> bool:
        """Whether a delivery has started and not yet finished."""
        return self._incoming is not None

    def start(self, sender: bytes) -> None:
        """Begin a delivery from ``sender`` (dropping an unfinished one)."""
        self.abort()
        self._incoming = _Incoming(sender)

    def add(self, data: bytes) -> None:
        """Add the next piece of the body."""
        incoming = self._incoming
        assert incoming is not None, "add() outside a delivery"
        incoming.size += len(data)
        if incoming.error is not None:
            return
        if incoming.spool is not None:
            self._write(incoming, data)
            return
        if incoming.is_header_pending:
            data = self._read_header(incoming, data)
            if not data:
                return
        incoming.pieces.append(data)
        if incoming.utf8 is not None:
            try:
                text = incoming.utf8.decode(data)
            except UnicodeDecodeError:
                incoming.utf8 = None
            else:
                if _CONTROL_CHARACTERS.search(text):
                    incoming.utf8 = None
                else:
                    incoming.text_parts.append(text)
        if incoming.utf8 is None or incoming.size > self._max_text_bytes:
            self._spill(incoming)

    def _read_header(self, incoming: _Incoming, data: bytes) -> bytes:
        """Look for a file-name header in the body's first bytes, ``data`` the newest.

        Returns the bytes for the text-or-binary path (all of the body so
        far), or ``b""`` once a header is found (its file is then spooled)
        or while more bytes are needed to tell.
        """
        head = b"".join([*incoming.pieces, data]) if incoming.pieces else data
        found = parse_file_header(head)
        if found is NEED_MORE:
            incoming.pieces = [head]
            return b""
        incoming.is_header_pending = False
        incoming.pieces = []
        if isinstance(found, FileHeader):
            incoming.header = found
            incoming.pieces = [head[found.length :]]
            self._spill(incoming)
            return b""
        return head

    def finish(self) -> Received:
        """End the delivery and return what it became."""
        incoming = self._incoming
        assert incoming is not None, "finish() outside a delivery"
        self._incoming = None
        sender = incoming.sender.decode("ascii", "replace")
        if incoming.is_header_pending and incoming.pieces:
            incoming.utf8 = None  # the start of a header, cut short: a binary body
        if incoming.spool is None and incoming.error is None and incoming.utf8 is not None:
            try:
                tail = incoming.utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                incoming.utf8 = None
            else:
                return TextMessage(sender, "".join(incoming.text_parts) + tail, incoming.size)
        if incoming.spool is None and incoming.error is None:
            self._spill(incoming)
        if incoming.error is None:
            assert incoming.spool is not None and incoming.spool_path is not None
            try:
                incoming.spool.close()
                stem, suffix = self._saved_name(incoming)
                path = claim_file_name(self.download_dir, stem, incoming.spool_path, suffix)
            except OSError as error:
                self._fail(incoming, error)
            else:
                return SavedFile(sender, path, incoming.file_size, _given_name(incoming))
        assert incoming.error is not None
        return UnsavedFile(sender, incoming.file_size, incoming.error, _given_name(incoming))

    @staticmethod
    def _saved_name(incoming: _Incoming) -> tuple[str, str]:
        """The (stem, extension) to save under: the header's name, else the sender's."""
        if incoming.header is not None:
            parts = saved_name_parts(incoming.header.name)
            if parts is not None:
                return parts
        return safe_file_stem(incoming.sender), RECEIVED_FILE_SUFFIX

    def abort(self) -> None:
        """Drop an unfinished delivery and its temporary file, if any."""
        incoming, self._incoming = self._incoming, None
        if incoming is not None and incoming.spool is not None:
            self._discard_spool(incoming)

    def _spill(self, incoming: _Incoming) -> None:
        """Move the body held in memory to a new temporary file and go on there."""
        incoming.utf8 = None
        incoming.text_parts.clear()
        pieces, incoming.pieces = incoming.pieces, []
        try:
            stem = safe_file_stem(incoming.sender)
            handle, name = tempfile.mkstemp(
                prefix=f".{stem}-", suffix=".part", dir=self.download_dir
            )
        except OSError as error:
            self._fail(incoming, error)
            return
        incoming.spool_path = Path(name)
        incoming.spool = os.fdopen(handle, "wb")
        self._write(incoming, b"".join(pieces))

    def _write(self, incoming: _Incoming, data: bytes) -> None:
        assert incoming.spool is not None
        try:
            incoming.spool.write(data)
        except OSError as error:
            self._fail(incoming, error)

    def _fail(self, incoming: _Incoming, error: OSError) -> None:
        """Give up saving this body: remember why and remove the temporary file."""
        incoming.error = f"{error.strerror or error}"
        incoming.pieces.clear()
        if incoming.spool is not None:
            self._discard_spool(incoming)

    @staticmethod
    def _discard_spool(incoming: _Incoming) -> None:
        assert incoming.spool is not None and incoming.spool_path is not None
        try:
            incoming.spool.close()
        except OSError:
            pass
        try:
            os.unlink(incoming.spool_path)
        except OSError:
            pass
        incoming.spool = None


def _given_name(incoming: _Incoming) -> str | None:
    return incoming.header.name if incoming.header is not None else None
