"""Codec tests, PROTOCOL.md §2 and §3: login, commands, recipients and blank lines."""

import pytest

from chatproto.limits import Limits
from chatproto.wire.codec import Decoder
from chatproto.wire.events import (
    NEED_DATA,
    BodyData,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
)
from tests.codec_support import (
    DEFAULT,
    REFUSED,
    TRAILER,
    TRAILER_EVENT,
    _broadcast,
    _broadcast_start,
    _feed_pieces,
    _kinds,
    _send,
    _send_start,
    decode_all_ways,
    decode_kinds,
)

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

# -- PROTOCOL §2: login -----------------------------------------------------


def test_login_is_accepted() -> None:
    """``ME IS alice`` with a newline gives ``Login(alice)``."""
    assert decode_kinds(b"ME IS alice\n") == [Login(b"alice")]


def test_login_with_crlf_is_accepted() -> None:
    """A ``\\r`` before the login line's ``\\n`` is tolerated."""
    assert decode_kinds(b"ME IS alice\r\n") == [Login(b"alice")]


def test_userid_of_one_byte_is_accepted() -> None:
    """The shortest userid, one byte, is valid."""
    assert decode_kinds(b"ME IS a\n") == [Login(b"a")]


def test_userid_of_32_bytes_is_accepted() -> None:
    """The longest userid, 32 bytes, is valid."""
    user = b"u" * 32
    assert decode_kinds(b"ME IS " + user + b"\n") == [Login(user)]


def test_userid_of_33_bytes_is_refused() -> None:
    """A 33-byte userid is refused without closing the stream."""
    assert decode_kinds(b"ME IS " + b"u" * 33 + b"\n") == [REFUSED]


def test_userid_may_use_every_printable_byte() -> None:
    """Every byte from 0x21 to 0x7E is allowed in a userid."""
    printable = bytes(range(0x21, 0x7F))
    users = [printable[i : i + 32] for i in range(0, len(printable), 32)]
    data = b"".join(b"ME IS " + user + b"\n" for user in users)
    assert decode_kinds(data) == [Login(user) for user in users]


def test_empty_userid_is_refused() -> None:
    """``ME IS`` followed by nothing is refused."""
    assert decode_kinds(b"ME IS \n") == [REFUSED]


@pytest.mark.parametrize(
    "user",
    [b"al ice", b"al\tice", b"al\x00ice", b"al\x7fice", b"al\x80ice", b"al\xffice", b"alice "],
    ids=["space", "tab", "nul", "del", "0x80", "0xff", "trailing-space"],
)
def test_userid_with_byte_outside_printable_ascii_is_refused(user: bytes) -> None:
    """A userid holding a space, control byte or non-ASCII byte is refused."""
    assert decode_kinds(b"ME IS " + user + b"\n") == [REFUSED]


@pytest.mark.parametrize("line", [b"me is alice", b"Me Is alice", b"ME is alice", b"me IS alice"])
def test_me_is_must_be_upper_case(line: bytes) -> None:
    """``ME`` and ``IS`` in any other case are not a login."""
    assert decode_kinds(line + b"\n") == [REFUSED]


@pytest.mark.parametrize(
    "line", [b"ME  IS alice", b"ME IS  alice", b"ME\tIS alice", b"ME IS\talice", b"MEIS alice"]
)
def test_me_is_needs_single_spaces(line: bytes) -> None:
    """``ME IS <userid>`` with other separators than single spaces is refused."""
    assert decode_kinds(line + b"\n") == [REFUSED]


def test_refused_login_resumes_at_next_line() -> None:
    """After a bad ``ME IS`` line the next line is parsed as a command."""
    assert decode_kinds(b"ME IS a b\nME IS bob\n") == [REFUSED, Login(b"bob")]


def test_every_login_line_is_reported() -> None:
    """The decoder reports a second ``ME IS``; refusing it is the session's job."""
    assert decode_kinds(b"ME IS alice\nME IS bob\n") == [Login(b"alice"), Login(b"bob")]


def test_login_without_newline_at_eof_is_accepted() -> None:
    """``ME IS alice`` followed by end of input gives ``Login``."""
    assert decode_kinds(b"ME IS alice", eof=True) == [Login(b"alice")]


def test_login_with_cr_and_no_newline_at_eof_is_accepted() -> None:
    """``ME IS alice\\r`` followed by end of input gives ``Login``."""
    assert decode_kinds(b"ME IS alice\r", eof=True) == [Login(b"alice")]


def test_login_without_newline_waits_for_more_data() -> None:
    """Without end of input, a login line lacking its ``\\n`` is not reported yet."""
    assert decode_kinds(b"ME IS alice") == []


# -- PROTOCOL §3: commands, recipients and blank lines ----------------------


def test_send_to_one_recipient() -> None:
    """``SEND bob`` with a short body gives one ``ShortMessage`` holding the body."""
    assert decode_kinds(b"SEND bob\n9\nYou suck!") == [_send(b"bob", body=b"You suck!")]


