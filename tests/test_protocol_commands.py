"""The TCP protocol over StringTransport: PROTOCOL.md §2-§5.

Login, messages and their delivery, refusals and broken framing, the line and
message limits, the login timeout, half-close, a bug in one connection,
random messages and the ``-v`` transcript.
"""

import pytest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from chatproto.limits import Limits
from chatproto.server.service import CANNED_LINES, VERBOSE_NAMESPACE, ChatService
from chatproto.wire.encode import encode_message
from tests.protocol_support import close, login
from tests.support import ScriptedRandom, connect, make_service, take


@pytest.fixture
def service() -> ChatService:
    return make_service()


def test_login_answers_ok(service: ChatService) -> None:
    """ME IS with a fresh valid userid gets OK."""
    protocol, transport = connect(service)
    protocol.dataReceived(b"ME IS alice\n")
    assert transport.value() == b"OK\n"
    assert protocol.name == b"alice"


def test_login_with_crlf_answers_ok(service: ChatService) -> None:
    """A telnet-style \\r\\n line end is tolerated."""
    protocol, transport = connect(service)
    protocol.dataReceived(b"ME IS alice\r\n")
    assert transport.value() == b"OK\n"


def test_duplicate_login_gets_error(service: ChatService) -> None:
    """A userid already online gets ERROR, and the first user keeps it."""
    first, _ = login(service, b"alice")
    second, transport = connect(service)
    second.dataReceived(b"ME IS alice\n")
    assert transport.value() == b"ERROR\n"
    assert service.lookup(b"alice") is first and second.name is None


def test_second_login_on_a_connection_gets_error(service: ChatService) -> None:
    """A logged-in connection cannot log in again; its login stays."""
    protocol, transport = login(service, b"alice")
    protocol.dataReceived(b"ME IS bob\n")
    assert take(transport) == b"ERROR\n"
    assert protocol.name == b"alice" and service.lookup(b"bob") is None


@pytest.mark.parametrize(
    "line", [b"ME IS \n", b"ME IS a b\n", b"ME IS " + b"x" * 33 + b"\n", b"me is alice\n"]
)
def test_invalid_login_gets_error_and_connection_stays(service: ChatService, line: bytes) -> None:
    """A bad userid or malformed ME IS gets ERROR; a good login afterwards works."""
    protocol, transport = connect(service)
    protocol.dataReceived(line + b"ME IS alice\n")
    assert transport.value() == b"ERROR\nOK\n"


def test_userid_freed_when_connection_closes(service: ChatService) -> None:
    """Closing the connection releases the userid."""
    protocol, _ = login(service, b"alice")
    close(protocol)
    login(service, b"alice")


def test_send_before_login_gets_one_error_after_the_body(service: ChatService) -> None:
    """A SEND before login is framed, answered ERROR once, and the next command works."""
    login(service, b"bob")
    protocol, transport = connect(service)
    protocol.dataReceived(b"SEND bob\n5\nhel")
    assert transport.value() == b""
    protocol.dataReceived(b"lo" + b"ME IS alice\n")
    assert transport.value() == b"ERROR\nOK\n"


def test_unknown_command_gets_error_and_parsing_resumes(service: ChatService) -> None:
    """An unknown line gets ERROR and the next line is read as a command."""
    alice, transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"HELLO\nSEND bob\n2\nhi")
    assert take(transport) == b"ERROR\n"
    assert bob_transport.value() == b"FROM alice\n2\nhi"


def test_short_message_is_delivered_with_from_line(service: ChatService) -> None:
    """SEND with a short body reaches the recipient as FROM + length + body."""
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"SEND bob\n9\nYou suck!")
    assert bob_transport.value() == b"FROM alice\n9\nYou suck!"


def test_length_with_leading_zero_is_written_plainly(service: ChatService) -> None:
    """A length of 09 is delivered as 9."""
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"SEND bob\n09\nYou suck!")
    assert bob_transport.value() == b"FROM alice\n9\nYou suck!"


def test_chunked_message_keeps_its_chunks_and_binary_bytes(service: ChatService) -> None:
    """A chunked body arrives with the sender's chunk sizes and every byte intact."""
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    body = bytes(range(256)) * 4
    alice.dataReceived(b"SEND bob\nC100\n" + body[:100] + b"C924\n" + body[100:])
    alice.dataReceived(b"C007\n\x00\n\n\r\n\xff\xfeC0\n")
    expected = (
        b"FROM alice\nC100\n"
        + body[:100]
        + b"C924\n"
        + body[100:]
        + b"C7\n\x00\n\n\r\n\xff\xfeC0\n"
    )
    assert bob_transport.value() == expected


