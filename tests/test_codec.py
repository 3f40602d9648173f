"""Tests of the sans-I/O codec against PROTOCOL.md §2, §3 and §6: bytes in, events out."""

import re
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire import events as events_module
from chatproto.wire.buffer import LINE_TOO_LONG, ReceiveBuffer
from chatproto.wire.codec import Decoder, decode_datagram
from chatproto.wire.encode import (
    encode_chunked_body,
    encode_command,
    encode_from,
    encode_login,
    encode_message,
    encode_short_body,
    split_chunks,
)
from chatproto.wire.events import (
    NEED_DATA,
    BodyData,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
)
from chatproto.wire.grammar import ERROR, OK, is_valid_userid
from tests.decoding import cut_at, drain, feed_pieces, is_fatal, streams_of

DEFAULT = Limits()
SMALL_LINES = Limits(max_line_bytes=16)
#: Bytes of a next command, appended to every framing input (helper way (d)).
TRAILER = b"ME IS zed\n"
TRAILER_EVENT = Login(b"zed")

#: Stand-ins for a ``Rejected`` in expected event lists: the reason text is for logs only.
REFUSED = "non-fatal Rejected"
FATAL = "fatal Rejected"

#: Every event type ``chatproto.wire.events`` defines.
EVENT_TYPES = typing.get_args(events_module.Event)


# -- helpers ----------------------------------------------------------------


def _feed_pieces(
    pieces: list[bytes], limits: Limits, eof: bool = False
) -> tuple[list[Event], Decoder]:
    """Feed ``pieces`` to a fresh decoder, draining after each; return events and decoder."""
    decoder = Decoder(limits)
    return feed_pieces(decoder, pieces, eof), decoder


def _assert_well_formed(events: list[Event]) -> None:
    """Check the event grammar of ``chatproto.wire.events``.

    Outside a message: ``Login``, ``ShortMessage``, ``MessageStart`` (always
    chunked) or ``Rejected``. Inside a chunked message: ``BodyData`` (one
    non-empty chunk each), then ``MessageEnd`` or a ``Rejected`` in its place.
    Nothing follows a fatal ``Rejected``.
    """
    in_message = False
    for i, event in enumerate(events):
        assert not is_fatal(events[:i]), f"event {i} after a fatal Rejected"
        if in_message:
            assert isinstance(event, (BodyData, MessageEnd, Rejected)), f"event {i} mid-message"
            if isinstance(event, BodyData):
                assert event.data, f"empty BodyData at {i}"
            else:
                in_message = False
        else:
            assert isinstance(event, (Login, ShortMessage, MessageStart, Rejected)), f"event {i}"
            if isinstance(event, MessageStart):
                in_message = True


