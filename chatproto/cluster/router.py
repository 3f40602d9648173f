"""One namespace across many chatproto processes, shared through Redis (``--cluster``).

:class:`RedisRouter` is an :class:`~chatproto.server.interfaces.IRouter`; with
the rest of :mod:`chatproto.cluster` it is the only part of chatproto that
knows of Redis (through ``txredisapi``). This module composes the parts, each
in its own module: the keys and scripts (:mod:`~chatproto.cluster.scripts`),
the connections (:mod:`~chatproto.cluster.connections`), the claims
(:mod:`~chatproto.cluster.claims`), relaying out
(:mod:`~chatproto.cluster.outgoing`) and in (:mod:`~chatproto.cluster.incoming`).
Each process,
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

from collections.abc import Sequence

import txredisapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from chatproto.cluster.address import RedisAddress
from chatproto.cluster.claims import Claims
from chatproto.cluster.connections import RedisConnections
from chatproto.cluster.incoming import IncomingRelay
from chatproto.cluster.outgoing import OutgoingRelay
from chatproto.cluster.queued import (
    RELAY_ENTRY_OVERHEAD_BYTES,
    RELAY_PIECE_BYTES,
    RELAY_WINDOW_BYTES,
)
from chatproto.cluster.scripts import Keys, new_node_id
from chatproto.limits import Limits
from chatproto.server import verbose
from chatproto.server.interfaces import IRecipient, IRouter, IRouterHost
from chatproto.server.message import Body
from chatproto.server.routing import LocalRouter

__all__ = [
    "RELAY_ENTRY_OVERHEAD_BYTES",
    "RELAY_PIECE_BYTES",
    "RELAY_WINDOW_BYTES",
    "RedisRouter",
    "new_node_id",
]


@implementer(IRouter)
class RedisRouter:
    """Route between this node's users and those of other nodes, through Redis.

    Attributes:
        address: where Redis is.
        limits: the server's limits (claim TTL, Redis timeout, relay backlog).
        node_id: this node's name in Redis (its channel and its claims' value).
    """

    log = Logger()
    forwards = True  # users not found here may be on other nodes

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
        log = self.log  # one logger for every part, as when they were one class
        keys = Keys(address.db, self.node_id)
        self._channels = [keys.node_channel, keys.broadcast_channel]
        self._local = LocalRouter()
        self._commands: txredisapi.RedisProtocol | None = None  # set while connected
        self._claims = Claims(
            self._local, self.node_id, keys, max(int(limits.cluster_ttl_s * 1000), 1), log
        )
        self._outgoing = OutgoingRelay(self.node_id, keys, reactor, limits, log)
        self._incoming = IncomingRelay(self.node_id, keys, reactor, limits, log)
        # The hot paths go straight to the part that does the work: no call between.
        self.forward = self._outgoing.forward
        self.forward_run = self._outgoing.forward_run
        self._relay_received = self._incoming.relay_received
        self._relay_batch_done = self._incoming.batch_done
        self._maintenance = LoopingCall(self._maintain)
        self._maintenance.clock = reactor
        self._connections = RedisConnections(self, reactor)

    # -- IRouter -------------------------------------------------------------

    def start(self, host: IRouterHost) -> None:
        self._outgoing.host = self._incoming.host = host
        self.log.info(
            "cluster node {node} using Redis at {host}:{port} database {db}",
            node=self.node_id.decode(),
            host=self.address.host,
            port=self.address.port,
            db=self.address.db,
        )
        self._connections.start()
        done = self._maintenance.start(self.limits.cluster_ttl_s / 3, now=False)
        done.addErrback(lambda failure: self.log.failure("cluster maintenance stopped", failure))

    def stop(self) -> Deferred[None]:
        """Stop talking to Redis, once the messages already accepted are published.

        The wait for them is at most ``cluster_timeout_s``; what is left then
        is dropped. Claims given back before now are sent first.
        """
        if self._maintenance.running:
            self._maintenance.stop()
        drained = self._outgoing.when_drained()
        drained.addCallback(self._disconnect)
        return drained

    def _disconnect(self, _: object) -> Deferred[None]:
        self._outgoing.drop("server stopping")
        self._incoming.drop()
        return self._connections.stop()

    def register(self, name: bytes, recipient: IRecipient) -> Deferred[bool]:
        if self._local.lookup(name) is not None:
            return succeed(False)
        if self._commands is None or not self._connections.subscribed:
            # Not in the cluster yet: no way to tell whether the userid is free,
            # or no way to receive what other nodes send to it.
            self.log.info(
                "login of {user} refused: Redis is not reachable", user=verbose.escape(name)
            )
            return succeed(False)
        return self._claims.claim(name, recipient)

    def unregister(self, name: bytes, recipient: IRecipient) -> None:
        if self._local.lookup(name) is not recipient:
            return
        self._local.unregister(name, recipient)
        self._claims.release([name])

    def lookup(self, name: bytes) -> IRecipient | None:
        return self._local.lookup(name)

    def everyone(self) -> list[IRecipient]:
        return self._local.everyone()

    def __len__(self) -> int:
        return len(self._local)

    def forward(self, sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        """Relay a message to the users named elsewhere (see :meth:`OutgoingRelay.forward`).

        Each instance binds this name to its :class:`OutgoingRelay`'s method
        directly; this one is the interface's, for the class.
        """
        self._outgoing.forward(sender, recipients, body)

    def forward_run(
        self, sender: bytes, recipients: Sequence[bytes] | None, bodies: list[bytes]
    ) -> None:
        """Relay a run of short messages (see :meth:`OutgoingRelay.forward_run`).

        Bound to the relay's method on each instance, as :meth:`forward` is.
        """
        self._outgoing.forward_run(sender, recipients, bodies)

    # -- connections ---------------------------------------------------------

    def _use_commands(self, connection: txredisapi.RedisProtocol | None) -> None:
        self._commands = self._claims.commands = self._outgoing.commands = connection

    def _commands_up(self, connection: txredisapi.RedisProtocol) -> None:
        self._use_commands(connection)
        self._connections.commands_up(self._outgoing.dropped_while_away)
        self._outgoing.dropped_while_away = 0
        self._maintain()  # after a Redis restart: the registry is made again at once

    def _commands_down(self, connection: txredisapi.RedisProtocol) -> None:
        if self._commands is not connection:
            return
        self._use_commands(None)
        self._connections.commands_down()
        self._outgoing.drop("Redis connection lost")

    def _subscriber_up(self, connection: txredisapi.SubscriberProtocol) -> None:
        self._connections.subscribe(connection, self._channels)

    def _subscriber_down(self, connection: txredisapi.SubscriberProtocol) -> None:
        self._connections.subscriber_down()
        self._incoming.drop()  # their remaining pieces will not come

    # -- maintenance ---------------------------------------------------------

    def _maintain(self) -> None:
        """Refresh the claims, and drop big incoming messages whose sender went quiet.

        Nothing may escape: the LoopingCall would stop, the claims would lapse
        and every user here would lose their id to the next login elsewhere.
        """
        try:
            self._claims.refresh()
            self._claims.release_doubtful()
            self._incoming.drop_stale()
        except Exception:
            self.log.failure("cluster maintenance failed; it runs again next time")
