"""The TCP protocol over StringTransport: the limits of PROTOCOL.md §7 under load.

Recipients that stop reading (in memory and spooled), backlogs, the spool,
the connection limit, the send timeout and floods handled in turns.
"""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs

from chatproto.limits import Limits
from chatproto.server.tcp import ChatFactory
from chatproto.wire.encode import encode_message
from tests.protocol_support import close, login
from tests.support import make_service


def test_recipient_that_stops_reading_is_dropped_and_others_get_everything() -> None:
    """A recipient whose backlog passes the limit is disconnected and logged out; others go on."""
    service = make_service(limits=Limits(max_backlog_bytes=5000))
    alice, alice_transport = login(service, b"alice")
    slow, slow_transport = login(service, b"slow")
    _, carol_transport = login(service, b"carol")
    slow_transport.producer.pauseProducing()  # its socket buffer is full
    frames = [encode_message([b"slow", b"carol"], b"%03d" % i) for i in range(100)]
    alice.dataReceived(b"".join(frames))
    assert slow_transport.disconnected  # StringTransport.abortConnection sets this
    assert service.lookup(b"slow") is None
    assert carol_transport.value() == b"".join(b"FROM alice\n3\n%03d" % i for i in range(100))
    assert alice_transport.value() == b"" and not alice_transport.disconnecting
    close(slow)
    assert service.lookup(b"carol") is not None


def spooled_flood(count: int, size: int) -> tuple[list[bytes], bytes]:
    """``count`` distinct chunked SENDs to slow and carol, and what carol gets for them."""
    bodies = [b"%05d" % i + bytes(range(256)) * (size // 256) for i in range(count)]
    frames = [encode_message([b"slow", b"carol"], body, chunked=True) for body in bodies]
    header = len(b"SEND slow carol\n")
    return frames, b"".join(b"FROM alice\n" + frame[header:] for frame in frames)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"max_spool_backlog_messages": 4}, "too many spooled messages queued"),
        ({"max_spool_backlog_bytes": 45_000}, "spooled backlog over the limit"),
    ],
)
def test_recipient_that_stops_reading_spooled_messages_is_dropped(
    tmp_path, limits: dict, reason: str
) -> None:  # type: ignore[no-untyped-def]
    """Spooled deliveries count against a reader's backlog: a non-reader is cut, carol gets all."""
    service = make_service(
        limits=Limits(spill_threshold_bytes=5000, **limits),
        spool_directory=str(tmp_path),
    )
    alice, alice_transport = login(service, b"alice")
    slow, slow_transport = login(service, b"slow")
    _, carol_transport = login(service, b"carol")
    slow_transport.producer.pauseProducing()  # its socket buffer is full
    frames, expected = spooled_flood(20, 10_000)
    with capturedLogs() as events:
        for number, frame in enumerate(frames):  # noqa: B007 (number is checked after)
            alice.dataReceived(frame)
            if slow_transport.disconnected:
                break
    assert slow_transport.disconnected and number == 4  # the fifth was one too many
    assert [e["reason"] for e in events if "slow consumer" in e["log_format"]] == [reason]
    assert service.lookup(b"slow") is None and service.stats.slow_consumers == 1
    close(slow)
    assert service.spool.files_open == 0  # its queue let go of every file
    for frame in frames[number + 1 :]:
        alice.dataReceived(frame)
    assert carol_transport.value() == expected
    assert alice_transport.value() == b""
    assert (service.spool.files_open, service.spool.bytes_in_use) == (0, 0)


def test_paused_recipient_gets_its_backlog_in_order_when_it_reads_again() -> None:
    """Deliveries queued while a recipient's transport is paused arrive in order later."""
    service = make_service()
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    bob_transport.producer.pauseProducing()
    alice.dataReceived(b"".join(encode_message([b"bob"], b"%d" % i) for i in range(5)))
    assert bob_transport.value() == b""
    bob_transport.producer.resumeProducing()
    assert bob_transport.value() == b"".join(b"FROM alice\n1\n%d" % i for i in range(5))


