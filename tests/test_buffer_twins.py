"""The two twins of ``ReceiveBuffer`` (``chatproto/wire/buffer.py`` and ``_buffer.pyx``) agree.

Hypothesis properties drive both with the same operations and compare every
result (its type too), ``len()`` and ``consumed`` after each step: random
feeds of protocol pieces and random bytes with every ``take_*`` at random
limits; streams of messages cut anywhere and read as a decoder reads them;
big and small feeds. Examples pin the edge cases on each twin. Without the
compiled module (build it with ``cythonize -i -3 chatproto/wire/_buffer.pyx``)
these tests are skipped, unless ``CHATPROTO_REQUIRE_EXTENSIONS=1``: then they
fail.
"""

import importlib
import os
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.wire import buffer as pure
from chatproto.wire.buffer import LINE_TOO_LONG

try:
    compiled: Any = importlib.import_module("chatproto.wire._buffer")
except ImportError as error:  # not built
    compiled = None
    MISSING = f"the compiled twin chatproto.wire._buffer cannot be imported ({error})"
else:
    MISSING = ""

REQUIRED = os.environ.get("CHATPROTO_REQUIRE_EXTENSIONS") == "1"

if compiled is None and not REQUIRED:
    pytest.skip(
        MISSING + "; set CHATPROTO_REQUIRE_EXTENSIONS=1 to fail instead",
        allow_module_level=True,
    )


@pytest.fixture(autouse=True, scope="module")
def _compiled_is_there() -> None:
    """Fail every test here when the compiled twin is required and missing."""
    if compiled is None:
        pytest.fail(MISSING + " and CHATPROTO_REQUIRE_EXTENSIONS=1", pytrace=False)