def test_message_split_one_byte_at_a_time_is_delivered_once(service: ChatService) -> None:
    """Feeding a frame a byte at a time gives the same single delivery."""
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    frame = encode_message([b"bob"], b"x" * 2500)
    for i in range(len(frame)):
        alice.dataReceived(frame[i : i + 1])
    assert bob_transport.value() == b"FROM alice\n" + frame[len(b"SEND bob\n") :]


def test_nothing_is_delivered_before_the_last_byte(service: ChatService) -> None:
    """Store and forward: a recipient sees nothing until the whole message has arrived."""
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"SEND bob\nC3\nabcC2\nde")
    assert bob_transport.value() == b""
    alice.dataReceived(b"C0\n")
    assert bob_transport.value() == b"FROM alice\nC3\nabcC2\ndeC0\n"


def test_sender_disconnecting_mid_message_leaves_no_trace(service: ChatService) -> None:
    """A message whose sender vanishes before C0 reaches no one, and its userid is freed."""
    alice, alice_transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"SEND bob\nC3\nabcC2\nde")
    close(alice)
    assert bob_transport.value() == b"" and alice_transport.value() == b""
    assert service.lookup(b"alice") is None


def test_multiple_recipients_each_get_the_message_once(service: ChatService) -> None:
    """SEND to several users (one named twice) delivers once to each."""
    alice, _ = login(service, b"alice")
    transports = [login(service, name)[1] for name in (b"bob", b"carol")]
    alice.dataReceived(b"SEND bob  carol bob \n2\nhi")
    assert [t.value() for t in transports] == [b"FROM alice\n2\nhi"] * 2


def test_messages_arrive_in_the_order_sent(service: ChatService) -> None:
    """Messages from one sender to one recipient keep their order."""
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"".join(encode_message([b"bob"], b"%d" % i) for i in range(20)))
    expected = b"".join(b"FROM alice\n%d\n%d" % (len(b"%d" % i), i) for i in range(20))
    assert bob_transport.value() == expected


@pytest.mark.parametrize(
    "line",
    [b"BROADCAST now\n", b"SEND\n", b"SEND bad\x01name\n", b"SEND " + b"u" * 33 + b"\n"],
)
def test_refused_message_gets_one_error_after_its_body(service: ChatService, line: bytes) -> None:
    """A refused SEND/BROADCAST is read whole, answered ERROR once, and delivers nothing."""
    alice, transport = login(service, b"alice")
    alice.dataReceived(line + b"3\nabc" + b"SEND alice\n2\nok")
    assert transport.value() == b"ERROR\nFROM alice\n2\nok"


def test_too_many_recipients_is_refused() -> None:
    """More distinct recipients than the limit is refused with ERROR."""
    service = make_service(limits=Limits(max_recipients=2))
    alice, transport = login(service, b"alice")
    alice.dataReceived(b"SEND a b c\n1\nx")
    assert transport.value() == b"ERROR\n"


@pytest.mark.parametrize(
    "data", [b"SEND bob\n100\n", b"SEND bob\nC1000\n", b"SEND bob\nC3\nabcX\n", b"SEND bob\n-1\n"]
)
def test_broken_framing_gets_error_and_close(service: ChatService, data: bytes) -> None:
    """A body that cannot be delimited gets one ERROR and the connection is closed."""
    alice, transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(data + b"SEND bob\n2\nhi")
    assert transport.value() == b"ERROR\n"
    assert transport.disconnecting
    assert bob_transport.value() == b""


def test_refused_then_broken_gets_only_one_error(service: ChatService) -> None:
    """A refused command whose framing then breaks is answered with a single ERROR."""
    alice, transport = login(service, b"alice")
    alice.dataReceived(b"BROADCAST x\nC3\nabcC1000\n")
    assert transport.value() == b"ERROR\n" and transport.disconnecting


def test_over_long_line_closes_the_connection() -> None:
    """A line over the limit gets ERROR and a close."""
    service = make_service(limits=Limits(max_line_bytes=16))
    protocol, transport = connect(service)
    protocol.dataReceived(b"x" * 40)
    assert transport.value() == b"ERROR\n" and transport.disconnecting


def test_message_over_the_size_limit_closes_the_connection() -> None:
    """A message larger than the limit gets ERROR and a close, before its data arrives."""
    service = make_service(limits=Limits(max_message_bytes=1500))
    alice, transport = login(service, b"alice")
    alice.dataReceived(b"SEND alice\nC999\n" + b"x" * 999 + b"C999\n")
    assert transport.value() == b"ERROR\n" and transport.disconnecting


