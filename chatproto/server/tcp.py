"""The TCP side: a thin adapter between a stream transport and the service.

:class:`ChatProtocol` feeds received bytes to its own
:class:`~chatproto.wire.codec.Decoder`, passes the events to its
:class:`~chatproto.server.session.ClientSession`, and is the client's
``IRecipient``: deliveries and replies go through one
:class:`~chatproto.server.outbox.Outbox`, in order. Everything shared lives in
the service, reached as ``factory.service``.
"""

from collections.abc import Callable

from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, implementer

from chatproto.server.deadlines import DeadlineStep
from chatproto.server.interfaces import IClient
from chatproto.server.message import Delivery, DeliveryRun
from chatproto.server.outbox import Outbox
from chatproto.server.received import ReceivedStream
from chatproto.server.service import ChatService
from chatproto.server.session import ClientSession
from chatproto.wire.codec import Decoder
from chatproto.wire.events import NEED_DATA, MessageRun
from chatproto.wire.grammar import ERROR


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):  # type: ignore[misc]
    """What :class:`ChatProtocol` uses of its transport (for the type checker).

    Every Twisted stream transport (TCP, TLS, UNIX) writes and closes
    (``ITCPTransport``), takes the outbox as its producer (``IConsumer``),
    pauses its own reading (``IPushProducer``) and says whether it is closing.
    """

    disconnecting = Attribute("True once loseConnection or abortConnection was called.")


