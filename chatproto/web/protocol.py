"""A browser client: the TCP protocol, fed from WebSocket messages (PROTOCOL §9).

:class:`WebChatProtocol` is a :class:`~chatproto.server.tcp.ChatProtocol`
whose stream is the concatenated payload of the browser's binary messages
and whose transport is a :class:`~chatproto.web.transport.MessageTransport`.
Everything TCP has therefore applies unchanged: the same decoder, session,
outbox, login timeout, turns, limits and ``-v`` lines. What is particular to
a WebSocket happens here:

- the payload is handed on piece by piece as wsproto parses it, never
  collected into whole messages (:class:`_Pieces`): Twisted's own
  ``WebSocketResource`` collects each message whole, with no bound, before
  ``bytesMessageReceived``. A message that passes
  ``Limits.max_web_message_bytes`` closes the connection (1009) as soon as it
  does, so neither Twisted nor we ever hold more of it than one read;
- a text message closes the connection (1003): the chat stream is bytes.

Twisted offers no public hook for pieces of a message; the one used is the
message buffer of its WebSocket transport (``_bytesBuffer``/``_textBuffer``,
as of Twisted 26.10), replaced per connection. If a Twisted release drops
it, :meth:`WebChatProtocol.negotiationStarted` refuses every connection
(with a log line) instead of running unbounded.
"""

from collections.abc import Callable

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatProtocol
from chatproto.web.transport import (
    MESSAGE_TOO_BIG,
    UNSUPPORTED_DATA,
    MessageTransport,
    WebSocketWire,
)

#: The attributes of Twisted's WebSocket transport that collect a message.
_MESSAGE_BUFFERS = ("_bytesBuffer", "_textBuffer")


class UnsupportedTwistedError(RuntimeError):
    """Twisted's WebSocket transport has no message buffer to replace (see the module)."""


class _Pieces:
    """Stands in for Twisted's message buffer: passes each piece on, keeps nothing.

    Twisted calls ``add`` with every piece of a message as wsproto parses it
    and ``done`` at the message's end, handing ``done``'s result to
    ``bytesMessageReceived``/``textMessageReceived``; that result is empty.
    """

    __slots__ = ("_on_piece", "_on_end", "_empty")

    def __init__(
        self, on_piece: Callable[[bytes], None], on_end: Callable[[], None], empty: object
    ) -> None:
        self._on_piece = on_piece
        self._on_end = on_end
        self._empty = empty

    def add(self, piece: bytes) -> None:
        self._on_piece(piece)

    def done(self) -> object:
        self._on_end()
        return self._empty


class WebChatProtocol(ChatProtocol):
    """One browser: a WebSocket protocol (Twisted's ``WebSocketProtocol``) and a chat client.

    Attributes:
        transport_name: ``"websocket"``, for the log lines and metrics.
    """

    log = Logger()
    transport_name = "websocket"
    factory: "WebChatFactory"  # type: ignore[assignment]  # the same service and count
    transport: MessageTransport  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self._wire: WebSocketWire | None = None
        self._message_bytes = 0  # of the binary message being received

    # -- Twisted's WebSocketProtocol --------------------------------------------

    def negotiationStarted(self, transport: WebSocketWire) -> None:
        """Take the messages' pieces from Twisted as they come (see the module).

        Raises:
            UnsupportedTwistedError: the message buffers are not where expected; the
                upgrade then fails and nothing unbounded runs.
        """
        missing = [name for name in _MESSAGE_BUFFERS if not hasattr(transport, name)]
        if missing:
            self.log.error(
                "refusing a WebSocket: this Twisted has no {missing}; see chatproto.web.protocol",
                missing=", ".join(missing),
            )
            raise UnsupportedTwistedError(", ".join(missing))
        self._wire = transport
        transport._bytesBuffer = _Pieces(  # type: ignore[attr-defined]
            self._binary_piece, self._binary_end, b""
        )
        transport._textBuffer = _Pieces(  # type: ignore[attr-defined]
            self._text_piece, self._binary_end, ""
        )

    def negotiationFinished(self) -> None:
        """The upgrade's answer is written: the client is connected."""
        assert self._wire is not None
        self.makeConnection(MessageTransport(self._wire))  # type: ignore[arg-type]

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        """A binary message ended; its bytes were handled piece by piece already."""

    def textMessageReceived(self, message: str) -> None:
        """A text message ended; the first piece of it already closed the connection."""

    def pongReceived(self, payload: bytes) -> None:
        """The server sends no pings: nothing to do."""

    # -- the pieces -----------------------------------------------------------

    def _binary_piece(self, piece: bytes) -> None:
        """Feed one piece of a binary message to the chat stream, within the message limit."""
        if not self._is_connected or self.transport.disconnecting:
            return
        self._message_bytes += len(piece)
        limit = self.factory.service.limits.max_web_message_bytes
        if self._message_bytes > limit:
            service = self.factory.service
            service.stats.errors["websocket message too big"] += 1
            self.log.info(
                "closing {who}: a WebSocket message over {limit} bytes",
                who=service.describe(self),
                limit=limit,
            )
            service.note(self, f"closed: a WebSocket message over {limit} bytes")
            self.transport.loseConnection(MESSAGE_TOO_BIG)
            return
        self.dataReceived(piece if type(piece) is bytes else bytes(piece))

    def _binary_end(self) -> None:
        self._message_bytes = 0

    def _text_piece(self, piece: object) -> None:
        """PROTOCOL §9: a text message closes the connection (1003), at its first piece."""
        if not self._is_connected or self.transport.disconnecting:
            return
        self.factory.service.note(self, "closed: a text message (the chat stream is binary)")
        self.transport.loseConnection(UNSUPPORTED_DATA)

    # -- the stream -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Take stream bytes; while a turn is pending, only keep them for it.

        Pausing the stream stops the next read, but pieces parsed from the
        current read still come in after it: they wait in the decoder, as
        bytes read from a TCP socket do, and are handled in their turn.
        """
        if self._next_turn is not None and not self.transport.disconnecting:
            try:
                if self._received is not None:
                    self._received.feed(data)
                self._decoder.feed(data)
            except Exception:
                self._contain_failure()
            return
        super().dataReceived(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        """The WebSocket is gone (closed by either side, or its stream was)."""
        super().connectionLost(reason)
        self._wire = None


class WebChatFactory:
    """Build a :class:`WebChatProtocol` per WebSocket (Twisted's ``WebSocketServerFactory``).

    Admission (limits, origin) is decided before this is asked, by
    :class:`~chatproto.web.guard.ChatSocketGuard`: ``WebSocketResource``
    requires a protocol from ``buildProtocol``.

    Attributes:
        service: the chat service every browser talks to.
        connections: WebSocket clients connected now.
    """

    noisy = False

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.connections = 0

    def buildProtocol(self, request: IRequest) -> WebChatProtocol:
        """Return the protocol of the browser that sent ``request`` (already admitted)."""
        protocol = WebChatProtocol()
        protocol.factory = self
        # Counted in the service's AddressLimits by the guard; released on close.
        protocol.counted_host = getattr(request.getClientAddress(), "host", None)
        return protocol
