"""A message on its way to other nodes, and the batch of one reactor turn's messages.

:class:`Outgoing` holds what one message needs until it is published (its
payload, or its big body and how far it has been read); :class:`Batch` is the
turn's messages with where their recipients are. What they hold counts
against ``Limits.max_relay_backlog_bytes`` (see :data:`RELAY_ENTRY_OVERHEAD_BYTES`).
:mod:`chatproto.cluster.outgoing` queues and publishes them.
"""

from chatproto.server.message import Body, MessageBody, ShortBody
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


class Outgoing:
    """A message, or a run of short ones (:meth:`of_run`), on its way to other nodes.

    Attributes:
        recipients: the userids it is for, or None for a BROADCAST.
        count: how many messages it is (more than one only for a run).
        payload: the whole body as published (short and small bodies, and
            a run's bodies), else None.
        body: a big body, held (acquired) until its last piece is published.
        channels: where a big message goes and whom it names there, fixed
            when its first piece is published.
        held_bytes: what it holds, counted against the relay backlog limit:
            its bytes in memory, or a spooled body's size (the disk and the
            open file it keeps until published).
    """

    __slots__ = (
        "sender",
        "count",
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
        self.count = 1
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

    @classmethod
    def of_run(
        cls, sender: bytes, recipients: list[bytes] | None, bodies: list[bytes], message_id: int
    ) -> "Outgoing":
        """A run of short messages, ``bodies`` each framed as on the wire, as one entry.

        It is published as one :data:`relay_wire.RUN` and costs one entry's
        overhead against the relay backlog, however many messages it holds.
        """
        payload = relay_wire.encode_run_bodies(bodies)
        run = cls(sender, recipients, ShortBody(b""), message_id)
        run.kind, run.payload = relay_wire.RUN, payload
        run.count = run.size = len(bodies)
        run.held_bytes = len(payload) + RELAY_ENTRY_OVERHEAD_BYTES
        return run

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


class Batch:
    """The messages for other nodes gathered in one reactor turn, published together.

    Attributes:
        entries: the messages, in the order they were sent.
        owners: each recipient's node, once Redis answered (None until then).
        position: entries before it are published.
    """

    __slots__ = ("entries", "owners", "position", "dropped")

    def __init__(self, entries: list[Outgoing]) -> None:
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

    @property
    def unpublished_count(self) -> int:
        """How many messages are not yet (wholly) published."""
        return sum(entry.count for entry in self.entries[self.position :])

    def release(self) -> None:
        for entry in self.entries[self.position :]:
            entry.release()
