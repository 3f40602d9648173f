"""The client's UDP side, :class:`ChatDatagramClient` (PROTOCOL §6).

One datagram per command, short bodies only; server events are handled by
:mod:`chatproto.client.connection`.
"""

from collections.abc import Callable, Sequence
from typing import BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol

from chatproto.client.connection import _ServerEventHandler
from chatproto.client.inbox import Inbox
from chatproto.limits import Limits
from chatproto.wire.client_codec import decode_server_datagram
from chatproto.wire.encode import encode_login, encode_message
from chatproto.wire.grammar import MAX_SHORT_BODY


class ChatDatagramClient(_ServerEventHandler, DatagramProtocol):
    """The client over UDP: one datagram per command, short bodies only (PROTOCOL §6).

    The socket is connected to the server, so only its datagrams arrive and
    an ICMP "port unreachable" reports a server that is down.

    Attributes:
        transport_name: ``"UDP"``.
        can_send_files: False: a chunked body cannot travel over UDP.
        is_datagram: True: one datagram per command.
        max_body_bytes: 99, the largest short body.
        is_sending_file: always False.
    """

    transport_name = "UDP"
    can_send_files = False
    is_datagram = True
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
        header: bytes = b"",
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
