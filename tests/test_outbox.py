"""Outbox: in-order delivery at the pace the transport accepts, and the backlog limit."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatproto.limits import Limits
from chatproto.server.message import PREVIEW_BYTES, Delivery, MessageBody, ShortBody
from chatproto.server.outbox import (
    QUEUED_DELIVERY_OVERHEAD_BYTES,
    SPOOL_READ_BYTES,
    Outbox,
)
from chatproto.server.spool import Spool
from chatproto.server.stats import LatencyHistogram
from chatproto.server.writes import WriteBatcher

#: Outboxes gather in-memory writes until the batch is flushed (see WriteBatcher).
BATCHER = WriteBatcher()


class Overflows:
    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        self.count += 1
        self.reasons.append(reason)


class FillingTransport(StringTransport):
    """A transport whose buffer is full after every write, as a slow client's would be."""

    def __init__(self) -> None:
        super().__init__()
        self.write_sizes: list[int] = []

    def write(self, data: bytes) -> None:
        super().write(data)
        self.write_sizes.append(len(data))
        self.producer.pauseProducing()

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))  # one call, one write


def make_outbox(
    max_backlog: int = 10_000,
    transport: StringTransport | None = None,
    clock: Clock | None = None,
    **limits: int,
) -> tuple[Outbox, StringTransport, Overflows]:
    """An outbox on ``transport`` with these limits (``Limits`` field names)."""
    transport = transport if transport is not None else StringTransport()
    overflows = Overflows()
    limits = Limits(max_backlog_bytes=max_backlog, send_timeout_s=120.0, **limits)
    outbox = Outbox(transport, limits, overflows, clock or Clock(), LatencyHistogram(), BATCHER)
    transport.registerProducer(outbox, True)
    return outbox, transport, overflows


def short(text: bytes, sender: bytes = b"alice") -> Delivery:
    return Delivery(sender, ShortBody(text))


def spooled(spool: Spool, payload: bytes) -> Delivery:
    body = MessageBody(spool, 100)
    for i in range(0, len(payload), 999):
        body.append(payload[i : i + 999])
    body.finish()
    assert not body.is_in_memory
    return Delivery(b"bob", body)


def wire(delivery: Delivery) -> bytes:
    return delivery.head + delivery.body.read_wire(0, delivery.body.wire_size)


def test_running_outbox_writes_through_when_the_batch_ends() -> None:
    """While the transport is not paused, deliveries wait only for the batch's one write."""
    outbox, transport, _ = make_outbox()
    assert outbox.push(short(b"hi"))
    assert outbox.push(short(b"yo"))
    assert transport.value() == b""
    BATCHER.flush()
    assert transport.value() == b"FROM alice\n2\nhiFROM alice\n2\nyo"
    assert outbox.backlog_bytes == 0


def test_batch_is_one_write_per_client() -> None:
    """All the deliveries a client got in one batch reach its transport in one call."""
    transport = FillingTransport()
    outbox, _, _ = make_outbox(transport=transport)
    for text in (b"1", b"2", b"3"):
        outbox.push(short(text))
    BATCHER.flush()
    assert transport.write_sizes == [3 * len(b"FROM alice\n1\n1")]


