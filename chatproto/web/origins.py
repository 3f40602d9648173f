"""Origins as browsers write them, for the ``Origin`` check of ``/chat`` and ``--web-origin``.

Standard library only, so that the options can check ``--web-origin`` without
the ``[web]`` extra installed.
"""

from typing import Protocol
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Request(Protocol):
    """What :func:`own_origin` reads of a twisted.web request."""

    def getHeader(self, key: bytes) -> bytes | None: ...

    def isSecure(self) -> bool: ...


def normalize_origin(text: str | bytes) -> str:
    """Return ``text`` as a browser writes an ``Origin``: ``scheme://host[:port]``, lower case.

    The default port is left out (``http://a:80`` is ``http://a``), as
    browsers do. ``null`` (the origin of local files and sandboxes) stays ``null``.

    Raises:
        ValueError: ``text`` is not an http(s) origin (it has a path, a query,
            a user, or is not ASCII).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"not an origin: {text!r}") from None
    text = text.strip()
    if text.lower() == "null":
        return "null"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"not an origin: {text!r}") from None
    scheme = parts.scheme.lower()
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"not an origin (scheme://host[:port]): {text!r}")
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def own_origin(request: _Request) -> str | None:
    """Return the origin of the page this request's connection serves (its scheme and ``Host``)."""
    host = request.getHeader(b"host")
    if not host:
        return None
    scheme = b"https" if request.isSecure() else b"http"
    try:
        return normalize_origin(scheme + b"://" + host)
    except ValueError:
        return None
