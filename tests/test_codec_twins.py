"""Differential tests of the wire core's twins: the same input, at the same cuts, the same events.

The compiled receive buffer (``chatproto.wire._buffer``) must behave exactly
as the pure-Python one (``chatproto.wire.buffer``), its reference (STYLE
§9). Hypothesis builds streams from pieces of the protocol (commands,
replies, short bodies, chunks, ``\\r\\n``, blank lines, leading zeros,
garbage, lines over small limits), cuts them at arbitrary points, and runs
the server's decoder (coalescing or not, with ``next_event()`` or
``next_event(max_frames)``), the client's decoder, both datagram decoders
and the buffer itself over each twin; the records of both runs
(``tests/twins.py``: events with their types, ``consumed_bytes`` and
``buffered_bytes`` after each) must be identical. Then: a twin that
differs from the pure one, in any of several small ways, is caught; and
every codec test module runs its tests over both twins.

These tests need the compiled twin: without it they skip (or fail under
``CHATPROTO_REQUIRE_EXTENSIONS``), like the ``compiled`` run of the other
codec tests.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits
from chatproto.wire.buffer import LINE_TOO_LONG
from chatproto.wire.buffer import ReceiveBuffer as PyReceiveBuffer
from tests import twins
from tests.decoding import cut_at

# -- pieces of the protocol -------------------------------------------------------------------

_END = st.sampled_from([b"\n", b"\n", b"\r\n"])
#: A command's line end, or none (the last line of a datagram may lack it, PROTOCOL §6).
_COMMAND_END = st.sampled_from([b"\n", b"\n", b"\r\n", b"", b"\r"])
_NAMES = st.sampled_from([b"a", b"b", b"bob", b"alice", b"zed", b"b\x01b", b"x" * 33])


def _number(value: int, zeros: int) -> bytes:
    return b"0" * zeros + str(value).encode()


@st.composite
def _short_body(draw: st.DrawFn) -> bytes:
    """A length line (leading zeros sometimes, 100 and more too) and about that many bytes."""
    size = draw(st.one_of(st.integers(0, 12), st.integers(0, 120)))
    zeros = draw(st.sampled_from([0, 0, 0, 1, 2]))
    data = draw(st.binary(min_size=size, max_size=size))
    if draw(st.integers(0, 9)) == 0:  # a body cut short, or running into the next frame
        data = data[: draw(st.integers(0, size))]
    return _number(size, zeros) + draw(_END) + data


@st.composite
def _chunk(draw: st.DrawFn) -> bytes:
    """A chunk header (``C0``, leading zeros, over 999 sometimes) and about its data."""
    size = draw(st.one_of(st.integers(0, 9), st.integers(0, 40), st.sampled_from([999, 1000])))
    zeros = draw(st.sampled_from([0, 0, 0, 1, 3]))
    data = b"" if size > 999 else draw(st.binary(min_size=size, max_size=size))
    return b"C" + _number(size, zeros) + draw(_END) + data


@st.composite
def _chunked_body(draw: st.DrawFn) -> bytes:
    """Chunks, blank lines between them sometimes, and mostly a ``C0`` at the end."""
    chunks = draw(st.lists(st.one_of(_chunk(), _END), max_size=4))
    last = draw(st.sampled_from([b"C0\n", b"C0\n", b"C00\r\n", b""]))
    return b"".join(chunks) + last


@st.composite
def _canonical_message(draw: st.DrawFn, line: bytes) -> bytes:
    """A whole message under ``line`` as clients repeat them (what the runs take), blank
    lines before it sometimes."""
    blank = draw(st.sampled_from([b"", b"", b"", b"\n", b"\r\n", b"\r\n\n"]))
    if draw(st.booleans()):
        body = draw(st.binary(max_size=30))
        return blank + line + b"\n" + b"%d\n" % len(body) + body
    sizes = draw(st.lists(st.integers(1, 20), min_size=0, max_size=3))
    chunks = b"".join(b"C%d\n" % size + b"c" * size for size in sizes)
    return blank + line + b"\n" + chunks + b"C0\n"


@st.composite
def _command(draw: st.DrawFn) -> bytes:
    """A command line: ``ME IS``, ``SEND`` (runs of spaces, bad names), ``BROADCAST``, others."""
    kind = draw(st.sampled_from(["login", "send", "send", "broadcast", "other"]))
    if kind == "login":
        line = b"ME IS " + draw(st.one_of(_NAMES, st.just(b"")))
    elif kind == "send":
        names = draw(st.lists(_NAMES, max_size=4))
        line = b"SEND" + b"".join(b" " * draw(st.integers(1, 2)) + name for name in names)
    elif kind == "broadcast":
        line = b"BROADCAST" + draw(st.sampled_from([b"", b"", b" ", b" x"]))
    else:
        line = draw(st.sampled_from([b"HELLO", b"me is a", b"SEND", b"PING x"]))
    return line + draw(_COMMAND_END)


_LONG_LINE = st.integers(0, 90).map(lambda size: b"y" * size)
_GARBAGE = st.binary(max_size=6)

#: What a client may send, piece by piece: frames, halves of them, and noise.
_CLIENT_PIECE = st.one_of(
    _command(),
    _short_body(),
    _chunked_body(),
    _canonical_message(b"SEND bob"),
    _canonical_message(b"BROADCAST"),
    _END,
    _LONG_LINE.flatmap(lambda line: _END.map(lambda end: line + end)),
    _LONG_LINE,
    _GARBAGE,
)


def _canonical_chunks(draw: st.DrawFn, size: int) -> bytes:
    """``size`` body bytes in one to three canonical chunks, and ``C0``."""
    cuts = sorted(draw(st.lists(st.integers(1, max(1, size - 1)), max_size=2)))
    bounds = [0, *(cut for cut in cuts if cut < size), size]
    sizes = [end - start for start, end in zip(bounds, bounds[1:], strict=False) if end > start]
    return b"".join(b"C%d\n" % chunk + b"z" * chunk for chunk in sizes) + b"C0\n"


@st.composite
def _at_the_limits(draw: st.DrawFn, limits: Limits) -> bytes:
    """A frame at one of ``limits``, or a byte under or over it: a line of the line limit, a
    body of the message limit or of the run limit (``min`` of it and the spill threshold)."""
    delta = draw(st.sampled_from([-1, 0, 0, 1]))
    bodies = {
        limits.max_message_bytes,
        min(limits.max_message_bytes, limits.spill_threshold_bytes),
    }
    small = sorted(size for size in bodies if size + delta <= 400)
    if not small or draw(st.integers(0, 3)) == 0:
        prefix = draw(st.sampled_from([b"SEND ", b"ME IS ", b"", b"C"]))
        size = max(0, limits.max_line_bytes + delta - len(prefix))
        return prefix + b"b" * size + draw(_END)
    size = max(0, draw(st.sampled_from(small)) + delta)
    line = draw(st.sampled_from([b"SEND bob", b"BROADCAST"])) + b"\n"
    if size <= 99 and draw(st.booleans()):
        return line + b"%d\n" % size + b"s" * size
    return line + _canonical_chunks(draw, size)


@st.composite
def _client_stream(draw: st.DrawFn, limits: Limits) -> bytes:
    """A client's bytes: a few pieces, often one command line repeated (as the runs want),
    and frames at ``limits``."""
    piece = st.integers(0, 2).flatmap(lambda n: _CLIENT_PIECE if n else _at_the_limits(limits))
    pieces = draw(st.lists(piece, max_size=10))
    if draw(st.booleans()):
        line = draw(st.sampled_from([b"SEND bob", b"SEND a  b", b"BROADCAST", b"SEND"]))
        repeats = draw(st.lists(_canonical_message(line), max_size=8))
        pieces[draw(st.integers(0, len(pieces))) : 0] = repeats
    return b"".join(pieces)


@st.composite
def _delivery(draw: st.DrawFn) -> bytes:
    """A ``FROM`` line (a bad sender sometimes) and a short or chunked body, or half of one."""
    sender = draw(st.one_of(_NAMES, st.just(b""), st.just(b"a b")))
    body = draw(st.one_of(_short_body(), _chunked_body()))
    return b"FROM " + sender + draw(_END) + body


#: What a server may send: replies, deliveries, and noise.
_SERVER_PIECE = st.one_of(
    st.sampled_from([b"OK\n", b"ERROR\n", b"OK\r\n", b"OK", b"OK\r", b"ERROR \n", b"ok\n"]),
    _delivery(),
    _END,
    _LONG_LINE.flatmap(lambda line: _END.map(lambda end: line + end)),
    _GARBAGE,
)
_SERVER_STREAM = st.lists(_SERVER_PIECE, max_size=10).map(b"".join)

#: Small limits, which a few bytes reach.
_SMALL_LIMITS = st.builds(
    Limits,
    max_line_bytes=st.integers(4, 40),
    max_message_bytes=st.one_of(st.integers(1, 24), st.integers(1, 200)),
    max_recipients=st.integers(1, 3),
    spill_threshold_bytes=st.one_of(st.integers(1, 24), st.integers(1, 200)),
)
#: The defaults, or (three times in four) small limits.
_LIMITS = st.integers(0, 3).flatmap(lambda n: _SMALL_LIMITS if n else st.just(Limits()))


def _cuts(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=8)


def _max_frames() -> st.SearchStrategy[int]:
    """1 (``next_event()``) or a run size from 2 to 300."""
    return st.one_of(st.just(1), st.integers(2, 5), st.integers(1, 300))


def _assert_twins_agree(run: Callable[[], list[Any]]) -> None:
    difference = twins.first_difference(twins.over_each_twin(run))
    assert difference is None, difference


# -- the decoders over both twins --------------------------------------------------------------
#
# Each property is a function checking one example and the strategies of its arguments, so that
# test_a_twin_that_differs_is_caught can hunt with them too.


def _server_case(
    data: st.DataObject, limits: Limits, coalesce: bool, max_frames: int, eof: bool
) -> None:
    stream = data.draw(_client_stream(limits))
    pieces = cut_at(stream, data.draw(_cuts(stream)))
    _assert_twins_agree(
        lambda: twins.trace_server(
            limits, pieces, coalesce_chunks=coalesce, max_frames=max_frames, eof=eof
        )
    )


_SERVER_ARGS = (st.data(), _LIMITS, st.booleans(), _max_frames(), st.booleans())


@pytest.mark.usefixtures("both_twins")
@settings(max_examples=1000)
@given(*_SERVER_ARGS)
def test_server_decoder_gives_the_same_events_over_both_twins(
    data: st.DataObject, limits: Limits, coalesce: bool, max_frames: int, eof: bool
) -> None:
    """The server's Decoder: identical events, consumed and buffered bytes over both twins,
    for any client bytes at any cuts, coalescing or not, one event or runs at a time."""
    _server_case(data, limits, coalesce, max_frames, eof)


def _client_case(data: st.DataObject, stream: bytes, limits: Limits, eof: bool) -> None:
    pieces = cut_at(stream, data.draw(_cuts(stream)))
    _assert_twins_agree(lambda: twins.trace_client(limits, pieces, eof=eof))


_CLIENT_ARGS = (st.data(), _SERVER_STREAM, _LIMITS, st.booleans())


@pytest.mark.usefixtures("both_twins")
@settings(max_examples=500)
@given(*_CLIENT_ARGS)
def test_client_decoder_gives_the_same_events_over_both_twins(
    data: st.DataObject, stream: bytes, limits: Limits, eof: bool
) -> None:
    """The ClientDecoder: identical events, consumed and buffered bytes over both twins, for
    any server bytes at any cuts."""
    _client_case(data, stream, limits, eof)


def _datagram_case(data: st.DataObject, limits: Limits) -> None:
    datagram = data.draw(st.one_of(_CLIENT_PIECE, _client_stream(limits), _SERVER_STREAM))
    _assert_twins_agree(lambda: twins.trace_datagrams(limits, datagram))


_DATAGRAM_ARGS = (st.data(), _LIMITS)


@pytest.mark.usefixtures("both_twins")
@settings(max_examples=500)
@given(*_DATAGRAM_ARGS)
def test_datagram_decoders_give_the_same_events_over_both_twins(
    data: st.DataObject, limits: Limits
) -> None:
    """decode_datagram and decode_server_datagram answer identically over both twins."""
    _datagram_case(data, limits)


# -- the buffer itself --------------------------------------------------------------------------

_LINES = st.sampled_from([b"SEND bob", b"BROADCAST", b""])
#: Whole canonical chunks (what a chunk run takes), and sometimes the last one.
_CANONICAL_CHUNKS = st.tuples(
    st.lists(st.integers(1, 20), min_size=1, max_size=4), st.sampled_from([b"", b"C0\n"])
).map(lambda drawn: b"".join(b"C%d\n" % size + b"c" * size for size in drawn[0]) + drawn[1])
#: A length line's or chunk header's number, where the buffer's front has one.
_FRAMED_SIZE = re.compile(rb"(?:^|\n|C)([0-9]{1,4})\r?\n")


def _the_front(buffer: Any) -> tuple[list[int], bytes]:
    """What the limits and lines of the next call should be near, read from the pure twin's
    buffer: each length line's or chunk header's number in its first bytes, their running
    sums, a byte less and more; and its first line (what a fast path would be asked for)."""
    front = bytes(buffer._data[buffer._start : buffer._start + 400])
    sizes = [int(size) for size in _FRAMED_SIZE.findall(front)]
    sums = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    near = sorted({max(0, size + delta) for size in sizes + sums for delta in (-1, 0, 1)})
    return near, front.lstrip(b"\r\n").partition(b"\n")[0].removesuffix(b"\r")


@st.composite
def _call(draw: st.DrawFn, front: tuple[list[int], bytes]) -> tuple[str, tuple[Any, ...]]:
    """One call of the buffer's API, ``(method, arguments)``, its limit and line often those
    of the buffer's ``front`` (see :func:`_the_front`).

    Feeding whole messages under the lines the calls name is common, so that the
    fast paths find what they take; ``take_rest`` (which empties the buffer) is rare.
    """
    near, first_line = front
    limit = st.one_of(st.sampled_from(near), st.integers(0, 40)) if near else st.integers(0, 200)
    lines = st.one_of(st.just(first_line), _LINES)
    calls: list[tuple[int, str, st.SearchStrategy[tuple[Any, ...]]]] = [
        (25, "feed", st.tuples(_LINES.flatmap(_canonical_message))),
        (10, "feed", st.tuples(_CANONICAL_CHUNKS)),
        (10, "feed", st.tuples(st.one_of(_CLIENT_PIECE, _SERVER_PIECE))),
        (10, "take_line", st.tuples(st.integers(1, 100))),
        (15, "take_short_frame", st.tuples(lines, limit)),
        (15, "take_message_run", st.tuples(lines, limit, st.integers(1, 5))),
        (8, "take_body", st.tuples(limit)),
        (5, "take_chunk", st.tuples(limit)),
        (5, "take_chunk_run", st.tuples(limit)),
        (3, "take", st.tuples(limit)),
        (3, "take_rest", st.tuples(st.integers(1, 100))),
    ]
    weighted = [index for index, (weight, _, _) in enumerate(calls) for _ in range(weight)]
    _, method, arguments = calls[draw(st.sampled_from(weighted))]
    return method, draw(arguments)


def _answer(buffer: Any, method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A call's result (with its type; ``LINE_TOO_LONG`` by name), then length and ``consumed``."""
    try:
        result = getattr(buffer, method)(*args)
    except Exception as error:
        return ("raised", method, type(error).__name__, str(error))
    shown = "LINE_TOO_LONG" if result is LINE_TOO_LONG else twins.described(result)
    return (method, args, shown, len(buffer), buffer.consumed)