def test_spooled_delivery_goes_after_the_pending_batch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spooled delivery pushed behind batched ones is written after them, in order."""
    spool = Spool(10**8, str(tmp_path))
    big = spooled(spool, b"s" * 5000)
    expected = b"FROM alice\n1\n1" + wire(big)
    outbox, transport, _ = make_outbox()
    outbox.push(short(b"1"))
    outbox.push(big)
    BATCHER.flush()
    assert transport.value() == expected


def test_paused_outbox_queues_and_resumes_in_order() -> None:
    """Deliveries pushed while paused wait, then go out in order on resume."""
    outbox, transport, _ = make_outbox()
    outbox.pauseProducing()
    for text in (b"1", b"2", b"3"):
        outbox.push(short(text))
    assert transport.value() == b""
    assert outbox.backlog_bytes == 3 * (len(b"FROM alice\n1\n1") + QUEUED_DELIVERY_OVERHEAD_BYTES)
    outbox.resumeProducing()
    assert transport.value() == b"FROM alice\n1\n1FROM alice\n1\n2FROM alice\n1\n3"
    assert outbox.backlog_bytes == 0


def test_delivery_after_resume_keeps_order_behind_queued_ones() -> None:
    """A delivery pushed while others still wait goes after them, never before."""
    outbox, transport, _ = make_outbox()
    outbox.pauseProducing()
    outbox.push(short(b"1"))
    outbox._is_paused = False  # the transport resumed, but the queue is not drained yet
    outbox.push(short(b"2"))
    assert transport.value() == b"FROM alice\n1\n1FROM alice\n1\n2"


def test_backlog_over_the_limit_gives_the_client_up() -> None:
    """Past the backlog limit the outbox closes, reports the overflow once, refuses more."""
    cost = len(b"FROM alice\n50\n") + 50 + QUEUED_DELIVERY_OVERHEAD_BYTES
    outbox, transport, overflows = make_outbox(max_backlog=cost + cost // 2)
    outbox.pauseProducing()
    results = [outbox.push(short(b"x" * 50)) for _ in range(3)]
    assert results == [True, False, False]
    assert overflows.reasons == ["backlog over the limit"]
    assert outbox.backlog_bytes == 0
    outbox.resumeProducing()
    assert transport.value() == b""


def test_spooled_body_is_streamed_in_pieces(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spooled body goes out one piece per resume and arrives whole."""
    spool = Spool(10**8, str(tmp_path))
    delivery = spooled(spool, bytes(range(256)) * 1000)
    expected = wire(delivery)
    transport = FillingTransport()
    outbox, _, _ = make_outbox(transport=transport)
    outbox.pauseProducing()
    outbox.push(delivery)
    delivery.body.release()  # the receiver is done with it; the outbox holds it
    assert spool.files_open == 1
    resumes = 0
    while outbox._queue is not None and resumes < 100:
        outbox.resumeProducing()
        resumes += 1
    pieces = -(-delivery.body.wire_size // SPOOL_READ_BYTES)
    assert resumes == pieces  # one piece per resume, the FROM line with the first
    assert max(transport.write_sizes) == SPOOL_READ_BYTES
    assert transport.value() == expected
    assert spool.files_open == 0


def test_spooled_body_counts_its_memory_as_backlog_and_its_size_as_spooled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A queued spooled delivery holds its FROM line and preview in memory, its body on disk."""
    spool = Spool(10**8, str(tmp_path))
    delivery = spooled(spool, b"x" * 500_000)
    outbox, _, overflows = make_outbox(max_backlog=PREVIEW_BYTES + 1000)
    outbox.pauseProducing()
    assert outbox.push(delivery)
    memory = len(b"FROM bob\n") + PREVIEW_BYTES + QUEUED_DELIVERY_OVERHEAD_BYTES
    assert outbox.backlog_bytes == memory
    assert (outbox.spooled_bytes, outbox.spooled_count) == (delivery.body.wire_size, 1)
    assert overflows.count == 0


def paused_with_spooled(
    tmp_path, count: int, size: int = 5000, **limits: int
) -> tuple[Outbox, Overflows, Spool, list[bool]]:  # type: ignore[no-untyped-def]
    """Push ``count`` spooled deliveries of ``size`` bytes into a paused outbox.

    Returns the outbox, its overflows, the spool and what each push answered;
    the outbox holds the only references to the bodies, as after a send.
    """
    spool = Spool(10**8, str(tmp_path))
    outbox, _, overflows = make_outbox(max_backlog=10**6, **limits)
    outbox.pauseProducing()
    answers = []
    for _ in range(count):
        delivery = spooled(spool, b"s" * size)
        answers.append(outbox.push(delivery))
        delivery.body.release()  # the sender is done with it
    return outbox, overflows, spool, answers


def test_spooled_bytes_past_their_limit_give_the_recipient_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The disk one reader holds is bounded: past max_spool_backlog_bytes it is given up."""
    wire = len(spooled(Spool(10**8, str(tmp_path)), b"s" * 5000).body.read_wire(0, 10**6))
    outbox, overflows, spool, answers = paused_with_spooled(
        tmp_path, 4, max_spool_backlog_bytes=3 * wire
    )
    assert answers == [True, True, True, False]
    assert overflows.reasons == ["spooled backlog over the limit"]
    assert (spool.files_open, spool.bytes_in_use) == (0, 0)  # every queued file closed
    assert (outbox.spooled_bytes, outbox.spooled_count, outbox.backlog_bytes) == (0, 0, 0)


def test_one_spooled_message_bigger_than_the_spooled_limit_is_let_in(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A message up to --max-message may pass --max-spool-backlog alone, not with another."""
    outbox, overflows, _, answers = paused_with_spooled(
        tmp_path, 2, size=50_000, max_spool_backlog_bytes=10_000
    )
    assert answers == [True, False]
    assert overflows.reasons == ["spooled backlog over the limit"]


def test_spooled_messages_past_their_count_give_the_recipient_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each queued spooled message holds a descriptor: past the count the reader is given up."""
    outbox, overflows, spool, answers = paused_with_spooled(
        tmp_path, 6, max_spool_backlog_messages=5
    )
    assert answers == [True] * 5 + [False]
    assert overflows.reasons == ["too many spooled messages queued"]
    assert spool.files_open == 0


def test_spooled_backlog_shrinks_as_deliveries_get_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A reader that catches up frees its spooled backlog, and the files close one by one."""
    outbox, overflows, spool, answers = paused_with_spooled(
        tmp_path, 5, max_spool_backlog_messages=5
    )
    assert all(answers) and spool.files_open == 5
    outbox.resumeProducing()  # StringTransport takes everything
    assert (outbox.spooled_bytes, outbox.spooled_count, outbox.backlog_bytes) == (0, 0, 0)
    assert (spool.files_open, spool.bytes_in_use) == (0, 0)
    outbox.pauseProducing()
    _, _, _, more = paused_with_spooled(tmp_path, 1)  # the count starts again from nothing
    assert more == [True] and overflows.count == 0


def test_spooled_count_follows_a_transport_that_takes_one_piece_at_a_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spooled delivery counts until its last piece is written, then no longer."""
    spool = Spool(10**8, str(tmp_path))
    transport = FillingTransport()
    outbox, _, _ = make_outbox(transport=transport)
    outbox.pauseProducing()
    first, second = spooled(spool, b"a" * 150_000), spooled(spool, b"b" * 10_000)
    outbox.push(first)
    outbox.push(second)
    sizes = first.body.wire_size + second.body.wire_size
    assert (outbox.spooled_count, outbox.spooled_bytes) == (2, sizes)
    outbox.resumeProducing()  # FROM line and the first piece of the first
    assert outbox.spooled_count == 2
    pieces = -(-first.body.wire_size // SPOOL_READ_BYTES)
    assert pieces > 1
    for _ in range(pieces - 1):  # its other pieces, one per resume
        outbox.resumeProducing()
    assert (outbox.spooled_count, outbox.spooled_bytes) == (1, second.body.wire_size)
    outbox.resumeProducing()
    assert (outbox.spooled_count, outbox.spooled_bytes) == (0, 0)
    assert transport.value() == wire(first) + wire(second)


def test_close_releases_queued_spool_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Closing the outbox (client gone) releases every queued body."""
    spool = Spool(10**8, str(tmp_path))
    delivery = spooled(spool, b"x" * 50_000)
    outbox, _, _ = make_outbox()
    outbox.pauseProducing()
    outbox.push(delivery)
    delivery.body.release()
    outbox.stopProducing()
    assert (spool.files_open, spool.bytes_in_use) == (0, 0)
    assert not outbox.push(short(b"late"))


def test_recipient_that_reads_nothing_for_the_send_timeout_is_given_up() -> None:
    """Deliveries waiting with no progress for the send timeout make the outbox give up."""
    clock = Clock()
    outbox, _, overflows = make_outbox(clock=clock)
    outbox.pauseProducing()
    outbox.push(short(b"waiting"))
    clock.advance(119)
    assert overflows.reasons == []
    clock.advance(2)
    assert overflows.reasons == ["no progress for 120 s"]
    assert not outbox.push(short(b"late"))


def test_progress_restarts_the_send_timeout() -> None:
    """A client that keeps reading, however slowly, is never timed out."""
    clock = Clock()
    transport = FillingTransport()
    outbox, _, overflows = make_outbox(transport=transport, clock=clock)
    outbox.pauseProducing()
    for text in (b"1", b"2", b"3", b"4"):
        outbox.push(short(text))
    for _ in range(4):
        clock.advance(100)
        outbox.resumeProducing()  # one delivery gets out, then the buffer is full again
    assert overflows.reasons == []
    assert transport.value().endswith(b"FROM alice\n1\n4")
    assert clock.getDelayedCalls() == []  # nothing waits: no timer


def test_no_timer_while_nothing_waits() -> None:
    """A client with nothing queued costs no timer."""
    clock = Clock()
    outbox, _, _ = make_outbox(clock=clock)
    outbox.push(short(b"straight through"))
    assert clock.getDelayedCalls() == []
