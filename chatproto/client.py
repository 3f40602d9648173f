"""``chat_client``: a terminal client for the chat server, and the Twisted side of it.

The wire format is parsed by :mod:`chatproto.client_codec` and framed by the
encoders of :mod:`chatproto.codec`; this module adapts transports to them and
runs one user's session on a single reactor, without threads:

* :class:`ChatClientProtocol` (TCP) and :class:`ChatDatagramClient` (UDP)
  log in, send messages, stream files and receive deliveries. Both present
  the same small interface (:class:`ChatConnection`) to a front end.
* :class:`Inbox` turns a streamed delivery into a :class:`TextMessage`, or
  writes it to disk as it arrives and renames it when complete
  (:class:`SavedFile`).
* :class:`ChunkedFileSender` is a pull producer that streams a file from disk
  as 999-byte chunks, never holding it whole.
* Three front ends receive what the connection reports (:class:`ChatView`):
  :class:`TerminalSession` (typed lines over ``twisted.internet.stdio``),
  :class:`JsonLinesView` (``--listen``) and :class:`FileSendJob`
  (``--send USER --file PATH``).

The client prints only its user-facing output; diagnostics go to
``twisted.logger``, whose observer here shows nothing but unexpected errors.
"""

import codecs
import ipaddress
import json
import os
import re
import shlex
import stat
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Final
from typing import Protocol as TypingProtocol

from twisted.internet import endpoints
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPullProducer,
    IReactorTime,
)
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet.stdio import StandardIO
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent, globalLogBeginner
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from chatproto.argtypes import AnyOrderOptions, port_number, positive_int
from chatproto.client_codec import (
    ClientDecoder,
    DeliveryData,
    DeliveryEnd,
    DeliveryStart,
    ErrorReply,
    Malformed,
    OkReply,
    ServerEvent,
    decode_server_datagram,
)
from chatproto.codec import (
    MAX_CHUNK,
    MAX_SHORT_BODY,
    encode_chunked_body,
    encode_command,
    encode_login,
    encode_message,
    is_valid_userid,
)
from chatproto.events import NEED_DATA, _NeedData
from chatproto.limits import KIB, MIB, Limits

PROGRAM = "chat_client"

_log = Logger()

#: Longest wait for the TCP connection, and then for the reply to ``ME IS``.
LOGIN_TIMEOUT_S: Final = 10.0
#: Longest wait, after the client stopped sending, for the server to close.
CLOSE_TIMEOUT_S: Final = 10.0
#: Largest body shown as text; a bigger one is saved as a file.
MAX_TEXT_BYTES: Final = 64 * KIB
#: A file bigger than this shows a progress line while it is sent.
PROGRESS_MIN_BYTES: Final = MIB
#: The progress line moves in steps of this many percent.
PROGRESS_STEP_PERCENT: Final = 10
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

HELP_TEXT = """\
Type a line to send it to everyone (BROADCAST). Commands:
  /send USER[,USER...] TEXT   send TEXT to these users only
  /file USER [USER ...] PATH  send a file (TCP only; quote a PATH that has spaces)
  /help                       show this help
  /quit                       leave (so does Ctrl-D)
A line starting with // sends the text after its first /.
Received files are saved in {download_dir} (--download-dir)."""


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
        frames = encode_chunked_body(chunks)
        if not is_last:
            frames.pop()  # the C0 comes after the last chunk only
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


# -- the connection side -------------------------------------------------------


class LoginRefusedError(Exception):
    """The server answered ``ERROR`` to ``ME IS``: the userid is in use (PROTOCOL §2)."""


class NoLoginReplyError(Exception):
    """The server did not answer ``ME IS`` in time, or closed before answering."""


