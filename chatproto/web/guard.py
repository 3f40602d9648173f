"""The door of ``/chat``: which WebSocket upgrades reach Twisted's ``WebSocketResource``.

Twisted's ``WebSocketResource`` asserts that its factory returns a protocol,
so a refusal has to be made before it, by a resource in front of it:
:class:`ChatSocketGuard`. It refuses

- an upgrade whose ``Origin`` is neither the page's own origin (the scheme of
  this connection and its ``Host``) nor one given with ``--web-origin``:
  ``403``. A page on another site must not chat in its visitor's name
  (browsers always send ``Origin`` with a WebSocket upgrade; a client without
  one is not a browser and could send any ``Origin`` it likes, so it is let in);
- a connection past ``--max-connections`` (WebSocket clients counted on
  their own) or a per-address limit: ``503``, as a TCP connection past them
  is closed at once.
"""

from collections.abc import Iterable

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from chatproto.web.origins import normalize_origin, own_origin
from chatproto.web.protocol import WebChatFactory


class ChatSocketGuard(Resource):
    """Refuse foreign origins and connections past the limits; pass the rest to ``socket``.

    Args:
        socket: the ``WebSocketResource`` of the chat.
        factory: its factory, whose ``connections`` and service the limits are read from.
        origins: the origins ``--web-origin`` allows besides the page's own.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, socket: Resource, factory: WebChatFactory, origins: Iterable[str]) -> None:
        super().__init__()
        self._socket = socket
        self._factory = factory
        self._origins = frozenset(normalize_origin(origin) for origin in origins)

    def render(self, request: Request) -> bytes | int:  # type: ignore[override]
        origin = request.getHeader(b"origin")
        if origin is not None and not self._is_allowed(origin, request):
            self.log.info(
                "WebSocket from {peer} refused: origin {origin!r} not allowed",
                peer=_host(request),
                origin=origin,
            )
            return _refuse(request, 403, b"This origin may not open the chat.\n")
        refused_by = self._admit(request)
        if refused_by is not None:
            return _refuse(request, 503, b"Too many connections; try again later.\n")
        try:
            result = self._socket.render(request)
        except Exception:  # no connection was made (Site answers 500 and logs it)
            self._factory.service.addresses.connection_closed(_host(request))
            raise
        if result is not NOT_DONE_YET:  # not upgraded (a plain GET, a bad handshake)
            self._factory.service.addresses.connection_closed(_host(request))
        return result  # type: ignore[no-any-return]

    def _is_allowed(self, origin: bytes, request: Request) -> bool:
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            return False
        return normalized in self._origins or normalized == own_origin(request)

    def _admit(self, request: Request) -> str | None:
        """Count the connection in the limits, or return the option that refuses it."""
        service = self._factory.service
        host = _host(request)
        if self._factory.connections >= service.limits.max_connections:
            service.stats.connections_refused += 1
            self.log.info("connection limit reached: WebSocket from {peer} refused", peer=host)
            return "max-connections"
        refused_by = service.addresses.admit_connection(host)
        if refused_by is not None:
            service.refused_by_address(host, refused_by)  # type: ignore[arg-type]
        return refused_by


def _host(request: Request) -> str | None:
    return getattr(request.getClientAddress(), "host", None)


def _refuse(request: Request, code: int, text: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text
