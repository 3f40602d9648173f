"""Outbox: in-order delivery at the pace the transport accepts, and the backlog limit."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatproto.message import Delivery, MessageBody, ShortBody
from chatproto.outbox import (
    QUEUED_DELIVERY_OVERHEAD_BYTES,
    SPOOL_READ_BYTES,
    Outbox,
    WriteBatcher,
)
from chatproto.spool import Spool
from chatproto.stats import LatencyHistogram

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
    max_backlog: int = 10_000, transport: StringTransport | None = None, clock: Clock | None = None
) -> tuple[Outbox, StringTransport, Overflows]:
    transport = transport if transport is not None else StringTransport()
    overflows = Overflows()
    outbox = Outbox(
        transport, max_backlog, overflows, clock or Clock(), LatencyHistogram(), 120.0, BATCHER
    )
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


def test_spooled_body_counts_only_its_head_as_backlog(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Bytes that wait on disk are not memory backlog: only the FROM line and overhead count."""
    spool = Spool(10**8, str(tmp_path))
    delivery = spooled(spool, b"x" * 500_000)
    outbox, _, overflows = make_outbox(max_backlog=1000)
    outbox.pauseProducing()
    assert outbox.push(delivery)
    assert outbox.backlog_bytes == len(b"FROM bob\n") + QUEUED_DELIVERY_OVERHEAD_BYTES
    assert overflows.count == 0


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
