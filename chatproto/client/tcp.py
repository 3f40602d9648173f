"""The client's TCP connection, :class:`ChatClientProtocol` (PROTOCOL §2-§4).

It queues outgoing messages and files, streams files with a
:class:`~chatproto.client.sending.ChunkedFileSender` and half-closes when asked
to finish; server events are handled by :mod:`chatproto.client.connection`.
"""

from collections import deque
from collections.abc import Callable, Sequence
from typing import BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from chatproto.client.connection import (
    CLOSE_TIMEOUT_S,
    NoLoginReplyError,
    _reason_text,
    _ServerEventHandler,
)
from chatproto.client.inbox import Inbox
from chatproto.client.sending import ChunkedFileSender
from chatproto.limits import Limits
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.encode import encode_command, encode_login, encode_message
from chatproto.wire.events import NEED_DATA, Rejected, _NeedData


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
        transport_name: what the connection runs over, for the banner: ``"TCP"``
            unless told (``"TLS"``, ``"a unix socket"``).
        can_send_files: True.
        is_datagram: False: bodies are streamed, up to ``max_body_bytes``.
        max_body_bytes: the largest message body (``limits.max_message_bytes``).
    """

    transport_name = "TCP"
    can_send_files = True
    is_datagram = False

    def __init__(
        self,
        user: bytes,
        inbox: Inbox,
        clock: IReactorTime,
        limits: Limits | None = None,
        transport_name: str = "TCP",
    ) -> None:
        super().__init__(user, inbox, clock)
        self.transport_name = transport_name
        limits = limits if limits is not None else Limits()
        self.max_body_bytes = limits.max_message_bytes
        self._decoder = ClientDecoder(limits)
        self._outbox: deque[bytes | tuple[bytes, ChunkedFileSender]] = deque()
        self._file_sender: ChunkedFileSender | None = None
        self._is_finishing = False
        self._is_write_closed = False
        self._close_timer: IDelayedCall | None = None
        self._lost_reason: str | None = None
        self._is_lost = False
        self._reads_while_closing = False  # a TLS session closing as asked still reads

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

    @property
    def _is_reading(self) -> bool:
        """Whether received bytes still matter: not once we close, but for TLS's half-close."""
        return not self.transport.disconnecting or self._reads_while_closing

    def dataReceived(self, data: bytes) -> None:
        if not self._is_reading:
            return
        try:
            self._decoder.feed(data)
            while self._is_reading:
                event = self._decoder.next_event()
                if event is NEED_DATA:
                    return
                assert not isinstance(event, _NeedData)
                self._handle(event)
        except Exception:
            self.log.failure("error handling data from the server")
            self._lost_reason = "internal error (see above)"
            self._abort()

    def readConnectionLost(self) -> None:
        """The server closed its side: close ours too (a delivery cut short is dropped).

        A file still being sent could never arrive, so it is not flushed first.
        """
        if self._file_sender is not None:
            self._abort()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our sending side is closed; keep reading until the server closes."""

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._is_lost = True
        for timer in (self._login_timer, self._close_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._login_timer = self._close_timer = None
        self._inbox.abort()
        self._abandon_outbox()
        if not self.logged_in.called:
            if reason is not None and not reason.check(ConnectionDone, ConnectionLost):
                self._fail_login(reason.value)  # e.g. a TLS handshake that failed
            else:
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
        header: bytes = b"",
    ) -> Deferred[int]:
        """Queue ``source`` (``size`` bytes, owned from now on) as a chunked ``SEND``.

        ``header`` (a file-name header) goes before the file's bytes.

        Returns:
            The sender's :attr:`ChunkedFileSender.done`.
        """
        sender = ChunkedFileSender(source, size, on_progress, header=header)
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
        if transport is None or self._is_write_closed or self._is_lost:
            return  # (once lost, e.g. at shutdown, the transport has no socket left)
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
                    self._abort()
            else:
                self._pump()
        return result

    def _close_write(self) -> None:
        if self._is_write_closed:
            return
        self._is_write_closed = True
        if ISSLTransport.providedBy(self.transport):
            # No half-close at the TLS layer: loseWriteConnection would reach the TCP
            # socket under it and cut off what TLS has not written yet. loseConnection
            # writes it all, then close_notify, and the server's answers still arrive
            # until its own close_notify.
            self._reads_while_closing = True
            self.transport.loseConnection()
        else:
            self.transport.loseWriteConnection()
        self._close_timer = self._clock.callLater(CLOSE_TIMEOUT_S, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self._abort()

    def _abandon_outbox(self) -> None:
        """The connection is gone: stop the transfer and fail the queued ones."""
        if self._file_sender is not None:
            self._file_sender.stopProducing()
        while self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, tuple):
                item[1].stopProducing()

    def _on_malformed(self, event: Rejected) -> None:
        super()._on_malformed(event)
        if event.fatal:
            # The stream cannot be delimited any more: this connection is over.
            self._lost_reason = f"the server sent something unreadable ({event.reason})"
            self._drop()

    def _drop(self) -> None:
        self._reads_while_closing = False
        if self.transport is not None:
            self.transport.loseConnection()

    def _abort(self) -> None:
        """Close at once, dropping what is unsent, and read nothing more."""
        self._reads_while_closing = False
        self.transport.abortConnection()
