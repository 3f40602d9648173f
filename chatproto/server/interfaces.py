"""The interfaces the server is built around, apart from what implements them.

As Twisted words keeps ``iwords.py`` apart from its service, this module
holds only the contracts, so that every other module can depend on them and
none has to import the module that imports it:

- :class:`IRecipient` / :class:`IClient`: a client the service talks to,
  implemented by the TCP protocol and the UDP session;
- :class:`IRouter`: the table of logged-in users and the way to users of
  other processes, implemented by :class:`chatproto.server.routing.LocalRouter`
  and :class:`chatproto.cluster.router.RedisRouter`;
- :class:`IRouterHost`: what a router may call back on, implemented by
  :class:`chatproto.server.service.ChatService`. A router is handed its host
  in :meth:`IRouter.start` and knows it by this interface only.

It imports nothing of the server but the message types the contracts name.
"""

from collections.abc import Sequence

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from chatproto.server.message import Body, Delivery, DeliveryRun, MessageBody


class IRecipient(Interface):
    """A client the service can talk to."""

    name = Attribute("The client's userid (bytes), or None before it logged in.")
    peer = Attribute("The client's IP address (str), for display.")
    expires_when_idle = Attribute(
        "True if the login lapses after a silence (UDP), False if it lasts while connected."
    )
    transport_name = Attribute(
        "What the client came over (str), for log lines and metrics: 'tcp', 'udp' or 'websocket'."
    )

    def deliver(delivery: Delivery | DeliveryRun) -> int:
        """Send ``delivery`` to the client, in order after earlier ones.

        Returns how many messages it took: ``delivery.count``, or 0 (False)
        if this client cannot take it (a chunked message for a UDP client, a
        client given up on); the message is then dropped for this client.
        Only a client that does not expire when idle (a stream) is handed a
        :class:`~chatproto.server.message.DeliveryRun`.
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


class IRouterHost(Interface):
    """What a router may call back on: the service whose users it routes.

    Only messages from elsewhere come back this way; the router never sees
    the service's sessions, users or random-message rule.
    """

    stats = Attribute(
        "The server's counters (a chatproto.server.stats.Stats); a router counts"
        " messages_relayed_out and messages_not_relayed there."
    )
    writes = Attribute(
        "The write batcher (a chatproto.server.writes.WriteBatcher) that deliveries"
        " made by receive() wait in; the router flushes it after each batch of them."
    )

    def receive(sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        """Deliver a message that came from another process to the users here.

        ``recipients`` are userids that were online here when it was sent
        (those gone since are skipped), or None for a BROADCAST. The body is
        only borrowed for the call.
        """

    def receive_run(
        sender: bytes, recipients: Sequence[bytes] | None, bodies: list[bytes]
    ) -> None:
        """Deliver short messages from elsewhere, all from ``sender`` to ``recipients``.

        ``bodies`` are each framed as on the wire (``b"<n>\\n<data>"``); the
        same as :meth:`receive` for each, in order.
        """

    def new_body() -> MessageBody:
        """Return an empty chunked body for a message being received (may spill to the spool)."""


class IRouter(Interface):
    """The table of logged-in users, and the way to users of other processes."""

    forwards = Attribute(
        "True if forward() may pass messages to other processes; False if users"
        " not found here are offline (forward() does nothing)."
    )

    def start(host: IRouterHost) -> None:
        """Begin routing for ``host`` (the service).

        Messages from elsewhere for its users go to ``host.receive``, their
        bodies made with ``host.new_body``; ``host.writes`` is flushed after
        each batch of them.
        """

    def stop() -> Deferred[None] | None:
        """Stop routing (after the local users were logged out); may take a moment."""

    def register(name: bytes, recipient: IRecipient) -> bool | Deferred[bool]:
        """Claim ``name`` for ``recipient``: True, or False if someone has it already.

        The answer comes at once (a bool) or later (a Deferred); until it
        does, ``name`` is not registered.
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

    def forward_run(
        sender: bytes, recipients: Sequence[bytes] | None, bodies: list[bytes]
    ) -> None:
        """As :meth:`forward` for each of several short messages from ``sender``, in order.

        ``bodies`` are each framed as on the wire (``b"<n>\\n<data>"``), as
        a ``chatproto.wire.events.MessageRun`` carries them.
        """

    def __len__() -> int:
        """Return how many users are logged in here."""
