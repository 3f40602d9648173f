"""Who is online and how to reach them: the interfaces the service routes through.

The service never touches a transport: it reaches a client through
:class:`IRecipient` (implemented by the TCP protocol and by a UDP session),
and finds clients by userid through an :class:`IRouter`. Today's router is
:class:`LocalRouter`, one process's table; a router spanning several server
processes can take its place without the service changing.
"""

from zope.interface import Attribute, Interface, implementer

from chatproto.message import Delivery


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


class IRouter(Interface):
    """The table of logged-in users."""

    def register(name: bytes, recipient: IRecipient) -> bool:
        """Claim ``name`` for ``recipient``; False if someone has it already."""

    def unregister(name: bytes, recipient: IRecipient) -> None:
        """Release ``name`` if ``recipient`` holds it."""

    def lookup(name: bytes) -> IRecipient | None:
        """Return the recipient logged in as ``name``, or None."""

    def everyone() -> list[IRecipient]:
        """Return every logged-in recipient (a snapshot the caller may keep)."""

    def __len__() -> int:
        """Return how many users are logged in."""


@implementer(IRouter)
class LocalRouter:
    """An :class:`IRouter` for the users of this process: a dict."""

    def __init__(self) -> None:
        self._users: dict[bytes, IRecipient] = {}

    def register(self, name: bytes, recipient: IRecipient) -> bool:
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

    def __len__(self) -> int:
        return len(self._users)