@implementer(IClient, IHalfCloseableProtocol)
class ChatProtocol(Protocol):
    """One TCP client.

    Attributes:
        name: the userid once logged in, else None.
        peer: the client's IP address.
        expires_when_idle: False: a TCP user stays logged in while connected.
        transport_name: ``"tcp"`` (a subclass that carries the stream in
            other frames names its own).
    """

    log = Logger()
    factory: "ChatFactory"
    transport: IStreamTransport
    expires_when_idle = False
    transport_name = "tcp"
    _decoder: Decoder
    _received: ReceivedStream | None
    _session: ClientSession
    _outbox: Outbox

    def __init__(self) -> None:
        self._name: bytes | None = None
        self.peer = "?"
        # The decoder, session and outbox are made by connectionMade.
        self._is_connected = False
        self._next_turn: IDelayedCall | None = None  # set while input waits for a turn
        self._held_by_session = False  # reading paused while the session waits
        self._read_closed = False  # the client half-closed while the session waited
        self.counted_host: str | None = None  # counted in the service's AddressLimits
        self._login_deadline: DeadlineStep | None = None  # until logged in or closed

    @property
    def name(self) -> bytes | None:
        return self._name

    @name.setter
    def name(self, user: bytes | None) -> None:
        self._name = user
        if user is not None:
            self._end_login_deadline()  # logged in: the login timeout is done with

    def connectionMade(self) -> None:
        service = self.factory.service
        self.factory.connections += 1
        # The factory knew the address (no second getPeer); a UNIX socket's
        # peer has no host (and usually no name).
        self.peer = self.counted_host or getattr(self.transport.getPeer(), "host", None) or "unix"
        # Chat frames are small and latency matters: no Nagle delay.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self._decoder = Decoder(service.limits, coalesce_chunks=True)
        # -v shows each frame as received (PROTOCOL §8): keep the bytes for it.
        self._received = ReceivedStream(self._decoder) if service.is_verbose else None
        self._session = ClientSession(service, self, self._received)
        # A read's messages under one command line come as one run, except
        # where each frame is looked at: -v shows it, flood control charges it.
        self._takes_runs = self._received is None and not service.floods_are_controlled
        # PROTOCOL §7: deliveries wait in the outbox while the client is not
        # reading, up to a backlog limit.
        self._outbox = Outbox(
            self.transport,
            service.limits,
            self._on_backlog_overflow,
            service.clock,
            service.stats.delivery_latency,
            service.writes,
        )
        self._is_connected = True
        self.transport.registerProducer(self._outbox, True)
        # Fan-out calls deliver once per recipient: go straight to the outbox.
        self.deliver = self._outbox.push  # type: ignore[method-assign]
        # PROTOCOL §7: a connection that never logs in is closed.
        self._login_deadline = service.login_deadlines.watch(self)

    def dataReceived(self, data: bytes) -> None:
        if self.transport.disconnecting:
            return  # nothing more is processed once we decided to close
        try:
            if self._received is not None:
                self._received.feed(data)
            self._decoder.feed(data)
            self._handle_events(self.factory.service.limits.max_frames_per_turn)
        except Exception:
            self._contain_failure()
        self.factory.service.writes.flush()

    def _handle_events(self, budget: int | None = None) -> None:
        """Handle decoded frames, at most ``budget`` of them before yielding the turn."""
        next_event = self._decoder.next_event
        session = self._session
        handle = session.handle
        transport = self.transport
        max_run = self.factory.service.limits.max_frames_per_turn if self._takes_runs else 1
        while not transport.disconnecting:
            if session.waiting:
                self._wait_for_session()
                return
            if budget is not None:
                if budget <= 0:
                    self._yield_turn()
                    return
                event = next_event(min(budget, max_run))
                if event.__class__ is MessageRun:
                    budget -= len(event.bodies)  # type: ignore[union-attr]
                else:
                    budget -= 1
            else:
                event = next_event(max_run)
            if event is NEED_DATA:
                return
            handle(event)

    def _yield_turn(self) -> None:
        """Let other clients have the reactor; go on with this one's input next turn.

        One read can hold hundreds of frames (a flood); handling them all at
        once would make every other client wait (PROTOCOL §7: a client never
        slows the others down). Reading from this client pauses meanwhile.
        """
        if self._next_turn is None:
            self.transport.pauseProducing()
            self._next_turn = self.callLater(0, self._continue_input)

    def _wait_for_session(self) -> None:
        """Stop reading while the session waits (a login being answered)."""
        if not self._held_by_session:
            self._held_by_session = True
            self.transport.pauseProducing()

    def resume_input(self) -> None:
        """The session is done waiting: go on with the input read so far, and reading."""
        if self._held_by_session:
            self._held_by_session = False
            if self._next_turn is None:
                self._continue_input()

    def _continue_input(self) -> None:
        self._next_turn = None
        try:
            self._handle_events(self.factory.service.limits.max_frames_per_turn)
            if self._next_turn is None and not self._held_by_session:
                if self._read_closed:
                    self.readConnectionLost()
                elif not self.transport.disconnecting:
                    self.transport.resumeProducing()
        except Exception:
            self._contain_failure()
        self.factory.service.writes.flush()

    def readConnectionLost(self) -> None:
        """The client closed its sending side: finish what it sent, then close.

        A last command without its newline still counts; a message cut short
        is dropped quietly (PROTOCOL §4), with no ``ERROR``.
        """
        if self._held_by_session or self._next_turn is not None:
            self._read_closed = True  # finish once the input waiting is handled
            return
        try:
            if not self._decoder.is_mid_message and not self.transport.disconnecting:
                self._decoder.eof()
                self._handle_events()
        except Exception:
            self._contain_failure()
        self.factory.service.writes.flush()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._end_login_deadline()
        if self._next_turn is not None and self._next_turn.active():
            self._next_turn.cancel()
        self._next_turn = None
        if self._is_connected:
            self._is_connected = False
            self.factory.connections -= 1
            self.factory.service.addresses.connection_closed(self.counted_host)
            self._outbox.close()
            try:
                self._session.connection_lost()
            except Exception:
                self.log.failure("releasing {peer} failed", peer=self.peer)

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """The next turn's timer, on the service's clock (not the reactor)."""
        return self.factory.service.clock.callLater(period, func)

    def _end_login_deadline(self) -> None:
        if self._login_deadline is not None:
            self.factory.service.login_deadlines.unwatch(self, self._login_deadline)
            self._login_deadline = None

    def timeoutConnection(self) -> None:
        """No login within ``--login-timeout``: close (the service's LoginDeadlines calls this)."""
        self.factory.service.note(self, "closed: no login in time")
        self.transport.loseConnection()

    def _on_backlog_overflow(self, reason: str) -> None:
        """The client stopped reading (backlog over the limit, or stalled): give up on it."""
        service = self.factory.service
        service.stats.slow_consumers += 1
        self.log.info(
            "disconnecting slow consumer {who}: {reason}",
            who=service.describe(self),
            reason=reason,
        )
        service.note(self, f"disconnected: not reading ({reason})")
        service.logout(self)
        self.transport.abortConnection()

    def _contain_failure(self) -> None:
        """A bug met this connection: log it, tell the client, close only this one."""
        self.log.failure("error handling data from {peer}", peer=self.peer)
        self.reply(ERROR)
        self.disconnect("internal error")

    # -- IClient -------------------------------------------------------------

    def deliver(self, delivery: Delivery | DeliveryRun) -> int:
        return self._outbox.push(delivery)

    def reply(self, data: bytes) -> None:
        self._outbox.push_reply(data)

    def disconnect(self, reason: str) -> None:
        self._outbox.write_pending()  # what was answered so far still goes out
        self.transport.loseConnection()


class ChatFactory(Factory):
    """Build a :class:`ChatProtocol` per connection, all sharing one service.

    Attributes:
        service: the chat service every connection talks to.
        connections: TCP connections open now.
    """

    protocol = ChatProtocol  # type: ignore[assignment]  # typeshed wants a callable
    noisy = False
    log = Logger()

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.connections = 0

    def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
        # PROTOCOL §7: past a limit (all connections, or one address's) a new
        # connection is closed at once (returning None makes Twisted close
        # it); nobody else notices.
        service = self.service
        if self.connections >= service.limits.max_connections:
            service.stats.connections_refused += 1
            self.log.info("connection limit reached: {peer} refused", peer=addr)
            return None
        host = getattr(addr, "host", None)  # a UNIX socket's peer has none
        refused_by = service.addresses.admit_connection(host)
        if refused_by is not None:
            service.refused_by_address(host, refused_by)
            return None
        protocol = super().buildProtocol(addr)
        protocol.counted_host = host
        return protocol
