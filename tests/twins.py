"""The wire core's two twins, for the tests: which one a run can use, and traces to compare.

The receive buffer has a pure-Python twin and a compiled one (STYLE §9,
:mod:`chatproto.wire.compiled`). The codec tests run over each through the
``wire_twin`` fixture (``conftest.py``); the differential tests
(``test_codec_twins.py``) and the ``twins`` fuzz target
(``fuzz/targets.py``) run one input over both and compare what this module
records of each run: every event, exactly (types included, so that a
``bytearray`` for a ``bytes`` is a difference), and the decoder's
``consumed_bytes`` and ``buffered_bytes`` after each event and each read.

Whether a run can use the compiled twin: it is there when it was built and
``CHATPROTO_NO_EXTENSIONS`` is not set. A test wanting it skips without it,
unless ``CHATPROTO_REQUIRE_EXTENSIONS`` is set (``.ci/run`` sets it, so that
a failed build fails CI); ``CHATPROTO_NO_EXTENSIONS`` wins over it (a run
that refuses the compiled twin skips its tests, whatever else is set).

Only ``chatproto`` and the standard library are imported: the fuzz runner's
environment has atheris, not the test requirements.
"""

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from chatproto.limits import Limits
from chatproto.wire import compiled
from chatproto.wire.client_codec import ClientDecoder, decode_server_datagram
from chatproto.wire.codec import Decoder, decode_datagram
from chatproto.wire.events import NEED_DATA
from chatproto.wire.stream import StreamDecoder

#: The twins, by the name a test id shows.
TWINS: Final[dict[str, type | None]] = {
    "python": compiled.PyReceiveBuffer,
    "compiled": compiled.CReceiveBuffer,
}
TWIN_NAMES: Final = tuple(TWINS)

#: Set (not empty, not 0): a test that wants the compiled twin fails without it.
REQUIRE_VARIABLE: Final = "CHATPROTO_REQUIRE_EXTENSIONS"


def extensions_required() -> bool:
    """Whether this run must have the compiled twin (``CHATPROTO_REQUIRE_EXTENSIONS``)."""
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")


def missing_twin(name: str) -> tuple[str, bool] | None:
    """Why twin ``name`` cannot be used in this run, and whether that is a failure; or ``None``.

    Only the compiled twin can be missing: not built (a failure when
    :func:`extensions_required`) or refused by ``CHATPROTO_NO_EXTENSIONS``
    (never a failure).
    """
    if TWINS[name] is not None:
        return None
    status = compiled.compiled_core_status()
    reason = f"the compiled twin is not in use: compiled core: {status}"
    return reason, extensions_required() and not compiled.extensions_refused()


def require_twin(name: str) -> None:
    """Skip the running test without twin ``name``, or fail it (see :func:`missing_twin`)."""
    missing = missing_twin(name)
    if missing is None:
        return
    import pytest  # here: the fuzz runner has no pytest, and never needs it

    reason, is_failure = missing
    if is_failure:
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE} is set)")
    pytest.skip(reason)


@contextmanager
def decoders_over(buffer_type: type) -> Iterator[None]:
    """Make the decoders made (and failing) in the ``with`` block buffer with ``buffer_type``."""
    before = StreamDecoder.buffer_type
    StreamDecoder.buffer_type = buffer_type
    try:
        yield
    finally:
        StreamDecoder.buffer_type = before


# -- what a run of a twin is recorded as ------------------------------------------------------


def described(value: Any) -> Any:
    """``value`` with its type at every level: equal descriptions mean identical values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *(described(getattr(value, f.name)) for f in fields))
    if isinstance(value, tuple | list):
        return (type(value).__name__, *map(described, value))
    if value is None or isinstance(value, bool | int | str | bytes):
        return (type(value).__name__, value)
    return (type(value).__name__, repr(value))  # a type no event should carry: it shows


def _is_fatal(event: Any) -> bool:
    return getattr(event, "fatal", False) is True


def _drain(decoder: Any, trace: list[Any], next_event: Callable[[], Any]) -> bool:
    """Record events until ``NEED_DATA`` or a fatal one; return whether the decoder failed."""
    while (event := next_event()) is not NEED_DATA:
        trace.append((described(event), decoder.consumed_bytes, decoder.buffered_bytes))
        if _is_fatal(event):
            trace.append(("again", described(next_event())))
            return True
    return False


def trace_decoder(
    make: Callable[[], Any],
    pieces: Sequence[bytes],
    eof: bool,
    max_frames: int = 1,
) -> list[Any]:
    """Record a run of the decoder ``make()`` returns over ``pieces`` (then ``eof()``).

    Draining after every piece with ``next_event()``, or
    ``next_event(max_frames)`` when ``max_frames`` is over 1 (the server's
    runs). An exception out of the decoder is recorded, and ends the run.
    """
    trace: list[Any] = []
    try:
        decoder = make()
        next_event = decoder.next_event
        if max_frames > 1:

            def next_event() -> Any:
                return decoder.next_event(max_frames)

        failed = False
        for piece in pieces:
            decoder.feed(piece)
            failed = failed or _drain(decoder, trace, next_event)
            trace.append(("read", len(piece), decoder.consumed_bytes, decoder.buffered_bytes))
        if eof:
            decoder.eof()
            if not failed:
                _drain(decoder, trace, next_event)
            trace.append(("eof", decoder.consumed_bytes, decoder.buffered_bytes))
    except Exception as error:  # a bug either way; the twins must agree on it too
        trace.append(("raised", type(error).__name__, str(error)))
    return trace


def trace_server(
    limits: Limits,
    pieces: Sequence[bytes],
    *,
    coalesce_chunks: bool = False,
    max_frames: int = 1,
    eof: bool = True,
) -> list[Any]:
    """Record a server :class:`Decoder` run (see :func:`trace_decoder`) over the current twin."""
    return trace_decoder(lambda: Decoder(limits, coalesce_chunks), pieces, eof, max_frames)


def trace_client(limits: Limits, pieces: Sequence[bytes], *, eof: bool = True) -> list[Any]:
    """Record a :class:`ClientDecoder` run (see :func:`trace_decoder`) over the current twin."""
    return trace_decoder(lambda: ClientDecoder(limits), pieces, eof)


def trace_datagrams(limits: Limits, datagram: bytes) -> list[Any]:
    """Record both datagram decoders' answers to ``datagram`` over the current twin."""
    trace: list[Any] = []
    for decode in (decode_datagram, decode_server_datagram):
        try:
            trace.append(described(decode(datagram, limits)))
        except Exception as error:
            trace.append(("raised", type(error).__name__, str(error)))
    return trace


def over_each_twin(run: Callable[[], list[Any]]) -> dict[str, list[Any]]:
    """``run()``'s trace over each twin, by name (the compiled twin must be there)."""
    traces = {}
    for name, twin in TWINS.items():
        missing = missing_twin(name)
        if twin is None or missing is not None:
            raise RuntimeError(missing[0] if missing else name)
        with decoders_over(twin):
            traces[name] = run()
    return traces


def first_difference(traces: dict[str, list[Any]]) -> str | None:
    """Where the twins' traces part, as text for an assertion; ``None`` if they are identical."""
    python, other = traces["python"], traces["compiled"]
    if python == other:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(python, other, strict=False)) if a != b),
        min(len(python), len(other)),
    )
    return (
        f"the twins part at step {at}:\n"
        f"  python:   {python[at] if at < len(python) else '(ended)'}\n"
        f"  compiled: {other[at] if at < len(other) else '(ended)'}\n"
        f"  steps before: {python[max(0, at - 3) : at]}"
    )
