"""Relaying out: this node's messages for users of other nodes, published in order.

:class:`OutgoingRelay` takes what :meth:`RedisRouter.forward
<chatproto.cluster.router.RedisRouter.forward>` is given. The messages of
one reactor turn make one :class:`Batch`: one ``MGET`` says where their
recipients are, then runs of small messages go out as one ``PUBLISH`` per
channel, and a big body (over :data:`RELAY_PIECE_BYTES`) in pieces, at most
:data:`RELAY_WINDOW_BYTES` unanswered at a time. Batches wait in one queue,
so order from a sender holds; what they hold counts against
``Limits.max_relay_backlog_bytes`` (the relay backlog).
"""

import itertools
from collections import deque
from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatproto.cluster.queued import (
    RELAY_WINDOW_BYTES,
    Batch,
    Outgoing,
)
from chatproto.cluster.scripts import Keys
from chatproto.limits import Limits
from chatproto.server.interfaces import IRouterHost
from chatproto.server.message import Body
from chatproto.wire import relay as relay_wire


class OutgoingRelay:
    """The queue of messages for other nodes, and their publishing.

    Attributes:
        commands: the command connection while it is up, else None (the
            router sets it; messages are dropped while it is None).
        host: the service, for its counters (set when the router starts).
        node_id: this node's name, the origin of what it publishes.
        dropped_while_away: messages dropped for want of Redis since it was
            last up (the router reports and resets it).
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
        self.commands = None  # a txredisapi.RedisProtocol while connected
        self.host: IRouterHost | None = None
        self.dropped_while_away = 0
        self._reactor = reactor
        self._limits = limits
        self._key_prefix = keys.user_prefix
        self._node_prefix = keys.node_prefix
        self._broadcast_channel = keys.broadcast_channel
        self._gathering: list[Outgoing] = []  # this turn's, published at its end
        self._publish_call: IDelayedCall | None = None
        self._queue: deque[Batch] = deque()
        self._drained: list[Deferred[None]] = []  # fired when _queue empties
        self._relay_bytes = 0  # held by the queue, and published but unanswered
        self._unanswered_bytes = 0
        self._message_ids = itertools.count(1)
        self._backlog_full = False

    def forward(self, sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        """Queue a message for the users named elsewhere (``IRouter.forward``).

        It is dropped, and counted, while Redis is unreachable or the relay
        backlog is full; else it is published at the end of this reactor turn.
        """
        if self.commands is None:
            self.dropped_while_away += 1
            self._not_relayed("Redis unreachable")
            return
        names = None if recipients is None else list(recipients)
        self._queue_entry(Outgoing(sender, names, body, next(self._message_ids)))

    def forward_run(
        self, sender: bytes, recipients: Sequence[bytes] | None, bodies: list[bytes]
    ) -> None:
        """Queue short messages from ``sender`` to the same users (``IRouter.forward_run``).

        As :meth:`forward` for each of ``bodies`` (each framed as on the
        wire), but published as one run: one header for them all.
        """
        if self.commands is None:
            self.dropped_while_away += len(bodies)
            self._not_relayed("Redis unreachable", len(bodies))
            return
        names = None if recipients is None else list(recipients)
        self._queue_entry(Outgoing.of_run(sender, names, bodies, next(self._message_ids)))

    def _queue_entry(self, entry: Outgoing) -> None:
        """Gather ``entry`` for the end of this turn, unless the relay backlog is full."""
        # One message is always let in, however big (--max-message may pass the limit).
        backlog = self._relay_bytes
        if backlog and backlog + entry.held_bytes > self._limits.max_relay_backlog_bytes:
            entry.release()
            self._not_relayed("relay backlog full", entry.count)
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

    def when_drained(self) -> Deferred[None]:
        """Publish this turn's messages now; fire once the queue is empty.

        The wait is at most ``cluster_timeout_s`` (then it fires anyway), and
        none while Redis is unreachable.
        """
        if self._publish_call is not None and self._publish_call.active():
            self._publish_call.cancel()
            self._end_of_turn()
        drained: Deferred[None] = Deferred()
        if self._queue and self.commands is not None:
            self._drained.append(drained)
            drained.addTimeout(self._limits.cluster_timeout_s, self._reactor, lambda *_: None)
        else:
            drained.callback(None)
        return drained

    def _end_of_turn(self) -> None:
        """Look up where this turn's recipients are, then publish in order."""
        try:
            self._gathered()
        except Exception:  # a bug: drop this turn's messages, keep relaying
            self.log.failure("relaying to other nodes failed")
            self.drop("internal error")

    def _gathered(self) -> None:
        self._publish_call = None
        batch = Batch(self._gathering)
        self._gathering = []
        commands = self.commands
        if commands is None:  # lost meanwhile; drop() counted them
            return
        self._queue.append(batch)
        names = batch.names()
        if names:
            where = commands.execute_command("MGET", *[self._key_prefix + n for n in names])
            where.addCallbacks(self._located, self._not_located, (batch, names), None, (batch,))
        else:
            batch.owners = {}
            self._pump()

    def _located(self, owners: list[bytes | None], batch: Batch, names: list[bytes]) -> None:
        batch.owners = dict(zip(names, owners, strict=True))
        self._pump()

    def _not_located(self, failure: Failure, batch: Batch) -> None:
        if not batch.dropped:
            batch.owners = {}
            for entry in batch.entries:
                if entry.recipients is not None:
                    entry.recipients = []
                    self._not_relayed("Redis error", entry.count)
            self.log.info("recipients not looked up: {error}", error=failure.getErrorMessage())
            self._pump()

    def _pump(self) -> None:
        """Publish queued batches, in order, as far as the window allows."""
        queue = self._queue
        try:
            while queue and self.commands is not None:
                batch = queue[0]
                if batch.owners is None or not self._publish(batch):
                    return  # waiting for Redis to say where, or for room in the window
                queue.popleft()
        except Exception:  # a bug: drop what waits rather than stall relaying for good
            self.log.failure("relaying to other nodes failed")
            self.drop("internal error")
        if not queue:
            self._fire_drained()

    def _fire_drained(self) -> None:
        drained, self._drained = self._drained, []
        for waiting in drained:
            if not waiting.called:  # else it timed out
                waiting.callback(None)

    def _publish(self, batch: Batch) -> bool:
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
        self, entry: Outgoing, owners: dict[bytes, bytes | None]
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
        if self.host is not None:
            self.host.stats.messages_relayed_out += len(channels) * entry.count
        return channels

    def _publish_run(self, run: dict[bytes, list[bytes]]) -> None:
        for channel, parts in run.items():
            # parts alternate header and payload; a batch frames each message.
            messages = [parts[i] + parts[i + 1] for i in range(0, len(parts), 2)]
            self._send(channel, relay_wire.encode_batch(messages))

    def _publish_big(self, entry: Outgoing, owners: dict[bytes, bytes | None]) -> bool:
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
        assert self.commands is not None
        size = len(message)
        self._unanswered_bytes += size
        self._relay_bytes += size
        published = self.commands.execute_command("PUBLISH", channel, message)
        published.addBoth(self._answered, size)

    def _answered(self, result: object, size: int) -> None:
        self._unanswered_bytes -= size
        self._relay_bytes -= size
        if self._queue and self._unanswered_bytes < RELAY_WINDOW_BYTES:
            self._pump()

    def _not_relayed(self, reason: str, count: int = 1) -> None:
        if self.host is not None and count:
            self.host.stats.messages_not_relayed[reason] += count

    def drop(self, reason: str) -> None:
        """Drop every message not yet (wholly) published: they will not be."""
        queue, self._queue = self._queue, deque()
        queue.append(Batch(self._gathering))
        self._gathering = []
        if self._publish_call is not None and self._publish_call.active():
            self._publish_call.cancel()
        self._publish_call = None
        count = 0
        for batch in queue:
            batch.dropped = True
            self._relay_bytes -= batch.held_bytes
            count += batch.unpublished_count
            batch.release()
        self._not_relayed(reason, count)
        self._fire_drained()
        if count:
            self.log.info(
                "{count} messages for other nodes dropped: {reason}", count=count, reason=reason
            )
