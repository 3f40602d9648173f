"""Tests of the sans-I/O codec against PROTOCOL.md §6: one datagram in, its events out."""

import pytest

from chatproto.limits import Limits
from chatproto.wire.codec import decode_datagram
from chatproto.wire.events import Event, Login, Rejected, ShortMessage
from tests.codec_support import DEFAULT, _broadcast, _send

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- PROTOCOL §6: datagrams -------------------------------------------------


def test_datagram_login() -> None:
    """A datagram ``ME IS alice\\n`` gives ``Login``."""
    assert decode_datagram(b"ME IS alice\n", DEFAULT) == [Login(b"alice")]


def test_datagram_login_without_newline() -> None:
    """A datagram's login line may omit its ``\\n``."""
    assert decode_datagram(b"ME IS alice", DEFAULT) == [Login(b"alice")]


def test_datagram_login_with_cr_and_no_newline() -> None:
    """A datagram's login line may end in ``\\r`` without ``\\n``."""
    assert decode_datagram(b"ME IS alice\r", DEFAULT) == [Login(b"alice")]


def test_datagram_short_send() -> None:
    """``SEND bob\\n9\\nYou suck!`` in one datagram is one complete message."""
    assert decode_datagram(b"SEND bob\n9\nYou suck!", DEFAULT) == [
        _send(b"bob", body=b"You suck!")
    ]


@pytest.mark.parametrize("length", [b"0", b"00"])
def test_datagram_empty_short_send(length: bytes) -> None:
    """A datagram ``SEND`` with a body of length 0 is one empty message."""
    assert decode_datagram(b"SEND bob\n" + length + b"\n", DEFAULT) == [_send(b"bob", body=b"")]


def test_datagram_short_send_with_leading_zero_and_binary_body() -> None:
    """A datagram's length may have a leading zero and its body any bytes."""
    body = b"\x00\n\r\xff\nME IS x\n"
    assert decode_datagram(b"SEND bob carol bob\r\n" + b"%02d\n" % len(body) + body, DEFAULT) == [
        ShortMessage((b"bob", b"carol"), body, b"SEND bob carol bob")
    ]


def test_datagram_broadcast() -> None:
    """A ``BROADCAST`` with a short body in one datagram is one message."""
    assert decode_datagram(b"BROADCAST\n2\nhi", DEFAULT) == [_broadcast(b"hi")]


@pytest.mark.parametrize("datagram", [b"ME IS alice\n\n", b"ME IS alice\r\n\r\n"])
def test_datagram_trailing_blank_line_after_login_is_tolerated(datagram: bytes) -> None:
    """A blank line after a datagram's login is ignored."""
    assert decode_datagram(datagram, DEFAULT) == [Login(b"alice")]


def test_datagram_trailing_newline_after_body_is_tolerated() -> None:
    """A ``\\n`` after a datagram's body is ignored."""
    assert decode_datagram(b"SEND bob\n2\nhi\n", DEFAULT) == [_send(b"bob", body=b"hi")]


def _single_refusal(events: list[Event]) -> bool:
    return len(events) == 1 and isinstance(events[0], Rejected) and not events[0].fatal


def test_datagram_with_chunked_body_is_refused() -> None:
    """A chunked body in a datagram gives one non-fatal ``Rejected``."""
    assert _single_refusal(decode_datagram(b"SEND bob\nC2\nhiC0\n", DEFAULT))


def test_datagram_with_two_commands_is_refused() -> None:
    """Two commands in one datagram give one non-fatal ``Rejected``."""
    assert _single_refusal(decode_datagram(b"ME IS alice\nME IS bob\n", DEFAULT))


def test_datagram_with_message_then_command_is_refused() -> None:
    """A message followed by another command in one datagram gives one ``Rejected``."""
    assert _single_refusal(decode_datagram(b"SEND bob\n2\nhiME IS bob\n", DEFAULT))


@pytest.mark.parametrize("datagram", [b"", b"\n", b"\r\n\n"])
def test_datagram_without_command_is_refused(datagram: bytes) -> None:
    """An empty or blank datagram gives one non-fatal ``Rejected``."""
    assert _single_refusal(decode_datagram(datagram, DEFAULT))


@pytest.mark.parametrize(
    "datagram",
    [b"SEND bob\n9\nYou", b"SEND bob\n9", b"SEND bob", b"SEND bob\n100\nx", b"x" * 9000],
    ids=["short-body", "no-length-newline", "no-length", "bad-length", "line-too-long"],
)
def test_malformed_datagram_is_refused_once(datagram: bytes) -> None:
    """A datagram whose frame is broken or incomplete gives one non-fatal ``Rejected``."""
    assert _single_refusal(decode_datagram(datagram, DEFAULT))


def test_datagram_with_unknown_command_is_refused() -> None:
    """An unknown command in a datagram gives one non-fatal ``Rejected``."""
    assert _single_refusal(decode_datagram(b"HELLO\n", DEFAULT))


@pytest.mark.parametrize(
    ("datagram", "line"),
    [
        (b"SEND b\x00b\n2\nhi", b"SEND b\x00b"),
        (b"SEND \n2\nhi", b"SEND "),
        (b"BROADCAST bob\r\n2\nhi\n", b"BROADCAST bob"),
        (b"SEND a b c d e\n0\n", b"SEND a b c d e"),
    ],
    ids=["bad-name", "no-recipient", "broadcast-with-argument", "too-many-recipients"],
)
def test_datagram_with_refused_send_is_framed_then_refused(datagram: bytes, line: bytes) -> None:
    """A refused ``SEND``/``BROADCAST`` in a datagram gives one ``Rejected`` for its line."""
    events = decode_datagram(datagram, Limits(max_recipients=4))
    assert _single_refusal(events)
    refusal = events[0]
    assert isinstance(refusal, Rejected)
    assert refusal.line == line


def test_datagram_with_refused_send_then_command_is_refused() -> None:
    """A refused message followed by another command in one datagram is still one refusal."""
    events = decode_datagram(b"SEND\n2\nhiME IS bob\n", DEFAULT)
    assert _single_refusal(events)