@pytest.fixture(params=["pure", "compiled"])
def make(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """Make a buffer of each twin in turn."""
    module = pure if request.param == "pure" else compiled
    return module.ReceiveBuffer


def fed(make: Callable[[], Any], *pieces: bytes | bytearray | memoryview) -> Any:
    """A new buffer of ``make``'s twin, fed ``pieces`` one by one."""
    buffer = make()
    for piece in pieces:
        buffer.feed(piece)
    return buffer


def shape(value: object) -> object:
    """``value`` with its types spelled out, so that ``True`` and ``1`` differ."""
    if value is LINE_TOO_LONG:
        return "LINE_TOO_LONG"
    if isinstance(value, tuple | list):
        return type(value).__name__, [shape(item) for item in value]
    return type(value).__name__, value


# -- The property ----------------------------------------------------------------------------

# Mostly the line the messages below start with.
LINES = [b"SEND bob"] * 4 + [b"BROADCAST", b"", b"S", b"SEND bob\n", b"\r"]

PIECES = st.sampled_from(
    [
        b"SEND bob\n",
        b"SEND bob\r\n",
        b"SEND bob",
        b"BROADCAST\n",
        b"3\nabc",
        b"0\n",
        b"05\n",
        b"099\n",
        b"12\n",
        b"99\n",
        b"100\n",
        b"C3\nxyz",
        b"C3xyzC0\n",
        b"3 abc",
        b"C03\r\nxyz",
        b"C0\n",
        b"C00\n",
        b"C000\r\n",
        b"C0000\n",
        b"C1\n",
        b"C999\n",
        b"C1000\n",
        b"C",
        b"\r\n",
        b"\n",
        b"\r",
        b"0",
        b"1",
        b"9",
        b"x" * 20,
    ]
)


@st.composite
def messages(draw: st.DrawFn, canonical_share: float = 0.5) -> bytes:
    """A message under ``SEND bob``: short or chunked, canonical in that share.

    The others are framed as a client may frame them (leading zeros, ``\\r\\n``,
    blank lines), or are bad (a length of three digits, a chunk size of four, a space
    before the line end).
    """
    heads = [b"SEND bob\n", b"SEND bob\r\n", b"\nSEND bob\n", b"\r\n\nSEND bob\n"]
    head = draw(st.sampled_from(heads))
    is_canonical = draw(st.integers(0, 99)) < canonical_share * 100
    if draw(st.booleans()):
        body = draw(st.binary(max_size=12))
        forms = [b"%d\n"] if is_canonical else [b"%02d\n", b"%d\r\n", b"%03d\n", b"%d \n"]
        return head + draw(st.sampled_from(forms)) % len(body) + body
    chunks = draw(st.lists(st.binary(min_size=1, max_size=6), max_size=3))
    header = b"C%d\n"
    if not is_canonical:
        header = draw(st.sampled_from([b"C%03d\n", b"C%d\r\n", b"C%04d\n", b"C%d \n"]))
    end = b"C0\n" if is_canonical else draw(st.sampled_from([b"C00\n", b"\nC0\n"]))
    return head + b"".join(header % len(chunk) + chunk for chunk in chunks) + end


FEEDS = st.tuples(
    st.lists(st.one_of(messages(), PIECES, st.binary(max_size=8)), max_size=8),
    st.sampled_from([b"", b"", b"\r", b"\r\n", b"\n"]),  # how a read often ends
).map(lambda pieces_end: b"".join(pieces_end[0]) + pieces_end[1])
LIMITS = st.one_of(st.integers(-2, 24), st.sampled_from([99, 999, 8192]))
# Often big enough for the messages above, so that the takes succeed.
BODY_LIMITS = st.one_of(LIMITS, st.just(999))

# What each operation takes, after the buffer; feeds are drawn apart.
ARGUMENTS = {
    "take_line": st.tuples(LIMITS),
    "take_short_frame": st.tuples(st.sampled_from(LINES), BODY_LIMITS),
    "take_chunk": st.tuples(BODY_LIMITS),
    "take_chunk_run": st.tuples(BODY_LIMITS),
    "take_body": st.tuples(BODY_LIMITS),
    "take_message_run": st.tuples(
        st.sampled_from(LINES), BODY_LIMITS, st.one_of(st.integers(-1, 6), st.just(100))
    ),
    "take_rest": st.tuples(LIMITS),
    "take": st.tuples(st.integers(0, 24)),
}


def operations(feeds: st.SearchStrategy[bytes], weights: dict[str, int]) -> st.SearchStrategy:
    """Lists of ``(name, *args)``, each name drawn as often as its weight says."""
    names = [name for name, weight in weights.items() for _ in range(weight)]
    return st.lists(
        st.sampled_from(names).flatmap(
            lambda name: (
                st.tuples(st.just(name), feeds)
                if name == "feed"
                else st.tuples(st.just(name), ARGUMENTS[name]).map(lambda t: (t[0], *t[1]))
            )
        ),
        max_size=30,
    )


def run_both(steps: list[tuple[Any, ...]]) -> None:
    """Apply ``steps`` to a buffer of each twin; compare results, ``len()``, ``consumed``."""
    reference = pure.ReceiveBuffer()
    twin = compiled.ReceiveBuffer()
    for name, *args in steps:
        expected = getattr(reference, name)(*args)
        got = getattr(twin, name)(*args)
        assert shape(got) == shape(expected), (name, args)
        assert len(twin) == len(reference), (name, args)
        assert twin.consumed == reference.consumed, (name, args)


@settings(max_examples=400)
@given(operations(FEEDS, {"feed": 3, **dict.fromkeys(ARGUMENTS, 1)}))
def test_twins_agree_on_every_operation(steps: list[tuple[Any, ...]]) -> None:
    """The same operations give the same results, ``len()`` and ``consumed`` on both twins."""
    run_both(steps)


#: How a decoder reads a stream of messages (see ``chatproto/wire/codec.py``).
READS = st.sampled_from(
    ["take_message_run"] * 3
    + ["take_short_frame"] * 2
    + ["take_line"] * 2
    + ["take_chunk"] * 2
    + ["take_body", "take_chunk_run"]
)


@st.composite
def message_streams(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Mostly canonical messages cut into feeds anywhere, each feed followed by some reads."""
    stream = b"".join(draw(st.lists(messages(canonical_share=0.8), min_size=1, max_size=12)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    steps: list[tuple[Any, ...]] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        steps.append(("feed", stream[start:end]))
        for name in draw(st.lists(READS, max_size=6)):
            steps.append((name, *draw(ARGUMENTS[name])))
    return steps


@settings(max_examples=400)
@given(message_streams())
def test_twins_agree_on_message_streams(steps: list[tuple[Any, ...]]) -> None:
    """Whole messages cut anywhere, read as a decoder reads them, agree on both twins."""
    run_both(steps)


@st.composite
def big_and_small_feeds(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Feeds of up to 64 KiB (random bytes, a newline in some) and takes of any size."""
    steps: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 12))):
        size = draw(st.sampled_from([0, 1, 7, 255, 256, 257, 1000, 4096, 65536]))
        seed = draw(st.integers(0, 2**16))
        steps.append(("feed", random.Random(seed).randbytes(size)))
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from(["take", "take_line", "take_rest"]))
            steps.append((name, draw(st.sampled_from([0, 1, 300, 5000, 70000, 2**20]))))
    return steps


