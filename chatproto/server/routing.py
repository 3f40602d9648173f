"""Who is online and how to reach them: the interfaces the service routes through.

The service never touches a transport: it reaches a client through
:class:`IRecipient` (implemented by the TCP protocol and by a UDP session),
and finds clients by userid through an :class:`IRouter`. Today's router is
:class:`LocalRouter`, one process's table; a router spanning several server
processes can take its place without the service changing
(:class:`chatproto.cluster.router.RedisRouter`).

A router holds the users of this process and may know of users elsewhere:
claiming a userid can take a round trip (so :meth:`IRouter.register` answers
with a Deferred), and a message for users this process does not hold is
handed to :meth:`IRouter.forward`.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed
from zope.interface import Attribute, Interface, implementer

from chatproto.server.message import Body, Delivery

if TYPE_CHECKING:
    from chatproto.server.service import ChatService


class IRecipient(Interface):
    """A client the service can talk to."""

    name = Attribute("The client's userid (bytes), or None before it logged in.")
    peer = Attribute("The client's IP address (str), for display.")
    expires_when_idle = Attribute(
        "True if the login lapses after a silence (UDP), False if it lasts while connected."
    )

    def deliver(delivery: Delivery) -> bool:
        """Send ``delivery`` to the client, in order after earlier ones.

        Returns False if this client cannot take it (a chunked message for a
        UDP client); the message is then dropped for this client.
        """

    def disconnect(reason: str) -> None:
        """Drop the client; its userid is released (now or when the transport closes)."""


class IClient(IRecipient):
    """A client whose commands the server answers."""

    def reply(data: bytes) -> None:
        """Send a reply (``OK``/``ERROR``) to the client."""

    def resume_input() -> None:
        """Go on with the client's input after its session stopped to wait.

        A session waits while a login is being answered (the router may take
        a round trip); the client's later commands are held until then.
        """


class IRouter(Interface):
    """The table of logged-in users, and the way to users of other processes."""

    def start(service: "ChatService") -> None:
        """Begin routing for ``service``.

        Messages from elsewhere for its users go to ``service.receive``, their
        bodies made with ``service.new_body``; ``service.writes`` is flushed
        after each batch of them.
        """

    def stop() -> Deferred[None] | None:
        """Stop routing (after the local users were logged out); may take a moment."""

    def register(name: bytes, recipient: IRecipient) -> Deferred[bool]:
        """Claim ``name`` for ``recipient``: True, or False if someone has it already.

        The answer may come later; until it does, ``name`` is not registered.
        """

    def unregister(name: bytes, recipient: IRecipient) -> None:
        """Release ``name`` if ``recipient`` holds it."""

    def lookup(name: bytes) -> IRecipient | None:
        """Return the local recipient logged in as ``name``, or None."""

    def everyone() -> list[IRecipient]:
        """Return every local logged-in recipient (a snapshot the caller may keep)."""

    def forward(sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        """Pass a message on to the users named that this process does not hold.

        ``recipients`` are the userids not found by :meth:`lookup`, or None
        for a BROADCAST (everyone elsewhere). The body is only borrowed for
        the call: a router that keeps it longer acquires it.
        """

    def __len__() -> int:
        """Return how many users are logged in here."""


@implementer(IRouter)
class LocalRouter:
    """An :class:`IRouter` for the users of this process: a dict."""

    def __init__(self) -> None:
        self._users: dict[bytes, IRecipient] = {}

    def start(self, service: "ChatService") -> None:
        """Nothing comes from elsewhere."""

    def stop(self) -> None:
        """Nothing to stop."""

    def register(self, name: bytes, recipient: IRecipient) -> Deferred[bool]:
        return succeed(self.claim(name, recipient))

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

    def __len__(self) -> int:
        return len(self._users)
