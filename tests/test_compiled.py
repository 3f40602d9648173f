"""Tests of ``chatproto.wire.compiled``: which twin of the wire core a process runs, and why."""

import sys

import pytest

from chatproto.limits import Limits
from chatproto.wire import buffer, compiled
from chatproto.wire.codec import Decoder
from chatproto.wire.events import Rejected
from chatproto.wire.stream import StreamDecoder
from tests import twins


@pytest.mark.parametrize(
    ("value", "refused"),
    [(None, False), ("", False), ("0", False), ("1", True), ("yes", True), ("00", True)],
)
def test_no_extensions_is_any_value_but_empty_or_0(value: str | None, refused: bool) -> None:
    """CHATPROTO_NO_EXTENSIONS refuses the compiled twin when set to anything but '' or '0'."""
    environ = {} if value is None else {"CHATPROTO_NO_EXTENSIONS": value}
    assert compiled.extensions_refused(environ) is refused


def test_the_twin_in_use_is_the_compiled_one_when_there_is_one() -> None:
    """ReceiveBuffer is the compiled twin if it imported, else the pure one; and the decoders
    use it."""
    expected = compiled.CReceiveBuffer or buffer.ReceiveBuffer
    assert compiled.PyReceiveBuffer is buffer.ReceiveBuffer
    assert compiled.ReceiveBuffer is expected
    assert StreamDecoder.buffer_type is expected
    if compiled.CReceiveBuffer is not None:
        assert compiled.CReceiveBuffer.__module__ == "chatproto.wire._buffer"


def test_status_says_yes_exactly_when_the_compiled_twin_runs() -> None:
    """compiled_core_status() is 'yes' with the compiled twin, else 'no (<reason>)'."""
    status = compiled.compiled_core_status()
    if compiled.CReceiveBuffer is not None:
        assert status == "yes"
    else:
        assert status.startswith("no (") and status.endswith(")")
        assert status in (
            "no (CHATPROTO_NO_EXTENSIONS is set)",
            f"no ({compiled._WHY_NOT})",
        )


def test_set_no_extensions_refuses_the_compiled_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CHATPROTO_NO_EXTENSIONS=1 the compiled twin is not even imported, and that is why."""
    monkeypatch.setenv("CHATPROTO_NO_EXTENSIONS", "1")
    monkeypatch.setitem(sys.modules, "chatproto.wire._buffer", None)  # importing would raise
    assert compiled._compiled_twin() == (None, "CHATPROTO_NO_EXTENSIONS is set")


def test_an_unbuilt_compiled_twin_is_not_built_and_the_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the extension does not import, the reason is 'not built: <the ImportError>'."""
    monkeypatch.delenv("CHATPROTO_NO_EXTENSIONS", raising=False)
    monkeypatch.setitem(sys.modules, "chatproto.wire._buffer", None)
    twin, why_not = compiled._compiled_twin()
    assert twin is None
    assert why_not.startswith("not built: import of chatproto.wire._buffer halted")


def test_the_wire_twin_fixture_gives_the_decoders_its_twin(wire_twin: type) -> None:
    """Under wire_twin, a decoder buffers with that twin, and so does it once it has failed."""
    decoder = Decoder(Limits())
    assert type(decoder._buffer) is wire_twin
    decoder.feed(b"SEND bob\nC1000\n")
    event = decoder.next_event()
    assert isinstance(event, Rejected) and event.fatal
    assert type(decoder._buffer) is wire_twin


def test_decoders_over_sets_and_restores_the_buffer_type() -> None:
    """twins.decoders_over sets StreamDecoder.buffer_type for its block only."""
    before = StreamDecoder.buffer_type

    class Other(buffer.ReceiveBuffer):
        __slots__ = ()

    with pytest.raises(KeyError), twins.decoders_over(Other):
        assert type(Decoder(Limits())._buffer) is Other
        raise KeyError
    assert StreamDecoder.buffer_type is before