def test_short_message_is_reported_only_once_its_last_byte_is_in() -> None:
    """Nothing of a short message is reported before its body is complete."""
    decoder = Decoder(DEFAULT)
    for piece in [b"SEND bob\n", b"9\n", b"You suck"]:
        decoder.feed(piece)
        assert decoder.next_event() is NEED_DATA
        assert decoder.is_mid_message
    decoder.feed(b"!")
    assert decoder.next_event() == _send(b"bob", body=b"You suck!")
    assert decoder.next_event() is NEED_DATA
    assert not decoder.is_mid_message


def test_send_to_many_recipients() -> None:
    """``SEND`` names every space-separated recipient, in order."""
    assert decode_kinds(b"SEND bob carol dave\n2\nhi") == [
        _send(b"bob", b"carol", b"dave", body=b"hi")
    ]


def test_send_tolerates_runs_of_spaces() -> None:
    """Several spaces between recipients separate them like one."""
    assert decode_kinds(b"SEND  bob   carol\n2\nhi") == [
        _send(b"bob", b"carol", body=b"hi", line=b"SEND  bob   carol")
    ]


def test_send_tolerates_trailing_space() -> None:
    """A space after the last recipient is ignored."""
    assert decode_kinds(b"SEND bob \n2\nhi") == [_send(b"bob", body=b"hi", line=b"SEND bob ")]


def test_send_collapses_duplicate_recipients_in_order() -> None:
    """A recipient named twice appears once, where it was first named."""
    assert decode_kinds(b"SEND bob carol bob alice carol\n2\nhi") == [
        ShortMessage((b"bob", b"carol", b"alice"), b"hi", b"SEND bob carol bob alice carol")
    ]