class ChatView(TypingProtocol):
    """What a front end hears from its connection once logged in."""

    def message_received(self, message: Received) -> None:
        """A delivery arrived (text, saved file, or a file that could not be saved)."""

    def message_refused(self) -> None:
        """The server answered ``ERROR`` to something this client sent."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        """The session ended: as asked (``finish``) if ``is_expected``, else for ``reason``."""


class ChatConnection(TypingProtocol):
    """What a front end may ask of its connection, TCP or UDP.

    Attributes:
        transport_name: ``"TCP"`` or ``"UDP"``.
        max_body_bytes: the largest body :meth:`send_text` or :meth:`send_file` takes.
        can_send_files: whether :meth:`send_file` works (TCP only).
        is_sending_file: whether a file transfer is under way or queued.
    """

    transport_name: str
    max_body_bytes: int
    can_send_files: bool
    is_sending_file: bool

    def attach(self, view: ChatView) -> None:
        """Report to ``view`` from now on, starting with anything that came before."""

    def send_text(self, recipients: Sequence[bytes] | None, body: bytes) -> None:
        """Send ``body`` to ``recipients`` (``None``: BROADCAST)."""

    def send_file(
        self,
        recipients: Sequence[bytes],
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Deferred[int]:
        """Stream ``source`` to ``recipients`` as a chunked message."""
        raise NotImplementedError

    def finish(self) -> None:
        """Send what is queued, then end the session (``connection_lost(True, ...)``)."""


class _ServerEventHandler:
    """The part of a connection shared by TCP and UDP: login state, events, the view.

    Attributes:
        user: the userid to log in as.
        logged_in: fires when the server answers ``OK``; fails with
            :class:`LoginRefusedError`, :class:`NoLoginReplyError` or the connection
            error otherwise.
        is_logged_in: whether ``OK`` has arrived.
    """

    log = Logger()

    def __init__(self, user: bytes, inbox: Inbox, clock: IReactorTime) -> None:
        self.user = user
        self.logged_in: Deferred[None] = Deferred()
        self.is_logged_in = False
        self._inbox = inbox
        self._clock = clock
        self._view: ChatView | None = None
        self._pending: list[Callable[[ChatView], None]] = []
        self._login_timer: IDelayedCall | None = None

    def attach(self, view: ChatView) -> None:
        """Report to ``view`` from now on, starting with what arrived before."""
        self._view = view
        pending, self._pending = self._pending, []
        for notify in pending:
            notify(view)

    def _notify(self, notify: Callable[[ChatView], None]) -> None:
        if self._view is None:
            self._pending.append(notify)
        else:
            notify(self._view)

    def _start_login_timer(self) -> None:
        self._login_timer = self._clock.callLater(LOGIN_TIMEOUT_S, self._login_timed_out)

    def _login_timed_out(self) -> None:
        self._login_timer = None
        self._fail_login(NoLoginReplyError(f"no reply to ME IS within {LOGIN_TIMEOUT_S:g} s"))
        self._drop()

    def _fail_login(self, error: Exception) -> None:
        """Fail :attr:`logged_in` unless it already fired."""
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        if not self.logged_in.called:
            self.logged_in.errback(Failure(error))

    def _drop(self) -> None:
        """Close the transport at once (the session is over)."""
        raise NotImplementedError

    def _handle(self, event: ServerEvent) -> None:
        """Act on one decoded server event."""
        match event:
            case OkReply():
                self._on_ok()
            case ErrorReply():
                self._on_error()
            case DeliveryStart(sender=sender):
                self._inbox.start(sender)
            case DeliveryData(data=data):
                self._inbox.add(data)
            case DeliveryEnd():
                message = self._inbox.finish()
                self._notify(lambda view: view.message_received(message))
            case Malformed():
                self._on_malformed(event)

    def _on_ok(self) -> None:
        if self.logged_in.called:
            self.log.warn("unexpected OK from the server")
            return
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        self.is_logged_in = True
        self.log.info("logged in as {user}", user=self.user.decode("ascii"))
        self.logged_in.callback(None)

    def _on_error(self) -> None:
        if not self.logged_in.called:
            user = self.user.decode("ascii")
            self._fail_login(LoginRefusedError(f"userid {user} is already in use"))
            self._drop()
        else:
            self._notify(lambda view: view.message_refused())

    def _on_malformed(self, event: Malformed) -> None:
        self.log.warn(
            "the server sent {reason}: {line!r}", reason=event.reason, line=event.line[:80]
        )
        if event.fatal:
            self._inbox.abort()


@implementer(IHalfCloseableProtocol)
class ChatClientProtocol(_ServerEventHandler, Protocol):
    """The client's TCP connection: log in, then send and receive (PROTOCOL §2-§4).

    Outgoing messages and files are queued and written one after the other,
    so a message typed during a file transfer never lands inside its body.
    Files are streamed by a :class:`ChunkedFileSender` registered on the
    transport. :meth:`finish` half-closes after the queue is empty and waits
    for the server to close, so an ``ERROR`` for the last message still
    arrives.

    Attributes:
        transport_name: ``"TCP"``.
        can_send_files: True.
        max_body_bytes: the largest message body (``limits.max_message_bytes``).
    """

    transport_name = "TCP"
    can_send_files = True

    def __init__(
        self, user: bytes, inbox: Inbox, clock: IReactorTime, limits: Limits | None = None
    ) -> None:
        super().__init__(user, inbox, clock)
        limits = limits if limits is not None else Limits()
        self.max_body_bytes = limits.max_message_bytes
        self._decoder = ClientDecoder(limits)
        self._outbox: deque[bytes | tuple[bytes, ChunkedFileSender]] = deque()
        self._file_sender: ChunkedFileSender | None = None
        self._is_finishing = False
        self._is_write_closed = False
        self._close_timer: IDelayedCall | None = None
        self._lost_reason: str | None = None

    @property
    def is_sending_file(self) -> bool:
        """Whether a file transfer is under way or queued."""
        return self._file_sender is not None or any(
            isinstance(item, tuple) for item in self._outbox
        )

    # -- Twisted callbacks -------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.write(encode_login(self.user))
        self._start_login_timer()

    def dataReceived(self, data: bytes) -> None:
        if self.transport.disconnecting:
            return
        try:
            self._decoder.feed(data)
            while not self.transport.disconnecting:
                event = self._decoder.next_event()
                if event is NEED_DATA:
                    return
                assert not isinstance(event, _NeedData)
                self._handle(event)
        except Exception:
            self.log.failure("error handling data from the server")
            self._lost_reason = "internal error (see above)"
            self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """The server closed its side: close ours too (a delivery cut short is dropped).

        A file still being sent could never arrive, so it is not flushed first.
        """
        if self._file_sender is not None:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our sending side is closed; keep reading until the server closes."""

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        for timer in (self._login_timer, self._close_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._login_timer = self._close_timer = None
        self._inbox.abort()
        self._abandon_outbox()
        if not self.logged_in.called:
            self._fail_login(NoLoginReplyError("the server closed the connection first"))
            return
        is_expected = self._is_finishing and self._lost_reason is None
        why = self._lost_reason or _reason_text(reason)
        self._notify(lambda view: view.connection_lost(is_expected, why))

    # -- ChatConnection ----------------------------------------------------------

    def send_text(self, recipients: Sequence[bytes] | None, body: bytes) -> None:
        """Queue ``body`` for ``recipients`` (``None``: BROADCAST); over 99 bytes it is chunked."""
        self._outbox.append(encode_message(recipients, body))
        self._pump()

    def send_file(
        self,
        recipients: Sequence[bytes],
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Deferred[int]:
        """Queue ``source`` (``size`` bytes, owned from now on) as a chunked ``SEND``.

        Returns:
            The sender's :attr:`ChunkedFileSender.done`.
        """
        sender = ChunkedFileSender(source, size, on_progress)
        self._outbox.append((encode_command(recipients), sender))
        self._pump()
        return sender.done

    def finish(self) -> None:
        """Write what is queued, then half-close and wait for the server to close."""
        self._is_finishing = True
        self._pump()

    # -- internals ---------------------------------------------------------------

    def _pump(self) -> None:
        """Write queued items in order; a file holds the line until it is done."""
        transport = self.transport
        if transport is None or self._is_write_closed:
            return
        while self._file_sender is None and self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, bytes):
                transport.write(item)
                continue
            command, sender = item
            transport.write(command)
            self._file_sender = sender
            sender.done.addBoth(self._file_done, sender)
            sender.start(transport)
        if self._file_sender is None and not self._outbox and self._is_finishing:
            self._close_write()

    def _file_done(self, result: object, sender: ChunkedFileSender) -> object:
        if self._file_sender is sender:
            self._file_sender = None
            if isinstance(result, Failure):
                # The body cannot be finished: only closing makes the server drop it.
                self._lost_reason = f"sending a file failed: {result.getErrorMessage()}"
                if self.transport is not None and not self.transport.disconnecting:
                    self.transport.abortConnection()
            else:
                self._pump()
        return result

    def _close_write(self) -> None:
        if self._is_write_closed:
            return
        self._is_write_closed = True
        self.transport.loseWriteConnection()
        self._close_timer = self._clock.callLater(CLOSE_TIMEOUT_S, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self.transport.abortConnection()

    def _abandon_outbox(self) -> None:
        """The connection is gone: stop the transfer and fail the queued ones."""
        if self._file_sender is not None:
            self._file_sender.stopProducing()
        while self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, tuple):
                item[1].stopProducing()

    def _on_malformed(self, event: Malformed) -> None:
        super()._on_malformed(event)
        if event.fatal:
            # The stream cannot be delimited any more: this connection is over.
            self._lost_reason = f"the server sent something unreadable ({event.reason})"
            self._drop()

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


class ChatDatagramClient(_ServerEventHandler, DatagramProtocol):
    """The client over UDP: one datagram per command, short bodies only (PROTOCOL §6).

    The socket is connected to the server, so only its datagrams arrive and
    an ICMP "port unreachable" reports a server that is down.

    Attributes:
        transport_name: ``"UDP"``.
        can_send_files: False: a chunked body cannot travel over UDP.
        max_body_bytes: 99, the largest short body.
        is_sending_file: always False.
    """

    transport_name = "UDP"
    can_send_files = False
    is_sending_file = False
    max_body_bytes = MAX_SHORT_BODY

    def __init__(
        self,
        user: bytes,
        server: tuple[str, int],
        inbox: Inbox,
        clock: IReactorTime,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(user, inbox, clock)
        self._server = server
        self._limits = limits if limits is not None else Limits()
        self._is_finishing = False
        self._is_closed = False

    # -- Twisted callbacks -------------------------------------------------------

    def startProtocol(self) -> None:
        self.transport.connect(*self._server)
        self.transport.write(encode_login(self.user))
        self._start_login_timer()

    def datagramReceived(self, datagram: bytes, address: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            for event in decode_server_datagram(datagram, self._limits):
                self._handle(event)
        except Exception:
            self.log.failure("error handling a datagram from the server")

    def connectionRefused(self) -> None:
        if not self.logged_in.called:
            self._fail_login(ConnectionRefusedError("nothing listens on that UDP port"))
            self._drop()
        elif not self._is_closed:
            self._close(False, "the server is not reachable over UDP")

    def stopProtocol(self) -> None:
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None
        if not self._is_closed:
            # Closed without being asked: under epoll, Twisted reports an ICMP
            # "port unreachable" on a connected UDP socket this way.
            self._is_closed = True
            self._inbox.abort()
            if not self.logged_in.called:
                self._fail_login(ConnectionRefusedError("nothing listens on that UDP port"))
            else:
                self._notify(
                    lambda view: view.connection_lost(
                        False, "the server is not reachable over UDP"
                    )
                )

    # -- ChatConnection ----------------------------------------------------------

    def send_text(self, recipients: Sequence[bytes] | None, body: bytes) -> None:
        """Send ``body`` (at most 99 bytes) to ``recipients`` in one datagram.

        Raises:
            ValueError: ``body`` is longer than a short body.
        """
        self.transport.write(encode_message(recipients, body, chunked=False))

    def send_file(
        self,
        recipients: Sequence[bytes],
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Deferred[int]:
        """Refuse: files travel as chunked bodies, and those need TCP (PROTOCOL §3)."""
        source.close()
        raise ValueError("files need TCP")

    def finish(self) -> None:
        """Stop listening; UDP has nothing in flight to wait for."""
        self._is_finishing = True
        self._close(True, "")

    def _close(self, is_expected: bool, reason: str) -> None:
        self._is_closed = True
        self._inbox.abort()
        if self.transport is not None:
            self.transport.stopListening()
        self._notify(lambda view: view.connection_lost(is_expected, reason))

    def _drop(self) -> None:
        self._is_closed = True
        if self.transport is not None:
            self.transport.stopListening()


def _reason_text(reason: Failure | None) -> str:
    """Say in a few words why a connection ended."""
    if reason is None or reason.check(ConnectionDone):
        return "the server closed the connection"
    return reason.getErrorMessage().rstrip(".")


# -- showing messages ----------------------------------------------------------


def clock_text(seconds: float) -> str:
    """Return ``seconds`` since the epoch as local ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def render_message(message: Received, seconds: float) -> str:
    """Return the terminal line(s) for a received message, stamped with ``seconds``.

    Text shows as ``[HH:MM:SS] <sender>: <text>``; the lines after the first
    of a multi-line text are indented, so they cannot pass for messages.
    """
    stamp = clock_text(seconds)
    match message:
        case TextMessage(sender=sender, text=text):
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            return f"[{stamp}] {sender}: " + "\n  ".join(lines)
        case SavedFile(sender=sender, path=path, size=size):
            return f"[{stamp}] {sender} sent a file: {path} ({size} bytes)"
        case UnsavedFile(sender=sender, size=size, reason=reason):
            return (
                f"[{stamp}] {sender} sent a file ({size} bytes) that could not be saved: {reason}"
            )
    raise TypeError(f"not a received message: {message!r}")


def json_record(message: Received) -> dict[str, object]:
    """Return the ``--listen`` JSON object for a message.

    Keys: ``sender``, ``size`` and one of ``text``, ``path`` (absolute) or
    ``error`` (a file that could not be saved).
    """
    match message:
        case TextMessage(sender=sender, text=text, size=size):
            return {"sender": sender, "size": size, "text": text}
        case SavedFile(sender=sender, path=path, size=size):
            return {"sender": sender, "size": size, "path": os.path.abspath(path)}
        case UnsavedFile(sender=sender, size=size, reason=reason):
            return {"sender": sender, "size": size, "error": reason}
    raise TypeError(f"not a received message: {message!r}")


class Console:
    """User-facing text output, with a progress line rewritten in place on terminals.

    Args:
        write: writes text as it is (the caller adds no newline).
        is_terminal: whether the output is a terminal; elsewhere each
            progress step is a line of its own.
    """

    def __init__(self, write: Callable[[str], None], is_terminal: bool) -> None:
        self._write = write
        self._is_terminal = is_terminal
        self._is_progress_open = False

    def line(self, text: str) -> None:
        """Write ``text`` as a line of its own (ending an open progress line first)."""
        if self._is_progress_open:
            self._write("\n")
            self._is_progress_open = False
        self._write(text + "\n")

    def progress(self, text: str) -> None:
        """Show ``text`` as the current progress line."""
        if self._is_terminal:
            self._write("\r" + text)
            self._is_progress_open = True
        else:
            self._write(text + "\n")


class ProgressReporter:
    """Turn a sender's progress into a line every ``PROGRESS_STEP_PERCENT`` percent.

    Only for files over ``PROGRESS_MIN_BYTES``; smaller ones show nothing.
    """

    def __init__(self, console: Console, label: str) -> None:
        self._console = console
        self._label = label
        self._shown_percent = 0

    def __call__(self, sent: int, size: int) -> None:
        """Note that ``sent`` of ``size`` bytes were written."""
        if size <= PROGRESS_MIN_BYTES:
            return
        percent = sent * 100 // size // PROGRESS_STEP_PERCENT * PROGRESS_STEP_PERCENT
        if percent > self._shown_percent:
            self._shown_percent = percent
            self._console.progress(f"sending {self._label}: {percent}% ({sent} of {size} bytes)")


def parse_recipients(words: Sequence[str]) -> list[bytes]:
    """Return the userids named by ``words``, each a name or comma-separated names.

    Raises:
        ValueError: a name is not a valid userid (PROTOCOL §2), or there is none.
    """
    recipients: list[bytes] = []
    for word in words:
        for name in word.split(","):
            raw = name.encode("utf-8", "surrogateescape")
            if not is_valid_userid(raw):
                raise ValueError(f"not a valid userid: {name!r}")
            recipients.append(raw)
    if not recipients:
        raise ValueError("no recipient")
    return list(dict.fromkeys(recipients))


# -- front ends ----------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class TerminalSession(LineReceiver):
    """The interactive front end: typed lines in, messages out, over ``StandardIO``.

    A typed line is a BROADCAST; ``/send``, ``/file``, ``/help`` and ``/quit``
    are commands (see ``HELP_TEXT``). End of input (Ctrl-D) is ``/quit``.
    When the session ends, the output is flushed and ``on_exit`` is called
    with the exit status: 0 after ``/quit``, 1 if the server went away.

    Args:
        connection: the logged-in connection.
        clock: the time source for message stamps.
        on_exit: called once, with the exit status, when output is closed.
        banner: the first line shown.
        is_terminal: whether the output is a terminal (for progress lines).
        download_dir: where received files go (named in ``/help``).

    Attributes:
        console: the session's output.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_TEXT_BYTES
    log = Logger()

    def __init__(
        self,
        connection: ChatConnection,
        clock: IReactorTime,
        on_exit: Callable[[int], None],
        banner: str,
        is_terminal: bool,
        download_dir: Path,
    ) -> None:
        self._connection = connection
        self._clock = clock
        self._on_exit = on_exit
        self._banner = banner
        self._download_dir = download_dir
        self.console = Console(self._write, is_terminal)
        self._is_quitting = False
        self._is_output_lost = False
        self._exit_status: int | None = None
        self._commands: dict[str, Callable[[str], None]] = {
            "/help": self._help,
            "/quit": self._quit,
            "/send": self._send,
            "/file": self._file,
        }

    def _write(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8", "replace"))

    # -- stdin ---------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.console.line(self._banner)
        self._connection.attach(self)

    def lineReceived(self, line: bytes) -> None:
        text = line.removesuffix(b"\r").decode("utf-8", "surrogateescape")
        try:
            self._on_line(text)
        except Exception:
            self.log.failure("error handling the typed line {line!r}", line=text)
            self.console.line("internal error; the line was not sent")

    def lineLengthExceeded(self, line: bytes) -> None:
        self.console.line(f"line too long (more than {self.MAX_LENGTH} bytes); not sent")

    def readConnectionLost(self) -> None:
        """End of input: leave as ``/quit`` does."""
        self._quit("")

    def writeConnectionLost(self) -> None:
        """The terminal is gone: nobody can read the output, so leave."""
        self._is_output_lost = True
        self._quit("")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._on_exit(self._exit_status if self._exit_status is not None else 0)

    # -- ChatView ------------------------------------------------------------------

    def message_received(self, message: Received) -> None:
        self.console.line(render_message(message, self._clock.seconds()))

    def message_refused(self) -> None:
        self.console.line("the server answered ERROR: it refused a message")

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        if not is_expected:
            self.console.line(f"connection lost: {reason}")
        self._exit(0 if is_expected else 1)

    # -- commands ------------------------------------------------------------------

    def _on_line(self, text: str) -> None:
        if self._is_quitting:
            self.console.line("leaving; input ignored")
            return
        if not text.strip():
            return
        if text.startswith("//"):
            self._send_text(None, text[1:])
        elif text.startswith("/"):
            name, _, arguments = text.partition(" ")
            command = self._commands.get(name)
            if command is None:
                self.console.line(f"unknown command {name}; /help lists the commands")
            else:
                command(arguments.lstrip(" "))
        else:
            self._send_text(None, text)

    def _help(self, arguments: str) -> None:
        self.console.line(HELP_TEXT.format(download_dir=os.path.abspath(self._download_dir)))

    def _quit(self, arguments: str) -> None:
        if self._is_quitting:
            return
        self._is_quitting = True
        if self._connection.is_sending_file:
            self.console.line("leaving once the file transfer is done")
        self._connection.finish()

    def _send(self, arguments: str) -> None:
        names, _, text = arguments.partition(" ")
        text = text.lstrip(" ")
        if not names or not text:
            self.console.line("usage: /send USER[,USER...] TEXT")
            return
        try:
            recipients = parse_recipients([names])
        except ValueError as error:
            self.console.line(f"/send: {error}")
            return
        if self._send_text(recipients, text):
            stamp = clock_text(self._clock.seconds())
            self.console.line(f"[{stamp}] -> {names}: {text}")

    def _send_text(self, recipients: list[bytes] | None, text: str) -> bool:
        body = text.encode("utf-8", "surrogateescape")
        limit = self._connection.max_body_bytes
        if len(body) > limit:
            hint = "; longer messages need TCP (run without --udp)" if limit < MIB else ""
            self.console.line(f"message too long: {len(body)} bytes, at most {limit}{hint}")
            return False
        self._connection.send_text(recipients, body)
        return True

    def _file(self, arguments: str) -> None:
        try:
            words = shlex.split(arguments)
        except ValueError as error:
            self.console.line(f"/file: {error}")
            return
        if len(words) < 2:
            self.console.line("usage: /file USER [USER ...] PATH")
            return
        if not self._connection.can_send_files:
            self.console.line("files need TCP: run chat_client without --udp to send files")
            return
        try:
            recipients = parse_recipients(words[:-1])
        except ValueError as error:
            self.console.line(f"/file: {error}")
            return
        path = Path(os.path.expanduser(words[-1]))
        try:
            source, size = open_file_to_send(path, self._connection.max_body_bytes)
        except OSError as error:
            self.console.line(f"cannot send {path}: {error.strerror or error}")
            return
        names = ",".join(name.decode("ascii") for name in recipients)
        done = self._connection.send_file(
            recipients, source, size, ProgressReporter(self.console, str(path))
        )
        done.addCallbacks(
            lambda sent: self.console.line(f"sent {path} ({sent} bytes) to {names}"),
            lambda failure: self.console.line(
                f"sending {path} failed: {failure.getErrorMessage()}"
            ),
        )

    def _exit(self, status: int) -> None:
        """Flush and close the output; ``connectionLost`` then reports ``status``."""
        if self._exit_status is None:
            self._exit_status = status
            if self._is_output_lost:
                self._on_exit(status)  # nothing to flush, and no connectionLost to wait for
            else:
                self.transport.loseConnection()


class JsonLinesView:
    """The ``--listen`` front end: every message as one JSON line (see :func:`json_record`).

    Args:
        out: where the JSON lines go (flushed after each).
        err: where the reason for an unexpected end goes.
        on_exit: called with 0 when the session ends as asked, 1 otherwise.
    """

    def __init__(self, out: IO[str], err: IO[str], on_exit: Callable[[int], None]) -> None:
        self._out = out
        self._err = err
        self._on_exit = on_exit

    def message_received(self, message: Received) -> None:
        self._out.write(json.dumps(json_record(message)) + "\n")
        self._out.flush()

    def message_refused(self) -> None:
        """Nothing is sent in this mode, so there is nothing to report."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        if not is_expected:
            _error_line(self._err, f"connection lost: {reason}")
        self._on_exit(0 if is_expected else 1)


class FileSendJob:
    """The ``--send USER --file PATH`` front end: send one file, then leave.

    Exit status 0 once the whole file was written and the server closed the
    connection without an ``ERROR``; 1 otherwise. Recipients that are not
    online are skipped by the server without telling anyone (PROTOCOL §3).

    Args:
        connection: the logged-in TCP connection.
        recipients: who gets the file.
        path: the file's name, for messages.
        source: the open file (owned from now on) and ``size`` its length.
        out: where the final "sent" line goes; ``err``: progress and errors.
        on_exit: called once with the exit status.
    """

    def __init__(
        self,
        connection: ChatConnection,
        recipients: Sequence[bytes],
        path: Path,
        source: BinaryIO,
        size: int,
        out: IO[str],
        err: IO[str],
        on_exit: Callable[[int], None],
    ) -> None:
        self._connection = connection
        self._recipients = recipients
        self._path = path
        self._source = source
        self._size = size
        self._out = out
        self._err = err
        self._on_exit = on_exit
        self._sent: int | None = None
        self._failure: str | None = None
        self._is_refused = False
        self._console = Console(self._write_err, err.isatty())

    def _write_err(self, text: str) -> None:
        self._err.write(text)
        self._err.flush()

    def start(self) -> None:
        """Queue the file and ask the connection to finish after it."""
        self._connection.attach(self)
        done = self._connection.send_file(
            self._recipients,
            self._source,
            self._size,
            ProgressReporter(self._console, str(self._path)),
        )
        done.addCallbacks(self._file_sent, self._file_failed)
        self._connection.finish()

    def _file_sent(self, sent: int) -> None:
        self._sent = sent

    def _file_failed(self, failure: Failure) -> None:
        self._failure = failure.getErrorMessage()

    def message_received(self, message: Received) -> None:
        """Messages to this user are not this mode's business."""

    def message_refused(self) -> None:
        self._is_refused = True

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        if self._is_refused:
            self._console.line(f"{PROGRAM}: the server refused the file (it answered ERROR)")
            self._on_exit(1)
        elif self._sent is None or not is_expected:
            self._console.line(
                f"{PROGRAM}: sending {self._path} failed: {self._failure or reason}"
            )
            self._on_exit(1)
        else:
            names = ",".join(name.decode("ascii") for name in self._recipients)
            self._out.write(f"sent {self._path} ({self._sent} bytes) to {names}\n")
            self._out.flush()
            self._on_exit(0)


# -- command line ----------------------------------------------------------------


class Options(AnyOrderOptions):
    """Command-line options of ``chat_client``: ``HOST PORT USERID`` and flags, in any order.

    After parsing: ``host`` (str), ``port`` (int), ``user`` (bytes), ``send``
    (list of recipient userids as bytes), ``file`` (str or None), ``udp``,
    ``listen``, ``download-dir`` and ``max-message``.
    """

    synopsis = "[options] HOST PORT USERID"
    longdesc = (
        "Log in to a chat server as USERID and chat from the terminal: a typed line goes to "
        "everyone, /help lists the commands. With --listen, print received messages as JSON "
        "lines; with --send USER --file PATH, send one file and exit."
    )

    optFlags = [
        ["udp", None, "Talk to the server over UDP (short messages only; files need TCP)."],
        ["listen", None, "Print received messages as JSON lines until interrupted."],
    ]
    optParameters = [
        ["download-dir", "d", ".", "Directory where received files are saved."],
        ["file", None, None, "With --send: the file to send; exit when it is sent."],
        [
            "max-message",
            None,
            Limits().max_message_bytes,
            "Largest message body in bytes, received or sent (the server's default).",
            positive_int,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["send"] = []

    def opt_send(self, value: str) -> None:
        """Send --file to USER (repeatable, or USER,USER,...), then exit."""
        try:
            self["send"].extend(parse_recipients([value]))
        except ValueError as error:
            raise usage.UsageError(f"--send: {error}") from None

    def parseArgs(self, host: str, port: str, user: str) -> None:
        self["host"] = host
        self["port"] = port_number(port)
        raw_user = user.encode("utf-8", "surrogateescape")
        if not is_valid_userid(raw_user):
            raise usage.UsageError(
                f"not a valid userid: {user!r} (1 to 32 printable ASCII characters, no space)"
            )
        self["user"] = raw_user

    def postOptions(self) -> None:
        self["send"] = list(dict.fromkeys(self["send"]))
        if self["send"] and self["file"] is None:
            raise usage.UsageError("--send needs --file PATH")
        if self["file"] is not None and not self["send"]:
            raise usage.UsageError("--file needs --send USER")
        if self["send"] and self["listen"]:
            raise usage.UsageError("--send and --listen do not go together")
        if self["file"] is not None and self["udp"]:
            raise usage.UsageError("files need TCP: drop --udp to send a file")
        if not os.path.isdir(self["download-dir"]):
            raise usage.UsageError(f"not a directory: {self['download-dir']}")

    def limits(self) -> Limits:
        """Return the :class:`Limits` these options ask for."""
        return Limits(max_message_bytes=self["max-message"])


def _error_line(err: IO[str], text: str) -> None:
    err.write(text + "\n")
    err.flush()


def error_observer(err: IO[str]) -> Callable[[LogEvent], None]:
    """Return a log observer that shows unexpected errors on ``err`` and drops the rest."""

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if isinstance(failure := event.get("log_failure"), Failure):
            err.write(f"{PROGRAM}: {formatEvent(event)}\n{failure.getTraceback()}")
            err.flush()

    return observe


class _QuietView:
    """A view that ignores everything: the process is shutting down."""

    def message_received(self, message: Received) -> None:
        """Too late to show it."""

    def message_refused(self) -> None:
        """Too late to show it."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        """Expected: the reactor is stopping."""


class _Outcome:
    """The exit status, and the one way to stop the reactor with it."""

    def __init__(self, reactor, status: int) -> None:  # type: ignore[no-untyped-def]
        self.status = status
        self._reactor = reactor
        self._is_stopping = False
        reactor.addSystemEventTrigger("before", "shutdown", self._shutting_down)

    def _shutting_down(self) -> None:
        self._is_stopping = True

    def exit(self, status: int) -> None:
        """Stop the reactor; ``status`` is returned by :func:`main` (the first one wins)."""
        if not self._is_stopping:
            self.status = status
            self._is_stopping = True
            self._reactor.stop()


def connect(options: Options, reactor, inbox: Inbox) -> Deferred:  # type: ignore[no-untyped-def]
    """Connect and log in as ``options`` say; fire with the logged-in connection.

    Fails with the connection error, :class:`LoginRefusedError` or :class:`NoLoginReplyError`.
    """
    host, port, user, limits = options["host"], options["port"], options["user"], options.limits()
    if options["udp"]:

        def listen(address: str) -> Deferred:
            client = ChatDatagramClient(user, (address, port), inbox, reactor, limits)
            # A server on loopback is reached from loopback: bind nothing wider.
            is_loopback = ipaddress.ip_address(address).is_loopback
            reactor.listenUDP(0, client, interface=address if is_loopback else "")
            return client.logged_in.addCallback(lambda _: client)

        return reactor.resolve(host).addCallback(listen)
    endpoint = endpoints.HostnameEndpoint(reactor, host, port, timeout=LOGIN_TIMEOUT_S)
    protocol = ChatClientProtocol(user, inbox, reactor, limits)
    connected = endpoints.connectProtocol(endpoint, protocol)
    return connected.addCallback(lambda _: protocol.logged_in).addCallback(lambda _: protocol)


def _login_error(options: Options, failure: Failure) -> str:
    """Say in one line why connecting or logging in failed."""
    where = f"{options['host']}:{options['port']}"
    if failure.check(LoginRefusedError):
        return f"cannot log in as {options['user'].decode('ascii')}: {failure.getErrorMessage()}"
    if failure.check(NoLoginReplyError):
        return f"cannot log in at {where}: {failure.getErrorMessage()}"
    if failure.check(ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is the server running?)"
    return f"cannot connect to {where}: {failure.getErrorMessage().rstrip('.')}"


def start(
    options: Options,
    reactor,  # type: ignore[no-untyped-def]
    stdout: IO[str],
    stderr: IO[str],
    on_exit: Callable[[int], None],
) -> Deferred:
    """Open the file to send (if any), connect, log in and start the chosen front end.

    Every way this can end calls ``on_exit`` with the exit status, once.
    """
    source: BinaryIO | None = None
    if options["file"] is not None:
        path = Path(options["file"])
        try:
            source, size = open_file_to_send(path, options["max-message"])
        except OSError as error:
            _error_line(stderr, f"{PROGRAM}: cannot send {path}: {error.strerror or error}")
            on_exit(1)
            return succeed(None)
    download_dir = Path(options["download-dir"])
    inbox = Inbox(download_dir)
    where = f"{options['host']}:{options['port']}"
    user = options["user"].decode("ascii")

    def logged_in(connection: ChatConnection) -> None:
        # Once the process is stopping, the connection closing is no news.
        reactor.addSystemEventTrigger("before", "shutdown", connection.attach, _QuietView())
        banner = f"logged in as {user} at {where} over {connection.transport_name}"
        if options["listen"]:
            _error_line(stderr, f"{banner}; listening (Ctrl-C to stop)")
            connection.attach(JsonLinesView(stdout, stderr, on_exit))
        elif source is not None:
            _error_line(stderr, banner)
            recipients = options["send"]
            job = FileSendJob(connection, recipients, path, source, size, stdout, stderr, on_exit)
            job.start()
        else:
            session = TerminalSession(
                connection,
                reactor,
                on_exit,
                f"{banner}; type /help for commands",
                stdout.isatty(),
                download_dir,
            )
            StandardIO(session, reactor=reactor)

    def failed(failure: Failure) -> None:
        if source is not None:
            source.close()
        _error_line(stderr, f"{PROGRAM}: {_login_error(options, failure)}")
        on_exit(1)

    return connect(options, reactor, inbox).addCallbacks(logged_in, failed)


def main(
    argv: Sequence[str] | None = None,
    reactor=None,  # type: ignore[no-untyped-def]
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the client until its session ends; return the process exit status.

    Exit status 2 for bad usage; 1 when connecting or logging in fails, the
    connection is lost, or a ``--send`` fails; 0 otherwise (``/quit``,
    end of input, or Ctrl-C under ``--listen``).
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as error:
        _error_line(stderr, f"{PROGRAM}: {error} (see {PROGRAM} --help)")
        return 2
    if reactor is None:
        from twisted.internet import reactor
    globalLogBeginner.beginLoggingTo([error_observer(stderr)], redirectStandardIO=False)
    outcome = _Outcome(reactor, status=1 if options["send"] else 0)

    def begin() -> None:
        def crashed(failure: Failure) -> None:
            _log.failure("start-up failed", failure)
            outcome.exit(1)

        start(options, reactor, stdout, stderr, outcome.exit).addErrback(crashed)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome.status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