@settings(max_examples=150)
@given(big_and_small_feeds())
def test_twins_agree_across_big_and_small_feeds(steps: list[tuple[Any, ...]]) -> None:
    """Buffers growing past and shrinking back under their allocation keep every byte."""
    run_both(steps)


def test_the_twins_share_the_line_too_long_sentinel() -> None:
    """The compiled twin returns the pure module's own ``LINE_TOO_LONG``."""
    buffer = fed(compiled.ReceiveBuffer, b"x" * 9)
    assert buffer.take_line(4) is pure.LINE_TOO_LONG


def test_the_twins_have_the_same_public_methods() -> None:
    """Every public name of the pure class is on the compiled one."""
    public = {name for name in dir(pure.ReceiveBuffer) if not name.startswith("_")}
    assert public <= set(dir(compiled.ReceiveBuffer))


def test_feed_refuses_what_bytearray_refuses() -> None:
    """A ``str`` fed is a ``TypeError`` on both twins, and the buffer is as it was."""
    for module in (pure, compiled):
        buffer = fed(module.ReceiveBuffer, b"ab\ncd")
        buffer.take_line(8)
        with pytest.raises(TypeError):
            buffer.feed("ef")
        assert (len(buffer), buffer.consumed, buffer.take_rest(8)) == (2, 3, b"cd")


def test_feed_takes_any_bytes_like_object(make: Callable[[], Any]) -> None:
    """``bytearray`` and ``memoryview`` are appended as ``bytes`` are."""
    buffer = fed(make, bytearray(b"ab"), memoryview(b"c\n"))
    assert buffer.take_line(8) == b"abc"


def test_compiled_take_refuses_a_negative_size() -> None:
    """``take(-1)`` is a ``ValueError`` on the compiled twin (the pure one rewinds)."""
    with pytest.raises(ValueError):
        fed(compiled.ReceiveBuffer, b"abc").take(-1)


# -- Lines -----------------------------------------------------------------------------------


def test_line_of_exactly_max_line_is_taken(make: Callable[[], Any]) -> None:
    """A line of ``max_line`` bytes is returned with either line end."""
    buffer = fed(make, b"x" * 8 + b"\r\n" + b"y" * 8 + b"\n")
    assert buffer.take_line(8) == b"x" * 8
    assert buffer.take_line(8) == b"y" * 8
    assert (len(buffer), buffer.consumed) == (0, 19)


def test_line_one_over_max_line_is_too_long(make: Callable[[], Any]) -> None:
    """A line of ``max_line + 1`` bytes is ``LINE_TOO_LONG``, with ``\\r\\n`` or ``\\n``."""
    assert fed(make, b"x" * 9 + b"\n").take_line(8) is LINE_TOO_LONG
    assert fed(make, b"x" * 9 + b"\r\n").take_line(8) is LINE_TOO_LONG


def test_too_long_is_decided_before_the_newline(make: Callable[[], Any]) -> None:
    """``max_line + 1`` bytes without ``\\n`` wait; ``max_line + 2`` are too long."""
    buffer = fed(make, b"x" * 9)
    assert buffer.take_line(8) is None
    buffer.feed(b"x")
    assert buffer.take_line(8) is LINE_TOO_LONG


def test_cr_at_the_end_of_the_buffer_waits(make: Callable[[], Any]) -> None:
    """A line of ``max_line`` bytes and a ``\\r`` waits for its ``\\n``, then drops the ``\\r``."""
    buffer = fed(make, b"x" * 8 + b"\r")
    assert buffer.take_line(8) is None
    buffer.feed(b"\nz")
    assert buffer.take_line(8) == b"x" * 8
    assert (len(buffer), buffer.consumed) == (1, 10)


def test_only_the_cr_before_the_newline_is_dropped(make: Callable[[], Any]) -> None:
    """``\\r`` inside a line, or twice before its ``\\n``, stays in the line."""
    assert fed(make, b"a\rb\r\r\n").take_line(8) == b"a\rb\r"


def test_line_search_resumes_across_feeds(make: Callable[[], Any]) -> None:
    """A line fed a byte at a time is found once whole, and its consumption counted."""
    buffer = make()
    for byte in b"abc\r":
        buffer.feed(bytes([byte]))
        assert buffer.take_line(8) is None
    buffer.feed(b"\n")
    assert buffer.take_line(8) == b"abc"
    assert buffer.consumed == 5


