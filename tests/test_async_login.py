"""A login answered later (a clustered router): commands wait for it, in order.

The router here answers only when the test says so, as Redis would after a
round trip. Everything runs on StringTransport / FakeDatagramTransport.
"""

from twisted.internet.defer import Deferred
from twisted.internet.testing import FakeDatagramTransport, StringTransport

from chatproto.limits import Limits
from chatproto.server.interfaces import IRecipient
from chatproto.server.routing import LocalRouter
from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatProtocol
from chatproto.server.udp import ChatDatagramProtocol
from tests.support import connect, make_service, take


class AnsweringLaterRouter(LocalRouter):
    """A LocalRouter whose claims are answered by the test, like a round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[bytes, IRecipient, Deferred[bool]]] = []

    def register(self, name: bytes, recipient: IRecipient) -> Deferred[bool]:
        answer: Deferred[bool] = Deferred()
        self.asked.append((name, recipient, answer))
        return answer

    def answer(self, claimed: bool = True) -> None:
        """Answer the oldest open claim (claiming the name here if ``claimed``)."""
        name, recipient, answer = self.asked.pop(0)
        answer.callback(claimed and self.claim(name, recipient))


def service_with(router: AnsweringLaterRouter) -> ChatService:
    return make_service(router=router)


def logged_in_bob(
    service: ChatService, router: AnsweringLaterRouter
) -> tuple[ChatProtocol, StringTransport]:
    """Connect bob over TCP and answer his login; return him with a clean wire."""
    bob, bob_wire = connect(service, port=40001)
    bob.dataReceived(b"ME IS bob\n")
    router.answer()
    assert take(bob_wire) == b"OK\n"
    return bob, bob_wire


def test_commands_after_login_wait_for_the_answer_then_run_in_order() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    bob, bob_wire = logged_in_bob(service, router)

    alice, alice_wire = connect(service)
    alice.dataReceived(b"ME IS alice\nSEND bob\n2\nhiSEND bob\n3\nyou")
    assert take(alice_wire) == b""  # nothing answered, nothing sent yet
    assert bob_wire.value() == b""
    assert alice_wire.producerState == "paused"  # no reading while waiting

    router.answer()
    assert take(alice_wire) == b"OK\n"
    assert take(bob_wire) == b"FROM alice\n2\nhiFROM alice\n3\nyou"
    assert alice_wire.producerState == "producing"


def test_refused_login_answers_error_and_later_commands_see_no_login() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    alice, wire = connect(service)
    alice.dataReceived(b"ME IS alice\nSEND bob\n2\nhi")
    router.answer(claimed=False)
    # The login is refused, then the SEND is refused for want of a login.
    assert take(wire) == b"ERROR\nERROR\n"
    assert alice.name is None
    assert service.stats.errors == {"userid taken": 1, "not logged in": 1}


def test_a_second_login_held_behind_the_first_is_refused_after_it() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    alice, wire = connect(service)
    alice.dataReceived(b"ME IS alice\nME IS alicia\n")
    router.answer()
    assert take(wire) == b"OK\nERROR\n"
    assert router.asked == []  # the second one never reached the router


def test_client_gone_before_the_answer_gives_the_userid_back() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    alice, _ = connect(service)
    alice.dataReceived(b"ME IS alice\n")
    alice.connectionLost()
    router.answer()
    assert service.lookup(b"alice") is None
    assert service.user_count == 0


def test_half_close_while_waiting_finishes_the_input_after_the_answer() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    bob, bob_wire = logged_in_bob(service, router)
    alice, wire = connect(service)
    alice.dataReceived(b"ME IS alice\nSEND bob\n2\nhi")
    alice.readConnectionLost()
    assert not wire.disconnecting  # the held input is not thrown away
    router.answer()
    assert take(wire) == b"OK\n"
    assert take(bob_wire) == b"FROM alice\n2\nhi"
    assert wire.disconnecting


def test_udp_datagrams_wait_for_the_login_answer() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    bob, bob_wire = logged_in_bob(service, router)

    udp = ChatDatagramProtocol(service)
    transport = FakeDatagramTransport()
    udp.makeConnection(transport)
    address = ("127.0.0.1", 5000)
    udp.datagramReceived(b"ME IS carol\n", address)
    udp.datagramReceived(b"SEND bob\n2\nhi", address)
    assert transport.written == []
    router.answer()
    assert transport.written == [(b"OK\n", address)]
    assert take(bob_wire) == b"FROM carol\n2\nhi"


def test_refused_udp_login_is_forgotten() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    udp = ChatDatagramProtocol(service)
    transport = FakeDatagramTransport()
    udp.makeConnection(transport)
    address = ("127.0.0.1", 5000)
    udp.datagramReceived(b"ME IS carol\n", address)
    router.answer(claimed=False)
    assert transport.written == [(b"ERROR\n", address)]
    # A new login from the same address starts afresh (a new claim is made).
    udp.datagramReceived(b"ME IS carol\n", address)
    assert len(router.asked) == 1


def test_udp_datagrams_past_the_hold_limit_are_dropped() -> None:
    router = AnsweringLaterRouter()
    service = make_service(router=router, limits=Limits(max_held_commands=10))
    bob, bob_wire = logged_in_bob(service, router)
    udp = ChatDatagramProtocol(service)
    udp.makeConnection(FakeDatagramTransport())
    address = ("127.0.0.1", 5000)
    udp.datagramReceived(b"ME IS carol\n", address)
    for index in range(15):
        udp.datagramReceived(b"SEND bob\n1\n%d" % (index % 10), address)
    router.answer()
    deliveries = take(bob_wire).count(b"FROM carol\n")
    assert deliveries == 10


def test_a_failure_after_a_late_answer_closes_only_that_client() -> None:
    router = AnsweringLaterRouter()
    service = service_with(router)
    alice, wire = connect(service)
    alice.dataReceived(b"ME IS alice\nSEND bob\n2\nhi")

    def broken(*args):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    service.send = service.send_run = broken  # type: ignore[method-assign]
    router.answer()  # the held SEND fails: logged, and alice's connection closed
    assert wire.disconnecting
    bob, bob_wire = connect(service, port=40001)
    bob.dataReceived(b"ME IS bob\n")
    router.answer()
    assert take(bob_wire) == b"OK\n"
