"""``-v`` shows every frame exactly as it was received, no more, no less (PROTOCOL §8, issue 13).

Each case issue 13 found has a golden test here; a property test checks that,
for any input cut anywhere, the bytes shown for a client (read back from the
escaped lines) are exactly the bytes it sent.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import capturedLogs

from chatproto.limits import Limits
from chatproto.server.service import ChatService
from chatproto.server.udp import ChatDatagramProtocol
from chatproto.server.verbose import RECEIVED, received_parts
from tests.protocol_support import close, login
from tests.support import connect, make_service, take
from tests.verbose_support import read_back, traffic

IP = "127.0.0.1"


def verbose_service(**limits: int) -> ChatService:
    return make_service(is_verbose=True, limits=Limits(**limits))


def shown_after_login(service: ChatService, data: bytes, *, eof: bool = False) -> list[str]:
    """The -v lines of a logged-in client ``u`` that sends ``data`` (then half-closes)."""
    protocol, _ = login(service, b"u")
    with capturedLogs() as events:
        protocol.dataReceived(data)
        if eof:
            protocol.readConnectionLost()
    return traffic(events)


def udp_port(service: ChatService) -> ChatDatagramProtocol:
    protocol = ChatDatagramProtocol(service)
    protocol.makeConnection(FakeDatagramTransport())
    return protocol


def udp_shown(protocol: ChatDatagramProtocol, *datagrams: bytes) -> list[str]:
    with capturedLogs() as events:
        for datagram in datagrams:
            protocol.datagramReceived(datagram, (IP, 5000))
    return traffic(events)


# -- a refused command's body is shown as received --------------------------------


def test_refused_send_over_the_recipient_limit_shows_its_body() -> None:
    lines = shown_after_login(verbose_service(max_recipients=2), b"SEND a b c\n2\nhi")
    assert lines == [
        "RCVD from u (127.0.0.1):\n  SEND a b c\\n\n  2\\n\n  hi",
        "SENT to u (127.0.0.1):\n  ERROR\\n",
    ]


def test_send_without_recipients_shows_its_body() -> None:
    lines = shown_after_login(verbose_service(), b"SEND\n3\nabc")
    assert lines[0] == "RCVD from u (127.0.0.1):\n  SEND\\n\n  3\\n\n  abc"


def test_broadcast_with_arguments_shows_its_body() -> None:
    lines = shown_after_login(verbose_service(), b"BROADCAST bob\n2\nhi")
    assert lines[0] == "RCVD from u (127.0.0.1):\n  BROADCAST bob\\n\n  2\\n\n  hi"


def test_chunked_datagram_is_shown_whole() -> None:
    port = udp_port(verbose_service())
    udp_shown(port, b"ME IS udpu")
    lines = udp_shown(port, b"SEND udpu\nC5\nhelloC0\n")
    assert lines == [
        "RCVD from udpu (127.0.0.1):\n  SEND udpu\\n\n  C5\\n\n  hello\n  C0\\n",
        "SENT to udpu (127.0.0.1):\n  ERROR\\n",
    ]


# -- broken framing shows the command line it broke ------------------------------------


def test_bad_length_line_is_shown_with_its_command_line() -> None:
    lines = shown_after_login(verbose_service(), b"SEND bob\nxyz\n")
    assert lines[0] == "RCVD from u (127.0.0.1):\n  SEND bob\\n\n  xyz\\n"


def test_bytes_after_a_fatal_error_are_counted_not_shown() -> None:
    lines = shown_after_login(verbose_service(), b"SEND bob\nxyz\nME IS b\n")
    assert lines == [
        "RCVD from u (127.0.0.1):\n  SEND bob\\n\n  xyz\\n",
        "SENT to u (127.0.0.1):\n  ERROR\\n",
        "NOTE u (127.0.0.1): 8 bytes after the error not read",
    ]


def test_over_long_line_is_shown_as_far_as_it_came() -> None:
    lines = shown_after_login(verbose_service(max_line_bytes=8), b"SEND bob\n123456789012")
    assert lines[0] == "RCVD from u (127.0.0.1):\n  SEND bob\\n\n  123456789012"


# -- nothing that was not received -----------------------------------------------------


def test_datagram_without_newline_is_shown_without_one() -> None:
    assert udp_shown(udp_port(verbose_service()), b"HELLO")[0] == "RCVD from 127.0.0.1: HELLO"


def test_datagram_send_without_body_gets_no_extra_line() -> None:
    port = udp_port(verbose_service())
    udp_shown(port, b"ME IS v")
    assert udp_shown(port, b"SEND alice\n")[0] == "RCVD from v (127.0.0.1):\n  SEND alice\\n"


def test_command_cut_by_eof_is_shown_without_newline() -> None:
    lines = shown_after_login(verbose_service(), b"HEL", eof=True)
    assert lines[0] == "RCVD from u (127.0.0.1):\n  HEL"


def test_length_with_leading_zero_and_crlf_are_shown_as_sent() -> None:
    service = verbose_service()
    login(service, b"bob")
    lines = shown_after_login(service, b"SEND bob\r\n05\r\nhello")
    assert lines == [
        "RCVD from u (127.0.0.1):\n  SEND bob\\x0d\\n\n  05\\x0d\\n\n  hello",
        "SENT to bob (127.0.0.1):\n  FROM u\\n\n  5\\n\n  hello",
    ]


def test_blank_lines_are_shown_with_the_frame_they_precede() -> None:
    lines = shown_after_login(verbose_service(), b"\n\nSEND u\n\n2\nhi")
    assert lines[0] == "RCVD from u (127.0.0.1):\n  \\n\n  \\n\n  SEND u\\n\n  \\n\n  2\\n\n  hi"


def test_frame_cut_short_by_a_close_is_shown_then_noted() -> None:
    service = verbose_service()
    protocol, _ = login(service, b"u")
    with capturedLogs() as events:
        protocol.dataReceived(b"SEND u\nC5\nhel")
        close(protocol)
    assert traffic(events) == [
        "RCVD from u (127.0.0.1):\n  SEND u\\n\n  C5\\n\n  hel",
        "NOTE u (127.0.0.1): gone before the end of this frame: dropped",
    ]


def test_big_frame_is_abbreviated_keeping_its_size() -> None:
    """A 3,000-byte chunked body: its start is shown, the rest counted."""
    data = b"SEND u\n" + b"C999\n" + b"x" * 999 + b"C999\n" + b"y" * 999 + b"C0\n"
    shown = read_back(shown_after_login(verbose_service(), data)[0])
    assert data.startswith(shown.data)
    assert len(shown.data) + shown.left_out == len(data)


# -- a frame and its answer stay together ----------------------------------------------


def test_operator_login_line_comes_after_the_ok() -> None:
    """The "logged in" line comes after SENT OK, not between RCVD and SENT (PROTOCOL §8)."""
    service = verbose_service()
    protocol, _ = connect(service)
    with capturedLogs() as events:
        protocol.dataReceived(b"ME IS x\n")
    texts = [event.get("text") or event["log_format"] for event in events]
    assert texts == [
        "RCVD from 127.0.0.1: ME IS x\\n",
        "SENT to 127.0.0.1: OK\\n",
        "{user} logged in from {peer} over {transport}",
    ]


# -- the properties ---------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_received_parts_add_nothing_and_leave_nothing_out(frame: bytes) -> None:
    assert b"".join(received_parts(frame)) == frame


_pieces = st.sampled_from(
    [
        b"ME IS u\n",
        b"ME IS v\r\n",
        b"SEND u\n",
        b"SEND u v  \n",
        b"BROADCAST\n",
        b"BROADCAST x\n",
        b"HELLO\n",
        b"\n",
        b"\r\n",
        b"2\nhi",
        b"05\nhello",
        b"0\n",
        b"C3\nabc",
        b"C003\nxyz",
        b"C0\n",
        b"C00\n",
        b"1000\n",
        b"C1000\n",
    ]
)
_inputs = st.lists(st.one_of(_pieces, st.binary(max_size=12)), max_size=25).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(_inputs, st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_bytes_shown_for_a_client_are_the_bytes_it_sent(
    data: bytes, cuts: list[int], half_close: bool
) -> None:
    """Whatever a client sends, cut anywhere: RCVD shows exactly its bytes, in order.

    After a fatal error the bytes the server did not read are counted in a
    NOTE instead; a frame cut short by the close is shown before it is dropped.
    """
    service = verbose_service(max_line_bytes=64)
    protocol, transport = connect(service)
    fed = 0
    with capturedLogs() as events:
        for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
            if transport.disconnecting:
                break
            protocol.dataReceived(data[start:end])
            fed = max(fed, min(end, len(data)))
        if half_close and not transport.disconnecting:
            protocol.readConnectionLost()
        close(protocol)
    shown = bytearray()
    unread = 0
    for text in traffic(events):
        if text.startswith("NOTE") and "bytes after the error not read" in text:
            unread += int(text.split(": ", 1)[1].split(" ")[0])
        elif text.startswith(RECEIVED):
            line = read_back(text)
            assert line.left_out == 0
            shown += line.data
    assert bytes(shown) + data[len(shown) : len(shown) + unread] == data[:fed]
    take(transport)
