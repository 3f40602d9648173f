"""Tests of the sans-I/O codec against PROTOCOL.md §2, §3 and §6: bytes in, events out."""

import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto import events as events_module
from chatproto.codec import (
    ERROR,
    LINE_TOO_LONG,
    OK,
    Decoder,
    ReceiveBuffer,
    decode_datagram,
    encode_chunked_body,
    encode_command,
    encode_from,
    encode_login,
    encode_message,
    encode_short_body,
    is_valid_userid,
    split_chunks,
)
from chatproto.events import (
    NEED_DATA,
    BodyData,
    Event,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
)
from chatproto.limits import Limits

DEFAULT = Limits()
SMALL_LINES = Limits(max_line_bytes=16)
#: Bytes of a next command, appended to every framing input (helper way (d)).
TRAILER = b"ME IS zed\n"
TRAILER_EVENT = Login(b"zed")

#: Stand-ins for a ``Rejected`` in expected event lists: the reason text is for logs only.
REFUSED = "non-fatal Rejected"
FATAL = "fatal Rejected"

#: Every event type ``chatproto.events`` defines.
EVENT_TYPES = typing.get_args(events_module.Event)


# -- helpers ----------------------------------------------------------------


def _drain(decoder: Decoder, events: list[Event]) -> None:
    """Append events until ``NEED_DATA``; after a fatal one, check it repeats and stop."""
    while True:
        if events and isinstance(events[-1], Rejected) and events[-1].fatal:
            assert decoder.next_event() == events[-1]
            return
        event = decoder.next_event()
        if event is NEED_DATA:
            return
        events.append(event)


def _feed_pieces(
    pieces: list[bytes], limits: Limits, eof: bool = False
) -> tuple[list[Event], Decoder]:
    """Feed ``pieces`` to a fresh decoder, draining after each; return events and decoder."""
    decoder = Decoder(limits)
    events: list[Event] = []
    for piece in pieces:
        decoder.feed(piece)
        _drain(decoder, events)
    if eof:
        decoder.eof()
        _drain(decoder, events)
    return events, decoder


def _is_fatal(events: list[Event]) -> bool:
    return bool(events) and isinstance(events[-1], Rejected) and events[-1].fatal