def decode_all_ways(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[Event]:
    """Decode ``data`` whole, byte by byte, split at every index and with a trailer.

    All ways must give identical event lists, with no merging of ``BodyData``
    (each is exactly one chunk, never empty), and the events must be well formed
    (see ``_assert_well_formed``).
    """
    expected, _ = _feed_pieces([data], limits, eof)
    by_byte, _ = _feed_pieces([data[i : i + 1] for i in range(len(data))], limits, eof)
    assert by_byte == expected, "byte by byte"
    for i in range(len(data) + 1):
        split, _ = _feed_pieces([data[:i], data[i:]], limits, eof)
        assert split == expected, f"split at {i}"
    base, decoder = _feed_pieces([data], limits)
    longer, _ = _feed_pieces([data + TRAILER], limits)
    assert longer[: len(base)] == base, "with a next command appended"
    at_boundary = not decoder.is_mid_message and decoder.buffered_bytes == 0
    if at_boundary and not is_fatal(base):
        assert longer == [*base, TRAILER_EVENT], "the next command parses after the input"
    _assert_well_formed(expected)
    return expected


def _kinds(events: list[Event]) -> list[object]:
    """Replace each ``Rejected`` by ``REFUSED`` or ``FATAL``; keep the other events."""
    return [
        (FATAL if event.fatal else REFUSED) if isinstance(event, Rejected) else event
        for event in events
    ]


def decode_kinds(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[object]:
    """Decode ``data`` every way (see ``decode_all_ways``) and summarise ``Rejected``."""
    return _kinds(decode_all_ways(data, limits, eof))


def _send(*names: bytes, body: bytes, line: bytes | None = None) -> ShortMessage:
    """The ``ShortMessage`` of ``SEND <names>`` with a short ``body`` (``line`` as received)."""
    if line is None:
        line = b"SEND " + b" ".join(names)
    return ShortMessage(tuple(dict.fromkeys(names)), body, line)


def _send_start(*names: bytes, line: bytes | None = None) -> MessageStart:
    """The ``MessageStart`` of ``SEND <names>`` with a chunked body (``line`` as received)."""
    if line is None:
        line = b"SEND " + b" ".join(names)
    return MessageStart(tuple(dict.fromkeys(names)), line)


def _broadcast(body: bytes) -> ShortMessage:
    """The ``ShortMessage`` of ``BROADCAST`` with a short ``body``."""
    return ShortMessage(None, body, b"BROADCAST")


def _broadcast_start() -> MessageStart:
    """The ``MessageStart`` of ``BROADCAST`` with a chunked body."""
    return MessageStart(None, b"BROADCAST")


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


# -- PROTOCOL §3: short bodies ----------------------------------------------


@pytest.mark.parametrize("length", [b"0", b"00"])
def test_empty_short_body_is_a_message(length: bytes) -> None:
    """A short body of length 0 is a complete, empty message, reported at its length line."""
    assert decode_kinds(b"SEND bob\n" + length + b"\n" + TRAILER) == [
        _send(b"bob", body=b""),
        TRAILER_EVENT,
    ]


@pytest.mark.parametrize("length", [b"0", b"00"])
def test_empty_short_broadcast_is_a_message(length: bytes) -> None:
    """An empty short ``BROADCAST`` is one ``ShortMessage`` with an empty body."""
    assert decode_kinds(b"BROADCAST\n" + length + b"\n" + TRAILER) == [
        _broadcast(b""),
        TRAILER_EVENT,
    ]


def test_short_length_with_leading_zero_is_accepted() -> None:
    """``09`` is the length 9."""
    assert decode_kinds(b"SEND bob\n09\nYou suck!") == [_send(b"bob", body=b"You suck!")]


def test_every_short_length_is_accepted() -> None:
    """Every short length 0..99 frames exactly that many bytes.

    Each is written in plain decimal, and 0..9 also with a leading zero.
    """
    lengths = [b"%d" % n for n in range(100)] + [b"0%d" % n for n in range(10)]
    for length in lengths:
        body = bytes(range(int(length)))
        data = b"SEND bob\n" + length + b"\n" + body + TRAILER
        events, decoder = _feed_pieces([data], DEFAULT, eof=True)
        assert events == [_send(b"bob", body=body), TRAILER_EVENT], length
        assert decoder.buffered_bytes == 0


def test_short_body_of_99_bytes_is_accepted() -> None:
    """The largest short body, 99 bytes, is one ``ShortMessage``."""
    body = bytes(range(99))
    assert decode_kinds(b"SEND bob\n99\n" + body) == [_send(b"bob", body=body)]


def test_short_body_is_binary() -> None:
    """A short body may hold ``\\n``, ``\\r``, NUL and high bytes."""
    body = b"a\nb\x00c\r\n\xff"
    assert decode_kinds(b"SEND bob\n8\n" + body) == [_send(b"bob", body=body)]


def test_short_body_may_hold_every_byte_value() -> None:
    """Short bodies carry all 256 byte values unchanged."""
    everything = bytes(range(256))
    bodies = [everything[i : i + 99] for i in range(0, 256, 99)]
    data = b"".join(b"BROADCAST\n%d\n" % len(body) + body for body in bodies)
    assert decode_kinds(data) == [_broadcast(body) for body in bodies]


def test_newline_right_after_length_line_belongs_to_the_body() -> None:
    """The body starts right after the length line, so a ``\\n`` there is body data."""
    assert decode_kinds(b"SEND bob\n3\n\nab") == [_send(b"bob", body=b"\nab")]


def test_body_that_looks_like_a_command_is_data() -> None:
    """Command text inside a body is not parsed as a command."""
    assert decode_kinds(b"SEND bob\n10\nME IS eve\n") == [_send(b"bob", body=b"ME IS eve\n")]


def test_refused_body_that_looks_like_a_command_is_skipped() -> None:
    """The body of a refused message is framed and skipped, never parsed as commands."""
    assert decode_kinds(b"SEND\n10\nME IS eve\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


def test_next_command_starts_right_after_the_body() -> None:
    """No newline follows a body: the next command starts at its next byte."""
    assert decode_kinds(b"SEND bob\n2\nhi" + TRAILER) == [
        _send(b"bob", body=b"hi"),
        TRAILER_EVENT,
    ]


# -- PROTOCOL §3: chunked bodies --------------------------------------------


def test_chunked_body_with_varying_chunk_sizes() -> None:
    """Each chunk, whatever its size, is one ``BodyData``."""
    chunks = [b"abc", b"x", b"\n" * 5, b"y" * 999, b"z" * 12]
    data = b"SEND bob\n" + b"".join(b"C%d\n" % len(c) + c for c in chunks) + b"C0\n"
    assert decode_kinds(data) == [
        _send_start(b"bob"),
        *[BodyData(c) for c in chunks],
        MessageEnd(),
    ]


def test_chunk_size_with_leading_zeros_is_accepted() -> None:
    """``C007`` is a chunk of 7 bytes."""
    assert decode_kinds(b"SEND bob\nC007\nabcdefgC0\n") == [
        _send_start(b"bob"),
        BodyData(b"abcdefg"),
        MessageEnd(),
    ]


@pytest.mark.parametrize("end", [b"C0", b"C00", b"C000"])
def test_zero_chunk_with_any_zeros_ends_the_body(end: bytes) -> None:
    """``C0``, ``C00`` and ``C000`` all end a chunked body."""
    assert decode_kinds(b"SEND bob\nC2\nhi" + end + b"\n" + TRAILER) == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_empty_chunked_body_is_a_message() -> None:
    """``C0`` right after the command line is a valid, empty chunked message."""
    assert decode_kinds(b"BROADCAST\nC0\n" + TRAILER) == [
        _broadcast_start(),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_chunk_data_is_binary() -> None:
    """A chunk may hold bytes that look like chunk headers and newlines."""
    chunk = b"\nC0\n\x00\xff"
    assert decode_kinds(b"SEND bob\nC6\n" + chunk + b"C0\n") == [
        _send_start(b"bob"),
        BodyData(chunk),
        MessageEnd(),
    ]


# -- PROTOCOL §3: a repeated command line parses as if new ------------------

#: Limits under which ``SEND a b c d e`` names too many recipients.
REPEAT_LIMITS = Limits(max_recipients=4)
#: Whole frames, keyed by name. The decoder reuses the parse of the last
#: ``SEND``/``BROADCAST`` line when the next command line is byte-identical, so
#: several frames share a command line (short and chunked, with ``\r\n``) and
#: others differ from it only slightly (a prefix, a tab, a trailing space).
REPEAT_FRAMES = {
    "accepted": b"SEND bob carol bob\n2\nhi",
    "accepted-crlf": b"SEND bob carol bob\r\n\n1\nx",
    "accepted-chunked": b"SEND bob carol bob\nC2\nhiC0\n",
    "accepted-prefix": b"SEND bob carol\n0\n",
    "accepted-trailing-space": b"SEND bob carol bob \n1\ny",
    "refused-tab": b"SEND bob carol bob\t\n2\nhi",
    "refused-name": b"SEND bob b\x00b\n2\nhi",
    "refused-name-chunked": b"SEND bob b\x00b\nC1\nxC0\n",
    "too-many": b"SEND a b c d e\n3\nabc",
    "four": b"SEND a b c d\n3\nabc",
    "no-recipient": b"SEND \n0\n",
    "broadcast": b"BROADCAST\n0\n",
    "broadcast-chunked": b"BROADCAST\nC1\nzC0\n",
    "broadcast-argument": b"BROADCAST bob\n1\nz",
    "login": b"ME IS bob\n",
    "bad-login": b"ME IS b b\n",
    "unknown-tab": b"SEND\tbob carol bob\n",
    "unknown-leading-space": b" SEND bob carol bob\n",
}


def _fresh_events(names: list[str]) -> list[Event]:
    """The events of each named frame decoded by a decoder of its own, one after another."""
    events: list[Event] = []
    for name in names:
        frame_events, decoder = _feed_pieces([REPEAT_FRAMES[name]], REPEAT_LIMITS)
        assert not decoder.is_mid_message and decoder.buffered_bytes == 0, name
        events += frame_events
    return events


@pytest.mark.parametrize(
    "names",
    [
        ["accepted", "accepted"],
        ["accepted", "accepted", "accepted"],
        ["refused-name", "refused-name"],
        ["too-many", "too-many"],
        ["no-recipient", "no-recipient"],
        ["broadcast", "broadcast"],
        ["broadcast-argument", "broadcast-argument"],
        ["accepted", "refused-name", "accepted"],
        ["refused-name", "accepted", "refused-name"],
        ["too-many", "four", "too-many"],
        ["four", "too-many", "four"],
        ["broadcast", "broadcast-argument", "broadcast"],
        ["broadcast-argument", "broadcast", "broadcast-argument"],
        ["accepted", "accepted-prefix", "accepted"],
        ["accepted", "accepted-trailing-space", "accepted"],
        ["accepted", "refused-tab", "accepted"],
        ["refused-tab", "accepted", "refused-tab"],
        ["accepted", "accepted-crlf", "accepted-chunked", "accepted"],
        ["refused-name", "refused-name-chunked", "refused-name"],
        ["broadcast-chunked", "broadcast", "broadcast-chunked"],
        ["accepted", "login", "accepted"],
        ["refused-name", "bad-login", "refused-name"],
        ["accepted", "unknown-tab", "accepted"],
        ["refused-name", "unknown-tab", "refused-name"],
        ["accepted", "unknown-leading-space", "accepted"],
    ],
    ids="+".join,
)
def test_repeated_command_line_gives_the_events_of_a_fresh_decoder(names: list[str]) -> None:
    """A repeated command line gives exactly the events of a fresh decoder.

    The decoder reuses the parse of a byte-identical ``SEND``/``BROADCAST`` line:
    the same accepted or refused line twice in a row, or with another line
    between, must give the events each frame gives on a decoder of its own.
    """
    data = b"".join(REPEAT_FRAMES[name] for name in names)
    assert decode_all_ways(data, REPEAT_LIMITS) == _fresh_events(names)


def test_repeated_refused_and_accepted_lines_give_the_right_events() -> None:
    """A refused line, an accepted one and the refused one again, spelled out."""
    data = b"SEND a b c d e\n2\nhiSEND a b\n2\nhiSEND a b c d e\n2\nhiSEND a b\n2\nhi"
    accepted = _send(b"a", b"b", body=b"hi")
    events = decode_all_ways(data, REPEAT_LIMITS)
    assert _kinds(events) == [REFUSED, accepted, REFUSED, accepted]
    for refusal in events[0::2]:
        assert isinstance(refusal, Rejected)
        assert refusal.line == b"SEND a b c d e"


@settings(max_examples=150)
@given(st.lists(st.sampled_from(sorted(REPEAT_FRAMES)), max_size=8), st.data())
def test_property_command_line_reuse_never_changes_events(
    names: list[str], data: st.DataObject
) -> None:
    """Any sequence of frames, cut anywhere, gives the events of fresh decoders."""
    raw = b"".join(REPEAT_FRAMES[name] for name in names)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[i:j] for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    events, _ = _feed_pieces(pieces, REPEAT_LIMITS, eof=True)
    assert events == _fresh_events(names)


# -- PROTOCOL §3: broken framing is fatal -----------------------------------


#: Length lines that are neither a short length 0..99 nor a chunk header: too many
#: digits, signs, spaces, letters, control bytes, and digits outside ASCII (superscript
#: two in Latin-1 and UTF-8, Arabic-Indic three, fullwidth five), which only a Unicode
#: digit test would take.
BAD_LENGTH_LINES = [
    b"100",
    b"007",
    b"000",
    b"099",
    b"-1",
    b"+5",
    b"-0",
    b"x",
    b"5 ",
    b" 5",
    b"\t5",
    b"5\t",
    b"1 0",
    b"5\r\r",
    b"5\x00",
    b"\x005",
    b"1a",
    b"0x",
    b"\xb2",
    b"\xc2\xb2",
    b"\xd9\xa3",
    b"\xef\xbc\x95",
    b"C1000",
    b"C-1",
    b"c5",
    b"C 5",
]


@pytest.mark.parametrize("line", BAD_LENGTH_LINES)
def test_bad_length_line_is_fatal(line: bytes) -> None:
    """A length line that is neither 0..99 nor a valid chunk header ends the stream."""
    assert decode_kinds(b"SEND bob\n" + line + b"\n" + TRAILER) == [FATAL]


@pytest.mark.parametrize("line", BAD_LENGTH_LINES)
def test_bad_length_line_of_broadcast_is_fatal(line: bytes) -> None:
    """The length line of a ``BROADCAST`` follows the same rule; the failure shows it."""
    events = decode_all_ways(b"BROADCAST\n" + line + b"\n" + TRAILER)
    assert _kinds(events) == [FATAL]
    assert isinstance(events[0], Rejected)
    assert events[0].line == line.removesuffix(b"\r")


@pytest.mark.parametrize(
    "line", [b"C1000", b"C-1", b"C+5", b"c5", b"C 5", b"C", b"Cx", b"5", b"C5 "]
)
def test_bad_chunk_header_after_a_chunk_is_fatal(line: bytes) -> None:
    """A chunk header with a sign, letters, spaces or over 999 ends the stream."""
    assert decode_kinds(b"SEND bob\nC2\nhi" + line + b"\n" + TRAILER) == [
        _send_start(b"bob"),
        BodyData(b"hi"),
        FATAL,
    ]


@pytest.mark.parametrize("line", [b"100", b"007", b"-1", b"+5", b" 5", b"\xd9\xa3"])
def test_bad_length_line_of_refused_send_gives_one_fatal_rejection(line: bytes) -> None:
    """A refused ``SEND`` whose framing breaks gives the fatal rejection only."""
    assert decode_kinds(b"SEND\n" + line + b"\n" + TRAILER) == [FATAL]


def test_line_over_max_line_bytes_is_fatal() -> None:
    """A command line one byte over the line limit ends the stream."""
    assert decode_kinds(b"ME IS " + b"u" * 11 + b"\n" + TRAILER, SMALL_LINES) == [FATAL]


def test_line_over_max_line_bytes_is_fatal_without_newline() -> None:
    """A line is too long as soon as more bytes arrived than the limit allows, newline or not."""
    assert decode_kinds(b"x" * 18, SMALL_LINES) == [FATAL]


def test_line_of_exactly_max_line_bytes_is_accepted() -> None:
    """A line of exactly ``max_line_bytes`` bytes plus ``\\n`` is fine."""
    user = b"u" * 10
    assert decode_kinds(b"ME IS " + user + b"\n", SMALL_LINES) == [Login(user)]


def test_line_of_exactly_max_line_bytes_with_crlf_is_accepted() -> None:
    """The ``\\r\\n`` ending a line does not count toward ``max_line_bytes``."""
    user = b"u" * 10
    assert decode_kinds(b"ME IS " + user + b"\r\n", SMALL_LINES) == [Login(user)]


def test_send_line_over_max_line_bytes_is_fatal() -> None:
    """A ``SEND`` line over the line limit is an over-long line, not a refused message."""
    assert decode_kinds(b"SEND bob carol dave\n2\nhi", SMALL_LINES) == [FATAL]


def test_length_line_over_max_line_bytes_is_fatal() -> None:
    """An over-long length line ends the stream."""
    assert decode_kinds(b"SEND bob\n" + b"0" * 17 + b"\n", SMALL_LINES) == [FATAL]


def test_many_blank_lines_are_not_one_long_line() -> None:
    """Many blank lines in a row are each a short line, not one long one."""
    assert decode_kinds(b"\n" * 40 + TRAILER, SMALL_LINES) == [TRAILER_EVENT]


def test_short_body_over_max_message_bytes_is_fatal_at_its_length_line() -> None:
    """A short body over the message limit is refused at its length, before its data."""
    assert decode_kinds(b"SEND bob\n11\n", Limits(max_message_bytes=10)) == [FATAL]


def test_short_body_of_exactly_max_message_bytes_is_accepted() -> None:
    """A short body of exactly ``max_message_bytes`` bytes is fine."""
    assert decode_kinds(b"SEND bob\n10\n0123456789", Limits(max_message_bytes=10)) == [
        _send(b"bob", body=b"0123456789")
    ]


def test_message_limit_applies_to_each_message_alone() -> None:
    """Messages each within ``max_message_bytes`` pass, however many bytes they add up to."""
    data = (
        b"SEND bob\n10\n0123456789"
        + b"SEND bob\nC6\nabcdefC4\nghijC0\n"
        + b"SEND bob\n10\n0123456789"
        + b"BROADCAST\n10\n0123456789"
    )
    assert decode_kinds(data, Limits(max_message_bytes=10)) == [
        _send(b"bob", body=b"0123456789"),
        _send_start(b"bob"),
        BodyData(b"abcdef"),
        BodyData(b"ghij"),
        MessageEnd(),
        _send(b"bob", body=b"0123456789"),
        _broadcast(b"0123456789"),
    ]


def test_refused_short_body_over_max_message_bytes_is_fatal() -> None:
    """A refused message over the message limit gives the fatal rejection only."""
    assert decode_kinds(b"SEND\n11\n" + TRAILER, Limits(max_message_bytes=10)) == [FATAL]


def test_chunked_body_over_max_message_bytes_is_fatal_at_the_chunk_header() -> None:
    """The chunk header that takes a message over the limit is fatal before its data."""
    assert decode_kinds(b"SEND bob\nC6\nabcdefC5\n", Limits(max_message_bytes=10)) == [
        _send_start(b"bob"),
        BodyData(b"abcdef"),
        FATAL,
    ]


def test_first_chunk_over_max_message_bytes_is_fatal() -> None:
    """A first chunk larger than the message limit is fatal at its header."""
    assert decode_kinds(b"SEND bob\nC11\n", Limits(max_message_bytes=10)) == [FATAL]


def test_chunked_body_of_exactly_max_message_bytes_is_accepted() -> None:
    """Chunks adding up to exactly ``max_message_bytes`` are fine."""
    assert decode_kinds(b"SEND bob\nC6\nabcdefC4\nghijC0\n", Limits(max_message_bytes=10)) == [
        _send_start(b"bob"),
        BodyData(b"abcdef"),
        BodyData(b"ghij"),
        MessageEnd(),
    ]


def test_fatal_rejection_repeats_for_ever() -> None:
    """After a fatal ``Rejected`` every ``next_event`` returns it, even after more data."""
    decoder = Decoder(DEFAULT)
    decoder.feed(b"SEND bob\n100\n")
    failure = decoder.next_event()
    assert isinstance(failure, Rejected) and failure.fatal
    assert decoder.next_event() == failure
    decoder.feed(TRAILER)
    assert decoder.next_event() == failure
    decoder.eof()
    assert decoder.next_event() == failure


def test_fatal_rejection_releases_the_buffer() -> None:
    """After a fatal ``Rejected`` no received bytes are kept, whatever is fed."""
    decoder = Decoder(DEFAULT)
    decoder.feed(b"SEND bob\nC1000\n" + b"x" * 500)
    assert isinstance(decoder.next_event(), Rejected)
    decoder.feed(b"y" * 500)
    assert decoder.buffered_bytes == 0


# -- end of input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "before"),
    [
        (b"SEND bob", []),
        (b"SEND bob\n", []),
        (b"SEND bob\n\n", []),
        (b"SEND bob\n9", []),
        (b"SEND bob\n0", []),
        (b"SEND bob\n9\n", []),
        (b"SEND bob\n9\nYou", []),
        (b"SEND bob\n99\n" + b"x" * 98, []),
        (b"BROADCAST\n2\nh", []),
        (b"SEND\n2\nh", []),
        (b"SEND\n2\n", []),
        (b"BROADCAST x\n5\nab", []),
        (b"BROADCAST\nC5\nabc", [_broadcast_start()]),
        (b"BROADCAST\nC5\nabcde", [_broadcast_start(), BodyData(b"abcde")]),
        (b"BROADCAST\nC5\nabcdeC0", [_broadcast_start(), BodyData(b"abcde")]),
        (b"ME IS a\nSEND bob\n2\nh", [Login(b"a")]),
        (b"SEND bob\n2\nhiSEND bob\n2\nh", [_send(b"bob", body=b"hi")]),
    ],
)
def test_eof_mid_message_is_fatal(data: bytes, before: list[Event]) -> None:
    """End of input before a message's last byte gives ``Rejected("eof mid-message")``.

    Inside a short body nothing of the message was reported before the failure.
    """
    events = decode_all_ways(data, eof=True)
    assert events[:-1] == before
    failure = events[-1]
    assert isinstance(failure, Rejected)
    assert (failure.reason, failure.fatal) == ("eof mid-message", True)


def test_eof_at_command_boundary_adds_nothing() -> None:
    """End of input right after a complete message gives no further event."""
    assert decode_kinds(b"SEND bob\n2\nhi", eof=True) == [_send(b"bob", body=b"hi")]


def test_eof_right_after_empty_short_body_adds_nothing() -> None:
    """A length line ``0`` completes the message, so end of input after it is clean."""
    assert decode_kinds(b"SEND bob\n0\n", eof=True) == [_send(b"bob", body=b"")]


def test_eof_after_refused_short_message_adds_nothing() -> None:
    """End of input right after a refused message's body gives only its refusal."""
    assert decode_kinds(b"SEND\n2\nhi", eof=True) == [REFUSED]


def test_eof_after_partial_unknown_command_is_refused() -> None:
    """A last line without ``\\n`` that is no command is refused, not fatal."""
    assert decode_kinds(b"HEL", eof=True) == [REFUSED]


def test_feed_after_eof_is_a_caller_error() -> None:
    """Feeding after ``eof()`` raises, since it is the caller's bug, not the peer's."""
    decoder = Decoder(DEFAULT)
    decoder.eof()
    with pytest.raises(RuntimeError):
        decoder.feed(b"x")


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


# -- encoders ---------------------------------------------------------------


def test_reply_constants() -> None:
    """The login replies are exactly ``OK\\n`` and ``ERROR\\n``."""
    assert (OK, ERROR) == (b"OK\n", b"ERROR\n")


def test_encode_login() -> None:
    """``encode_login`` writes the ``ME IS`` line."""
    assert encode_login(b"alice") == b"ME IS alice\n"


def test_encode_command_send() -> None:
    """``encode_command`` writes ``SEND`` with space-separated recipients."""
    assert encode_command([b"bob", b"carol"]) == b"SEND bob carol\n"


def test_encode_command_broadcast() -> None:
    """``encode_command(None)`` writes ``BROADCAST``."""
    assert encode_command(None) == b"BROADCAST\n"


def test_encode_command_refuses_no_recipient() -> None:
    """A ``SEND`` to nobody cannot be encoded."""
    with pytest.raises(ValueError):
        encode_command([])


def test_encode_from() -> None:
    """``encode_from`` writes the delivery's ``FROM`` line."""
    assert encode_from(b"alice") == b"FROM alice\n"


def test_encode_short_body() -> None:
    """A short body is its decimal length line and its bytes."""
    assert b"".join(encode_short_body(b"You suck!")) == b"9\nYou suck!"


def test_encode_short_body_empty() -> None:
    """An empty short body is the length line ``0``."""
    assert b"".join(encode_short_body(b"")) == b"0\n"


def test_encode_short_body_of_99_bytes() -> None:
    """A 99-byte body is still short."""
    assert b"".join(encode_short_body(b"x" * 99)) == b"99\n" + b"x" * 99


def test_encode_short_body_refuses_100_bytes() -> None:
    """A short body over 99 bytes cannot be encoded."""
    with pytest.raises(ValueError):
        encode_short_body(b"x" * 100)


def test_encode_chunked_body() -> None:
    """Chunks become ``C<n>`` frames ending with ``C0``."""
    assert b"".join(encode_chunked_body([b"abc", b"x" * 999])) == (
        b"C3\nabcC999\n" + b"x" * 999 + b"C0\n"
    )


def test_encode_chunked_body_with_no_chunks() -> None:
    """No chunks is the empty chunked body ``C0``."""
    assert encode_chunked_body([]) == [b"C0\n"]


@pytest.mark.parametrize("chunk", [b"", b"x" * 1000])
def test_encode_chunked_body_refuses_bad_chunk(chunk: bytes) -> None:
    """An empty chunk or one over 999 bytes cannot be encoded."""
    with pytest.raises(ValueError):
        encode_chunked_body([b"ok", chunk])


def test_split_chunks_default_size() -> None:
    """``split_chunks`` cuts at 999 bytes and keeps the remainder."""
    data = bytes(range(256)) * 8
    assert split_chunks(data) == [data[:999], data[999:1998], data[1998:]]


def test_split_chunks_custom_size() -> None:
    """``split_chunks`` cuts at the size it is given."""
    assert split_chunks(b"abcdefg", 3) == [b"abc", b"def", b"g"]


def test_split_chunks_empty() -> None:
    """Empty data gives no chunks."""
    assert split_chunks(b"") == []


@pytest.mark.parametrize("size", [0, 1000])
def test_split_chunks_refuses_bad_size(size: int) -> None:
    """A chunk size outside 1..999 is refused."""
    with pytest.raises(ValueError):
        split_chunks(b"abc", size)


def test_encode_message_short_when_it_fits() -> None:
    """``encode_message`` uses a short body for up to 99 bytes."""
    assert encode_message([b"bob"], b"x" * 99) == b"SEND bob\n99\n" + b"x" * 99


def test_encode_message_chunked_when_too_long() -> None:
    """``encode_message`` chunks a body over 99 bytes."""
    assert encode_message(None, b"x" * 100) == b"BROADCAST\nC100\n" + b"x" * 100 + b"C0\n"


def test_encode_message_chunked_on_request() -> None:
    """``chunked=True`` chunks even a short body."""
    assert encode_message([b"bob"], b"hi", chunked=True) == b"SEND bob\nC2\nhiC0\n"


def test_encode_message_short_on_request_refuses_long_body() -> None:
    """``chunked=False`` with a body over 99 bytes is refused."""
    with pytest.raises(ValueError):
        encode_message([b"bob"], b"x" * 100, chunked=False)


def test_is_valid_userid() -> None:
    """``is_valid_userid`` accepts 1-32 printable bytes and nothing else."""
    assert is_valid_userid(b"!~" * 16)
    assert not any(map(is_valid_userid, [b"", b"u" * 33, b"a b", b"a\xff"]))


# -- ReceiveBuffer ----------------------------------------------------------


def test_receive_buffer_take_line_across_feeds() -> None:
    """A line split over several feeds is returned once its ``\\n`` arrived."""
    buffer = ReceiveBuffer()
    buffer.feed(b"ab")
    assert buffer.take_line(16) is None
    buffer.feed(b"c\r")
    assert buffer.take_line(16) is None
    buffer.feed(b"\nde")
    assert buffer.take_line(16) == b"abc"
    assert buffer.take_line(16) is None
    assert len(buffer) == 2


def test_receive_buffer_take_line_keeps_inner_cr() -> None:
    """Only one ``\\r`` right before the ``\\n`` is dropped."""
    buffer = ReceiveBuffer()
    buffer.feed(b"a\rb\r\r\n")
    assert buffer.take_line(16) == b"a\rb\r"


def test_receive_buffer_take_line_of_exactly_max_line() -> None:
    """A line of exactly ``max_line`` bytes is returned, with or without ``\\r``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 16 + b"\r\n" + b"y" * 16 + b"\n")
    assert buffer.take_line(16) == b"x" * 16
    assert buffer.take_line(16) == b"y" * 16


def test_receive_buffer_line_over_max_line_is_too_long() -> None:
    """A complete line one byte over ``max_line`` is ``LINE_TOO_LONG``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 17 + b"\n")
    assert buffer.take_line(16) is LINE_TOO_LONG


def test_receive_buffer_too_long_decided_without_newline() -> None:
    """``max_line + 2`` bytes without ``\\n`` are ``LINE_TOO_LONG`` before the newline comes."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 17)
    assert buffer.take_line(16) is None
    buffer.feed(b"x")
    assert buffer.take_line(16) is LINE_TOO_LONG


def test_receive_buffer_max_line_and_cr_waits_for_newline() -> None:
    """``max_line`` bytes and a ``\\r`` may still be a valid line, so it waits."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 16 + b"\r")
    assert buffer.take_line(16) is None
    buffer.feed(b"\n")
    assert buffer.take_line(16) == b"x" * 16


def test_receive_buffer_take_exact_size() -> None:
    """``take`` returns ``None`` until ``size`` bytes are buffered, then exactly those."""
    buffer = ReceiveBuffer()
    buffer.feed(b"abc")
    assert buffer.take(5) is None
    buffer.feed(b"de\nf")
    assert buffer.take(5) == b"abcde"
    assert buffer.take(0) == b""
    assert buffer.take_line(16) == b""
    assert len(buffer) == 1


def test_receive_buffer_take_skips_newlines_in_data() -> None:
    """A newline consumed by ``take`` is not found by the next ``take_line``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"a\nbc\n")
    assert buffer.take(3) == b"a\nb"
    assert buffer.take_line(16) == b"c"


def test_receive_buffer_take_rest_drops_trailing_cr() -> None:
    """``take_rest`` returns everything left, less one trailing ``\\r``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"ME IS al")
    buffer.feed(b"ice\r")
    assert buffer.take_rest(16) == b"ME IS alice"
    assert len(buffer) == 0


def test_receive_buffer_take_rest_over_max_line_is_too_long() -> None:
    """``take_rest`` on more than ``max_line`` bytes is ``LINE_TOO_LONG``."""
    buffer = ReceiveBuffer()
    buffer.feed(b"x" * 17)
    assert buffer.take_rest(16) is LINE_TOO_LONG


# -- property tests ---------------------------------------------------------

_userids = st.binary(min_size=1, max_size=32).map(
    lambda raw: bytes(0x21 + byte % 94 for byte in raw)
)
_line_end = st.sampled_from([b"\n", b"\r\n"])
_blank_lines = st.lists(_line_end, max_size=2).map(b"".join)


@st.composite
def _frames(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """One random valid frame (built with the encoders), with blank lines and ``\\r``."""

    def line(raw: bytes) -> bytes:
        return raw[:-1] + draw(_line_end)

    prefix = draw(_blank_lines)
    if draw(st.booleans()):
        user = draw(_userids)
        return prefix + line(encode_login(user)), [Login(user)]
    if draw(st.booleans()):
        recipients = None
    else:
        recipients = draw(st.lists(_userids, min_size=1, max_size=4))
    command = encode_command(recipients)
    distinct = None if recipients is None else tuple(dict.fromkeys(recipients))
    if draw(st.booleans()):
        body = draw(st.binary(max_size=99))
        length_line, *data = encode_short_body(body)
        frames = line(command) + draw(_blank_lines) + line(length_line) + b"".join(data)
        return prefix + frames, [ShortMessage(distinct, body, command[:-1])]
    sizes = draw(st.lists(st.integers(1, 999), max_size=3))
    chunks = [draw(st.binary(min_size=size, max_size=size)) for size in sizes]
    encoded = encode_chunked_body(chunks)
    frames = line(command)
    for header, chunk in zip(encoded[0::2], [*encoded[1::2], b""], strict=True):
        frames += draw(_blank_lines) + line(header) + chunk
    start = MessageStart(distinct, command[:-1])
    return prefix + frames, [start, *[BodyData(chunk) for chunk in chunks], MessageEnd()]


_streams = streams_of(_frames())


@settings(max_examples=150)
@given(_streams)
def test_property_valid_frames_decode_to_expected_events(
    stream: tuple[bytes, list[Event]],
) -> None:
    """Valid frames built with the encoders decode back to the events they encode."""
    data, expected = stream
    events, decoder = _feed_pieces([data], DEFAULT, eof=True)
    assert events == expected
    assert decoder.buffered_bytes == 0


@settings(max_examples=150)
@given(_streams, st.data())
def test_property_random_split_points_give_identical_events(
    stream: tuple[bytes, list[Event]], data: st.DataObject
) -> None:
    """Valid frames fed in pieces cut at random points decode to the same events."""
    raw, expected = stream
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    events, _ = _feed_pieces(cut_at(raw, cuts), DEFAULT, eof=True)
    assert events == expected


PROPERTY_LIMITS = Limits(max_line_bytes=64, max_message_bytes=4096, max_recipients=4)
_FRAGMENTS = [
    b"SEND a\n",
    b"SEND a\n5\n",
    b"SEND a\nC999\n",
    b"SEND a b c d e\n",
    b"SEND \n",
    b"BROADCAST\n",
    b"BROADCAST\nC3\n",
    b"BROADCAST x\n",
    b"ME IS a\n",
    b"ME IS ",
    b"C999\n",
    b"C5\n",
    b"C0\n",
    b"C",
    b"\n",
    b"\r",
    b"\r\n",
    b"99\n",
    b"0\n",
    b" ",
    b"-",
]
_fragments = st.sampled_from(_FRAGMENTS)
_numbers = st.integers(0, 10**30).map(lambda n: str(n).encode())
_noise = st.lists(
    st.one_of(
        _fragments,
        _fragments,
        _fragments,
        _numbers,
        _numbers.map(lambda digits: b"C" + digits + b"\n"),
        st.binary(max_size=8),
        st.binary(min_size=1, max_size=1100),
        st.integers(1, 1100).map(lambda size: b"x" * size),
    ),
    max_size=30,
).map(b"".join)


def _check_decoder_survives(pieces: list[bytes], limits: Limits) -> None:
    """Feed ``pieces``: no exception, only known events, buffer bounded after each drain."""
    bound = limits.max_line_bytes + 2 + 999
    decoder = Decoder(limits)
    events: list[Event] = []
    for piece in pieces:
        decoder.feed(piece)
        drain(decoder, events)
        assert decoder.buffered_bytes <= bound
    decoder.eof()
    drain(decoder, events)
    assert decoder.buffered_bytes <= bound
    assert all(isinstance(event, EVENT_TYPES) for event in events)
    _assert_well_formed(events)


@settings(max_examples=200)
@given(st.lists(st.binary(), max_size=6))
def test_property_arbitrary_bytes_never_break_the_decoder(pieces: list[bytes]) -> None:
    """Arbitrary bytes never raise, give only protocol events and keep the buffer bounded."""
    _check_decoder_survives(pieces, PROPERTY_LIMITS)


@settings(max_examples=200)
@given(_noise, st.data())
def test_property_protocol_like_noise_never_breaks_the_decoder(
    raw: bytes, data: st.DataObject
) -> None:
    """Protocol-like fragments and huge numbers never raise and keep the buffer bounded."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[i:j] for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    _check_decoder_survives(pieces, PROPERTY_LIMITS)


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=200), _noise))
def test_property_datagrams_never_raise(datagram: bytes) -> None:
    """Any datagram decodes to exactly one event without raising, and nothing in it is fatal."""
    events = decode_datagram(datagram, PROPERTY_LIMITS)
    assert len(events) == 1
    assert isinstance(events[0], (Login, ShortMessage, Rejected))
    assert not any(isinstance(event, Rejected) and event.fatal for event in events)


# PROTOCOL §3 as regular expressions: the reference for what a first length line is.
_SHORT_LENGTH_REFERENCE = re.compile(rb"[0-9]{1,2}")
_CHUNK_HEADER_REFERENCE = re.compile(rb"C([0-9]{1,3})")
_length_lines = st.lists(
    st.one_of(st.sampled_from(list(b"0123456789C+- \t\x00\xb2\xb9")), st.integers(0, 255)),
    min_size=1,
    max_size=4,
).map(bytes)


@settings(max_examples=300)
@given(_length_lines.filter(lambda line: b"\n" not in line and b"\r" not in line))
def test_property_first_length_line_is_short_exactly_for_one_or_two_ascii_digits(
    line: bytes,
) -> None:
    """A first length line is a short length exactly when it is 1-2 ASCII digits.

    It is a chunk header exactly when it is ``C`` and 1-3 ASCII digits, and fatal
    otherwise, as the regular expressions of PROTOCOL §3 say.
    """
    head = b"SEND bob\n" + line + b"\n"
    if _SHORT_LENGTH_REFERENCE.fullmatch(line):
        body = b"y" * int(line)
        events, _ = _feed_pieces([head + body + TRAILER], DEFAULT, eof=True)
        assert events == [_send(b"bob", body=body), TRAILER_EVENT]
    elif chunk := _CHUNK_HEADER_REFERENCE.fullmatch(line):
        body = b"y" * int(chunk.group(1))
        events, _ = _feed_pieces([head + body + b"C0\n" + TRAILER], DEFAULT, eof=True)
        pieces = [BodyData(body)] if body else []
        assert events == [_send_start(b"bob"), *pieces, MessageEnd(), TRAILER_EVENT]
    else:
        events, _ = _feed_pieces([head + TRAILER], DEFAULT, eof=True)
        assert _kinds(events) == [FATAL]
        assert isinstance(events[0], Rejected)
        assert events[0].line == line