def _buffer_case(data: st.DataObject) -> None:
    buffers = {name: twin() for name, twin in twins.TWINS.items() if twin is not None}
    traces: dict[str, list[Any]] = {name: [] for name in buffers}
    for _ in range(data.draw(st.integers(0, 20))):
        method, args = data.draw(_call(_the_front(buffers["python"])))
        for name, buffer in buffers.items():
            traces[name].append(_answer(buffer, method, args))
        if traces["python"][-1] != traces["compiled"][-1] or traces["python"][-1][0] == "raised":
            break
    difference = twins.first_difference(traces)
    assert difference is None, difference


_BUFFER_ARGS = (st.data(),)


@pytest.mark.usefixtures("both_twins")
@settings(max_examples=500)
@given(*_BUFFER_ARGS)
def test_receive_buffer_answers_every_call_the_same_in_both_twins(data: st.DataObject) -> None:
    """Any sequence of ReceiveBuffer calls gives identical results, lengths and ``consumed``
    in both twins (``LINE_TOO_LONG`` being the one shared object); limits are drawn near
    the sizes framed at the buffer's front, where the fast paths decide."""
    _buffer_case(data)


# -- the differential tests catch a twin that differs ----------------------------------------


class _KeepsTheCr(PyReceiveBuffer):
    """Returns a ``\\r\\n`` line with its ``\\r``."""

    __slots__ = ()

    def take_line(self, max_line: int) -> Any:
        line = super().take_line(max_line)
        if isinstance(line, bytes) and self._data[self._start - 2 : self._start] == b"\r\n":
            return line + b"\r"
        return line