def decode_all_ways(data: bytes, limits: Limits = DEFAULT, eof: bool = False) -> list[Event]:
    """Decode ``data`` whole, byte by byte, split at every index and with a trailer.

    All ways must give identical event lists, with no merging of ``BodyData``:
    each is exactly one chunk or a whole short body, never empty.
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
    if at_boundary and not _is_fatal(base):
        assert longer == [*base, TRAILER_EVENT], "the next command parses after the input"
    assert all(event.data for event in expected if isinstance(event, BodyData))
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


def _send(*names: bytes, line: bytes | None = None, chunked: bool = False) -> MessageStart:
    """The ``MessageStart`` of ``SEND <names>`` (``line`` if given as received)."""
    if line is None:
        line = b"SEND " + b" ".join(names)
    return MessageStart(tuple(dict.fromkeys(names)), chunked, line)


def _broadcast(chunked: bool = False) -> MessageStart:
    return MessageStart(None, chunked, b"BROADCAST")


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
    """``SEND bob`` with a short body gives start, the body and end."""
    assert decode_kinds(b"SEND bob\n9\nYou suck!") == [
        _send(b"bob"),
        BodyData(b"You suck!"),
        MessageEnd(),
    ]


def test_send_to_many_recipients() -> None:
    """``SEND`` names every space-separated recipient, in order."""
    assert decode_kinds(b"SEND bob carol dave\n2\nhi") == [
        _send(b"bob", b"carol", b"dave"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_send_tolerates_runs_of_spaces() -> None:
    """Several spaces between recipients separate them like one."""
    assert decode_kinds(b"SEND  bob   carol\n2\nhi") == [
        _send(b"bob", b"carol", line=b"SEND  bob   carol"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_send_tolerates_trailing_space() -> None:
    """A space after the last recipient is ignored."""
    assert decode_kinds(b"SEND bob \n2\nhi") == [
        _send(b"bob", line=b"SEND bob "),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_send_collapses_duplicate_recipients_in_order() -> None:
    """A recipient named twice appears once, where it was first named."""
    assert decode_kinds(b"SEND bob carol bob alice carol\n2\nhi") == [
        MessageStart((b"bob", b"carol", b"alice"), False, b"SEND bob carol bob alice carol"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_send_to_max_recipients_is_accepted() -> None:
    """Exactly ``max_recipients`` distinct recipients are allowed."""
    limits = Limits(max_recipients=3)
    assert decode_kinds(b"SEND a b c\n2\nhi", limits) == [
        _send(b"a", b"b", b"c"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_duplicate_names_count_once_toward_max_recipients() -> None:
    """A name given twice counts once against ``max_recipients``."""
    limits = Limits(max_recipients=3)
    assert decode_kinds(b"SEND a b c a b\n2\nhi", limits) == [
        _send(b"a", b"b", b"c", line=b"SEND a b c a b"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_broadcast_has_no_recipients() -> None:
    """``BROADCAST`` gives a ``MessageStart`` whose recipients are ``None``."""
    assert decode_kinds(b"BROADCAST\n15\nLeave me alone!") == [
        _broadcast(),
        BodyData(b"Leave me alone!"),
        MessageEnd(),
    ]


def _assert_refused_message(events: list[object], chunked: bool, rest: list[object]) -> None:
    """Check a refused message: a start, then ``rest`` (the body, the refusal, ...)."""
    start = events[0]
    assert isinstance(start, MessageStart)
    assert start.chunked is chunked
    assert events[1:] == rest


def test_broadcast_with_arguments_is_refused_after_its_body() -> None:
    """``BROADCAST bob`` is framed, then refused where ``MessageEnd`` would be."""
    events = decode_kinds(b"BROADCAST bob\n2\nhi" + TRAILER)
    _assert_refused_message(events, False, [BodyData(b"hi"), REFUSED, TRAILER_EVENT])


@pytest.mark.parametrize("line", [b"SEND", b"SEND ", b"SEND   "])
def test_send_without_recipient_is_refused_after_its_body(line: bytes) -> None:
    """``SEND`` naming nobody is framed, then refused, and the next command parses."""
    events = decode_kinds(line + b"\n2\nhi" + TRAILER)
    _assert_refused_message(events, False, [BodyData(b"hi"), REFUSED, TRAILER_EVENT])


@pytest.mark.parametrize(
    "name",
    [b"b\x00b", b"b\x7fb", b"b\xffb", b"u" * 33, b"bob\tcarol"],
    ids=["nul", "del", "0xff", "33-bytes", "tab"],
)
def test_send_to_invalid_userid_is_refused_after_its_body(name: bytes) -> None:
    """A recipient that cannot be a userid makes ``SEND`` refused after its body."""
    events = decode_kinds(b"SEND bob " + name + b"\n2\nhi" + TRAILER)
    _assert_refused_message(events, False, [BodyData(b"hi"), REFUSED, TRAILER_EVENT])


def test_send_to_more_than_max_recipients_is_refused_after_its_body() -> None:
    """More than ``max_recipients`` distinct recipients make ``SEND`` refused after its body."""
    events = decode_kinds(b"SEND a b c d\n2\nhi" + TRAILER, Limits(max_recipients=3))
    _assert_refused_message(events, False, [BodyData(b"hi"), REFUSED, TRAILER_EVENT])


def test_refused_send_with_chunked_body_is_framed() -> None:
    """A refused ``SEND`` with a chunked body is read to its ``C0`` before the refusal."""
    events = decode_kinds(b"SEND\nC2\nhiC3\nabcC0\n" + TRAILER)
    _assert_refused_message(
        events, True, [BodyData(b"hi"), BodyData(b"abc"), REFUSED, TRAILER_EVENT]
    )


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
    assert decode_kinds(b"SEND bob\n\n\r\n\n2\nhi") == [
        _send(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_blank_lines_between_chunk_frames_are_ignored() -> None:
    """Empty lines between chunk frames, and before ``C0``, are skipped."""
    assert decode_kinds(b"SEND bob\nC2\nhi\n\nC3\nabc\r\n\nC0\n") == [
        _send(b"bob", chunked=True),
        BodyData(b"hi"),
        BodyData(b"abc"),
        MessageEnd(),
    ]


def test_extra_newline_after_body_is_ignored() -> None:
    """A ``\\n`` sent after a body is a blank line, and the next command still parses."""
    assert decode_kinds(b"SEND bob\n2\nhi\n" + TRAILER) == [
        _send(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_crlf_after_send_line_is_tolerated() -> None:
    """A ``\\r`` ending a ``SEND`` line is not part of the last recipient."""
    assert decode_kinds(b"SEND bob carol\r\n2\nhi") == [
        _send(b"bob", b"carol"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_crlf_after_broadcast_line_is_tolerated() -> None:
    """``BROADCAST\\r\\n`` is a broadcast, not a ``BROADCAST`` with arguments."""
    assert decode_kinds(b"BROADCAST\r\n2\nhi") == [_broadcast(), BodyData(b"hi"), MessageEnd()]


def test_crlf_after_length_line_is_tolerated() -> None:
    """A short length line may end with ``\\r\\n``."""
    assert decode_kinds(b"SEND bob\n2\r\nhi") == [_send(b"bob"), BodyData(b"hi"), MessageEnd()]


def test_crlf_after_chunk_headers_is_tolerated() -> None:
    """Chunk headers, ``C0`` included, may end with ``\\r\\n``."""
    assert decode_kinds(b"SEND bob\r\nC2\r\nhiC0\r\n") == [
        _send(b"bob", chunked=True),
        BodyData(b"hi"),
        MessageEnd(),
    ]


def test_crlf_after_unknown_command_is_tolerated() -> None:
    """An unknown command ending with ``\\r\\n`` is skipped like any other line."""
    assert decode_kinds(b"HELLO\r\n" + TRAILER) == [REFUSED, TRAILER_EVENT]


# -- PROTOCOL §3: short bodies ----------------------------------------------


@pytest.mark.parametrize("length", [b"0", b"00"])
def test_empty_short_body_gives_no_body_data(length: bytes) -> None:
    """A short body of length 0 is a complete, empty message."""
    assert decode_kinds(b"SEND bob\n" + length + b"\n" + TRAILER) == [
        _send(b"bob"),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_short_length_with_leading_zero_is_accepted() -> None:
    """``09`` is the length 9."""
    assert decode_kinds(b"SEND bob\n09\nYou suck!") == [
        _send(b"bob"),
        BodyData(b"You suck!"),
        MessageEnd(),
    ]


def test_short_body_of_99_bytes_is_accepted() -> None:
    """The largest short body, 99 bytes, is one ``BodyData``."""
    body = bytes(range(99))
    assert decode_kinds(b"SEND bob\n99\n" + body) == [
        _send(b"bob"),
        BodyData(body),
        MessageEnd(),
    ]


def test_short_body_is_binary() -> None:
    """A short body may hold ``\\n``, ``\\r``, NUL and high bytes."""
    body = b"a\nb\x00c\r\n\xff"
    assert decode_kinds(b"SEND bob\n8\n" + body) == [_send(b"bob"), BodyData(body), MessageEnd()]


def test_newline_right_after_length_line_belongs_to_the_body() -> None:
    """The body starts right after the length line, so a ``\\n`` there is body data."""
    assert decode_kinds(b"SEND bob\n3\n\nab") == [_send(b"bob"), BodyData(b"\nab"), MessageEnd()]


def test_body_that_looks_like_a_command_is_data() -> None:
    """Command text inside a body is not parsed as a command."""
    assert decode_kinds(b"SEND bob\n10\nME IS eve\n") == [
        _send(b"bob"),
        BodyData(b"ME IS eve\n"),
        MessageEnd(),
    ]


def test_next_command_starts_right_after_the_body() -> None:
    """No newline follows a body: the next command starts at its next byte."""
    assert decode_kinds(b"SEND bob\n2\nhi" + TRAILER) == [
        _send(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
        TRAILER_EVENT,
    ]


# -- PROTOCOL §3: chunked bodies --------------------------------------------


def test_chunked_body_with_varying_chunk_sizes() -> None:
    """Each chunk, whatever its size, is one ``BodyData``."""
    chunks = [b"abc", b"x", b"\n" * 5, b"y" * 999, b"z" * 12]
    data = b"SEND bob\n" + b"".join(b"C%d\n" % len(c) + c for c in chunks) + b"C0\n"
    assert decode_kinds(data) == [
        _send(b"bob", chunked=True),
        *[BodyData(c) for c in chunks],
        MessageEnd(),
    ]


def test_chunk_size_with_leading_zeros_is_accepted() -> None:
    """``C007`` is a chunk of 7 bytes."""
    assert decode_kinds(b"SEND bob\nC007\nabcdefgC0\n") == [
        _send(b"bob", chunked=True),
        BodyData(b"abcdefg"),
        MessageEnd(),
    ]


@pytest.mark.parametrize("end", [b"C0", b"C00", b"C000"])
def test_zero_chunk_with_any_zeros_ends_the_body(end: bytes) -> None:
    """``C0``, ``C00`` and ``C000`` all end a chunked body."""
    assert decode_kinds(b"SEND bob\nC2\nhi" + end + b"\n" + TRAILER) == [
        _send(b"bob", chunked=True),
        BodyData(b"hi"),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_empty_chunked_body_is_a_message() -> None:
    """``C0`` right after the command line is a valid, empty chunked message."""
    assert decode_kinds(b"BROADCAST\nC0\n" + TRAILER) == [
        _broadcast(chunked=True),
        MessageEnd(),
        TRAILER_EVENT,
    ]


def test_chunk_data_is_binary() -> None:
    """A chunk may hold bytes that look like chunk headers and newlines."""
    chunk = b"\nC0\n\x00\xff"
    assert decode_kinds(b"SEND bob\nC6\n" + chunk + b"C0\n") == [
        _send(b"bob", chunked=True),
        BodyData(chunk),
        MessageEnd(),
    ]


# -- PROTOCOL §3: broken framing is fatal -----------------------------------


@pytest.mark.parametrize(
    "line",
    [b"100", b"007", b"-1", b"+5", b"x", b"5 ", b" 5", b"1a", b"C1000", b"C-1", b"c5", b"C 5"],
)
def test_bad_length_line_is_fatal(line: bytes) -> None:
    """A length line that is neither 0..99 nor a valid chunk header ends the stream."""
    assert decode_kinds(b"SEND bob\n" + line + b"\n" + TRAILER) == [FATAL]


@pytest.mark.parametrize(
    "line", [b"C1000", b"C-1", b"C+5", b"c5", b"C 5", b"C", b"Cx", b"5", b"C5 "]
)
def test_bad_chunk_header_after_a_chunk_is_fatal(line: bytes) -> None:
    """A chunk header with a sign, letters, spaces or over 999 ends the stream."""
    assert decode_kinds(b"SEND bob\nC2\nhi" + line + b"\n" + TRAILER) == [
        _send(b"bob", chunked=True),
        BodyData(b"hi"),
        FATAL,
    ]


def test_bad_length_line_of_refused_send_gives_one_fatal_rejection() -> None:
    """A refused ``SEND`` whose framing breaks gives the fatal rejection only."""
    assert decode_kinds(b"SEND\n100\n" + TRAILER) == [FATAL]


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
        _send(b"bob"),
        BodyData(b"0123456789"),
        MessageEnd(),
    ]


def test_chunked_body_over_max_message_bytes_is_fatal_at_the_chunk_header() -> None:
    """The chunk header that takes a message over the limit is fatal before its data."""
    assert decode_kinds(b"SEND bob\nC6\nabcdefC5\n", Limits(max_message_bytes=10)) == [
        _send(b"bob", chunked=True),
        BodyData(b"abcdef"),
        FATAL,
    ]


def test_first_chunk_over_max_message_bytes_is_fatal() -> None:
    """A first chunk larger than the message limit is fatal at its header."""
    assert decode_kinds(b"SEND bob\nC11\n", Limits(max_message_bytes=10)) == [FATAL]


def test_chunked_body_of_exactly_max_message_bytes_is_accepted() -> None:
    """Chunks adding up to exactly ``max_message_bytes`` are fine."""
    assert decode_kinds(b"SEND bob\nC6\nabcdefC4\nghijC0\n", Limits(max_message_bytes=10)) == [
        _send(b"bob", chunked=True),
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
    "data",
    [
        b"SEND bob",
        b"SEND bob\n",
        b"SEND bob\n\n",
        b"SEND bob\n9",
        b"SEND bob\n9\n",
        b"SEND bob\n9\nYou",
        b"BROADCAST\nC5\nabc",
        b"BROADCAST\nC5\nabcde",
        b"BROADCAST\nC5\nabcdeC0",
        b"SEND\n2\nh",
    ],
)
def test_eof_mid_message_is_fatal(data: bytes) -> None:
    """End of input before a message's last byte gives ``Rejected("eof mid-message")``."""
    events = decode_all_ways(data, eof=True)
    failure = events[-1]
    assert isinstance(failure, Rejected)
    assert (failure.reason, failure.fatal) == ("eof mid-message", True)