def test_data_after_close_is_ignored(service: ChatService) -> None:
    """Once the server decided to close, later bytes are not processed."""
    alice, transport = login(service, b"alice")
    alice.dataReceived(b"SEND alice\nC1000\n")
    take(transport)
    alice.dataReceived(b"ME IS x\n")
    assert transport.value() == b""


def test_login_timeout_closes_an_idle_connection() -> None:
    """A connection that does not log in within the timeout is closed."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(login_timeout_s=5))
    _, transport = connect(service)
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting


def test_login_timeout_spares_logged_in_clients() -> None:
    """A client that logged in is not closed by the login timeout."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(login_timeout_s=5))
    protocol, transport = connect(service)
    protocol.dataReceived(b"ME IS alice\n")
    clock.advance(100)
    assert not transport.disconnecting


def test_closed_connection_leaves_no_timer() -> None:
    """connectionLost cancels the login timeout."""
    clock = Clock()
    service = make_service(clock=clock)
    protocol, _ = connect(service)
    close(protocol)
    assert clock.getDelayedCalls() == []


def test_half_close_finishes_a_last_line_without_newline(service: ChatService) -> None:
    """After the client shuts its sending side, a last unterminated command still counts."""
    protocol, transport = connect(service)
    protocol.dataReceived(b"ME IS alice")
    protocol.readConnectionLost()
    assert transport.value() == b"OK\n" and transport.disconnecting


def test_half_close_mid_message_is_quiet(service: ChatService) -> None:
    """A client that stops sending in the middle of a message gets no ERROR."""
    alice, transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(b"SEND bob\nC5\nab")
    alice.readConnectionLost()
    assert transport.value() == b"" and bob_transport.value() == b""
    assert transport.disconnecting


def test_a_bug_closes_only_that_connection(service: ChatService) -> None:
    """An exception while handling data gives that client ERROR and a close, nothing else."""
    alice, transport = login(service, b"alice")
    _, bob_transport = login(service, b"bob")

    def broken(*args):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    service.send = service.send_run = broken  # type: ignore[method-assign]
    with capturedLogs() as events:
        alice.dataReceived(b"SEND bob\n2\nhi")
    assert transport.value() == b"ERROR\n" and transport.disconnecting
    assert not bob_transport.disconnecting
    assert any(e.get("log_failure") for e in events)
    close(alice)
    assert service.lookup(b"alice") is None


def test_random_message_after_three_deliveries() -> None:
    """The fourth frame a client gets after three messages is a canned line from a sender."""
    # Three messages in one read are a run: a draw for which of the three
    # senders (all alice), then one for the canned line (the third).
    draws = [0.9, 2.5 / len(CANNED_LINES)]
    service = make_service(random_messages=True, rng=ScriptedRandom(draws=draws))
    alice, _ = login(service, b"alice")
    _, bob_transport = login(service, b"bob")
    alice.dataReceived(encode_message([b"bob"], b"a") * 3)
    line = CANNED_LINES[2]
    tail = b"FROM alice\n%d\n" % len(line) + line
    assert bob_transport.value() == b"FROM alice\n1\na" * 3 + tail


def test_verbose_transcript_of_a_login_and_a_message() -> None:
    """With -v, RCVD and SENT lines follow the brief's format."""
    service = make_service(is_verbose=True)
    with capturedLogs() as events:
        alice, _ = login(service, b"alice", host="10.0.0.1")
        login(service, b"bob", host="10.0.0.2")
        alice.dataReceived(b"SEND bob\n9\nYou suck!")
        alice.dataReceived(b"PING\n")
    texts = [e["text"] for e in events if e.get("log_namespace") == VERBOSE_NAMESPACE]
    assert texts == [
        "RCVD from 10.0.0.1: ME IS alice\\n",
        "SENT to 10.0.0.1: OK\\n",
        "RCVD from 10.0.0.2: ME IS bob\\n",
        "SENT to 10.0.0.2: OK\\n",
        "RCVD from alice (10.0.0.1):\n  SEND bob\\n\n  9\\n\n  You suck!",
        "SENT to bob (10.0.0.2):\n  FROM alice\\n\n  9\\n\n  You suck!",
        "RCVD from alice (10.0.0.1):\n  PING\\n",
        "SENT to alice (10.0.0.1):\n  ERROR\\n",
    ]
