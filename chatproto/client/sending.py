"""Sending a file, for ``chat_client``: open it, then stream it as a chunked body.

:func:`open_file_to_send` opens a file and checks it can be sent;
:class:`ChunkedFileSender` is a pull producer that streams it from disk as
999-byte chunks, never holding it whole. Nothing here knows about
connections or front ends.
"""

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IPullProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from chatproto.client.file_header import encode_file_header, fit_file_name
from chatproto.wire.encode import encode_chunks
from chatproto.wire.grammar import LAST_CHUNK, MAX_CHUNK

#: Chunks a file sender writes each time the transport asks for more.
CHUNKS_PER_PULL: Final = 16


@implementer(IPullProducer)
class ChunkedFileSender:
    """Stream an open file to a consumer as a chunked body: ``C<n>`` frames, then ``C0``.

    A pull producer: each time the consumer asks (``resumeProducing``) it
    reads at most ``chunks_per_pull`` chunks of ``MAX_CHUNK`` bytes and writes
    them, so the file is never held in memory. It sends at most ``size``
    bytes, fewer if the file ends earlier, and owns ``source`` (closes it).
    ``header`` (a file-name header, at most ``MAX_CHUNK`` bytes) goes first,
    in the first chunk; it is not counted in :attr:`sent` and :attr:`size`.

    Attributes:
        done: fires with the number of file bytes sent once ``C0`` is
            written; fails with the error if the file could not be read or
            the consumer stopped the transfer (the body is then unfinished,
            and the connection must close for the server to drop it).
        sent: file bytes written so far.
        size: file bytes to send.
    """

    def __init__(
        self,
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
        chunks_per_pull: int = CHUNKS_PER_PULL,
        header: bytes = b"",
    ) -> None:
        if len(header) > MAX_CHUNK:
            raise ValueError(f"a header of {len(header)} bytes does not fit one chunk")
        self.done: Deferred[int] = Deferred()
        self.sent = 0
        self.size = size
        self._header = header
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
                head, self._header = self._header, b""
                wanted = min(MAX_CHUNK - len(head), self.size - self.sent)
                data = self._source.read(wanted) if wanted > 0 else b""
                self.sent += len(data)
                if not data and not head:
                    is_last = True
                    break
                chunks.append(head + data if head else data)
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


def open_file_to_send(path: Path, max_bytes: int, header_bytes: int = 0) -> tuple[BinaryIO, int]:
    """Open a regular file for sending; return it and its size.

    It is opened without blocking, so a FIFO or a device is refused instead
    of waiting for a writer.

    Raises:
        OSError: it cannot be opened, is not a regular file, or is larger
            than ``max_bytes`` less ``header_bytes`` (the file-name header
            that goes before it in the same message: a message the server
            would refuse); the message names no path.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        if info.st_size + header_bytes > max_bytes:
            with_header = f" and a {header_bytes}-byte name header" if header_bytes else ""
            raise OSError(
                f"{info.st_size} bytes{with_header}, over the largest message ({max_bytes} bytes)"
            )
        os.set_blocking(fd, True)
        source = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return source, info.st_size


def file_header_for(path: Path) -> bytes:
    """Return the file-name header that sends ``path`` under its own base name."""
    return encode_file_header(fit_file_name(path.name))