def test_big_message_is_spooled_and_reaches_every_recipient(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A body over the spill threshold goes through a spool file and arrives intact."""
    service = make_service(
        limits=Limits(spill_threshold_bytes=5000), spool_directory=str(tmp_path)
    )
    alice, _ = login(service, b"alice")
    transports = [login(service, name)[1] for name in (b"bob", b"carol")]
    body = bytes(range(256)) * 200
    frame = encode_message([b"bob", b"carol"], body, chunked=True)
    alice.dataReceived(frame)
    expected = b"FROM alice\n" + frame[len(b"SEND bob carol\n") :]
    assert [t.value() for t in transports] == [expected, expected]
    assert (service.spool.files_open, service.spool.bytes_in_use) == (0, 0)


def test_message_without_spool_room_gets_error_after_its_body(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A big message that does not fit the spool is refused with ERROR; the connection stays."""
    service = make_service(
        limits=Limits(spill_threshold_bytes=1000, max_spool_bytes=5000),
        spool_directory=str(tmp_path),
    )
    alice, transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(encode_message([b"bob"], b"x" * 20_000, chunked=True))
    assert transport.value() == b"ERROR\n" and not transport.disconnecting
    assert bob_transport.value() == b""
    alice.dataReceived(b"SEND bob\n2\nok")
    assert bob_transport.value() == b"FROM alice\n2\nok"
    assert service.spool.bytes_in_use == 0


def test_spool_file_of_a_sender_cut_off_is_released(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A sender that vanishes mid-message leaves no spool file open."""
    service = make_service(
        limits=Limits(spill_threshold_bytes=1000), spool_directory=str(tmp_path)
    )
    alice, _ = login(service, b"alice")
    alice.dataReceived(encode_message([b"bob"], b"x" * 20_000, chunked=True)[:-10])
    assert service.spool.files_open == 1
    close(alice)
    assert (service.spool.files_open, service.spool.bytes_in_use) == (0, 0)


def test_connections_past_the_limit_are_refused() -> None:
    """Past max_connections the factory builds no protocol, so Twisted closes the socket."""
    service = make_service(limits=Limits(max_connections=2))
    factory = ChatFactory(service)
    address = IPv4Address("TCP", "127.0.0.1", 1)
    protocols = []
    for _ in range(2):
        protocol = factory.buildProtocol(address)
        protocol.makeConnection(StringTransport(peerAddress=address))
        protocols.append(protocol)
    assert factory.buildProtocol(address) is None
    close(protocols[0])
    assert factory.buildProtocol(address) is not None


def test_recipient_that_stalls_is_dropped_after_the_send_timeout() -> None:
    """A recipient with deliveries waiting that reads nothing for the timeout is dropped."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(send_timeout_s=5))
    alice, _ = login(service, b"alice")
    bob, bob_transport = login(service, b"bob")
    bob_transport.producer.pauseProducing()
    alice.dataReceived(b"SEND bob\n2\nhi")
    clock.advance(4)
    assert not bob_transport.disconnecting
    clock.advance(2)
    assert bob_transport.disconnected and service.lookup(b"bob") is None
    close(bob)
    assert clock.getDelayedCalls() == []


def test_a_flood_is_handled_in_turns_and_reading_pauses_meanwhile() -> None:
    """Past max_frames_per_turn the rest of a read waits for the next turn, reading paused."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(max_frames_per_turn=10))
    alice, alice_transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    frames = [encode_message([b"bob"], b"%02d" % i) for i in range(25)]
    alice.dataReceived(b"".join(frames))
    delivered = [b"FROM alice\n2\n%02d" % i for i in range(25)]
    assert bob_transport.value() == b"".join(delivered[:10])
    assert alice_transport.producerState == "paused"
    assert len(clock.getDelayedCalls()) == 1  # the next turn (Clock runs all due turns at once)
    clock.advance(0)
    assert bob_transport.value() == b"".join(delivered)
    assert alice_transport.producerState == "producing"
    assert clock.getDelayedCalls() == []


def test_connection_lost_while_waiting_for_a_turn_leaves_no_timer() -> None:
    """A client that goes away with input still waiting leaves no call behind."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(max_frames_per_turn=2))
    alice, _ = login(service, b"alice")
    alice.dataReceived(encode_message([b"alice"], b"x") * 5)
    close(alice)
    assert clock.getDelayedCalls() == []
