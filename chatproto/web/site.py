"""The ``--web`` listeners: the chat page, its settings and the WebSocket, on twisted.web.

One :class:`~twisted.web.server.Site` per process serves

- ``/``: the page's static files, shipped inside the package
  (``chatproto/web/static``), so the page works on a closed network;
- ``/config.json``: what the page needs of the server's limits (a file may be
  as big as ``--max-message`` allows);
- ``/chat``: the WebSocket, behind :class:`~chatproto.web.guard.ChatSocketGuard`.

Every answer carries headers that keep the page to itself: no framing by
other sites, no scripts or connections elsewhere.
"""

import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from twisted.application import strports
from twisted.application.service import IService
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.interfaces import IReactorCore
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import Data, File
from twisted.web.websocket import WebSocketResource

from chatproto.server.service import ChatService
from chatproto.web.guard import ChatSocketGuard
from chatproto.web.protocol import WebChatFactory

#: Where the page's files are, inside the installed package.
STATIC_DIRECTORY = Path(str(files("chatproto.web") / "static"))

#: Headers on every answer (the page fetches nothing from elsewhere; blob: and
#: data: are the downloads and thumbnails it makes itself).
SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'self'; img-src 'self' blob: data:; connect-src 'self';"
        b" object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",
}


class _ChatSite(Site):
    """A site that puts :data:`SECURITY_HEADERS` on every answer."""

    def getResourceFor(self, request: Request) -> Resource:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        return super().getResourceFor(request)  # type: ignore[no-any-return]


class _StaticFiles(File):
    """The page's files; no directory listings."""

    def directoryListing(self) -> Resource:  # type: ignore[override]
        return self.forbidden


def page_config(service: ChatService) -> bytes:
    """Return ``/config.json``: the server's limits that the page keeps to."""
    limits = service.limits
    config = {
        "maxMessageBytes": limits.max_message_bytes,
        "maxRecipients": limits.max_recipients,
        "maxLineBytes": limits.max_line_bytes,
        "maxWebMessageBytes": limits.max_web_message_bytes,
    }
    return json.dumps(config).encode("ascii")


def web_site(
    service: ChatService,
    factory: WebChatFactory,
    origins: Sequence[str] = (),
    reactor: IReactorCore | None = None,
) -> Site:
    """Return the site of ``--web``: page, settings and WebSocket for ``service``.

    Args:
        service: the chat service the browsers join.
        factory: builds the browsers' protocols (and counts them).
        origins: origins allowed besides the page's own (``--web-origin``).
        reactor: the HTTP connections' clock (their idle timeout); the
            global reactor when omitted.
    """
    root = _StaticFiles(str(STATIC_DIRECTORY))
    root.indexNames = ["index.html"]
    # Module scripts must come with a JavaScript type (mimetypes may not know .mjs).
    root.contentTypes = {**root.contentTypes, ".mjs": "text/javascript; charset=utf-8"}
    socket = WebSocketResource(factory)  # type: ignore[arg-type]
    root.putChild(b"chat", ChatSocketGuard(socket, factory, origins))
    root.putChild(b"config.json", Data(page_config(service), "application/json"))
    # An HTTP connection idle for --login-timeout is closed, as a chat client that does
    # not log in is; once upgraded, the chat protocol's own login timeout applies.
    site = _ChatSite(root, timeout=service.limits.login_timeout_s, reactor=reactor)
    site.noisy = False
    site.displayTracebacks = False
    return site


def web_endpoint(value: str, interface: str) -> str:
    """Return the endpoint string of a ``--web`` value: a bare port listens on ``interface``."""
    if value.isdigit():
        return f"tcp:{int(value)}:interface={quoteStringArgument(interface)}"
    return value


def web_services(
    service: ChatService,
    webs: Sequence[str],
    interface: str,
    origins: Sequence[str],
    reactor: IReactorCore,
) -> list[IService]:
    """Return one listening service per ``--web`` value, all serving one site."""
    site = web_site(service, WebChatFactory(service), origins, reactor)
    return [
        strports.service(web_endpoint(value, interface), site, reactor=reactor) for value in webs
    ]
