"""What a delivery becomes, and file transfer, for ``chat_client``.

* :class:`Inbox` turns a streamed delivery into a :class:`TextMessage`, or
  writes it to disk as it arrives and renames it when complete
  (:class:`SavedFile`, or :class:`UnsavedFile` if it could not be written);
  :data:`Received` is any of the three.
* :func:`safe_file_stem` and :func:`claim_file_name` name a received file
  without ever replacing an existing one.
* :class:`ChunkedFileSender` is a pull producer that streams a file from disk
  as 999-byte chunks, never holding it whole; :func:`open_file_to_send`
  opens the file for it.

Nothing here knows about connections or front ends.
"""

import codecs
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IPullProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from chatproto.limits import KIB
from chatproto.wire.encode import encode_chunks
from chatproto.wire.grammar import LAST_CHUNK, MAX_CHUNK

#: Largest body shown as text; a bigger one is saved as a file.
MAX_TEXT_BYTES: Final = 64 * KIB
#: Chunks a file sender writes each time the transport asks for more.
CHUNKS_PER_PULL: Final = 16
#: Most numbered names tried before giving up on saving a file.
MAX_NAME_ATTEMPTS: Final = 10_000
#: Extension of received files: the protocol carries no file name or type.
RECEIVED_FILE_SUFFIX: Final = ".bin"

# Control characters that make a body "not text": C0 (but tab, LF, CR), DEL and C1.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Characters kept in a file name derived from a userid; the rest become "_".
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


# -- what a delivery becomes ---------------------------------------------------


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


def safe_file_stem(sender: bytes) -> str:
    """Return a file name stem for ``sender``: letters, digits, ``_`` and ``-`` only.

    Every other byte of the userid (``/``, ``\\``, ``.``, ...) becomes ``_``, so
    the stem can name neither another directory nor a hidden file.
    """
    return _UNSAFE_NAME_CHARACTERS.sub("_", sender.decode("ascii", "replace"))


def claim_file_name(directory: Path, stem: str, source: Path) -> Path:
    """Give the complete file ``source`` a free name in ``directory``; return it.

    Tries ``<stem>.bin``, then ``<stem>-1.bin``, ``<stem>-2.bin``, ... An
    existing file is never replaced: the new name is created by a hard link,
    which fails if the name is taken, and ``source`` is then removed.

    Raises:
        OSError: no free name, or the file system refused.
    """
    for attempt in range(MAX_NAME_ATTEMPTS):
        suffix = f"-{attempt}" if attempt else ""
        target = directory / f"{stem}{suffix}{RECEIVED_FILE_SUFFIX}"
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError:
            # No hard links here (some file systems): check, then rename.
            if os.path.lexists(target):
                continue
            os.rename(source, target)
            return target
        os.unlink(source)
        return target
    raise FileExistsError(f"no free name for {stem}{RECEIVED_FILE_SUFFIX} in {directory}")


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


# -- sending files -------------------------------------------------------------


@implementer(IPullProducer)
class ChunkedFileSender:
    """Stream an open file to a consumer as a chunked body: ``C<n>`` frames, then ``C0``.

    A pull producer: each time the consumer asks (``resumeProducing``) it
    reads at most ``chunks_per_pull`` chunks of ``MAX_CHUNK`` bytes and writes
    them, so the file is never held in memory. It sends at most ``size``
    bytes, fewer if the file ends earlier, and owns ``source`` (closes it).

    Attributes:
        done: fires with the number of body bytes sent once ``C0`` is
            written; fails with the error if the file could not be read or
            the consumer stopped the transfer (the body is then unfinished,
            and the connection must close for the server to drop it).
        sent: body bytes written so far.
        size: body bytes to send.
    """

    def __init__(
        self,
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
        chunks_per_pull: int = CHUNKS_PER_PULL,
    ) -> None:
        self.done: Deferred[int] = Deferred()
        self.sent = 0
        self.size = size
        self._source = source
        self._on_progress = on_progress
        self._chunks_per_pull = chunks_per_pull
        self._consumer: IConsumer | None = None
        self._is_finished = False

    def start(self, consumer: IConsumer) -> None:
        """Register with ``consumer``; it pulls the chunks from then on."""
        self._consumer = consumer
        consumer.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self._is_finished:
            return
        chunks: list[bytes] = []
        is_last = False
        try:
            for _ in range(self._chunks_per_pull):
                wanted = min(MAX_CHUNK, self.size - self.sent)
                data = self._source.read(wanted) if wanted > 0 else b""
                if not data:
                    is_last = True
                    break
                chunks.append(data)
                self.sent += len(data)
        except OSError as error:
            self._end(Failure(error))
            return
        frames = encode_chunks(chunks)
        if is_last:
            frames.append(LAST_CHUNK)  # the C0 comes after the last chunk only
        assert self._consumer is not None
        self._consumer.writeSequence(frames)
        if self._on_progress is not None and chunks:
            self._on_progress(self.sent, self.size)
        if is_last:
            self._end(self.sent)

    def stopProducing(self) -> None:
        self._end(Failure(ConnectionLost("the connection closed during the transfer")))

    def _end(self, result: int | Failure) -> None:
        """Finish once: unregister, close the file, fire :attr:`done`."""
        if self._is_finished:
            return
        self._is_finished = True
        try:
            self._source.close()
        except OSError:
            pass
        if isinstance(result, Failure):
            self.done.errback(result)
        else:
            assert self._consumer is not None
            self._consumer.unregisterProducer()
            self.done.callback(result)


def open_file_to_send(path: Path, max_bytes: int) -> tuple[BinaryIO, int]:
    """Open a regular file for sending; return it and its size.

    Raises:
        OSError: it cannot be opened, is not a regular file, or is larger
            than ``max_bytes`` (a message the server would refuse).
    """
    source = open(path, "rb")  # noqa: SIM115 - the sender closes it
    try:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise OSError(
                f"{path} has {info.st_size} bytes; the largest message is {max_bytes} bytes"
            )
    except BaseException:
        source.close()
        raise
    return source, info.st_size