def test_line_after_a_consumed_cr_is_empty(make: Callable[[], Any]) -> None:
    """A ``\\n`` whose ``\\r`` was consumed by ``take`` ends an empty line."""
    buffer = fed(make, b"a\r\nb\n")
    assert buffer.take(2) == b"a\r"
    assert buffer.take_line(8) == b""
    assert buffer.take_line(8) == b"b"


@pytest.mark.parametrize(
    ("data", "name", "args"),
    [
        (b"SEND bob\n3\na\nb", "take_short_frame", (b"SEND bob", 99)),
        (b"SEND bob\n3\na\nb", "take_message_run", (b"SEND bob", 99, 9)),
        (b"3\na\nb", "take_body", (99,)),
        (b"C3\na\nb", "take_chunk", (99,)),
        (b"C3\na\nb", "take_chunk_run", (99,)),
        (b"a\nb", "take", (3,)),
    ],
)
def test_line_search_starts_after_what_a_take_consumed(
    make: Callable[[], Any], data: bytes, name: str, args: tuple[Any, ...]
) -> None:
    """A newline inside a frame just taken is not found by the next ``take_line``."""
    buffer = fed(make, data + b"X\nY")
    assert getattr(buffer, name)(*args) is not None
    assert buffer.take_line(8) == b"X"
    assert buffer.consumed == len(data) + 2


def test_take_rest_drops_one_trailing_cr(make: Callable[[], Any]) -> None:
    """``take_rest`` returns what is left less one ``\\r``; over ``max_line`` is too long."""
    assert fed(make, b"ab\r\r").take_rest(8) == b"ab\r"
    assert fed(make, b"x" * 9).take_rest(8) is LINE_TOO_LONG
    assert fed(make, b"x" * 8 + b"\r").take_rest(8) == b"x" * 8


# -- Short frames and bodies -----------------------------------------------------------------


def test_short_frame_with_a_leading_zero(make: Callable[[], Any]) -> None:
    """``take_short_frame`` reads ``05`` as 5, with ``\\r\\n`` line ends."""
    buffer = fed(make, b"SEND bob\r\n05\r\nhelloSEND")
    assert buffer.take_short_frame(b"SEND bob", 99) == b"hello"
    assert (len(buffer), buffer.consumed) == (4, 19)


def test_short_frame_of_three_digits_is_not_one(make: Callable[[], Any]) -> None:
    """A length of three digits (``005``) is not a short frame: nothing is consumed."""
    assert fed(make, b"SEND bob\n005\nhello").take_short_frame(b"SEND bob", 999) is None


def test_short_frame_over_max_body_or_incomplete_is_not_taken(make: Callable[[], Any]) -> None:
    """A body over ``max_body``, or not all there, leaves the frame to the line reader."""
    assert fed(make, b"SEND bob\n5\nhello").take_short_frame(b"SEND bob", 4) is None
    buffer = fed(make, b"SEND bob\n5\nhell")
    assert buffer.take_short_frame(b"SEND bob", 99) is None
    assert buffer.consumed == 0
    buffer.feed(b"o")
    assert buffer.take_short_frame(b"SEND bob", 5) == b"hello"


def test_canonical_body_refuses_leading_zeros(make: Callable[[], Any]) -> None:
    """``take_body`` takes ``0\\n`` and ``12\\n`` but not ``05\\n``, ``C03\\n`` or ``\\r\\n``."""
    assert fed(make, b"0\n").take_body(99) == (b"0\n", 0, False)
    assert fed(make, b"12\n" + b"x" * 12).take_body(99) == (b"12\n" + b"x" * 12, 12, False)
    assert fed(make, b"05\nhello").take_body(99) is None
    assert fed(make, b"C03\nabcC0\n").take_body(99) is None
    assert fed(make, b"3\r\nabc").take_body(99) is None
    assert fed(make, b"3 abc").take_body(99) is None


def test_c0_alone_is_an_empty_chunked_body(make: Callable[[], Any]) -> None:
    """``C0\\n`` is a whole, empty chunked body; ``C0`` is an empty chunk, not a run."""
    assert fed(make, b"C0\n").take_body(0) == (b"C0\n", 0, True)
    assert fed(make, b"C0\n").take_chunk(0) == b""
    assert fed(make, b"C0\n").take_chunk_run(99) is None
    assert fed(make, b"C00\n").take_body(99) is None


# -- Chunks ----------------------------------------------------------------------------------


