"""Claims: which userids this node holds in Redis, kept alive and given back.

A login claims its userid with :data:`~chatproto.cluster.scripts.CLAIM_SCRIPT`
(atomic, so a userid online on any node is refused everywhere). The router
refreshes the claims every third of the TTL (:meth:`Claims.refresh`, which
also makes them again after a Redis restart and disconnects a user whose id
another node holds now), and gives them back at logout. A claim whose answer
was lost (a timeout) is *doubtful*: Redis may hold it, so it is given back
when Redis answers again, unless a user here took the id meanwhile.
"""

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatproto.cluster.scripts import (
    CLAIM_SCRIPT,
    CLAIMS_PER_CALL,
    REFRESH_SCRIPT,
    RELEASE_SCRIPT,
    Keys,
)
from chatproto.server import verbose
from chatproto.server.interfaces import IRecipient
from chatproto.server.routing import LocalRouter


class Claims:
    """This node's claims in Redis, for the users of its :class:`LocalRouter`.

    Attributes:
        commands: the command connection while it is up, else None (the
            router sets it).
        node_id: this node's name, the value of its claims.
    """

    def __init__(
        self, local: LocalRouter, node_id: bytes, keys: Keys, ttl_ms: int, log: Logger
    ) -> None:
        self.commands = None  # a txredisapi.RedisProtocol while connected
        self.node_id = node_id
        self.log = log
        self._local = local
        self._key_prefix = keys.user_prefix
        self._ttl_ms = ttl_ms
        self._doubtful: set[bytes] = set()  # claims whose answer was lost

    def claim(self, name: bytes, recipient: IRecipient) -> Deferred[bool]:
        """Claim ``name`` in Redis, then here: True, or False if it is taken or Redis failed."""
        commands = self.commands
        assert commands is not None
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

    def refresh(self) -> None:
        """Keep every local userid's claim alive, making it again if Redis lost it.

        A userid another node holds now is disconnected here.
        """
        commands = self.commands
        if commands is None:
            return
        names = self._local.names()
        args = [self.node_id, self._ttl_ms]
        for start in range(0, len(names), CLAIMS_PER_CALL):
            batch = names[start : start + CLAIMS_PER_CALL]
            keys = [self._key_prefix + name for name in batch]
            refreshed = commands.eval(REFRESH_SCRIPT, keys, args)
            refreshed.addCallbacks(self._refreshed, self._refresh_failed, (batch,))

    def release_doubtful(self) -> None:
        """Give back the claims whose answer was lost, unless a user here holds them now."""
        if self.commands is None or not self._doubtful:
            return
        doubtful, self._doubtful = self._doubtful, set()
        self.release([name for name in doubtful if self._local.lookup(name) is None])

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

    def release(self, names: list[bytes]) -> None:
        """Give back the claims of ``names`` (those still ours); they lapse if this fails."""
        commands = self.commands
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
