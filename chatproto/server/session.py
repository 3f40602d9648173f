"""One client's conversation, whatever its transport: decoded events in, service calls out.

The TCP protocol and the UDP protocol both own a :class:`ClientSession` per
client and pass it every event their decoder reports; the session answers
``OK``/``ERROR``, collects a message's body until it is complete
(store-and-forward: nothing reaches a recipient before the last byte,
PROTOCOL §4) and hands complete messages to the service.

A login may be answered later (a clustered router asks Redis). Until it is,
the session *waits*: events that arrive meanwhile are held, in order, and
handled once the answer is in; the TCP protocol stops reading meanwhile
(:attr:`ClientSession.waiting`), a UDP client's datagrams are held up to
``Limits.max_held_commands``.
"""

from collections.abc import Callable

from twisted.python.failure import Failure

from chatproto.server import verbose
from chatproto.server.interfaces import IClient
from chatproto.server.message import MessageBody, ShortBody
from chatproto.server.service import ChatService
from chatproto.wire.encode import encode_login, encode_short_body
from chatproto.wire.events import (
    BodyData,
    BodyFrames,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
)
from chatproto.wire.grammar import ERROR, OK


class ClientSession:
    """The state of one client between its transport and the service.

    Attributes:
        client: the transport-side object that replies and receives deliveries.
        waiting: True while a login is being answered; events are held meanwhile.
    """

    __slots__ = ("client", "waiting", "_service", "_message", "_body", "_held", "_closed")

    def __init__(self, service: ChatService, client: IClient) -> None:
        self.client = client
        self.waiting = False
        self._service = service
        self._message: MessageStart | None = None  # the message being received
        self._body: MessageBody | None = None
        self._held: list[Event] = []  # events that came while waiting
        self._closed = False

    def handle(self, event: Event) -> None:
        """Act on one decoded event (or hold it while a login is being answered)."""
        if self.waiting:
            self._hold(event)
        else:
            _HANDLERS[type(event)](self, event)

    def connection_lost(self) -> None:
        """The client is gone: drop a half-received message, release the userid."""
        self._closed = True
        self._held.clear()
        self._drop_message()
        if self.client.name is not None:
            self._service.logout(self.client)

    def _hold(self, event: Event) -> None:
        if len(self._held) < self._service.limits.max_held_commands:
            self._held.append(event)
        else:
            self._service.note(self.client, "command dropped: waiting for the login answer")

    def _on_login(self, event: Login) -> None:
        client = self.client
        if self._service.is_verbose:
            self._service.show(verbose.RECEIVED, client, [encode_login(event.user)])
        # PROTOCOL §2: a second ME IS is refused.
        if client.name is not None:
            self._refuse("already logged in")
            return
        self.waiting = True
        answer = self._service.login(client, event.user)
        answer.addCallbacks(self._login_answered, self._login_failed, (event.user,))

    def _login_answered(self, claimed: bool, user: bytes) -> None:
        """The router answered: reply, then go on with what the client sent meanwhile.

        This runs from a Deferred (a Redis reply), outside the protocol's own
        guard, so a failure here closes this client itself (STYLE §6).
        """
        try:
            self._answer_login(claimed, user)
        except Exception:
            self._service.log.failure(
                "handling the input of {who} failed", who=self._service.describe(self.client)
            )
            self.client.disconnect("internal error")

    def _answer_login(self, claimed: bool, user: bytes) -> None:
        client = self.client
        if self._closed:  # gone while waiting: give the userid back
            if claimed:
                client.name = user
                self._service.logout(client)
            return
        if claimed:
            self._reply(OK)
            client.name = user
        else:  # PROTOCOL §2: a userid in use (here or on another node) is refused
            self._refuse("userid taken")
        self.waiting = False
        held, self._held = self._held, []
        for event in held:
            self.handle(event)
        if not self.waiting:
            client.resume_input()
            self._service.writes.flush()

    def _login_failed(self, failure: Failure) -> None:
        self._service.log.failure(
            "login of {who} failed", failure, who=self._service.describe(self.client)
        )
        self._login_answered(False, b"")

    def _on_short_message(self, event: ShortMessage) -> None:
        service = self._service
        if service.is_verbose:
            parts = [event.line + b"\n", *encode_short_body(event.body)]
            service.show(verbose.RECEIVED, self.client, parts)
        if self.client.name is None:  # PROTOCOL §2: nothing but ME IS before login
            self._refuse("not logged in")
        else:
            service.send(self.client, event.recipients, ShortBody(event.body))

    def _on_message_start(self, event: MessageStart) -> None:
        self._message = event
        self._body = self._service.new_body()

    def _on_body_data(self, event: BodyData) -> None:
        assert self._body is not None
        self._body.append(event.data)

    def _on_body_frames(self, event: BodyFrames) -> None:
        assert self._body is not None
        self._body.add_wire(event.wire, event.size)

    def _on_message_end(self, event: MessageEnd) -> None:
        message, body = self._take_message()
        body.finish()
        self._show_message(message, body)
        try:
            if self.client.name is None:  # PROTOCOL §2: nothing but ME IS before login
                self._refuse("not logged in")
            elif body.error is not None:  # PROTOCOL §7: no spool room for it
                self._service.note(self.client, f"message refused: {body.error}")
                self._refuse("spool full")
            else:
                self._service.send(self.client, message.recipients, body)
        finally:
            body.release()

    def _on_rejected(self, event: Rejected) -> None:
        if self._message is not None and not event.fatal:
            # A refused chunked SEND/BROADCAST: shown whole, answered after its body.
            message, body = self._take_message()
            self._show_message(message, body)
            body.release()
        else:
            self._drop_message()  # a partial message is dropped whole
            if event.line and self._service.is_verbose:
                self._service.show(verbose.RECEIVED, self.client, [event.line + b"\n"])
        self._refuse(event.reason)
        if event.fatal:
            self._service.log.info(
                "closing {who}: {reason}",
                who=self._service.describe(self.client),
                reason=event.reason,
            )
            self.client.disconnect(event.reason)

    def _take_message(self) -> tuple[MessageStart, MessageBody]:
        message, body = self._message, self._body
        assert message is not None and body is not None
        self._message = self._body = None
        return message, body

    def _drop_message(self) -> None:
        if self._body is not None:
            self._body.release()
        self._message = self._body = None

    def _show_message(self, message: MessageStart, body: MessageBody) -> None:
        """Show a received SEND/BROADCAST frame with ``-v``."""
        if self._service.is_verbose:
            line = message.line + b"\n"
            parts = [line, *body.preview_frames()]
            self._service.show(verbose.RECEIVED, self.client, parts, len(line) + body.wire_size)

    def _refuse(self, reason: str) -> None:
        """Answer ``ERROR`` and count why."""
        self._service.stats.errors[reason] += 1
        self._reply(ERROR)

    def _reply(self, data: bytes) -> None:
        self._service.show(verbose.SENT, self.client, [data])
        self.client.reply(data)


_HANDLERS: dict[type, Callable[[ClientSession, Event], None]] = {
    Login: ClientSession._on_login,  # type: ignore[dict-item]
    ShortMessage: ClientSession._on_short_message,  # type: ignore[dict-item]
    MessageStart: ClientSession._on_message_start,  # type: ignore[dict-item]
    BodyData: ClientSession._on_body_data,  # type: ignore[dict-item]
    BodyFrames: ClientSession._on_body_frames,  # type: ignore[dict-item]
    MessageEnd: ClientSession._on_message_end,  # type: ignore[dict-item]
    Rejected: ClientSession._on_rejected,  # type: ignore[dict-item]
}
