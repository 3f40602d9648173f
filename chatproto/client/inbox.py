"""What a delivery becomes, for ``chat_client``: text, or a file on disk.

:class:`Inbox` turns a streamed delivery into a :class:`TextMessage`, or
writes it to disk as it arrives and renames it when complete
(:class:`SavedFile`, or :class:`UnsavedFile` if it could not be written);
:data:`Received` is any of the three. Names come from
:mod:`chatproto.client.naming`. Nothing here knows about connections or
front ends.
"""

import codecs
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from chatproto.client.naming import claim_file_name, safe_file_stem
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
    """A delivery whose body is not text, saved under the download directory.

    Attributes:
        sender: the sender's userid.
        path: where the body was saved (the download directory joined with its name).
        size: the body's size in bytes.
    """

    sender: str
    path: Path
    size: int


@dataclass(frozen=True, slots=True)
class UnsavedFile:
    """A delivery that should have been saved as a file but could not be.

    Attributes:
        sender: the sender's userid.
        size: the body's size in bytes.
        reason: the error that prevented saving it.
    """

    sender: str
    size: int
    reason: str


Received = TextMessage | SavedFile | UnsavedFile


class _Incoming:
    """The delivery being received: its text so far, or the file it is written to."""

    __slots__ = ("sender", "size", "pieces", "text_parts", "utf8", "spool", "spool_path", "error")

    def __init__(self, sender: bytes) -> None:
        self.sender = sender
        self.size = 0
        self.pieces: list[bytes] = []  # raw bytes held while the body may be text
        self.text_parts: list[str] = []
        self.utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()
        self.spool: BinaryIO | None = None
        self.spool_path: Path | None = None
        self.error: str | None = None


class Inbox:
    """Assemble streamed deliveries into text messages or files on disk.

    A body is text if it is valid UTF-8 of at most ``max_text_bytes`` with no
    control character but tab, CR and LF; it is held in memory and becomes a
    :class:`TextMessage`. Any other body is written, as it arrives, to a
    hidden temporary file in the download directory and, once complete,
    linked to a free name derived from the sender (:func:`claim_file_name`),
    so a partial file never appears under its final name. A body that cannot
    be written becomes an :class:`UnsavedFile`; the rest of it is discarded.

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

    def finish(self) -> Received:
        """End the delivery and return what it became."""
        incoming = self._incoming
        assert incoming is not None, "finish() outside a delivery"
        self._incoming = None
        sender = incoming.sender.decode("ascii", "replace")
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
                stem = safe_file_stem(incoming.sender)
                path = claim_file_name(self.download_dir, stem, incoming.spool_path)
            except OSError as error:
                self._fail(incoming, error)
            else:
                return SavedFile(sender, path, incoming.size)
        assert incoming.error is not None
        return UnsavedFile(sender, incoming.size, incoming.error)

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
