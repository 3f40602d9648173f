"""The chat service: users, routing, the random-message rule and UDP expiry.

:class:`ChatService` is shared by every listener of the process, TCP and UDP
on every port, so all users live in one namespace (PROTOCOL §1). It knows
clients only through ``IRecipient`` and finds them through an ``IRouter``;
it never sees a transport or parses a byte.
"""

import random
from collections.abc import Sequence

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from chatproto.limits import Limits
from chatproto.server import verbose
from chatproto.server.addresses import DEFAULT_EXEMPT, AddressLimits, IPNetwork, parse_networks
from chatproto.server.deadlines import LoginDeadlines
from chatproto.server.flood import FloodControl
from chatproto.server.interfaces import IRecipient, IRouter, IRouterHost
from chatproto.server.message import (
    Body,
    Delivery,
    DeliveryRun,
    FramedOnDraw,
    MessageBody,
    ShortBody,
    body_from_wire,
)
from chatproto.server.routing import LocalRouter
from chatproto.server.spool import Spool
from chatproto.server.stats import Stats
from chatproto.server.writes import WriteBatcher
from chatproto.wire.encode import encode_from, encode_short_body
from chatproto.wire.grammar import MAX_SHORT_BODY

#: What the server says "from" a recent sender after every third delivery
#: (PROTOCOL §5). The brief's three come first.
CANNED_LINES: tuple[bytes, ...] = (
    b"Hey, you're kinda hot",
    b"No way!",
    b"I like Justin Bieber....a lot",
    b"Did you just say that to me?",
    b"LOL, you're hilarious",
    b"Can't talk now, my mom is calling",
    b"Are we still on for Friday?",
    b"You sound like my ex",
    b"brb, walking the dog",
    b"Whatever. Talk to the hand.",
    b"OMG did you see that?!",
    b"I'm telling everyone you said that",
)

#: Deliveries to one client between two random messages (PROTOCOL §5).
MESSAGES_PER_RANDOM = 3

#: How log lines name each transport (``IRecipient.transport_name``).
TRANSPORT_TITLES = {"tcp": "TCP", "udp": "UDP", "websocket": "WebSocket"}

#: The log namespace of the ``-v`` traffic lines; observers select on it.
VERBOSE_NAMESPACE = "chatproto.verbose"


