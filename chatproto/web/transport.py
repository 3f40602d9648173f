"""A WebSocket seen as the stream transport the TCP protocol and its outbox write to.

:class:`~chatproto.server.tcp.ChatProtocol` and
:class:`~chatproto.server.outbox.Outbox` speak to a stream transport: they
write bytes, close, pause and resume reading, and register the outbox as the
transport's producer. :class:`MessageTransport` gives them exactly that over
a WebSocket (PROTOCOL §9): every write is one binary message; reading,
closing at once and producers go to the byte stream underneath (TCP or TLS),
so the outbox is paused when *that* stream's buffer is full, as for a TCP
client, and a browser that stops reading is a slow consumer like any other.
"""

from collections.abc import Iterable
from typing import Protocol

from twisted.internet.interfaces import IAddress, IConsumer, IProducer, IPushProducer, ITransport
from twisted.logger import Logger
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

#: Close codes (RFC 6455 §7.4.1) the server sends.
NORMAL_CLOSURE = 1000
UNSUPPORTED_DATA = 1003  # a text message: the chat stream is bytes (PROTOCOL §9)
MESSAGE_TOO_BIG = 1009  # a message over Limits.max_web_message_bytes


class WebSocketWire(Protocol):
    """What :class:`MessageTransport` uses of Twisted's WebSocket transport.

    Twisted's ``WebSocketTransport`` sends messages and closes; its
    ``transport`` attribute (public in Twisted's implementation) is the byte
    stream the WebSocket runs on.
    """

    transport: ITransport

    def sendBytesMessage(self, data: bytes) -> None:
        """Send one binary message."""

    def loseConnection(self, code: int = NORMAL_CLOSURE) -> None:
        """Send a close frame with ``code`` and close the stream once it is written."""


@implementer(ITransport, IConsumer, IPushProducer)
class MessageTransport:
    """The stream transport of a WebSocket client: writes become binary messages.

    Args:
        wire: Twisted's WebSocket transport for this connection.

    Writes after the connection started closing are dropped: a delivery to a
    client already leaving is not an error (the service drops it), and
    wsproto refuses to send once a close frame went either way.
    """

    log = Logger()

    def __init__(self, wire: WebSocketWire) -> None:
        self._wire = wire
        self._stream = wire.transport
        self._is_closing = False

    @property
    def disconnecting(self) -> bool:
        """True once either side began to close (our close, or the browser's)."""
        return self._is_closing or bool(getattr(self._stream, "disconnecting", False))

    def write(self, data: bytes) -> None:
        """Send ``data`` as one binary message (nothing once closing)."""
        if data and not self.disconnecting:
            try:
                self._wire.sendBytesMessage(data)
            except LocalProtocolError:  # the browser's close frame came first
                self._is_closing = True

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Send the pieces as one binary message."""
        self.write(b"".join(data))

    def loseConnection(self, code: int = NORMAL_CLOSURE) -> None:
        """Close with ``code`` after what was written so far; once only."""
        if self._is_closing:
            return
        self._is_closing = True
        try:
            self._wire.loseConnection(code)
        except LocalProtocolError:  # a close frame was already sent or received
            self._stream.loseConnection()

    def abortConnection(self) -> None:
        """Drop the connection now, unsent data and all (a client that does not read)."""
        self._is_closing = True
        abort = getattr(self._stream, "abortConnection", self._stream.loseConnection)
        abort()

    def getPeer(self) -> IAddress:
        """The browser's address (of the TCP or TLS connection)."""
        return self._stream.getPeer()

    def getHost(self) -> IAddress:
        """Our address on that connection."""
        return self._stream.getHost()

    # -- reading: pausing it pauses the stream underneath ----------------------

    def pauseProducing(self) -> None:
        IPushProducer(self._stream).pauseProducing()

    def resumeProducing(self) -> None:
        IPushProducer(self._stream).resumeProducing()

    def stopProducing(self) -> None:
        IPushProducer(self._stream).stopProducing()

    # -- writing: the outbox is the stream's producer ------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Make ``producer`` the stream's producer, in place of the HTTP channel's.

        Until the upgrade the HTTP channel was the stream's producer; a
        stream takes one, so the channel's is let go first (it has nothing
        left to send: the upgrade's answer is written).
        """
        consumer = IConsumer(self._stream)
        consumer.unregisterProducer()
        consumer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        IConsumer(self._stream).unregisterProducer()
