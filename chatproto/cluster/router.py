"""One namespace across many chatproto processes, shared through Redis (``--cluster``).

:class:`RedisRouter` is an :class:`~chatproto.server.routing.IRouter`, the only
part of chatproto that knows of Redis (through ``txredisapi``). Each process,
a *node*, keeps its own users in a :class:`~chatproto.server.routing.LocalRouter`
and, in Redis:

- **claims** each userid it logs in: ``SET chatproto:<db>:user:<id> <node> NX PX <ttl>``.
  The claim is atomic, so a userid online on any node is refused everywhere.
  The node refreshes its claims every third of the TTL (a Lua script that
  also makes them again if Redis lost them, so a restarted Redis gets its
  registry back); a node that dies loses its users' ids after the TTL.
- **relays** a message for users it does not hold: it asks Redis where they
  are (``MGET`` of their claims) and publishes the message to each node's
  channel ``chatproto:<db>:node:<node>``; a BROADCAST goes once to
  ``chatproto:<db>:broadcast``. The messages of one reactor turn share one
  ``MGET``, and consecutive ones for one channel one ``PUBLISH`` (a batch,
  encoded by :mod:`chatproto.wire.relay`). A body bigger than :data:`RELAY_PIECE_BYTES`
  is published in pieces, at most :data:`RELAY_WINDOW_BYTES` of them
  unanswered at a time, and the receiving node puts them together in its own
  spool before delivering (store-and-forward, PROTOCOL §4).

Order from one sender to one recipient is kept: every relayed message goes
through one first-in first-out queue and one Redis connection, and a node
receives both of its channels on one connection. A message is published
once, so it arrives at most once, and exactly once while Redis is up. While
Redis is unreachable, logins are refused (no node can tell whether a userid
is free), messages for other nodes are dropped and counted as for offline
users, and users already logged in stay connected; when Redis is back the
claims are made again and relaying resumes.
"""

import itertools
from collections import deque
from collections.abc import Sequence

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatproto.cluster.address import RedisAddress
from chatproto.cluster.scripts import (
    CLAIM_SCRIPT,
    CLAIMS_PER_CALL,
    REFRESH_SCRIPT,
    RELEASE_SCRIPT,
    Keys,
    new_node_id,
)
from chatproto.limits import Limits
from chatproto.server import verbose
from chatproto.server.interfaces import IRecipient, IRouter, IRouterHost
from chatproto.server.message import Body, MessageBody, ShortBody
from chatproto.server.routing import LocalRouter
from chatproto.wire import relay as relay_wire

#: Wire bytes of a relayed body published as one message; bigger ones go in pieces.
RELAY_PIECE_BYTES = 64 * 1024
#: Bytes published but not yet answered by Redis before a big body waits.
RELAY_WINDOW_BYTES = 1024 * 1024
#: Memory a queued message costs beyond its body bytes (the entry, its lists
#: and bytes objects), counted into the relay backlog so that
#: ``max_relay_backlog_bytes`` bounds real memory: tracemalloc over 10,000
#: queued 32-byte messages showed about 430 bytes each.
RELAY_ENTRY_OVERHEAD_BYTES = 512