@implementer(IRouterHost)
class ChatService(service.Service):
    """Route messages between logged-in users and keep their sessions.

    Attributes:
        limits: the server's limits.
        clock: the time source for UDP session expiry and login timeouts.
        is_verbose: whether ``-v`` traffic lines are emitted.
        random_messages: whether the random-message rule is on (PROTOCOL §5).
        spool: where big message bodies are kept while in transit.
        stats: counters of what the server did (read by ``chatproto.server.metrics``).
        writes: gathers deliveries into one write per client per input read;
            whoever feeds input to the service flushes it when done.
        login_deadlines: every stream connection's login timeout (PROTOCOL §7),
            on shared timers.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        limits: Limits | None = None,
        *,
        router: IRouter | None = None,
        rng: random.Random | None = None,
        random_messages: bool = True,
        canned_lines: Sequence[bytes] = CANNED_LINES,
        is_verbose: bool = False,
        spool_directory: str | None = None,
        limit_exempt: Sequence[IPNetwork] | None = None,
        session_log: bool = True,
    ) -> None:
        if not canned_lines or any(len(line) > MAX_SHORT_BODY for line in canned_lines):
            raise ValueError("canned lines must be 1 to 99 bytes, and at least one")
        self.clock = clock
        self.limits = limits if limits is not None else Limits()
        self.is_verbose = is_verbose
        # Log each login and logout (twistd's log has them; chat_server shows
        # no such line, and a log event costs a login about 3 µs).
        self._session_log = session_log
        # Not a class attribute: as a descriptor, a Logger takes the class's namespace.
        self._traffic_log = Logger(namespace=VERBOSE_NAMESPACE, source=self)
        self._router: IRouter = router if router is not None else LocalRouter()
        self._rng = rng if rng is not None else random.Random()
        self.random_messages = random_messages
        self._canned_lines = tuple(canned_lines)
        # The same lines framed as bodies, index for index: choosing one of
        # these draws the same random number as choosing a line.
        self._canned_bodies = tuple(b"".join(encode_short_body(line)) for line in canned_lines)
        self.spool = Spool(self.limits.max_spool_bytes, spool_directory)
        if limit_exempt is None:
            limit_exempt = parse_networks(DEFAULT_EXEMPT)
        self.addresses = AddressLimits(self.limits, clock, limit_exempt)
        self.writes = WriteBatcher()
        self.login_deadlines = LoginDeadlines(clock, self.limits.login_timeout_s)
        self.stats = Stats()
        # Users logged in here, by transport name (chat_users_online{transport}).
        self._online = dict.fromkeys(TRANSPORT_TITLES, 0)
        # Senders of the deliveries each client got since its last random message.
        self._recent_senders: dict[IRecipient, list[bytes]] = {}
        # UDP sessions by last activity, oldest first (dicts keep insertion order).
        self._last_seen: dict[IRecipient, float] = {}
        self._sweep = LoopingCall(self._expire_idle_sessions)
        self._sweep.clock = clock

    # -- lifecycle -----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._router.start(self)
        self.log.info(
            "chat service started (random messages {random}, verbose {verbose})",
            random="on" if self.random_messages else "off",
            verbose="on" if self.is_verbose else "off",
        )
        done = self._sweep.start(self.limits.udp_sweep_interval_s, now=False)
        done.addErrback(lambda failure: self.log.failure("UDP expiry sweep stopped", failure))

    def stopService(self) -> Deferred[None] | None:
        if self._sweep.running:
            self._sweep.stop()
        for client in self._router.everyone():
            self._disconnect(client, "server stopping")
        super().stopService()
        return self._router.stop()

    # -- sessions ------------------------------------------------------------

    def login(self, client: IRecipient, user: bytes) -> bool | Deferred[bool]:
        """Claim ``user`` for ``client``: True, or False if the userid is taken (PROTOCOL §2).

        The answer comes at once (a bool) from a local router, later (a
        Deferred) from a clustered one. A client that expires when idle (UDP) is also
        refused when there are already ``max_udp_sessions`` of them (PROTOCOL §7).
        """
        if client.expires_when_idle:
            if len(self._last_seen) >= self.limits.max_udp_sessions:
                self.log.info(
                    "UDP session limit reached: {user} from {peer} refused",
                    user=verbose.escape(user),
                    peer=client.peer,
                )
                return False
            refused_by = self.addresses.admit_udp_session(client.peer)
            if refused_by is not None:
                self.refused_by_address(client.peer, refused_by)
                return False
        claimed = self._router.register(user, client)
        if isinstance(claimed, Deferred):
            return claimed.addCallback(self._logged_in, client, user)
        return self._logged_in(claimed, client, user)

    def _logged_in(self, claimed: bool, client: IRecipient, user: bytes) -> bool:
        if claimed:
            self._online[client.transport_name] += 1
        if claimed and client.expires_when_idle:
            self.touch(client)
            self.addresses.udp_session_opened(client.peer)
        return claimed

    def refused_by_address(self, peer: str, limit: str) -> None:
        """Count a refusal for a per-address limit, and log it once a minute per address."""
        self.stats.address_refused[limit] += 1
        if self.addresses.should_log(peer, limit):
            self.log.info("{peer} refused: --{limit} reached", peer=peer, limit=limit)

    def announce_login(self, client: IRecipient) -> None:
        """Log that ``client`` logged in, after its ``OK`` (PROTOCOL §8 keeps the two together)."""
        if self._session_log:
            self.log.info(
                "{user} logged in from {peer} over {transport}",
                user=verbose.escape(client.name or b""),
                peer=client.peer,
                transport=TRANSPORT_TITLES[client.transport_name],
            )

    @property
    def floods_are_controlled(self) -> bool:
        """Whether ``--flood-messages`` or ``--flood-bytes`` is on."""
        return self.limits.flood_messages is not None or self.limits.flood_bytes is not None

    def new_flood_control(self) -> FloodControl | None:
        """Return a new client's flood control (``--flood-messages``/``--flood-bytes``), if on."""
        limits = self.limits
        if not self.floods_are_controlled:
            return None
        return FloodControl(limits.flood_messages, limits.flood_bytes, self.clock)

    def new_body(self) -> MessageBody:
        """Return an empty chunked body for a message being received, spilling to the spool."""
        return MessageBody(self.spool, self.limits.spill_threshold_bytes)

    def logout(self, client: IRecipient) -> None:
        """Release ``client``'s userid and forget its counters. Safe to repeat."""
        if client.name is not None and self._router.lookup(client.name) is client:
            self._router.unregister(client.name, client)
            self._online[client.transport_name] -= 1
            if self._session_log:
                self.log.info("{who} logged out", who=self.describe(client))
        self._recent_senders.pop(client, None)
        if self._last_seen.pop(client, None) is not None:  # a UDP user
            self.addresses.udp_session_closed(client.peer)

    def lookup(self, user: bytes) -> IRecipient | None:
        """Return the client logged in as ``user``, or None."""
        return self._router.lookup(user)

    @property
    def user_count(self) -> int:
        """How many users are logged in."""
        return len(self._router)

    def users_by_transport(self) -> dict[str, int]:
        """How many users are logged in here over each transport (TCP, UDP, WebSocket)."""
        return dict(self._online)

    def describe(self, client: IRecipient) -> str:
        """Name ``client`` for a log line: ``alice (10.0.0.1)``, or its address alone."""
        if client.name is None:
            return str(client.peer)
        return f"{verbose.escape(client.name)} ({client.peer})"

    def touch(self, client: IRecipient) -> None:
        """Note activity from a UDP session, restarting its expiry (PROTOCOL §6)."""
        self._last_seen.pop(client, None)
        self._last_seen[client] = self.clock.seconds()

    def _expire_idle_sessions(self) -> None:
        """Log out every UDP session idle for the session TTL or longer."""
        deadline = self.clock.seconds() - self.limits.udp_session_ttl_s
        for client, seen in list(self._last_seen.items()):
            if seen > deadline:
                break
            self._last_seen.pop(client, None)
            try:  # one bad session must not stop the sweep (the LoopingCall would end)
                self.note(client, "UDP session expired")
                self._disconnect(client, "UDP session expired")
            except Exception:
                self.log.failure("expiring {who} failed", who=self.describe(client))

    # -- messages ------------------------------------------------------------

    def send(self, sender: IRecipient, recipients: Sequence[bytes] | None, body: Body) -> int:
        """Deliver a complete message from a logged-in ``sender`` (PROTOCOL §3, §4).

        Args:
            sender: the client that sent it.
            recipients: the distinct userids named by ``SEND``, or ``None`` for
                ``BROADCAST`` (everyone, the sender included).
            body: the complete body.

        Recipients that are not online here are handed to the router, which
        passes them on to other processes if it knows any, and otherwise
        skips them silently. TCP deliveries wait in :attr:`writes` until the
        caller flushes it (the protocols do after each read), so that a
        read's deliveries cost one write per client.

        Returns:
            How many recipients here it went to (what flood control charges).
        """
        assert sender.name is not None
        stats = self.stats
        stats.messages_in[
            "send" if recipients else "broadcast", "chunked" if body.is_chunked else "short"
        ] += 1
        stats.body_bytes_in += body.size
        router = self._router
        targets, elsewhere = self._locate(recipients)
        if recipients is None or elsewhere:  # a BROADCAST, or users not here
            router.forward(sender.name, elsewhere, body)
        self._deliver_all(sender.name, targets, body)
        return len(targets)

    def send_run(
        self,
        sender: IRecipient,
        recipients: Sequence[bytes] | None,
        bodies: list[bytes],
        body_bytes: int,
        chunked: int,
    ) -> int:
        """Deliver several complete messages from ``sender`` to the same recipients.

        What a ``chatproto.wire.events.MessageRun`` carries: ``bodies`` are
        each message's body as framed on the wire (opaque here, framed into
        deliveries by :class:`~chatproto.server.message.DeliveryRun`),
        ``body_bytes`` their body bytes in all, ``chunked`` how many are
        chunked. The recipients are looked up once, and each stream recipient
        is handed the run at once; the result is as if each message came
        through :meth:`send`, in order. Runs come only without ``-v``, which
        shows each message.

        Returns:
            How many recipients here each message went to.
        """
        assert sender.name is not None and not self.is_verbose  # -v shows each message
        router = self._router
        count = len(bodies)
        command = "send" if recipients else "broadcast"
        messages_in = self.stats.messages_in
        messages_in[command, "short"] += count - chunked
        messages_in[command, "chunked"] += chunked
        self.stats.body_bytes_in += body_bytes
        targets, elsewhere = self._locate(recipients)
        if router.forwards and (recipients is None or elsewhere):
            # Other nodes get the messages too (a BROADCAST, or users not here):
            # as one relayed run, or one by one if a chunked one is among them.
            if not chunked:
                router.forward_run(sender.name, elsewhere, bodies)
            else:
                for wire in bodies:
                    body = body_from_wire(wire, self.new_body)
                    try:
                        router.forward(sender.name, elsewhere, body)
                    finally:
                        body.release()
        if targets:
            self._deliver_run(targets, DeliveryRun.of_bodies(sender.name, bodies, chunked), bodies)
        return len(targets)

    def _deliver_run(
        self, targets: list[IRecipient], run: DeliveryRun, bodies: list[bytes]
    ) -> None:
        """Hand a run of messages to each of ``targets``, with the random-message rule.

        This is the fan-out loop: a BROADCAST run goes through it once per
        user, so the common case (no random message falls in the run) is
        written out here, and the counts are summed for the whole run.
        """
        count = run.count
        sender = run.sender
        recent = self._recent_senders if self.random_messages else None
        canned: Sequence[bytes] | None = None
        taken_by = delivered_bytes = randoms = 0
        for recipient in targets:
            if recipient.expires_when_idle:  # UDP: one datagram per message
                delivered_bytes += self._deliver_run_singly(recipient, run, bodies)
                continue
            try:
                if recent is None:
                    if recipient.deliver(run):
                        taken_by += 1
                    continue
                # PROTOCOL §5: the senders of what it got since its last random message.
                senders = recent.get(recipient)
                if (0 if senders is None else len(senders)) + count < MESSAGES_PER_RANDOM:
                    if recipient.deliver(run):
                        taken_by += 1
                        if senders is None:
                            recent[recipient] = [sender] * count
                        else:
                            senders += [sender] * count
                    continue
                if canned is None:  # the canned lines from this sender, once per run
                    canned = self._canned_from(run.head, len(targets) * count)
                sent, left = self._with_random_messages(run, senders, canned)
                if recipient.deliver(sent):
                    taken_by += 1
                    randoms += sent.count - count
                    delivered_bytes += sent.size - run.size
                    if left:
                        recent[recipient] = [sender] * left
                    elif senders is not None:
                        del recent[recipient]
            except Exception:
                self._delivery_failed(recipient)
        stats = self.stats
        # Every stream recipient that took the run took all of it.
        stats.deliveries_out["chunked"] += taken_by * run.chunked
        stats.deliveries_out["short"] += taken_by * (count - run.chunked) + randoms
        stats.random_messages += randoms
        stats.bytes_out += delivered_bytes + taken_by * run.size

    def _canned_from(self, head: bytes, deliveries: int) -> Sequence[bytes]:
        """The canned lines as deliveries from ``head``'s sender, for ``deliveries`` of a run.

        Framed all at once where they will be drawn more often than there
        are lines (a fan-out), else each when drawn.
        """
        bodies = self._canned_bodies
        if deliveries > MESSAGES_PER_RANDOM * len(bodies):
            return [head + body for body in bodies]
        return FramedOnDraw(head, bodies)

    def _with_random_messages(
        self, run: DeliveryRun, senders: list[bytes] | None, canned: Sequence[bytes]
    ) -> tuple[DeliveryRun, int]:
        """``run`` with a random message after each third delivery, in place (PROTOCOL §5).

        ``senders`` sent what the recipient got since its last random
        message (fewer than three). Each random message is "from" one of the
        senders of its three: this run's sender but for the first three,
        which may include earlier ones. ``canned`` are the canned lines as
        deliveries from the run's sender. Returns the run to send and how
        many of its messages come after its last random message.
        """
        frames = run.frames
        count = run.count
        draw = self._rng.random
        lines = len(canned)
        before = 0 if senders is None else len(senders)
        pick = int(draw() * MESSAGES_PER_RANDOM)  # of the earlier senders, then this one
        if senders and pick < before and senders[pick] != run.sender:
            first_random = encode_from(senders[pick]) + self._canned_bodies[int(draw() * lines)]
        else:
            first_random = canned[int(draw() * lines)]
        first = MESSAGES_PER_RANDOM - before  # deliveries before the first random message
        sent = frames[:first]
        sent.append(first_random)
        groups, left = divmod(count - first, MESSAGES_PER_RANDOM)
        added = len(first_random)
        if groups:
            # Then groups of three, each followed by its random message: laid
            # out by slices (a fan-out run goes through here once per user).
            randoms = [canned[int(draw() * lines)] for _ in range(groups)]
            added += sum(map(len, randoms))
            middle = frames[first : first + groups * MESSAGES_PER_RANDOM]
            block: list[bytes] = randoms * (MESSAGES_PER_RANDOM + 1)
            for place in range(MESSAGES_PER_RANDOM):
                block[place :: MESSAGES_PER_RANDOM + 1] = middle[place::MESSAGES_PER_RANDOM]
            block[MESSAGES_PER_RANDOM :: MESSAGES_PER_RANDOM + 1] = randoms
            sent += block
        if left:
            sent += frames[count - left :]
        return DeliveryRun(run.sender, run.head, sent, run.chunked, run.size + added), left

    def _deliver_run_singly(
        self, recipient: IRecipient, run: DeliveryRun, bodies: list[bytes]
    ) -> int:
        """Hand a run to a datagram ``recipient`` message by message; return the bytes sent."""
        sent = 0
        for wire in bodies:
            body = body_from_wire(wire, self.new_body)
            try:
                delivery = Delivery(run.sender, body)
                if self._deliver(recipient, delivery, verbose.SENT):
                    self.stats.deliveries_out["chunked" if body.is_chunked else "short"] += 1
                    sent += delivery.size
                    if self.random_messages:
                        self._count_delivery(recipient, run.sender)
            finally:
                body.release()
        return sent

    def _locate(
        self, recipients: Sequence[bytes] | None
    ) -> tuple[list[IRecipient], Sequence[bytes] | None]:
        """The recipients online here, and the names not found here (None if none are missing).

        ``None`` (BROADCAST) is everyone here.
        """
        router = self._router
        if recipients is None:
            return router.everyone(), None
        if len(recipients) == 1:  # the usual SEND
            found = router.lookup(recipients[0])
            return ([], recipients) if found is None else ([found], None)
        targets, missing = [], []
        for name in recipients:
            found = router.lookup(name)
            if found is None:
                missing.append(name)
            else:
                targets.append(found)
        return targets, missing or None

    def receive(self, sender: bytes, recipients: Sequence[bytes] | None, body: Body) -> None:
        """Deliver a message that came from another process to the users here.

        Like :meth:`send`, TCP deliveries wait in :attr:`writes` for a flush.

        ``recipients`` are userids that were online here when it was sent
        (those gone since are skipped), or None for a BROADCAST.
        """
        targets, _ = self._locate(recipients)
        self.stats.messages_relayed_in += 1
        self._deliver_all(sender, targets, body)

    def receive_run(
        self, sender: bytes, recipients: Sequence[bytes] | None, bodies: list[bytes]
    ) -> None:
        """Deliver short messages from another process, all from ``sender`` to ``recipients``.

        ``bodies`` are framed as a ``MessageRun`` carries them. As
        :meth:`receive`, message by message, but looked up and delivered once.
        """
        if self.is_verbose:  # -v shows each
            for wire in bodies:
                self.receive(sender, recipients, body_from_wire(wire, self.new_body))
            return
        targets, _ = self._locate(recipients)
        self.stats.messages_relayed_in += len(bodies)
        if targets:
            self._deliver_run(targets, DeliveryRun.of_bodies(sender, bodies, 0), bodies)

    def _deliver_all(self, sender: bytes, targets: list[IRecipient], body: Body) -> None:
        """Hand one message from ``sender`` to each of ``targets``."""
        framing = "chunked" if body.is_chunked else "short"
        stats = self.stats
        delivery = Delivery(sender, body)
        delivered = 0
        counting = self.random_messages
        if self.is_verbose or counting:
            for recipient in targets:
                if self._deliver(recipient, delivery, verbose.SENT):
                    delivered += 1
                    if counting:
                        self._count_delivery(recipient, sender)
        else:  # the same, without a call per recipient: fan-out is the hot path
            for recipient in targets:
                try:
                    delivered += recipient.deliver(delivery)
                except Exception:
                    self._delivery_failed(recipient)
        stats.deliveries_out[framing] += delivered
        stats.bytes_out += delivered * delivery.size

    def _deliver(self, recipient: IRecipient, delivery: Delivery, direction: str) -> bool:
        """Hand one delivery to one recipient; a failure there touches no one else."""
        try:
            delivered = recipient.deliver(delivery) > 0
        except Exception:
            self._delivery_failed(recipient)
            return False
        if self.is_verbose:
            if delivered:
                self.show(direction, recipient, delivery.preview(), delivery.size)
            else:
                self.note(recipient, "message dropped: this client cannot take it")
        return delivered

    def _delivery_failed(self, recipient: IRecipient) -> None:
        """A delivery raised: log it and drop that recipient (no one else notices)."""
        self.log.failure("delivery to {who} failed", who=self.describe(recipient))
        self._disconnect(recipient, "delivery failed")

    def _count_delivery(self, recipient: IRecipient, sender: bytes) -> None:
        """Apply PROTOCOL §5: after every third delivery, a random message."""
        senders = self._recent_senders.setdefault(recipient, [])
        senders.append(sender)
        if len(senders) < MESSAGES_PER_RANDOM:
            return
        del self._recent_senders[recipient]
        text = self._rng.choice(self._canned_lines)
        delivery = Delivery(self._rng.choice(senders), ShortBody(text))
        if self._deliver(recipient, delivery, verbose.SENT_RANDOMLY):
            stats = self.stats
            stats.random_messages += 1
            stats.deliveries_out["short"] += 1
            stats.bytes_out += delivery.size

    def _disconnect(self, client: IRecipient, reason: str) -> None:
        try:
            client.disconnect(reason)
        except Exception:
            self.log.failure("disconnecting {user!r} failed", user=client.name)
        self.logout(client)

    # -- verbose output (PROTOCOL §8) ----------------------------------------

    def show(
        self,
        direction: str,
        client: IRecipient,
        parts: Sequence[bytes],
        total_bytes: int | None = None,
    ) -> None:
        """Emit one ``-v`` traffic line for a frame to or from ``client``.

        ``parts`` may be only the frame's beginning when ``total_bytes`` says
        how long the whole frame is.
        """
        if self.is_verbose:
            text = verbose.render(direction, client.peer, client.name, parts, total_bytes)
            self._traffic_log.info("{text}", text=text)

    def note(self, client: IRecipient, text: str) -> None:
        """Emit one ``-v`` line about ``client`` that is not a frame."""
        if self.is_verbose:
            self._traffic_log.info(
                "{text}", text=verbose.render_note(text, client.peer, client.name)
            )
