"""The two Redis connections of a node, kept up by ClientServices, and their coming and going.

Claims, lookups and publishing go through one *command* connection (one, so
that order holds); this node's two channels arrive on one *subscriber*
connection. Each is kept by a :class:`~twisted.application.internet.ClientService`
that reconnects with backoff. When one comes up or goes down, its protocol
tells the owner (the router), which hands the command connection to the
parts that use it; :class:`RedisConnections` keeps the services, subscribes,
and logs the ups and downs.
"""

from typing import Protocol

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatproto.cluster.address import RedisAddress
from chatproto.limits import Limits


class ConnectionOwner(Protocol):
    """What the connections report to: the router (see :class:`RedisRouter
    <chatproto.cluster.router.RedisRouter>`)."""

    address: RedisAddress
    limits: Limits
    log: Logger

    def _commands_up(self, connection: txredisapi.RedisProtocol) -> None: ...

    def _commands_down(self, connection: txredisapi.RedisProtocol) -> None: ...

    def _subscriber_up(self, connection: txredisapi.SubscriberProtocol) -> None: ...

    def _subscriber_down(self, connection: txredisapi.SubscriberProtocol) -> None: ...

    def _relay_received(self, channel: bytes, data: bytes) -> None: ...

    def _relay_batch_done(self) -> None: ...


class _RedisFactory(Factory):
    """Build txredisapi connections for a router's ClientServices."""

    noisy = False
    isLazy = False  # read by txredisapi when AUTH or SELECT fails

    def __init__(self, router: ConnectionOwner, protocol: type) -> None:
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


class RedisConnections:
    """The ClientServices of the command and subscriber connections.

    Attributes:
        subscribed: whether this node's channels are being listened to.
    """

    def __init__(self, owner: ConnectionOwner, reactor) -> None:  # type: ignore[no-untyped-def]
        self.log = owner.log
        self.subscribed = False
        self._address = owner.address
        self._was_connected = False
        endpoint = HostnameEndpoint(reactor, owner.address.host, owner.address.port)
        retry = backoffPolicy(initialDelay=0.1, maxDelay=2.0)
        self._command_service = ClientService(
            endpoint, _RedisFactory(owner, _CommandConnection), retry, reactor
        )
        self._subscriber_service = ClientService(
            endpoint, _RedisFactory(owner, _SubscriberConnection), retry, reactor
        )

    def start(self) -> None:
        """Connect both, and keep them connected."""
        self._command_service.startService()
        self._subscriber_service.startService()

    def stop(self) -> Deferred[None]:
        """Disconnect both; fires once they are closed."""
        stopped = DeferredList(
            [self._command_service.stopService(), self._subscriber_service.stopService()],
            consumeErrors=True,
        )
        return stopped.addCallback(lambda _: None)

    def commands_up(self, dropped_while_away: int) -> None:
        """Log that the command connection is up, and what was dropped while it was not."""
        self.log.info(
            "{again} Redis at {host}:{port}",
            again="connected again to" if self._was_connected else "connected to",
            host=self._address.host,
            port=self._address.port,
        )
        self._was_connected = True
        if dropped_while_away:
            self.log.info(
                "{count} messages for other nodes were dropped while Redis was away",
                count=dropped_while_away,
            )

    def commands_down(self) -> None:
        """Log that the command connection was lost."""
        self.log.info(
            "lost Redis at {host}:{port}: logins refused and messages for other "
            "nodes dropped until it is back",
            host=self._address.host,
            port=self._address.port,
        )

    def subscribe(self, connection: txredisapi.SubscriberProtocol, channels: list[bytes]) -> None:
        """Listen to ``channels`` on the subscriber ``connection`` that just came up."""
        subscribed = connection.subscribe(channels)
        subscribed.addCallbacks(self._listening, self._not_listening, (connection,))

    def _listening(self, reply: object, connection: txredisapi.SubscriberProtocol) -> None:
        if connection.connected:
            self.subscribed = True

    def _not_listening(self, failure: Failure) -> None:
        self.log.failure("subscribing to the relay channels failed", failure)

    def subscriber_down(self) -> None:
        """Note that the channels are not listened to any more."""
        self.subscribed = False
