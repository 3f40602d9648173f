"""Flood control on a Clock: the buckets' arithmetic, TCP slowed (never lost), UDP dropped."""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport

from chatproto.limits import Limits, Rate
from chatproto.server.flood import FloodControl, TokenBucket
from chatproto.server.service import ChatService
from chatproto.server.udp import ChatDatagramProtocol
from chatproto.wire.encode import encode_message
from tests.protocol_support import login
from tests.support import make_service, take

# -- the bucket --------------------------------------------------------------------


def test_a_new_bucket_is_full_and_spending_may_go_into_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(2.0, 4.0), clock)
    assert bucket.tokens == 4.0
    bucket.spend(5)
    assert (bucket.tokens, bucket.wait()) == (-1.0, 0.5)  # 1 token owed at 2 a second


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(2.0, 4.0), clock)
    bucket.spend(4)
    clock.advance(1.5)
    assert bucket.tokens == 3.0
    clock.advance(10)
    assert bucket.tokens == 4.0


@pytest.mark.parametrize(
    ("recipients", "cost"), [(0, 1), (1, 1), (10, 1), (11, 2), (100, 10), (1000, 100)]
)
def test_a_message_costs_one_token_per_ten_recipients(recipients: int, cost: int) -> None:
    flood = FloodControl(Rate(1.0, 1.0), None, Clock())
    flood.charge_frame(recipients)
    assert flood.wait() == cost - 1  # the one token there was, and the debt at 1 a second


def test_the_longer_wait_of_the_two_buckets_counts() -> None:
    clock = Clock()
    flood = FloodControl(Rate(1.0, 1.0), Rate(100.0, 100.0), clock)
    flood.charge_frame()
    flood.charge_bytes(400)
    assert flood.wait() == 3.0  # 300 bytes owed at 100 a second; no frame owed


# -- a TCP client is slowed down, nothing lost or reordered ----------------------------


def flooding(clock: Clock, **limits: object) -> ChatService:
    return make_service(clock=clock, limits=Limits(**limits))  # type: ignore[arg-type]


def test_a_tcp_client_over_budget_is_paused_until_its_bucket_refills() -> None:
    clock = Clock()
    service = flooding(clock, flood_messages=Rate(1.0, 2.0))
    _, bob_wire = login(service, b"bob")
    alice, alice_wire = login(service, b"alice")  # the login cost alice 1 of her 2
    alice.dataReceived(b"".join(encode_message([b"bob"], b"%d" % n) for n in range(5)))
    # 1 left: message 0 takes it, message 1 goes into debt and pauses her.
    assert take(bob_wire) == b"FROM alice\n1\n0FROM alice\n1\n1"
    assert alice_wire.producerState == "paused"
    assert service.stats.flood_throttled == 1
    clock.advance(1.0)  # the debt is paid: one more message, and paused again
    assert take(bob_wire) == b"FROM alice\n1\n2"
    clock.advance(1.0)
    clock.advance(1.0)
    assert take(bob_wire) == b"FROM alice\n1\n3FROM alice\n1\n4"
    clock.advance(1.0)
    assert alice_wire.producerState == "producing"


def test_others_are_served_while_a_flooder_waits() -> None:
    clock = Clock()
    service = flooding(clock, flood_messages=Rate(1.0, 1.0))
    _, bob_wire = login(service, b"bob")
    alice, _ = login(service, b"alice")
    alice.dataReceived(encode_message([b"bob"], b"a") * 3)
    carol, _ = login(service, b"carol")  # costs carol, not alice
    take(bob_wire)
    carol.dataReceived(encode_message([b"bob"], b"c"))
    assert take(bob_wire) == b"FROM carol\n1\nc"


def test_a_big_body_is_slowed_while_it_comes_in() -> None:
    """Body bytes are charged per chunk run: the sender pauses mid-message."""
    clock = Clock()
    service = flooding(clock, flood_bytes=Rate(1000.0, 1000.0))
    _, bob_wire = login(service, b"bob")
    alice, alice_wire = login(service, b"alice")
    alice.dataReceived(b"SEND bob\nC999\n" + b"x" * 999 + b"C999\n" + b"y" * 999)
    assert alice_wire.producerState == "paused"
    clock.advance(1.0)
    alice.dataReceived(b"C0\n")
    assert take(bob_wire).startswith(b"FROM alice\nC999\nxxx")


def test_half_close_during_a_pause_finishes_the_input_afterwards() -> None:
    clock = Clock()
    service = flooding(clock, flood_messages=Rate(1.0, 1.0))
    _, bob_wire = login(service, b"bob")
    alice, alice_wire = login(service, b"alice")
    alice.dataReceived(encode_message([b"bob"], b"a") * 3)
    alice.readConnectionLost()
    assert not alice_wire.disconnecting
    clock.pump([1.0] * 5)
    assert take(bob_wire).count(b"FROM alice") == 3
    assert alice_wire.disconnecting


def test_a_client_gone_during_a_pause_leaves_no_timer() -> None:
    clock = Clock()
    service = flooding(clock, flood_messages=Rate(1.0, 1.0))
    login(service, b"bob")
    alice, _ = login(service, b"alice")
    alice.dataReceived(encode_message([b"bob"], b"a") * 3)
    alice.connectionLost()
    assert [call for call in clock.getDelayedCalls() if call.active()] == []


def test_flood_control_is_off_by_default() -> None:
    clock = Clock()
    service = flooding(clock)
    _, bob_wire = login(service, b"bob")
    alice, alice_wire = login(service, b"alice")
    alice.dataReceived(encode_message([b"bob"], b"a") * 200)
    assert take(bob_wire).count(b"FROM alice") == 200
    assert alice_wire.producerState == "producing"


# -- a UDP client's datagrams over budget are dropped ----------------------------------


def test_udp_datagrams_over_budget_are_dropped_and_counted() -> None:
    clock = Clock()
    service = flooding(clock, flood_messages=Rate(1.0, 3.0))
    _, bob_wire = login(service, b"bob")
    udp = ChatDatagramProtocol(service)
    udp.makeConnection(FakeDatagramTransport())
    carol = ("127.0.0.1", 5000)
    udp.datagramReceived(b"ME IS carol", carol)  # 2 left
    for n in range(5):
        udp.datagramReceived(b"SEND bob\n1\n%d" % n, carol)
    # 0 and 1 spend the two, 2 goes into debt; 3 and 4 come while in debt.
    assert take(bob_wire) == b"FROM carol\n1\n0FROM carol\n1\n1FROM carol\n1\n2"
    assert service.stats.flood_dropped == 2
    clock.advance(2.0)
    udp.datagramReceived(b"SEND bob\n1\n5", carol)
    assert take(bob_wire) == b"FROM carol\n1\n5"