class _Outgoing:
    """A message on its way to other nodes.

    Attributes:
        recipients: the userids it is for, or None for a BROADCAST.
        payload: the whole body as published (short and small bodies), else None.
        body: a big body, held (acquired) until its last piece is published.
        channels: where a big message goes and whom it names there, fixed
            when its first piece is published.
        held_bytes: what it holds, counted against the relay backlog limit:
            its bytes in memory, or a spooled body's size (the disk and the
            open file it keeps until published).
    """

    __slots__ = (
        "sender",
        "size",
        "message_id",
        "kind",
        "payload",
        "body",
        "wire",
        "offset",
        "begun",
        "channels",
        "held_bytes",
        "recipients",
    )

    def __init__(
        self, sender: bytes, recipients: list[bytes] | None, body: Body, message_id: int
    ) -> None:
        self.sender = sender
        self.recipients = recipients
        self.size = body.size
        self.message_id = message_id
        self.body: MessageBody | None = None
        self.wire: bytes | None = None  # a big in-memory body's frames, joined once
        self.offset = 0  # wire bytes of a big body published so far
        self.begun = False
        self.channels: list[tuple[bytes, tuple[bytes, ...]]] = []
        if isinstance(body, ShortBody):
            self.kind, self.payload = relay_wire.SHORT, body.data
        elif body.wire_size <= RELAY_PIECE_BYTES:
            self.kind, self.payload = relay_wire.CHUNKED, b"".join(body.frames())
        else:
            self.kind, self.payload = relay_wire.BEGIN, None
            if body.is_in_memory:
                self.wire = b"".join(body.frames())
            else:
                body.acquire()
                self.body = body
        held = body.wire_size if self.body is not None else len(self.payload or self.wire or b"")
        self.held_bytes = held + RELAY_ENTRY_OVERHEAD_BYTES

    @property
    def is_big(self) -> bool:
        """Whether it goes in pieces (:data:`relay_wire.BEGIN` ... :data:`relay_wire.END`)."""
        return self.payload is None

    def header(self, origin: bytes, names: tuple[bytes, ...] | list[bytes]) -> bytes:
        """Its header line, naming ``names`` (none on the broadcast channel)."""
        return relay_wire.encode_message(
            self.kind, origin, self.message_id, self.size, self.sender, names
        )

    def next_piece(self) -> bytes:
        """Return the next run of a big body's wire frames (empty when all were read)."""
        if self.wire is not None:
            piece = self.wire[self.offset : self.offset + RELAY_PIECE_BYTES]
        else:
            assert self.body is not None
            piece = self.body.read_wire(self.offset, RELAY_PIECE_BYTES)
        self.offset += len(piece)
        return piece

    def release(self) -> None:
        if self.body is not None:
            self.body.release()
            self.body = None
        self.wire = None


class _Batch:
    """The messages for other nodes gathered in one reactor turn, published together.

    Attributes:
        entries: the messages, in the order they were sent.
        owners: each recipient's node, once Redis answered (None until then).
        position: entries before it are published.
    """

    __slots__ = ("entries", "owners", "position", "dropped")

    def __init__(self, entries: list[_Outgoing]) -> None:
        self.entries = entries
        self.owners: dict[bytes, bytes | None] | None = None
        self.position = 0
        self.dropped = False

    def names(self) -> list[bytes]:
        """Every recipient named by its SENDs, once each."""
        names: dict[bytes, None] = {}
        for entry in self.entries:
            if entry.recipients is not None:
                names.update(dict.fromkeys(entry.recipients))
        return list(names)

    @property
    def held_bytes(self) -> int:
        return sum(entry.held_bytes for entry in self.entries[self.position :])

    def release(self) -> None:
        for entry in self.entries[self.position :]:
            entry.release()


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


class _RedisFactory(Factory):
    """Build txredisapi connections for a :class:`RedisRouter`'s ClientServices."""

    noisy = False
    isLazy = False  # read by txredisapi when AUTH or SELECT fails

    def __init__(self, router: "RedisRouter", protocol: type) -> None:
        self.router = router
        self.protocol = protocol

    def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
        address = self.router.address
        # Bytes in and out, untouched: userids and bodies are not text, and
        # a body "12" must stay bytes.
        connection = self.protocol(
            charset=None,
            convertNumbers=False,
            password=address.password,
            dbid=address.db,
            replyTimeout=self.router.limits.cluster_timeout_s,
        )
        connection.factory = self
        return connection

    def stopTrying(self) -> None:
        """AUTH or SELECT failed; the ClientService retries with backoff."""

    def connectionError(self, why: str) -> None:
        self.router.log.error("Redis: {why}", why=why)


