"""The router of one process: who is online here, in a dict.

:class:`LocalRouter` is the :class:`~chatproto.server.interfaces.IRouter` a
server uses alone: claiming a userid is answered at once, and a message for
users not found here is for offline users (PROTOCOL §3). A router spanning
several server processes takes its place without the service changing
(:class:`chatproto.cluster.router.RedisRouter` keeps one of these for the
users of its own node).

The interfaces live in :mod:`chatproto.server.interfaces`; this module imports
only them, never the service.
"""

from collections.abc import Sequence

from zope.interface import implementer

from chatproto.server.interfaces import IRecipient, IRouter, IRouterHost
from chatproto.server.message import Body


@implementer(IRouter)
class LocalRouter:
    """An :class:`IRouter` for the users of this process: a dict."""

    forwards = False  # there is no elsewhere

    def __init__(self) -> None:
        self._users: dict[bytes, IRecipient] = {}

    def start(self, host: IRouterHost) -> None:
        """Nothing comes from elsewhere."""

    def stop(self) -> None:
        """Nothing to stop."""

    def register(self, name: bytes, recipient: IRecipient) -> bool:
        """Claim ``name`` at once (no Deferred: a login here costs no round trip)."""
        return self.claim(name, recipient)

    def claim(self, name: bytes, recipient: IRecipient) -> bool:
        """Claim ``name`` at once: True, or False if it is taken."""
        if name in self._users:
            return False
        self._users[name] = recipient
        return True

    def unregister(self, name: bytes, recipient: IRecipient) -> None:
        if self._users.get(name) is recipient:
            del self._users[name]

    def lookup(self, name: bytes) -> IRecipient | None:
        return self._users.get(name)

    def everyone(self) -> list[IRecipient]:
        return list(self._users.values())

    def names(self) -> list[bytes]:
        """Return every local userid (a snapshot)."""
        return list(self._users)

    def forward(self, sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        """There is no elsewhere: users not found here are offline (PROTOCOL §3)."""

    def forward_run(
        self, sender: bytes, recipients: Sequence[bytes] | None, bodies: list[bytes]
    ) -> None:
        """There is no elsewhere (see :meth:`forward`)."""

    def __len__(self) -> int:
        return len(self._users)
