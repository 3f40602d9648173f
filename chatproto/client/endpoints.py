"""Reaching the server for ``chat_client``: connect and log in, and say why that failed.

The :class:`~chatproto.client.options.Options` name the server as
``HOST PORT`` (TCP, TLS with ``--tls``, or UDP with ``--udp``) or
``unix:PATH``. :func:`tls_client_options` turns ``--tls``, ``--ca`` and
``--insecure`` into Twisted's TLS options before anything connects (so a
missing ``[tls]`` extra or a bad ``--ca`` is a usage error);
:func:`connect` reaches the server and logs in; :func:`login_error` turns
its failure into one line.
"""

import ipaddress
import re
from pathlib import Path
from typing import Any

from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure

from chatproto.client.connection import LOGIN_TIMEOUT_S, LoginRefusedError, NoLoginReplyError
from chatproto.client.inbox import Inbox
from chatproto.client.options import UNIX_PREFIX, Options, SetupError
from chatproto.client.tcp import ChatClientProtocol
from chatproto.client.udp import ChatDatagramClient

#: What to install for ``--tls``, in the one line that says it is missing.
TLS_EXTRA_HINT = "pip install 'chatproto[tls]'"

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


def where(options: Options) -> str:
    """Return the server's address as the messages show it: ``HOST:PORT`` or ``unix:PATH``."""
    if options["unix"] is not None:
        return f"{UNIX_PREFIX}{options['unix']}"
    return f"{options['host']}:{options['port']}"


def transport_name(options: Options) -> str:
    """Return what the banner says the session runs over (``logged in ... over NAME``)."""
    if options["udp"]:
        return "UDP"
    if options["unix"] is not None:
        return "a unix socket"
    if options["tls"]:
        return "TLS, certificate NOT checked (--insecure)" if options["insecure"] else "TLS"
    return "TCP"


def tls_client_options(options: Options) -> Any:
    """Return Twisted's TLS options for ``--tls`` (None without it).

    With ``--ca FILE``, the certificates in that PEM file are the only ones
    trusted; with ``--insecure``, none is checked; otherwise the system's
    CAs are, and the certificate must name ``HOST``.

    Raises:
        SetupError: the ``[tls]`` extra (pyOpenSSL, service_identity) is not
            installed, or ``--ca`` cannot be read or holds no certificate.
    """
    if not options["tls"]:
        return None
    try:
        import OpenSSL  # noqa: F401 - only to know it is there
        import service_identity  # noqa: F401
    except ImportError as error:
        raise SetupError(
            f"--tls needs pyOpenSSL and service_identity ({error.name} is missing): "
            f"{TLS_EXTRA_HINT}"
        ) from None
    from twisted.internet import ssl

    if options["insecure"]:
        return ssl.CertificateOptions(verify=False)
    trust_root = None
    if options["ca"] is not None:
        trust_root = _trust_root(ssl, Path(options["ca"]))
    return ssl.optionsForClientTLS(options["host"], trustRoot=trust_root)


def _trust_root(ssl: Any, path: Path) -> Any:
    """Load every certificate of the PEM file ``path`` as the trust root."""
    from OpenSSL.crypto import Error as CryptoError

    try:
        blocks = _PEM_CERTIFICATE.findall(path.read_bytes())
    except OSError as error:
        raise SetupError(f"--ca: cannot read {path}: {error.strerror or error}") from None
    try:
        certificates = [ssl.Certificate.loadPEM(block) for block in blocks]
    except CryptoError:
        certificates = []
    if not certificates:
        raise SetupError(f"--ca: no PEM certificate in {path}")
    if len(certificates) == 1:
        return certificates[0]
    return ssl.trustRootFromCertificates(certificates)


def _stream_endpoint(options: Options, reactor, tls: Any) -> IStreamClientEndpoint:  # type: ignore[no-untyped-def]
    """Return the endpoint of the server's stream listener: unix socket, TCP, or TLS on TCP."""
    if options["unix"] is not None:
        return endpoints.UNIXClientEndpoint(reactor, options["unix"], timeout=LOGIN_TIMEOUT_S)
    endpoint = endpoints.HostnameEndpoint(
        reactor, options["host"], options["port"], timeout=LOGIN_TIMEOUT_S
    )
    return endpoint if tls is None else endpoints.wrapClientTLS(tls, endpoint)


def connect(options: Options, reactor, inbox: Inbox, tls: Any = None) -> Deferred:  # type: ignore[no-untyped-def]
    """Connect and log in as ``options`` say; fire with the logged-in connection.

    ``tls`` is :func:`tls_client_options`' answer for these options. Fails
    with the connection error (a TLS one included), :class:`LoginRefusedError`
    or :class:`NoLoginReplyError`.
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
    endpoint = _stream_endpoint(options, reactor, tls)
    protocol = ChatClientProtocol(user, inbox, reactor, limits, transport_name(options))
    connected = endpoints.connectProtocol(endpoint, protocol)
    return connected.addCallback(lambda _: protocol.logged_in).addCallback(lambda _: protocol)


def login_error(options: Options, failure: Failure) -> str:
    """Say in one line why connecting or logging in failed."""
    at = where(options)
    if failure.check(LoginRefusedError):
        return f"cannot log in as {options['user'].decode('ascii')}: {failure.getErrorMessage()}"
    if failure.check(NoLoginReplyError):
        is_plain_tcp = options["unix"] is None and not options["tls"] and not options["udp"]
        hint = " (if it is a TLS port, add --tls)" if is_plain_tcp else ""
        return f"cannot log in at {at}: {failure.getErrorMessage()}{hint}"
    if failure.check(ConnectionRefusedError):
        return f"cannot connect to {at}: connection refused (is the server running?)"
    if options["tls"] and (tls_text := _tls_failure(options, failure)) is not None:
        return f"cannot connect to {at} over TLS: {tls_text}"
    value = failure.value
    if isinstance(value, ConnectError) and value.args and isinstance(value.args[0], str):
        if value.args[0]:
            return f"cannot connect to {at}: {value.args[0]}"
    return f"cannot connect to {at}: {failure.getErrorMessage().rstrip('.')}"


def _tls_failure(options: Options, failure: Failure) -> str | None:
    """Say why the TLS handshake or the certificate check failed, or None if it did not."""
    from OpenSSL.SSL import Error as SSLError
    from service_identity import VerificationError

    if failure.check(VerificationError):
        return (
            f"the server's certificate is not for {options['host']}; "
            f"connect by a name it has, or trust it anyway with --insecure"
        )
    if not failure.check(SSLError):
        return None
    reasons = _ssl_reasons(failure.value)
    if "certificate verify failed" in reasons:
        return (
            "the server's certificate is not trusted (certificate verify failed); "
            "--ca FILE trusts its CA or self-signed certificate, --insecure skips the check"
        )
    return f"the TLS handshake failed ({reasons}); is {where(options)} a TLS port?"


def _ssl_reasons(error: Exception) -> str:
    """Return the reasons pyOpenSSL lists in ``error``, e.g. ``wrong version number``."""
    details = error.args[0] if error.args else None
    if isinstance(details, list):
        reasons = [item[-1] for item in details if isinstance(item, tuple) and item]
        if reasons:
            return ", ".join(str(reason) for reason in reasons)
    return str(error) or type(error).__name__
