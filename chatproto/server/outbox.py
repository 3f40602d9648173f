"""The queue of everything sent to one TCP client, drained only as fast as it reads.

An :class:`Outbox` is registered on its transport as a streaming producer:
the transport pauses it when its own buffer is full and resumes it when the
buffer has drained. While it runs, deliveries go straight to the transport;
while it is paused, they wait here in order. Replies (``OK``/``ERROR``) take
the same path as deliveries, so whatever the server sends one client leaves
in the order of the input that caused it (issue 13: an ``ERROR`` written at
once overtook the broadcast copy to its sender waiting in the batch). Spooled
bodies are read from
their file a piece at a time, so a big message costs one piece of memory per
recipient, not its size.

A recipient that stops reading cannot make the server grow or slow anyone
down (PROTOCOL §7); it is given up on when any of its backlogs passes its limit:

- memory held by its queue (``Limits.max_backlog_bytes``): in-memory
  deliveries whole, a spooled one its ``FROM`` line and preview, each with a
  measured overhead;
- spooled bytes queued (``Limits.max_spool_backlog_bytes``; one message is
  always let in, however big), which bounds the disk one recipient can hold;
- spooled messages queued (``Limits.max_spool_backlog_messages``): each keeps
  its spool file open, so this bounds the descriptors one recipient can hold;
- no progress for ``Limits.send_timeout_s``, which bounds how long.

Beyond its queue, a client costs what its transport buffers: Twisted pauses
the outbox once that passes the transport's buffer size (64 KiB), so it holds
at most that and one write.
"""

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ITransport
from twisted.logger import Logger
from zope.interface import implementer

from chatproto.limits import KIB, Limits
from chatproto.server.message import PREVIEW_BYTES, Delivery, DeliveryRun, ShortBody
from chatproto.server.sendnow import can_send_now, send_now
from chatproto.server.stats import LatencyHistogram
from chatproto.server.writes import WriteBatcher

#: Bytes read from a spool file per write to the transport.
SPOOL_READ_BYTES = 64 * KIB

#: Memory a queued delivery costs beyond its wire bytes (the Delivery, its
#: body, their lists and bytes objects), counted into the backlog so that
#: ``max_backlog_bytes`` bounds real memory: tracemalloc over a paused queue
#: of 90-byte messages showed about 490 bytes each.
QUEUED_DELIVERY_OVERHEAD_BYTES = 512


#: The queue time of a reply: replies are not deliveries, their latency is not measured.
_NOT_TIMED = -1.0


class _Reply:
    """A reply waiting behind deliveries: the part of :class:`Delivery` the outbox reads."""

    __slots__ = ("frames", "size")

    body = ShortBody(b"")  # nothing to hold or release
    head = b""
    count = 0  # no message

    def __init__(self, data: bytes) -> None:
        self.frames = [data]
        self.size = len(data)


_Queued = Delivery | DeliveryRun | _Reply


def _memory_cost(delivery: _Queued) -> int:
    """What a queued delivery holds in memory: its frames (or, spooled, its preview), overhead.

    A run counts the overhead once per message, as its messages would one by one.
    """
    if delivery.frames is not None:
        return delivery.size + QUEUED_DELIVERY_OVERHEAD_BYTES * max(delivery.count, 1)
    return len(delivery.head) + PREVIEW_BYTES + QUEUED_DELIVERY_OVERHEAD_BYTES


