"""One client's conversation, whatever its transport: decoded events in, service calls out.

The TCP protocol and the UDP protocol both own a :class:`ClientSession` per
client and pass it every event their decoder reports; the session answers
``OK``/``ERROR``, collects a message's body until it is complete
(store-and-forward: nothing reaches a recipient before the last byte,
PROTOCOL §4) and hands complete messages to the service.

A login may be answered later (a clustered router asks Redis). Until it is,
the session *waits* (:attr:`ClientSession.waiting`) and its transport hands
it nothing: the TCP protocol stops reading, a UDP client holds its datagrams
(up to ``Limits.max_held_commands``); both go on once the answer is in.

With ``-v`` the session shows every frame as it was received (PROTOCOL §8),
from the bytes its transport keeps for it (:mod:`chatproto.server.received`).
"""

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from chatproto.server import verbose
from chatproto.server.interfaces import IClient
from chatproto.server.message import MessageBody, ShortBody
from chatproto.server.received import ReceivedDatagram, ReceivedFrame, ReceivedStream
from chatproto.server.service import ChatService
from chatproto.wire.events import (
    LINE_TOO_LONG_REASON,
    BodyData,
    BodyFrames,
    Event,
    Login,
    MessageEnd,
    MessageRun,
    MessageStart,
    Rejected,
    ShortMessage,
)
from chatproto.wire.grammar import ERROR, OK

Received = ReceivedStream | ReceivedDatagram