def test_eof_at_command_boundary_adds_nothing() -> None:
    """End of input right after a complete message gives no further event."""
    assert decode_kinds(b"SEND bob\n2\nhi", eof=True) == [
        _send(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


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
        _send(b"bob"),
        BodyData(b"You suck!"),
        MessageEnd(),
    ]


def test_datagram_broadcast() -> None:
    """A ``BROADCAST`` with a short body in one datagram is one message."""
    assert decode_datagram(b"BROADCAST\n2\nhi", DEFAULT) == [
        _broadcast(),
        BodyData(b"hi"),
        MessageEnd(),
    ]


@pytest.mark.parametrize("datagram", [b"ME IS alice\n\n", b"ME IS alice\r\n\r\n"])
def test_datagram_trailing_blank_line_after_login_is_tolerated(datagram: bytes) -> None:
    """A blank line after a datagram's login is ignored."""
    assert decode_datagram(datagram, DEFAULT) == [Login(b"alice")]


def test_datagram_trailing_newline_after_body_is_tolerated() -> None:
    """A ``\\n`` after a datagram's body is ignored."""
    assert decode_datagram(b"SEND bob\n2\nhi\n", DEFAULT) == [
        _send(b"bob"),
        BodyData(b"hi"),
        MessageEnd(),
    ]


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


def test_datagram_with_refused_send_is_framed_then_refused() -> None:
    """A ``SEND`` to a bad name in a datagram gives start, body and a non-fatal ``Rejected``."""
    events = _kinds(decode_datagram(b"SEND b\x00b\n2\nhi", DEFAULT))
    _assert_refused_message(events, False, [BodyData(b"hi"), REFUSED])


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
    start_recipients = None if recipients is None else tuple(dict.fromkeys(recipients))
    if draw(st.booleans()):
        body = draw(st.binary(max_size=99))
        length_line, *data = encode_short_body(body)
        frames = line(command) + draw(_blank_lines) + line(length_line) + b"".join(data)
        pieces = [BodyData(body)] if body else []
        chunked = False
    else:
        sizes = draw(st.lists(st.integers(1, 999), max_size=3))
        chunks = [draw(st.binary(min_size=size, max_size=size)) for size in sizes]
        encoded = encode_chunked_body(chunks)
        frames = line(command)
        for header, chunk in zip(encoded[0::2], [*encoded[1::2], b""], strict=True):
            frames += draw(_blank_lines) + line(header) + chunk
        pieces = [BodyData(chunk) for chunk in chunks]
        chunked = True
    start = MessageStart(start_recipients, chunked, command[:-1])
    return prefix + frames, [start, *pieces, MessageEnd()]


_streams = st.lists(_frames(), max_size=5).map(
    lambda frames: (
        b"".join(data for data, _ in frames),
        [event for _, events in frames for event in events],
    )
)


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
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    pieces = [raw[i:j] for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    events, _ = _feed_pieces(pieces, DEFAULT, eof=True)
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
        _drain(decoder, events)
        assert decoder.buffered_bytes <= bound
    decoder.eof()
    _drain(decoder, events)
    assert decoder.buffered_bytes <= bound
    assert all(isinstance(event, EVENT_TYPES) for event in events)


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
    """Any datagram decodes to events without raising, and nothing in it is fatal."""
    events = decode_datagram(datagram, PROPERTY_LIMITS)
    assert events
    assert all(isinstance(event, EVENT_TYPES) for event in events)
    assert not any(isinstance(event, Rejected) and event.fatal for event in events)