class _CommandConnection(txredisapi.RedisProtocol):  # type: ignore[misc,valid-type]
    """The connection claims, lookups and publishing go through (one: order)."""

    factory: _RedisFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        self.whenConnected().addCallback(self.factory.router._commands_up)

    def connectionLost(self, why: Failure) -> None:  # type: ignore[override]
        self.factory.router._commands_down(self)  # first: the queue is dropped whole
        super().connectionLost(why)


class _SubscriberConnection(txredisapi.SubscriberProtocol):  # type: ignore[misc,valid-type]
    """The connection this node's relay channels arrive on."""

    factory: _RedisFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        self.whenConnected().addCallback(self.factory.router._subscriber_up)

    def messageReceived(self, pattern: bytes | None, channel: bytes, message: bytes) -> None:
        self.factory.router._relay_received(channel, message)

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        super().dataReceived(data, unpause)
        self.factory.router._relay_batch_done()

    def connectionLost(self, why: Failure) -> None:  # type: ignore[override]
        super().connectionLost(why)
        self.factory.router._subscriber_down(self)


@implementer(IRouter)
class RedisRouter:
    """Route between this node's users and those of other nodes, through Redis.

    Attributes:
        address: where Redis is.
        limits: the server's limits (claim TTL, Redis timeout, relay backlog).
        node_id: this node's name in Redis (its channel and its claims' value).
    """

    log = Logger()

    def __init__(
        self,
        address: RedisAddress,
        reactor,  # type: ignore[no-untyped-def]
        limits: Limits,
        node_id: bytes | None = None,
    ) -> None:
        self.address = address
        self.limits = limits
        self.node_id = node_id if node_id is not None else new_node_id()
        self._reactor = reactor
        keys = Keys(address.db, self.node_id)
        self._key_prefix = keys.user_prefix
        self._node_prefix = keys.node_prefix
        self._node_channel = keys.node_channel
        self._broadcast_channel = keys.broadcast_channel
        self._ttl_ms = max(int(limits.cluster_ttl_s * 1000), 1)
        self._local = LocalRouter()
        self._service: IRouterHost | None = None
        self._commands: txredisapi.RedisProtocol | None = None  # set while connected
        self._subscribed = False  # this node's channels are being listened to
        self._gathering: list[_Outgoing] = []  # this turn's, published at its end
        self._publish_call: IDelayedCall | None = None
        self._outgoing: deque[_Batch] = deque()
        self._drained: list[Deferred[None]] = []  # fired when _outgoing empties
        self._relay_bytes = 0  # held by the queue, and published but unanswered
        self._unanswered_bytes = 0
        self._message_ids = itertools.count(1)
        self._incoming: dict[bytes, _Incoming] = {}  # by the node sending it
        self._doubtful: set[bytes] = set()  # claims whose answer was lost
        self._dropped_while_away = 0
        self._backlog_full = False
        self._was_connected = False
        self._maintenance = LoopingCall(self._maintain)
        self._maintenance.clock = reactor
        endpoint = HostnameEndpoint(reactor, address.host, address.port)
        retry = backoffPolicy(initialDelay=0.1, maxDelay=2.0)
        self._command_service = ClientService(
            endpoint, _RedisFactory(self, _CommandConnection), retry, reactor
        )
        self._subscriber_service = ClientService(
            endpoint, _RedisFactory(self, _SubscriberConnection), retry, reactor
        )

    # -- IRouter -------------------------------------------------------------

    def start(self, host: IRouterHost) -> None:
        self._service = host
        self.log.info(
            "cluster node {node} using Redis at {host}:{port} database {db}",
            node=self.node_id.decode(),
            host=self.address.host,
            port=self.address.port,
            db=self.address.db,
        )
        self._command_service.startService()
        self._subscriber_service.startService()
        done = self._maintenance.start(self.limits.cluster_ttl_s / 3, now=False)
        done.addErrback(lambda failure: self.log.failure("cluster maintenance stopped", failure))

    def stop(self) -> Deferred[None]:
        """Stop talking to Redis, once the messages already accepted are published.

        The wait for them is at most ``cluster_timeout_s``; what is left then
        is dropped. Claims given back before now are sent first.
        """
        if self._maintenance.running:
            self._maintenance.stop()
        if self._publish_call is not None and self._publish_call.active():
            self._publish_call.cancel()
            self._end_of_turn()
        drained: Deferred[None] = Deferred()
        if self._outgoing and self._commands is not None:
            self._drained.append(drained)
            drained.addTimeout(self.limits.cluster_timeout_s, self._reactor, lambda *_: None)
        else:
            drained.callback(None)
        drained.addCallback(self._disconnect)
        return drained

    def _disconnect(self, _: object) -> Deferred[None]:
        self._drop_outgoing("server stopping")
        self._drop_incoming()
        stopped = DeferredList(
            [self._command_service.stopService(), self._subscriber_service.stopService()],
            consumeErrors=True,
        )
        return stopped.addCallback(lambda _: None)

    def register(self, name: bytes, recipient: IRecipient) -> Deferred[bool]:
        commands = self._commands
        if self._local.lookup(name) is not None:
            return succeed(False)
        if commands is None or not self._subscribed:
            # Not in the cluster yet: no way to tell whether the userid is free,
            # or no way to receive what other nodes send to it.
            self.log.info(
                "login of {user} refused: Redis is not reachable", user=verbose.escape(name)
            )
            return succeed(False)
        key = self._key_prefix + name
        claim = maybeDeferred(commands.eval, CLAIM_SCRIPT, [key], [self.node_id, self._ttl_ms])
        return claim.addCallbacks(
            self._claimed, self._claim_failed, (name, recipient), None, (name,)
        )

    def _claimed(self, reply: object, name: bytes, recipient: IRecipient) -> bool:
        if reply != 1:
            return False  # another node holds it
        # False if another client here claimed it first, in the same round trip.
        return self._local.claim(name, recipient)

    def _claim_failed(self, failure: Failure, name: bytes) -> bool:
        # Redis may still carry the claim out (a timeout): it is released
        # when Redis answers again, unless someone here holds the id by then.
        self._doubtful.add(name)
        self.log.info(
            "login of {user} refused: Redis did not answer ({error})",
            user=verbose.escape(name),
            error=failure.getErrorMessage(),
        )
        return False

    def unregister(self, name: bytes, recipient: IRecipient) -> None:
        if self._local.lookup(name) is not recipient:
            return
        self._local.unregister(name, recipient)
        self._release([name])

    def lookup(self, name: bytes) -> IRecipient | None:
        return self._local.lookup(name)

    def everyone(self) -> list[IRecipient]:
        return self._local.everyone()

    def __len__(self) -> int:
        return len(self._local)

    def forward(self, sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        if self._commands is None:
            self._dropped_while_away += 1
            self._not_relayed("Redis unreachable")
            return
        names = None if recipients is None else list(recipients)
        entry = _Outgoing(sender, names, body, next(self._message_ids))
        # One message is always let in, however big (--max-message may pass the limit).
        backlog = self._relay_bytes
        if backlog and backlog + entry.held_bytes > self.limits.max_relay_backlog_bytes:
            entry.release()
            self._not_relayed("relay backlog full")
            if not self._backlog_full:  # one line per episode, not per message
                self._backlog_full = True
                self.log.info(
                    "relay backlog full (--max-relay-backlog): messages for other nodes "
                    "are dropped until Redis catches up"
                )
            return
        self._backlog_full = False
        self._relay_bytes += entry.held_bytes
        self._gathering.append(entry)
        if self._publish_call is None:
            # Everything sent this turn goes out together: one lookup, and
            # one PUBLISH per channel for a run of messages.
            self._publish_call = self._reactor.callLater(0, self._end_of_turn)

    # -- relaying out --------------------------------------------------------

    def _end_of_turn(self) -> None:
        """Look up where this turn's recipients are, then publish in order."""
        try:
            self._gathered()
        except Exception:  # a bug: drop this turn's messages, keep relaying
            self.log.failure("relaying to other nodes failed")
            self._drop_outgoing("internal error")

    def _gathered(self) -> None:
        self._publish_call = None
        batch = _Batch(self._gathering)
        self._gathering = []
        commands = self._commands
        if commands is None:  # lost meanwhile; _commands_down counted them
            return
        self._outgoing.append(batch)
        names = batch.names()
        if names:
            where = commands.execute_command("MGET", *[self._key_prefix + n for n in names])
            where.addCallbacks(self._located, self._not_located, (batch, names), None, (batch,))
        else:
            batch.owners = {}
            self._pump()

    def _located(self, owners: list[bytes | None], batch: _Batch, names: list[bytes]) -> None:
        batch.owners = dict(zip(names, owners, strict=True))
        self._pump()

    def _not_located(self, failure: Failure, batch: _Batch) -> None:
        if not batch.dropped:
            batch.owners = {}
            for entry in batch.entries:
                if entry.recipients is not None:
                    entry.recipients = []
                    self._not_relayed("Redis error")
            self.log.info("recipients not looked up: {error}", error=failure.getErrorMessage())
            self._pump()

    def _pump(self) -> None:
        """Publish queued batches, in order, as far as the window allows."""
        queue = self._outgoing
        try:
            while queue and self._commands is not None:
                batch = queue[0]
                if batch.owners is None or not self._publish(batch):
                    return  # waiting for Redis to say where, or for room in the window
                queue.popleft()
        except Exception:  # a bug: drop what waits rather than stall relaying for good
            self.log.failure("relaying to other nodes failed")
            self._drop_outgoing("internal error")
        if not queue:
            self._fire_drained()

    def _fire_drained(self) -> None:
        drained, self._drained = self._drained, []
        for waiting in drained:
            if not waiting.called:  # else it timed out
                waiting.callback(None)

    def _publish(self, batch: _Batch) -> bool:
        """Publish what is left of ``batch``; True when it is all out.

        Consecutive small messages are published as one batch per channel.
        A run stops at a change between SEND and BROADCAST (the two go to
        different channels, and the order between them must hold) and at a
        big message, which goes in pieces under the window.
        """
        assert batch.owners is not None
        run: dict[bytes, list[bytes]] = {}
        run_is_broadcast = False
        entries = batch.entries
        while batch.position < len(entries):
            entry = entries[batch.position]
            if entry.is_big or (run and run_is_broadcast != (entry.recipients is None)):
                self._publish_run(run)
                run = {}
            if entry.is_big:
                if not self._publish_big(entry, batch.owners):
                    return False
            else:
                run_is_broadcast = entry.recipients is None
                for channel, names in self._channels(entry, batch.owners):
                    run.setdefault(channel, []).append(entry.header(self.node_id, names))
                    run[channel].append(entry.payload)  # type: ignore[arg-type]
            batch.position += 1
            self._relay_bytes -= entry.held_bytes
            entry.release()
        self._publish_run(run)
        return True

    def _channels(
        self, entry: _Outgoing, owners: dict[bytes, bytes | None]
    ) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """Where ``entry`` goes, and whom it names on each node's channel."""
        if entry.recipients is None:
            channels = [(self._broadcast_channel, ())]
        else:
            by_node: dict[bytes, list[bytes]] = {}
            for name in entry.recipients:
                owner = owners.get(name)
                if owner is not None and owner != self.node_id:  # offline, or gone from here
                    by_node.setdefault(owner, []).append(name)
            channels = [(self._node_prefix + node, tuple(ns)) for node, ns in by_node.items()]
        if self._service is not None:
            self._service.stats.messages_relayed_out += len(channels)
        return channels

    def _publish_run(self, run: dict[bytes, list[bytes]]) -> None:
        for channel, parts in run.items():
            # parts alternate header and payload; a batch frames each message.
            messages = [parts[i] + parts[i + 1] for i in range(0, len(parts), 2)]
            self._send(channel, relay_wire.encode_batch(messages))

    def _publish_big(self, entry: _Outgoing, owners: dict[bytes, bytes | None]) -> bool:
        """Publish a big message's beginning, pieces and end, as far as the window allows."""
        if not entry.begun:
            entry.begun = True
            entry.channels = self._channels(entry, owners)
            for channel, names in entry.channels:
                self._send(channel, relay_wire.encode_batch([entry.header(self.node_id, names)]))
        channels = entry.channels
        while self._unanswered_bytes < RELAY_WINDOW_BYTES:
            piece = entry.next_piece() if channels else b""
            if not piece:
                end = relay_wire.encode_end(self.node_id, entry.message_id)
                end = relay_wire.encode_batch([end])
                for channel, _ in channels:
                    self._send(channel, end)
                return True
            message = relay_wire.encode_batch(
                [relay_wire.encode_piece(self.node_id, entry.message_id, piece)]
            )
            for channel, _ in channels:
                self._send(channel, message)
        return False

    def _send(self, channel: bytes, message: bytes) -> None:
        assert self._commands is not None
        size = len(message)
        self._unanswered_bytes += size
        self._relay_bytes += size
        published = self._commands.execute_command("PUBLISH", channel, message)
        published.addBoth(self._answered, size)

    def _answered(self, result: object, size: int) -> None:
        self._unanswered_bytes -= size
        self._relay_bytes -= size
        if self._outgoing and self._unanswered_bytes < RELAY_WINDOW_BYTES:
            self._pump()

    def _not_relayed(self, reason: str) -> None:
        if self._service is not None:
            self._service.stats.messages_not_relayed[reason] += 1

    def _drop_outgoing(self, reason: str) -> None:
        """Drop every message not yet (wholly) published: they will not be."""
        queue, self._outgoing = self._outgoing, deque()
        queue.append(_Batch(self._gathering))
        self._gathering = []
        if self._publish_call is not None and self._publish_call.active():
            self._publish_call.cancel()
        self._publish_call = None
        count = 0
        for batch in queue:
            batch.dropped = True
            self._relay_bytes -= batch.held_bytes
            count += len(batch.entries) - batch.position
            batch.release()
        for _ in range(count):
            self._not_relayed(reason)
        self._fire_drained()
        if count:
            self.log.info(
                "{count} messages for other nodes dropped: {reason}", count=count, reason=reason
            )

    # -- relaying in ---------------------------------------------------------

    def _relay_received(self, channel: bytes, data: bytes) -> None:
        try:
            messages = relay_wire.decode_batch(data)
        except relay_wire.RelayFormatError as error:
            self.log.warn("bad relay batch on {channel}: {error}", channel=channel, error=error)
            return
        for message in messages:
            try:
                self._relay_message(channel, message)
            except relay_wire.RelayFormatError as error:
                self.log.warn("bad relay message on {channel}: {e}", channel=channel, e=error)
            except Exception:  # a bug: lose this message, not the connection or the others
                self.log.failure("handling a relayed message failed")

    def _relay_message(self, channel: bytes, data: bytes) -> None:
        header, payload = relay_wire.decode(data)
        if header.origin == self.node_id:
            return  # our own BROADCAST, already delivered here
        service = self._service
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
        assert self._service is not None
        try:
            body.finish(add_terminator=False)  # the frames came with their C0
            if body.error is not None:
                self.log.info(
                    "relayed message from {sender} dropped: {error}",
                    sender=verbose.escape(sender),
                    error=body.error,
                )
            else:
                self._service.receive(sender, recipients, body)
        finally:
            body.release()

    def _relay_batch_done(self) -> None:
        if self._service is not None:
            self._service.writes.flush()

    def _drop_incoming(self) -> None:
        incoming, self._incoming = self._incoming, {}
        for message in incoming.values():
            message.body.release()

    # -- connections ---------------------------------------------------------

    def _commands_up(self, connection: txredisapi.RedisProtocol) -> None:
        self._commands = connection
        self.log.info(
            "{again} Redis at {host}:{port}",
            again="connected again to" if self._was_connected else "connected to",
            host=self.address.host,
            port=self.address.port,
        )
        self._was_connected = True
        if self._dropped_while_away:
            self.log.info(
                "{count} messages for other nodes were dropped while Redis was away",
                count=self._dropped_while_away,
            )
            self._dropped_while_away = 0
        self._maintain()  # after a Redis restart: the registry is made again at once

    def _commands_down(self, connection: txredisapi.RedisProtocol) -> None:
        if self._commands is not connection:
            return
        self._commands = None
        self.log.info(
            "lost Redis at {host}:{port}: logins refused and messages for other "
            "nodes dropped until it is back",
            host=self.address.host,
            port=self.address.port,
        )
        self._drop_outgoing("Redis connection lost")

    def _subscriber_up(self, connection: txredisapi.SubscriberProtocol) -> None:
        subscribed = connection.subscribe([self._node_channel, self._broadcast_channel])
        subscribed.addCallbacks(self._listening, self._not_listening, (connection,))

    def _listening(self, reply: object, connection: txredisapi.SubscriberProtocol) -> None:
        if connection.connected:
            self._subscribed = True

    def _not_listening(self, failure: Failure) -> None:
        self.log.failure("subscribing to the relay channels failed", failure)

    def _subscriber_down(self, connection: txredisapi.SubscriberProtocol) -> None:
        self._subscribed = False
        self._drop_incoming()  # their remaining pieces will not come

    # -- claims --------------------------------------------------------------

    def _maintain(self) -> None:
        """Refresh the claims, and drop big incoming messages whose sender went quiet.

        Nothing may escape: the LoopingCall would stop, the claims would lapse
        and every user here would lose their id to the next login elsewhere.
        """
        try:
            self._refresh_claims()
            self._release_doubtful_claims()
            self._drop_stale_incoming()
        except Exception:
            self.log.failure("cluster maintenance failed; it runs again next time")

    def _drop_stale_incoming(self) -> None:
        deadline = self._reactor.seconds() - self.limits.cluster_ttl_s
        for origin, message in list(self._incoming.items()):
            if message.last_piece_at < deadline:
                del self._incoming[origin]
                message.body.release()
                self.log.info(
                    "relayed message from {sender} dropped: its node stopped sending it",
                    sender=verbose.escape(message.sender),
                )

    def _refresh_claims(self) -> None:
        commands = self._commands
        if commands is None:
            return
        names = self._local.names()
        args = [self.node_id, self._ttl_ms]
        for start in range(0, len(names), CLAIMS_PER_CALL):
            batch = names[start : start + CLAIMS_PER_CALL]
            keys = [self._key_prefix + name for name in batch]
            refreshed = commands.eval(REFRESH_SCRIPT, keys, args)
            refreshed.addCallbacks(self._refreshed, self._refresh_failed, (batch,))

    def _release_doubtful_claims(self) -> None:
        if self._commands is None or not self._doubtful:
            return
        doubtful, self._doubtful = self._doubtful, set()
        self._release([name for name in doubtful if self._local.lookup(name) is None])

    def _refreshed(self, taken: list[int], batch: list[bytes]) -> None:
        for index in taken:
            name = batch[index - 1]
            recipient = self._local.lookup(name)
            if recipient is None:
                continue
            self.log.info(
                "{user} is now logged in on another node: disconnecting it here",
                user=verbose.escape(name),
            )
            self._local.unregister(name, recipient)
            try:
                recipient.disconnect("userid taken on another node")
            except Exception:
                self.log.failure("disconnecting {user} failed", user=verbose.escape(name))

    def _refresh_failed(self, failure: Failure) -> None:
        self.log.info("refreshing claims failed: {error}", error=failure.getErrorMessage())

    def _release(self, names: list[bytes]) -> None:
        commands = self._commands
        if commands is None:
            return  # the claims lapse after the TTL
        keys = [self._key_prefix + name for name in names]
        released = maybeDeferred(commands.eval, RELEASE_SCRIPT, keys, [self.node_id])
        released.addErrback(
            lambda failure: self.log.info(
                "releasing claims failed (they lapse after the TTL): {error}",
                error=failure.getErrorMessage(),
            )
        )