class _BytearrayBodies(PyReceiveBuffer):
    """Hands out short bodies as ``bytearray`` (equal to ``bytes``, but not the same type)."""

    __slots__ = ()

    def take_short_frame(self, line: bytes, max_body: int) -> Any:
        body = super().take_short_frame(line, max_body)
        return None if body is None else bytearray(body)


class _MiscountsChunkRuns(PyReceiveBuffer):
    """Counts the bytes a chunk run consumed one short."""

    __slots__ = ()

    def take_chunk_run(self, max_size: int) -> Any:
        run = super().take_chunk_run(max_size)
        if run is not None:
            self._dropped -= 1
        return run


class _ShortRuns(PyReceiveBuffer):
    """Takes one message fewer into a run than asked for (but at least one)."""

    __slots__ = ()

    def take_message_run(self, line: bytes, max_body: int, max_count: int) -> Any:
        return super().take_message_run(line, max_body, max(1, max_count - 1))


class _CountsOneMore(PyReceiveBuffer):
    """Says it holds one byte more than it does, when it holds any."""

    __slots__ = ()

    def __len__(self) -> int:
        size = super().__len__()
        return size + 1 if size else 0


#: Each property (its check and its strategies), by name.
_PROPERTIES: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
    "server": (_server_case, _SERVER_ARGS),
    "client": (_client_case, _CLIENT_ARGS),
    "datagram": (_datagram_case, _DATAGRAM_ARGS),
    "buffer": (_buffer_case, _BUFFER_ARGS),
}


