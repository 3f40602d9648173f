"""What the client's TCP and UDP connections share: login, server events, the view.

:class:`_ServerEventHandler` turns the events of :mod:`chatproto.wire.client_codec`
into login results (:attr:`logged_in`, :class:`LoginRefusedError`,
:class:`NoLoginReplyError`) and into calls on the attached
:class:`~chatproto.client.views.ChatView`. The transports themselves are in
:mod:`chatproto.client.tcp` and :mod:`chatproto.client.udp`.
"""

from collections.abc import Callable
from typing import Final

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatproto.client.inbox import Inbox
from chatproto.client.views import ChatView
from chatproto.wire.events import (
    BodyData,
    DeliveryStart,
    ErrorReply,
    MessageEnd,
    OkReply,
    Rejected,
    ServerEvent,
)

#: Longest wait for the TCP connection, and then for the reply to ``ME IS``.
LOGIN_TIMEOUT_S: Final = 10.0
#: Longest wait, after the client stopped sending, for the server to close.
CLOSE_TIMEOUT_S: Final = 10.0


class LoginRefusedError(Exception):
    """The server answered ``ERROR`` to ``ME IS``: the userid is in use (PROTOCOL §2)."""


class NoLoginReplyError(Exception):
    """The server did not answer ``ME IS`` in time, or closed before answering."""


class _ServerEventHandler:
    """The part of a connection shared by TCP and UDP: login state, events, the view.

    Attributes:
        user: the userid to log in as.
        logged_in: fires when the server answers ``OK``; fails with
            :class:`LoginRefusedError`, :class:`NoLoginReplyError` or the connection
            error otherwise.
        is_logged_in: whether ``OK`` has arrived.
    """

    log = Logger()

    def __init__(self, user: bytes, inbox: Inbox, clock: IReactorTime) -> None:
        self.user = user
        self.logged_in: Deferred[None] = Deferred()
        self.is_logged_in = False
        self._inbox = inbox
        self._clock = clock
        self._view: ChatView | None = None
        self._pending: list[Callable[[ChatView], None]] = []
        self._login_timer: IDelayedCall | None = None

    def attach(self, view: ChatView) -> None:
        """Report to ``view`` from now on, starting with what arrived before."""
        self._view = view
        pending, self._pending = self._pending, []
        for notify in pending:
            notify(view)

    def _notify(self, notify: Callable[[ChatView], None]) -> None:
        if self._view is None:
            self._pending.append(notify)
        else:
            notify(self._view)

    def _start_login_timer(self) -> None:
        self._login_timer = self._clock.callLater(LOGIN_TIMEOUT_S, self._login_timed_out)

    def _login_timed_out(self) -> None:
        self._login_timer = None
        self._fail_login(NoLoginReplyError(f"no reply to ME IS within {LOGIN_TIMEOUT_S:g} s"))
        self._drop()

    def _fail_login(self, error: Exception) -> None:
        """Fail :attr:`logged_in` unless it already fired."""
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        if not self.logged_in.called:
            self.logged_in.errback(Failure(error))

    def _drop(self) -> None:
        """Close the transport at once (the session is over)."""
        raise NotImplementedError

    def _handle(self, event: ServerEvent) -> None:
        """Act on one decoded server event."""
        match event:
            case OkReply():
                self._on_ok()
            case ErrorReply():
                self._on_error()
            case DeliveryStart(sender=sender):
                self._inbox.start(sender)
            case BodyData(data=data):
                self._inbox.add(data)
            case MessageEnd():
                message = self._inbox.finish()
                self._notify(lambda view: view.message_received(message))
            case Rejected():
                self._on_malformed(event)

    def _on_ok(self) -> None:
        if self.logged_in.called:
            self.log.warn("unexpected OK from the server")
            return
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        self.is_logged_in = True
        self.log.info("logged in as {user}", user=self.user.decode("ascii"))
        self.logged_in.callback(None)

    def _on_error(self) -> None:
        if not self.logged_in.called:
            user = self.user.decode("ascii")
            self._fail_login(LoginRefusedError(f"userid {user} is already in use"))
            self._drop()
        else:
            self._notify(lambda view: view.message_refused())

    def _on_malformed(self, event: Rejected) -> None:
        self.log.warn(
            "the server sent {reason}: {line!r}", reason=event.reason, line=event.line[:80]
        )
        if event.fatal:
            self._inbox.abort()


def _reason_text(reason: Failure | None) -> str:
    """Say in a few words why a connection ended."""
    if reason is None or reason.check(ConnectionDone):
        return "the server closed the connection"
    return reason.getErrorMessage().rstrip(".")