@implementer(IPushProducer)
class Outbox:
    """Deliveries on their way to one client, in order.

    Attributes:
        backlog_bytes: memory held by queued deliveries (see
            :data:`QUEUED_DELIVERY_OVERHEAD_BYTES`).
        spooled_bytes: wire bytes of the queued spooled deliveries.
        spooled_count: how many of the queued deliveries are spooled.
    """

    __slots__ = (
        "backlog_bytes",
        "spooled_bytes",
        "spooled_count",
        "_transport",
        "_limits",
        "_on_overflow",
        "_queue",
        "_offset",
        "_is_paused",
        "_is_closed",
        "_clock",
        "_latency",
        "_stall_timer",
        "_batcher",
        "_pending",
        "_sends_now",
    )

    log = Logger()

    def __init__(
        self,
        transport: ITransport,
        limits: Limits,
        on_overflow: Callable[[str], None],
        clock: IReactorTime,
        latency: LatencyHistogram,
        batcher: WriteBatcher,
    ) -> None:
        self.backlog_bytes = 0
        self.spooled_bytes = 0
        self.spooled_count = 0
        self._limits = limits
        self._batcher = batcher
        self._pending: list[bytes] | None = None  # in-memory frames until the batch ends
        self._stall_timer: IDelayedCall | None = None  # runs while deliveries wait
        self._clock = clock
        self._latency = latency
        self._transport = transport
        self._sends_now = can_send_now(transport)
        self._on_overflow = on_overflow
        # (delivery, time queued), made when first needed
        self._queue: deque[tuple[_Queued, float]] | None = None
        self._offset = -1  # of the head delivery's body; -1: FROM line not yet written
        self._is_paused = False
        self._is_closed = False

    def push(self, delivery: Delivery | DeliveryRun) -> int:
        """Queue ``delivery`` after what was sent before and send what the client can take.

        Returns:
            How many messages were taken (``delivery.count``), or 0 if the
            client is given up on (its backlog passed the limit, and
            ``on_overflow`` was called with the reason) or already closed.
        """
        if self._is_closed:
            return 0
        frames = delivery.frames
        if frames is not None and self._queue is None and not self._is_paused:
            pending = self._pending  # the common case: written when the batch ends
            if pending is None:
                self._pending = pending = []
                self._batcher.mark(self)
            pending += frames
            self._latency.counts[0] += delivery.count  # handed over at once
            return delivery.count
        if not self._enqueue(delivery, self._clock.seconds()):
            return 0
        return delivery.count

    def push_reply(self, data: bytes) -> None:
        """Send a reply (``OK``/``ERROR``) after everything sent to this client before it."""
        if self._is_closed:
            return
        if self._queue is None and not self._is_paused:
            pending = self._pending
            if pending is None:
                self._pending = pending = []
                self._batcher.mark(self)
            pending.append(data)
            return
        self._enqueue(_Reply(data), _NOT_TIMED)

    def _enqueue(self, delivery: _Queued, queued_at: float) -> bool:
        """Put ``delivery`` in the queue behind the batch and send what the client can take."""
        self.write_pending()  # whatever waits in the batch goes first
        if self._queue is None:
            self._queue = deque()
            self._stall_timer = self._clock.callLater(self._limits.send_timeout_s, self._stalled)
        delivery.body.acquire()
        self._queue.append((delivery, queued_at))
        self._count(delivery, 1)
        over = self._over_limit()
        if over is not None:
            self._give_up(over)
            return False
        self._send_queued()
        return True

    def _count(self, delivery: _Queued, sign: int) -> None:
        """Add a delivery to the backlogs (``sign`` 1) or take it out (-1)."""
        self.backlog_bytes += sign * _memory_cost(delivery)
        if delivery.frames is None:
            self.spooled_bytes += sign * delivery.body.wire_size
            self.spooled_count += sign

    def _over_limit(self) -> str | None:
        """Which backlog passed its limit, if one did."""
        limits = self._limits
        if self.backlog_bytes > limits.max_backlog_bytes:
            return "backlog over the limit"
        # One message is always let in, however big (--max-message may pass the limit).
        if self.spooled_bytes > limits.max_spool_backlog_bytes and self.spooled_count > 1:
            return "spooled backlog over the limit"
        if self.spooled_count > limits.max_spool_backlog_messages:
            return "too many spooled messages queued"
        return None

    def _send_queued(self) -> None:
        """Write queued deliveries until the queue is empty or the transport pauses us."""
        queue = self._queue
        transport = self._transport
        if queue and not self._is_paused and self._stall_timer is not None:
            self._stall_timer.reset(self._limits.send_timeout_s)  # the client is reading
        while queue and not self._is_paused and not self._is_closed:
            delivery, queued_at = queue[0]
            body = delivery.body
            if delivery.frames is not None:
                transport.writeSequence(delivery.frames)
            else:
                if self._offset < 0:
                    transport.write(delivery.head)
                    self._offset = 0
                piece = body.read_wire(self._offset, SPOOL_READ_BYTES)
                transport.write(piece)
                self._offset += len(piece)
                if piece and self._offset < body.wire_size:
                    continue
                self._offset = -1
            self._count(delivery, -1)
            queue.popleft()
            body.release()
            if queued_at != _NOT_TIMED:
                self._latency.observe(self._clock.seconds() - queued_at, delivery.count)
        if not queue:
            self._queue = None
            self._stop_stall_timer()

    def write_pending(self) -> None:
        """Write the deliveries gathered in this batch (see :class:`WriteBatcher`)."""
        pending, self._pending = self._pending, None
        if pending and not self._is_closed:
            # One bytes object: joining in C beats writeSequence's check of
            # every part in Python (fan-out writes thousands of these per read).
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            if self._sends_now:
                send_now(self._transport, data)  # type: ignore[arg-type]
            else:
                self._transport.write(data)

    def _stalled(self) -> None:
        self._stall_timer = None
        self._give_up(f"no progress for {self._limits.send_timeout_s:g} s")

    def _stop_stall_timer(self) -> None:
        if self._stall_timer is not None:
            if self._stall_timer.active():
                self._stall_timer.cancel()
            self._stall_timer = None

    def _give_up(self, reason: str) -> None:
        self.close()
        self._on_overflow(reason)

    def close(self) -> None:
        """Drop everything queued (the client is gone); later pushes are refused."""
        self._is_closed = True
        self._pending = None
        self._stop_stall_timer()
        queue, self._queue = self._queue, None
        self.backlog_bytes = self.spooled_bytes = self.spooled_count = 0
        for delivery, _ in queue or ():
            delivery.body.release()

    # -- IPushProducer, called by the transport --------------------------------

    def pauseProducing(self) -> None:
        self._is_paused = True

    def resumeProducing(self) -> None:
        self._is_paused = False
        try:
            self._send_queued()
        except Exception:
            self.log.failure("sending queued deliveries failed")
            self.close()
            self._transport.loseConnection()

    def stopProducing(self) -> None:
        self.close()