def test_chunk_over_the_limit_is_not_taken(make: Callable[[], Any]) -> None:
    """A chunk over ``max_size`` is left whole, as is a size of four digits."""
    buffer = fed(make, b"C5\nhello")
    assert buffer.take_chunk(4) is None
    assert buffer.take_chunk_run(4) is None
    assert buffer.take_chunk(5) == b"hello"
    assert fed(make, b"C0005\nhello").take_chunk(999) is None


def test_incomplete_chunks_wait(make: Callable[[], Any]) -> None:
    """A chunk header or data cut short is not taken; a run stops before it."""
    assert fed(make, b"C3\nab").take_chunk(99) is None
    assert fed(make, b"C3\r").take_chunk(99) is None
    assert fed(make, b"C12").take_chunk_run(99) is None
    assert fed(make, b"C3 abcC0\n").take_chunk_run(99) is None
    assert fed(make, b"C3 abcC0\n").take_body(99) is None
    buffer = fed(make, b"C2\nabC3\nxy")
    assert buffer.take_chunk_run(99) == (b"C2\nab", 2)
    assert (len(buffer), buffer.consumed) == (5, 5)


def test_chunk_run_stops_at_its_limit_and_at_a_non_canonical_header(
    make: Callable[[], Any],
) -> None:
    """A run takes whole chunks up to ``max_size`` body bytes (exactly too), none after ``C03``."""
    buffer = fed(make, b"C2\nabC2\ncdC2\nefC03\nghiC0\n")
    assert buffer.take_chunk_run(5) == (b"C2\nabC2\ncd", 4)
    assert buffer.take_chunk_run(5) == (b"C2\nef", 2)
    assert buffer.take_chunk_run(5) is None
    assert buffer.take_chunk(5) == b"ghi"
    assert fed(make, b"C2\nabC2\ncdC2\nef").take_chunk_run(4) == (b"C2\nabC2\ncd", 4)


def test_chunk_header_line_takes_leading_zeros_and_cr(make: Callable[[], Any]) -> None:
    """``take_chunk`` reads ``C003\\r\\n`` as a chunk of 3."""
    assert fed(make, b"C003\r\nabc").take_chunk(3) == b"abc"


# -- Message runs ----------------------------------------------------------------------------


def test_message_run_skips_blank_lines_between_frames(make: Callable[[], Any]) -> None:
    """Blank lines before each message are skipped; those after the last are not consumed."""
    buffer = fed(make, b"\nSEND bob\n1\na\r\n\nSEND bob\r\nC1\nbC0\n\n")
    assert buffer.take_message_run(b"SEND bob", 99, 10) == ([b"1\na", b"C1\nbC0\n"], 2, 1)
    assert (len(buffer), buffer.consumed) == (1, 33)


def test_message_run_stops_at_a_non_canonical_frame(make: Callable[[], Any]) -> None:
    """A run ends before a message whose body is not canonical (``05``), or another line."""
    buffer = fed(make, b"SEND bob\n1\naSEND bob\n05\nhelloSEND bob\n1\nb")
    assert buffer.take_message_run(b"SEND bob", 99, 10) == ([b"1\na"], 1, 0)
    assert buffer.take_message_run(b"SEND bob", 99, 10) is None
    assert buffer.consumed == 12
    buffer = fed(make, b"SEND bob\n1\naSEND al\n1\nb")
    assert buffer.take_message_run(b"SEND bob", 99, 10) == ([b"1\na"], 1, 0)


def test_message_run_stops_at_max_count(make: Callable[[], Any]) -> None:
    """At most ``max_count`` messages are taken; ``0`` takes none."""
    buffer = fed(make, b"SEND bob\n1\na" * 3)
    assert buffer.take_message_run(b"SEND bob", 99, 0) is None
    assert buffer.take_message_run(b"SEND bob", 99, 2) == ([b"1\na", b"1\na"], 2, 0)
    assert buffer.take_message_run(b"SEND bob", 99, 2) == ([b"1\na"], 1, 0)


def test_message_run_stops_at_max_body_and_at_an_incomplete_message(
    make: Callable[[], Any],
) -> None:
    """A body over ``max_body``, or one not all buffered, ends the run before it."""
    buffer = fed(make, b"SEND bob\n1\naSEND bob\n3\nabcSEND bob\n1\n")
    assert buffer.take_message_run(b"SEND bob", 2, 10) == ([b"1\na"], 1, 0)
    assert buffer.take_message_run(b"SEND bob", 3, 10) == ([b"3\nabc"], 3, 0)
    assert buffer.take_message_run(b"SEND bob", 3, 10) is None
    assert len(buffer) == 11
