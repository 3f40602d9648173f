"""Reaching the server for ``chat_client``: connect and log in, and say why that failed.

:func:`connect` reaches the server the :class:`~chatproto.client.options.Options`
name and logs in; :func:`login_error` turns its failure into one line.
"""

import ipaddress

from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from chatproto.client.connection import LOGIN_TIMEOUT_S, LoginRefusedError, NoLoginReplyError
from chatproto.client.inbox import Inbox
from chatproto.client.options import Options
from chatproto.client.tcp import ChatClientProtocol
from chatproto.client.udp import ChatDatagramClient


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


def login_error(options: Options, failure: Failure) -> str:
    """Say in one line why connecting or logging in failed."""
    where = f"{options['host']}:{options['port']}"
    if failure.check(LoginRefusedError):
        return f"cannot log in as {options['user'].decode('ascii')}: {failure.getErrorMessage()}"
    if failure.check(NoLoginReplyError):
        return f"cannot log in at {where}: {failure.getErrorMessage()}"
    if failure.check(ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is the server running?)"
    return f"cannot connect to {where}: {failure.getErrorMessage().rstrip('.')}"
