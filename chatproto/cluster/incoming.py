"""Relaying in: what other nodes publish for this node's users, delivered here.

:class:`IncomingRelay` decodes the batches that arrive on this node's two
channels (its own and the broadcast one), delivers short and small messages
at once through the host (:class:`~chatproto.server.interfaces.IRouterHost`),
and puts big ones together in the spool from their pieces (an
:class:`_Incoming` per sending node) before delivering them whole
(store-and-forward, PROTOCOL §4).
"""

from twisted.logger import Logger

from chatproto.cluster.scripts import Keys
from chatproto.limits import Limits
from chatproto.server import verbose
from chatproto.server.interfaces import IRouterHost
from chatproto.server.message import MessageBody, ShortBody
from chatproto.wire import relay as relay_wire

#: The relay messages that carry short messages, delivered in runs.
_SHORT_KINDS = (relay_wire.SHORT, relay_wire.RUN)


class _Incoming:
    """A big message from another node, its pieces arriving into the spool.

    A node publishes one big message at a time, whole, so there is at most
    one of these per other node: a new beginning from the same node means the
    last one was abandoned (that node lost its connection meanwhile).
    """

    __slots__ = ("message_id", "sender", "recipients", "size", "body", "last_piece_at")

    def __init__(
        self,
        message_id: int,
        sender: bytes,
        recipients: tuple[bytes, ...] | None,
        size: int,
        body: MessageBody,
        now: float,
    ) -> None:
        self.message_id = message_id
        self.sender = sender
        self.recipients = recipients
        self.size = size
        self.body = body
        self.last_piece_at = now


class IncomingRelay:
    """This node's end of the relay channels.

    Attributes:
        host: the service the messages are delivered through (set when the
            router starts).
        node_id: this node's name (its own BROADCASTs come back and are skipped).
    """

    def __init__(
        self,
        node_id: bytes,
        keys: Keys,
        reactor,  # type: ignore[no-untyped-def]
        limits: Limits,
        log: Logger,
    ) -> None:
        self.node_id = node_id
        self.log = log
        self.host: IRouterHost | None = None
        self._reactor = reactor
        self._limits = limits
        self._broadcast_channel = keys.broadcast_channel
        self._incoming: dict[bytes, _Incoming] = {}  # by the node sending it

    def relay_received(self, channel: bytes, data: bytes) -> None:
        """Handle one batch that arrived on ``channel``; a bad message is logged and skipped.

        Consecutive short messages from one sender to the same recipients,
        alone or in runs, are delivered as one run (issue 16), as a client's
        read of them would be.
        """
        try:
            messages = relay_wire.decode_batch(data)
        except relay_wire.RelayFormatError as error:
            self.log.warn("bad relay batch on {channel}: {error}", channel=channel, error=error)
            return
        is_broadcast = channel == self._broadcast_channel
        run: list[bytes] = []  # short bodies as framed, of one sender to one set of recipients
        run_of: tuple[bytes, tuple[bytes, ...] | None] | None = None
        for message in messages:
            try:
                header, payload = relay_wire.decode(message)
                kind = header.kind
                if kind in _SHORT_KINDS and header.origin != self.node_id:
                    if kind == relay_wire.RUN:
                        bodies = relay_wire.decode_run_bodies(payload, header.size)
                    else:
                        bodies = [b"%d\n%b" % (len(payload), payload)]
                    key = (header.sender, None if is_broadcast else header.recipients)
                    if key != run_of:
                        self._deliver_run(run_of, run)
                        run_of, run = key, []
                    run += bodies
                    continue
                self._deliver_run(run_of, run)
                run_of, run = None, []
                self._relay_message(channel, header, payload)
            except relay_wire.RelayFormatError as error:
                self.log.warn("bad relay message on {channel}: {e}", channel=channel, e=error)
            except Exception:  # a bug: lose this message, not the connection or the others
                self.log.failure("handling a relayed message failed")
        try:
            self._deliver_run(run_of, run)
        except Exception:
            self.log.failure("handling a relayed message failed")

    def _deliver_run(
        self, run_of: tuple[bytes, tuple[bytes, ...] | None] | None, bodies: list[bytes]
    ) -> None:
        """Deliver the short messages gathered for one sender and set of recipients."""
        if run_of is not None and bodies:
            assert self.host is not None
            self.host.receive_run(run_of[0], run_of[1], bodies)

    def _relay_message(
        self, channel: bytes, header: relay_wire.RelayHeader, payload: bytes
    ) -> None:
        if header.origin == self.node_id:
            return  # our own BROADCAST, already delivered here
        service = self.host
        assert service is not None
        kind = header.kind
        origin = header.origin
        recipients = None if channel == self._broadcast_channel else header.recipients
        if kind == relay_wire.SHORT:
            service.receive(header.sender, recipients, ShortBody(payload))
        elif kind == relay_wire.CHUNKED:
            body = service.new_body()
            body.add_wire(payload, header.size)
            self._deliver_relayed(header.sender, recipients, body)
        elif kind == relay_wire.BEGIN:
            abandoned = self._incoming.pop(origin, None)
            if abandoned is not None:
                abandoned.body.release()
            self._incoming[origin] = _Incoming(
                header.message_id,
                header.sender,
                recipients,
                header.size,
                service.new_body(),
                self._reactor.seconds(),
            )
        else:  # a piece or the end of a big message
            incoming = self._incoming.get(origin)
            if incoming is None or incoming.message_id != header.message_id:
                return  # we missed its beginning (reconnected meanwhile)
            if kind == relay_wire.PIECE:
                incoming.body.add_wire(payload)
                incoming.last_piece_at = self._reactor.seconds()
            else:
                del self._incoming[origin]
                incoming.body.add_wire(b"", incoming.size)
                self._deliver_relayed(incoming.sender, incoming.recipients, incoming.body)

    def _deliver_relayed(
        self, sender: bytes, recipients: tuple[bytes, ...] | None, body: MessageBody
    ) -> None:
        assert self.host is not None
        try:
            body.finish(add_terminator=False)  # the frames came with their C0
            if body.error is not None:
                self.log.info(
                    "relayed message from {sender} dropped: {error}",
                    sender=verbose.escape(sender),
                    error=body.error,
                )
            else:
                self.host.receive(sender, recipients, body)
        finally:
            body.release()

    def batch_done(self) -> None:
        """Flush the deliveries of what one read of the subscriber brought."""
        if self.host is not None:
            self.host.writes.flush()

    def drop(self) -> None:
        """Forget the big messages being put together: their remaining pieces will not come."""
        incoming, self._incoming = self._incoming, {}
        for message in incoming.values():
            message.body.release()

    def drop_stale(self) -> None:
        """Drop the big messages whose node sent no piece for the claim TTL."""
        deadline = self._reactor.seconds() - self._limits.cluster_ttl_s
        for origin, message in list(self._incoming.items()):
            if message.last_piece_at < deadline:
                del self._incoming[origin]
                message.body.release()
                self.log.info(
                    "relayed message from {sender} dropped: its node stopped sending it",
                    sender=verbose.escape(message.sender),
                )
