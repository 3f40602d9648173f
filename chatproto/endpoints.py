"""The server's endpoint strings: ``--listen`` parsed, checked, and given the server's defaults.

Twisted's endpoint grammar (``twisted.internet.endpoints``) is read here, so
that a mistake in an endpoint is a usage error before anything starts, and a
listener gets ``--interface`` and a safe UNIX socket mode when it names none.
"""

from twisted.internet.abstract import isIPv6Address
from twisted.internet.endpoints import quoteStringArgument, serverFromString

from chatproto.argtypes import (
    OptionError,
    missing_extra,
)
from chatproto.limits import Limits

#: Endpoint types whose first argument is a port number.
_PORT_ENDPOINTS = frozenset({"tcp", "tcp6", "ssl"})

#: The mode of a UNIX socket whose endpoint names none: read and write for the
#: server's user and group, nothing for others. Twisted's own default, 0666,
#: lets every local user connect, and a socket's mode is its only access
#: control; the group is how a front end running as another user is let in.
UNIX_SOCKET_MODE = 0o660


def effective_endpoint(text: str, interface: str) -> str:
    """Return the ``--listen`` endpoint ``text`` with the server's defaults filled in.

    A ``tcp:`` or ``ssl:`` endpoint that names no ``interface=`` gets
    ``--interface`` (a ``tcp6:`` one too when ``--interface`` is an IPv6
    address), so ``-i 127.0.0.1`` keeps every listener on loopback. A
    ``unix:`` endpoint that names no ``mode=`` gets :data:`UNIX_SOCKET_MODE`.
    Anything the endpoint names itself is kept.
    """
    kind, _, keywords = endpoint_arguments(text)
    takes_interface = kind in ("tcp", "ssl") or (kind == "tcp6" and isIPv6Address(interface))
    if takes_interface and "interface" not in keywords:
        return f"{text}:interface={quoteStringArgument(interface)}"
    if kind == "unix" and "mode" not in keywords:
        return f"{text}:mode={UNIX_SOCKET_MODE:o}"
    return text


def endpoint_arguments(text: str) -> tuple[str, list[str], list[str]]:
    """Return an endpoint string's type, its positional arguments and its keywords' names.

    Follows Twisted's grammar (``twisted.internet.endpoints``): arguments
    are separated by ``:``, a keyword argument is ``name=value``, and ``\\``
    makes the next character plain. Values come back unescaped.
    """
    parts: list[list[tuple[str, bool]]] = [[]]
    escaped = False
    for char in text:
        if escaped:
            parts[-1].append((char, True))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append([])
        else:
            parts[-1].append((char, False))
    kind = "".join(char for char, _ in parts[0])
    positional: list[str] = []
    keywords: list[str] = []
    for part in parts[1:]:
        plain = "".join(char for char, _ in part)
        if ("=", False) in part:
            keywords.append(plain[: part.index(("=", False))])
        else:
            positional.append(plain)
    return kind, positional, keywords


def check_endpoint(text: str) -> None:
    """Check that ``text`` is a server endpoint Twisted can build, without listening on it.

    The endpoint is built against the reactor and dropped: this reads an
    ``ssl:`` endpoint's key and certificate and imports what its type needs,
    so a mistake there is a usage error before anything starts. What only
    listening can tell (a port in use, a directory that does not exist) is
    found when the service starts.

    Raises:
        OptionError: ``--listen`` cannot use ``text``; the message says why,
            and for a type whose extra is not installed, how to install it.
    """
    kind, positional, keywords = endpoint_arguments(text)
    if kind in _PORT_ENDPOINTS and positional and not _is_port_or_zero(positional[0]):
        raise OptionError("--listen", f"the port must be a number from 0 to 65535 (got {text!r})")
    if kind == "unix" and not any(positional[:1]) and "address" not in keywords:
        raise OptionError("--listen", f"a unix endpoint needs the socket's path (got {text!r})")
    from twisted.internet import reactor

    try:
        serverFromString(reactor, text)
    except ImportError as error:
        hint = missing_extra(error)
        if hint is None:
            raise OptionError("--listen", f"{kind} endpoints cannot be used: {error}") from None
        raise OptionError("--listen", f"{kind} endpoints need {hint}") from None
    except OSError as error:
        raise OptionError(
            "--listen", f"cannot read {error.filename}: {error.strerror} (got {text!r})"
        ) from None
    except Exception as error:  # what Twisted's parsers refuse: ValueError, TypeError, SSL errors
        raise OptionError("--listen", f"not a usable endpoint: {error} (got {text!r})") from None


def _is_port_or_zero(text: str) -> bool:
    """Whether ``text`` is a port number an endpoint accepts: 0 (any free port) to 65535."""
    return text.isdigit() and int(text) <= 65535


def tcp_endpoint(port: int, interface: str, backlog: int = Limits().listen_backlog) -> str:
    """Return the endpoint string for a TCP port on ``interface`` (IPv4 or IPv6)."""
    return f"tcp:{port}:interface={quoteStringArgument(interface)}:backlog={backlog}"