@pytest.mark.parametrize(
    ("broken", "prop"),
    [
        (_KeepsTheCr, "server"),
        (_BytearrayBodies, "server"),
        (_MiscountsChunkRuns, "server"),
        (_ShortRuns, "server"),
        (_KeepsTheCr, "client"),
        (_CountsOneMore, "client"),
        (_KeepsTheCr, "datagram"),
        (_BytearrayBodies, "buffer"),
        (_MiscountsChunkRuns, "buffer"),
    ],
    ids=lambda value: getattr(value, "__name__", value).strip("_"),
)
def test_a_twin_that_differs_is_caught(
    monkeypatch: pytest.MonkeyPatch, broken: type, prop: str
) -> None:
    """Each differential property fails for a compiled twin that differs from the pure one
    in a small way: a kept ``\\r``, a ``bytearray``, a byte miscounted, a run cut short.

    It hunts as its test does, up to the first failure (no shrinking: this is about
    finding it).
    """
    case, strategies = _PROPERTIES[prop]
    hunt = settings(max_examples=1000, phases=[Phase.generate], database=None)(
        given(*strategies)(case)
    )
    monkeypatch.setitem(twins.TWINS, "compiled", broken)
    with pytest.raises((AssertionError, ExceptionGroup)) as caught:
        hunt()
    if isinstance(caught.value, ExceptionGroup):  # hypothesis found more than one way
        assert caught.group_contains(AssertionError, match="twins part")
    else:
        assert "twins part" in str(caught.value)


# -- every codec test runs over both twins ----------------------------------------------------

TESTS = Path(__file__).resolve().parent
#: What a test module names when it decodes or buffers: it must run over both twins.
_DECODES = re.compile(
    r"\b(Decoder|ClientDecoder|ReceiveBuffer|decode_datagram|decode_server_datagram|"
    r"codec_support|client_codec_support)\b"
)
#: Test modules that decode but run over both twins their own way (or need no twin).
_OWN_WAY = {"test_codec_twins.py", "test_compiled.py", "test_buffer_twins.py"}


def test_every_codec_test_module_runs_over_both_twins() -> None:
    """Each test module that makes a decoder or a buffer (or uses the codec test helpers) runs
    its tests over both twins (``wire_twin``), so that a new one cannot forget to."""
    missing = []
    for path in sorted(TESTS.rglob("test_*.py")):
        text = path.read_text()
        if path.name in _OWN_WAY or not _DECODES.search(text):
            continue
        if 'pytestmark = pytest.mark.usefixtures("wire_twin")' not in text:
            missing.append(str(path.relative_to(TESTS)))
    assert missing == [], "add pytestmark = pytest.mark.usefixtures('wire_twin') to these"