def test_chunked_send_collapses_duplicate_recipients_in_order() -> None:
    """A chunked ``SEND`` also names a recipient given twice once, where first named."""
    assert decode_kinds(b"SEND bob carol bob\nC2\nhiC0\n") == [
        MessageStart((b"bob", b"carol"), b"SEND bob carol bob"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_send_to_max_recipients_is_accepted() -> None:
    """Exactly ``max_recipients`` distinct recipients are allowed."""
    limits = Limits(max_recipients=3)
    assert decode_kinds(b"SEND a b c\n2\nhi", limits) == [_send(b"a", b"b", b"c", body=b"hi")]


def test_duplicate_names_count_once_toward_max_recipients() -> None:
    """A name given twice counts once against ``max_recipients``."""
    limits = Limits(max_recipients=3)
    assert decode_kinds(b"SEND a b c a b\n2\nhi", limits) == [
        _send(b"a", b"b", b"c", body=b"hi", line=b"SEND a b c a b")
    ]


def test_broadcast_has_no_recipients() -> None:
    """``BROADCAST`` gives a ``ShortMessage`` whose recipients are ``None``."""
    assert decode_kinds(b"BROADCAST\n15\nLeave me alone!") == [_broadcast(b"Leave me alone!")]


def test_chunked_broadcast_has_no_recipients() -> None:
    """A chunked ``BROADCAST`` gives a ``MessageStart`` whose recipients are ``None``."""
    assert decode_kinds(b"BROADCAST\nC2\nhiC0\n") == [
        _broadcast_start(),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def _assert_refused_short_message(data: bytes, line: bytes, limits: Limits = DEFAULT) -> None:
    """Check a refused short message: one non-fatal ``Rejected`` after its body.

    ``data`` is the refused command ``line``, a short body ``hi`` and ``TRAILER``;
    the ``Rejected`` names ``line``, and the next command parses after it.
    """
    events = decode_all_ways(data, limits)
    assert _kinds(events) == [REFUSED, TRAILER_EVENT]
    refusal = events[0]
    assert isinstance(refusal, Rejected)
    assert refusal.line == line
    # Nothing is reported before the body's last byte is in.
    assert _feed_pieces([data[: data.index(b"hi") + 1]], limits)[0] == []


def test_broadcast_with_arguments_is_refused_after_its_body() -> None:
    """``BROADCAST bob`` is framed, then refused once its body is in."""
    _assert_refused_short_message(b"BROADCAST bob\n2\nhi" + TRAILER, b"BROADCAST bob")


@pytest.mark.parametrize("line", [b"SEND", b"SEND ", b"SEND   "])
def test_send_without_recipient_is_refused_after_its_body(line: bytes) -> None:
    """``SEND`` naming nobody is framed, then refused, and the next command parses."""
    _assert_refused_short_message(line + b"\n2\nhi" + TRAILER, line)


@pytest.mark.parametrize(
    "name",
    [b"b\x00b", b"b\x7fb", b"b\xffb", b"u" * 33, b"bob\tcarol"],
    ids=["nul", "del", "0xff", "33-bytes", "tab"],
)
def test_send_to_invalid_userid_is_refused_after_its_body(name: bytes) -> None:
    """A recipient that cannot be a userid makes ``SEND`` refused after its body."""
    line = b"SEND bob " + name
    _assert_refused_short_message(line + b"\n2\nhi" + TRAILER, line)


def test_send_to_more_than_max_recipients_is_refused_after_its_body() -> None:
    """More than ``max_recipients`` distinct recipients make ``SEND`` refused after its body."""
    data = b"SEND a b c d\n2\nhi" + TRAILER
    _assert_refused_short_message(data, b"SEND a b c d", Limits(max_recipients=3))


def test_refused_send_with_empty_short_body_is_refused() -> None:
    """A refused ``SEND`` with a body of length 0 is refused at its length line."""
    assert decode_kinds(b"SEND\n0\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


def _assert_refused_chunked_message(events: list[object], rest: list[object]) -> None:
    """Check a refused chunked message: a start, then ``rest`` (the chunks, the refusal, ...)."""
    start = events[0]
    assert isinstance(start, MessageStart)
    assert events[1:] == rest


def test_refused_send_with_chunked_body_is_framed() -> None:
    """A refused ``SEND`` with a chunked body is read to its ``C0`` before the refusal."""
    events = decode_kinds(b"SEND\nC2\nhiC3\nabcC0\n" + TRAILER)
    _assert_refused_chunked_message(
        events, [BodyData(b"hi"), BodyData(b"abc"), REFUSED, TRAILER_EVENT]
    )


def test_refused_broadcast_with_chunked_body_is_framed() -> None:
    """``BROADCAST bob`` with a chunked body is refused in place of its ``MessageEnd``."""
    events = decode_kinds(b"BROADCAST bob\nC2\nhiC0\n" + TRAILER)
    _assert_refused_chunked_message(events, [BodyData(b"hi"), REFUSED, TRAILER_EVENT])


@pytest.mark.parametrize("line", [b"HELLO", b"PING", b"send bob", b"SENDbob", b"BROADCASTx"])
def test_unknown_command_is_refused_and_parsing_resumes(line: bytes) -> None:
    """A line that is no known command is refused and the next line is a command."""
    assert decode_kinds(line + b"\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


def test_binary_garbage_line_is_refused_and_parsing_resumes() -> None:
    """A line of arbitrary bytes is an unknown command, not a broken stream."""
    assert decode_kinds(b"\x00\xff\x1b[2J\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


def test_blank_lines_between_commands_are_ignored() -> None:
    """Empty lines before, between and after commands give no events."""
    assert decode_kinds(b"\n\nME IS a\n\n\r\n\nME IS b\n\n") == [Login(b"a"), Login(b"b")]


def test_blank_lines_between_send_line_and_length_line_are_ignored() -> None:
    """Empty lines after a ``SEND`` line and before its length line are skipped."""
    assert decode_kinds(b"SEND bob\n\n\r\n\n2\nhi") == [_send(b"bob", body=b"hi")]


def test_blank_lines_between_send_line_and_chunk_header_are_ignored() -> None:
    """Empty lines after a ``SEND`` line and before its first chunk header are skipped."""
    assert decode_kinds(b"SEND bob\n\n\r\nC2\nhiC0\n") == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_blank_lines_between_chunk_frames_are_ignored() -> None:
    """Empty lines between chunk frames, and before ``C0``, are skipped."""
    assert decode_kinds(b"SEND bob\nC2\nhi\n\nC3\nabc\r\n\nC0\n") == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        BodyData(b"abc"),
        MessageEnd(),
    ]


def test_extra_newline_after_body_is_ignored() -> None:
    """A ``\\n`` sent after a body is a blank line, and the next command still parses."""
    assert decode_kinds(b"SEND bob\n2\nhi\n" + TRAILER) == [
        _send(b"bob", body=b"hi"),
        TRAILER_EVENT,
    ]


def test_extra_newline_after_refused_body_is_ignored() -> None:
    """A ``\\n`` after a refused message's body is a blank line too."""
    assert decode_kinds(b"SEND\n2\nhi\r\n\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


def test_crlf_after_send_line_is_tolerated() -> None:
    """A ``\\r`` ending a ``SEND`` line is not part of the last recipient."""
    assert decode_kinds(b"SEND bob carol\r\n2\nhi") == [_send(b"bob", b"carol", body=b"hi")]


def test_crlf_after_broadcast_line_is_tolerated() -> None:
    """``BROADCAST\\r\\n`` is a broadcast, not a ``BROADCAST`` with arguments."""
    assert decode_kinds(b"BROADCAST\r\n2\nhi") == [_broadcast(b"hi")]


def test_crlf_after_length_line_is_tolerated() -> None:
    """A short length line may end with ``\\r\\n``."""
    assert decode_kinds(b"SEND bob\n2\r\nhi") == [_send(b"bob", body=b"hi")]


def test_crlf_after_chunk_headers_is_tolerated() -> None:
    """Chunk headers, ``C0`` included, may end with ``\\r\\n``."""
    assert decode_kinds(b"SEND bob\r\nC2\r\nhiC0\r\n") == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_crlf_after_unknown_command_is_tolerated() -> None:
    """An unknown command ending with ``\\r\\n`` is skipped like any other line."""
    assert decode_kinds(b"HELLO\r\n" + TRAILER) == [REFUSED, TRAILER_EVENT]