class ClientSession:
    """The state of one client between its transport and the service.

    Args:
        service: the chat service.
        client: the transport-side object that replies and receives deliveries.
        received: with ``-v``, the client's bytes as received, cut into frames
            (:mod:`chatproto.server.received`); None without ``-v``.

    Attributes:
        client: the transport-side object.
        waiting: True while a login is being answered. The transport hands
            the session nothing meanwhile (TCP stops reading, UDP holds the
            datagrams) and goes on when :meth:`IClient.resume_input` is called.
    """

    __slots__ = (
        "client",
        "waiting",
        "_service",
        "_message",
        "_body",
        "_closed",
        "_received",
        "_login_frame",
        "_flood",
        "_throttle_end",
    )

    def __init__(
        self, service: ChatService, client: IClient, received: Received | None = None
    ) -> None:
        self.client = client
        self.waiting = False
        self._service = service
        self._message: MessageStart | None = None  # the message being received
        self._body: MessageBody | None = None
        self._closed = False
        self._received = received
        # With -v, the ME IS frame, shown with its answer (PROTOCOL §8).
        self._login_frame: ReceivedFrame | None = None
        # --flood-messages / --flood-bytes; None when both are off.
        self._flood = service.new_flood_control()
        self._throttle_end: IDelayedCall | None = None  # while a stream client is slowed

    def handle(self, event: Event) -> None:
        """Act on one decoded event (never called while :attr:`waiting`)."""
        _HANDLERS[type(event)](self, event)

    @property
    def flood_wait(self) -> float:
        """Seconds until this client is within its flood budget again (0: it is now)."""
        return 0.0 if self._flood is None else self._flood.wait()

    def connection_lost(self) -> None:
        """The client is gone: drop a half-received message, release the userid."""
        self._closed = True
        if self._throttle_end is not None and self._throttle_end.active():
            self._throttle_end.cancel()
        self._throttle_end = None
        self._drop_message()
        if self._received is not None:
            rest = self._received.take_rest()
            if rest[1]:  # PROTOCOL §4: a frame cut short is dropped whole
                self._show_received(rest)
                self._service.note(self.client, "gone before the end of this frame: dropped")
        if self.client.name is not None:
            self._service.logout(self.client)

    def _on_login(self, event: Login) -> None:
        client = self.client
        frame = None if self._received is None else self._received.take()
        if self._flood is not None:
            self._flood.charge_frame()  # its debt, if any, slows the next frame
        # PROTOCOL §2: a second ME IS is refused.
        if client.name is not None:
            self._show_received(frame)
            self._refuse("already logged in")
            return
        answer = self._service.login(client, event.user)
        if isinstance(answer, Deferred):  # a clustered router asks Redis: wait
            self._login_frame = frame
            self.waiting = True
            answer.addCallbacks(self._login_answered, self._login_failed, (event.user,))
        else:
            self._reply_to_login(frame, answer, event.user)

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
        frame, self._login_frame = self._login_frame, None
        self._reply_to_login(frame, claimed, user)
        self.waiting = False
        client.resume_input()
        self._service.writes.flush()

    def _reply_to_login(self, frame: ReceivedFrame | None, claimed: bool, user: bytes) -> None:
        """Answer ``ME IS`` (shown with ``-v`` together with its frame, PROTOCOL §8)."""
        self._show_received(frame)
        if claimed:
            self._reply(OK)
            self.client.name = user
            self._service.announce_login(self.client)
        else:  # PROTOCOL §2: a userid in use (here or on another node) is refused
            self._refuse("userid taken")

    def _login_failed(self, failure: Failure) -> None:
        self._service.log.failure(
            "login of {who} failed", failure, who=self._service.describe(self.client)
        )
        self._login_answered(False, b"")

    def _on_short_message(self, event: ShortMessage) -> None:
        if self._received is not None:
            self._show_received(self._received.take())
        if self.client.name is None:  # PROTOCOL §2: nothing but ME IS before login
            self._refuse("not logged in")
            reached = 0
        else:
            reached = self._service.send(self.client, event.recipients, ShortBody(event.body))
        if self._flood is not None:
            self._flood.charge_bytes(len(event.body))
            self._charge(reached)

    def _on_message_run(self, event: MessageRun) -> None:
        """Whole messages under one command line (asked for only without ``-v`` and flood control).

        Each frame is neither shown nor charged, so a transport asks for runs
        only where neither is on (``ChatProtocol._takes_runs``).
        """
        assert self._received is None and self._flood is None, "runs are not asked for"
        if self.client.name is None:  # PROTOCOL §2: nothing but ME IS before login
            for _ in event.bodies:
                self._refuse("not logged in")
            return
        self._service.send_run(
            self.client, event.recipients, event.bodies, event.body_bytes, event.chunked
        )

    def _on_message_start(self, event: MessageStart) -> None:
        self._message = event
        self._body = self._service.new_body()

    def _on_body_data(self, event: BodyData) -> None:
        assert self._body is not None
        self._body.append(event.data)
        if self._flood is not None:  # a big body is slowed while it comes in
            self._flood.charge_bytes(len(event.data))
            self._charge(None)

    def _on_body_frames(self, event: BodyFrames) -> None:
        assert self._body is not None
        self._body.add_wire(event.wire, event.size)
        if self._flood is not None:
            self._flood.charge_bytes(event.size)
            self._charge(None)

    def _on_message_end(self, event: MessageEnd) -> None:
        message, body = self._take_message()
        body.finish()
        if self._received is not None:
            self._show_received(self._received.take())
        reached = 0
        try:
            if self.client.name is None:  # PROTOCOL §2: nothing but ME IS before login
                self._refuse("not logged in")
            elif body.error is not None:  # PROTOCOL §7: no spool room for it
                self._service.note(self.client, f"message refused: {body.error}")
                self._refuse("spool full")
            else:
                reached = self._service.send(self.client, message.recipients, body)
        finally:
            body.release()
        self._charge(reached)

    def _on_rejected(self, event: Rejected) -> None:
        if self._message is not None and not event.fatal:
            # A refused chunked SEND/BROADCAST: answered after its body.
            self._take_message()[1].release()
        else:
            self._drop_message()  # a partial message is dropped whole
        if self._received is not None:
            # A line over the limit is never consumed: it is shown as far as it came.
            self._show_received(self._received.take(event.reason == LINE_TOO_LONG_REASON))
        self._refuse(event.reason)
        if event.fatal:
            self._service.log.info(
                "closing {who}: {reason}",
                who=self._service.describe(self.client),
                reason=event.reason,
            )
            if self._received is not None:
                unread = self._received.take_rest()[1]
                if unread:
                    self._service.note(self.client, f"{unread} bytes after the error not read")
            self.client.disconnect(event.reason)
        else:
            self._charge(0)

    def _charge(self, reached: int | None) -> None:
        """Charge a frame that reached ``reached`` recipients (None: no frame, only bytes).

        A stream client in debt is slowed down: the session waits, so its
        transport stops reading, until the debt is paid back. (A UDP client's
        datagrams are dropped instead, by its protocol, while in debt.)
        """
        flood = self._flood
        if flood is None:
            return
        if reached is not None:
            flood.charge_frame(reached)
        if self.client.expires_when_idle or self.waiting or self._closed:
            return
        delay = flood.wait()
        if delay > 0:
            self.waiting = True
            self._throttle_end = self._service.clock.callLater(delay, self._throttle_over)
            self._service.stats.flood_throttled += 1

    def _throttle_over(self) -> None:
        """The debt is paid back: go on with the client's input (from the reactor)."""
        self._throttle_end = None
        self.waiting = False
        try:
            self.client.resume_input()
        except Exception:
            self._service.log.failure(
                "handling the input of {who} failed", who=self._service.describe(self.client)
            )
            self.client.disconnect("internal error")
        self._service.writes.flush()

    def _take_message(self) -> tuple[MessageStart, MessageBody]:
        message, body = self._message, self._body
        assert message is not None and body is not None
        self._message = self._body = None
        return message, body

    def _drop_message(self) -> None:
        if self._body is not None:
            self._body.release()
        self._message = self._body = None

    def _show_received(self, frame: ReceivedFrame | None) -> None:
        """Show a frame as it was received, with ``-v`` (PROTOCOL §8)."""
        if frame is not None:
            head, size = frame
            parts = verbose.received_parts(head)
            self._service.show(verbose.RECEIVED, self.client, parts, size)

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
    MessageRun: ClientSession._on_message_run,  # type: ignore[dict-item]
    MessageStart: ClientSession._on_message_start,  # type: ignore[dict-item]
    BodyData: ClientSession._on_body_data,  # type: ignore[dict-item]
    BodyFrames: ClientSession._on_body_frames,  # type: ignore[dict-item]
    MessageEnd: ClientSession._on_message_end,  # type: ignore[dict-item]
    Rejected: ClientSession._on_rejected,  # type: ignore[dict-item]
}
