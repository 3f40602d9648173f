"""The fuzz corpus, replayed without atheris: every file through every target's check.

A file that fails a check is a bug found by fuzzing (or a check gone wrong):
this test keeps it found. The rest of the module shows that the checks can
fail: a decoder that breaks one of their invariants is caught.
"""

from pathlib import Path

import pytest

from chatproto.limits import Limits
from chatproto.wire import compiled, relay
from chatproto.wire.buffer import ReceiveBuffer
from chatproto.wire.codec import Decoder
from chatproto.wire.events import (
    BodyData,
    DeliveryStart,
    Login,
    MessageEnd,
    MessageStart,
    Rejected,
    ShortMessage,
)
from tests import twins
from tests.fuzz import targets
from tests.fuzz.inputs import make_input, parse_input
from tests.fuzz.seeds import CORPUS_DIR, seeds
from tests.fuzz.streams import check_client_events, check_server_events
from tests.fuzz.targets import TARGETS

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")

#: Every corpus file, of every target.
CORPUS = sorted(path for path in CORPUS_DIR.glob("*/*") if path.is_file())
#: Most files a target's corpus may hold (minimise with ``run.py --merge``).
MAX_CORPUS_FILES = 400


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_corpus_file_passes_the_check(target: str, wire_twin: type) -> None:
    """Every corpus file, whichever target found it, passes this target's check."""
    if target == "twins":  # it compares both twins itself, whichever wire_twin says
        twins.require_twin("compiled")
    check = TARGETS[target]
    failures = []
    for path in CORPUS:
        try:
            check(path.read_bytes())
        except Exception as error:  # any exception is a finding
            failures.append(f"{path.relative_to(CORPUS_DIR)}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)


def test_each_target_has_a_corpus_that_holds_its_seeds_exactly() -> None:
    """Each target's corpus has the seeds of ``seeds.py`` (PROTOCOL.md's examples), as they
    are written, and no other ``seed-*`` file."""
    for target, files in seeds().items():
        directory = CORPUS_DIR / target
        on_disk = {path.name: path.read_bytes() for path in directory.glob("seed-*")}
        assert on_disk == files, f"run python -m tests.fuzz.seeds ({target})"
    assert sorted(path.name for path in CORPUS_DIR.iterdir()) == sorted(TARGETS)


def test_corpus_stays_small() -> None:
    """No target's corpus holds more than a few hundred files."""
    for target in TARGETS:
        count = len(list((CORPUS_DIR / target).iterdir()))
        assert count <= MAX_CORPUS_FILES, f"{target}: {count} files; minimise with --merge"


def test_an_input_is_a_payload_its_cuts_and_limits() -> None:
    """make_input writes what parse_input reads; any bytes parse, short ones included."""
    given = parse_input(make_input(b"SEND bob\n2\nhi", (3, 9, 9), limits=2, max_frames=7))
    assert (given.payload, given.cuts, given.limits.max_line_bytes, given.max_frames) == (
        b"SEND bob\n2\nhi",
        (3, 9, 9),
        16,
        7,
    )
    assert parse_input(make_input(b"x", limits=1)).max_frames == 2
    assert given.pieces == [b"SEN", b"D bob\n", b"", b"2\nhi"]
    assert parse_input(b"") == parse_input(b"\0\0")
    assert parse_input(b"\x03\x01\xff\xffab").cuts == (0xFFFF % 3,)


# -- the checks can fail ------------------------------------------------------------------------

#: An input with cuts in the middle of its lines and its body.
CUT_INPUT = make_input(b"SEND bob\nC5\nhelloC0\nME IS zed\n", (3, 12, 14, 22))


class _SecondReadLosesAByte(Decoder):
    """A decoder that drops the first byte of every read after the first one."""

    def __init__(self, limits: Limits, coalesce_chunks: bool = False) -> None:
        super().__init__(limits, coalesce_chunks)
        self.reads = 0

    def feed(self, data: bytes) -> None:
        self.reads += 1
        super().feed(data if self.reads == 1 else data[1:])


class _LoginAfterFailing(Decoder):
    """A decoder that reports one more event after its fatal one."""

    def __init__(self, limits: Limits, coalesce_chunks: bool = False) -> None:
        super().__init__(limits, coalesce_chunks)
        self.failed = False

    def next_event(self):  # type: ignore[no-untyped-def]
        if self.failed:
            self.failed = False
            return Login(b"ghost")
        event = super().next_event()
        self.failed = isinstance(event, Rejected) and event.fatal
        return event


class _Hoarder(Decoder):
    """A decoder that says it holds more than a line and a chunk."""

    @property
    def buffered_bytes(self) -> int:
        return 100_000


class _LosesWhatFollowsAMessage(Decoder):
    """A decoder that drops what is buffered after a short message (a resync bug)."""

    def next_event(self):  # type: ignore[no-untyped-def]
        event = super().next_event()
        if isinstance(event, ShortMessage):
            self._buffer = ReceiveBuffer()
        return event


def test_the_server_check_catches_a_command_lost_after_a_message(monkeypatch) -> None:
    """A decoder that loses the command after a whole message fails the server check, even
    with the input uncut (the check appends a command to it)."""
    whole = make_input(b"SEND bob\n2\nhi")
    targets.check_server(whole)
    monkeypatch.setattr(targets, "Decoder", _LosesWhatFollowsAMessage)
    with pytest.raises(AssertionError, match="after the input"):
        targets.check_server(whole)


def test_the_server_check_catches_events_that_depend_on_the_cuts(monkeypatch) -> None:
    """A decoder whose events change with the cuts fails the server check."""
    targets.check_server(CUT_INPUT)
    monkeypatch.setattr(targets, "Decoder", _SecondReadLosesAByte)
    with pytest.raises(AssertionError):
        targets.check_server(CUT_INPUT)


def test_the_server_check_catches_an_event_after_a_fatal_one(monkeypatch) -> None:
    """A decoder that reports anything after a fatal Rejected fails the server check."""
    fatal = make_input(b"SEND bob\nC1000\nME IS zed\n")
    targets.check_server(fatal)
    monkeypatch.setattr(targets, "Decoder", _LoginAfterFailing)
    with pytest.raises(AssertionError, match="after Rejected"):
        targets.check_server(fatal)


def test_the_server_check_catches_a_buffer_past_its_bound(monkeypatch) -> None:
    """A decoder holding more than a line or a chunk fails the server check."""
    monkeypatch.setattr(targets, "Decoder", _Hoarder)
    with pytest.raises(AssertionError, match="bytes buffered"):
        targets.check_server(CUT_INPUT)


@pytest.mark.parametrize(
    ("events", "payload", "message"),
    [
        ([BodyData(b"x")], b"x", "outside a message"),
        ([Rejected("bad", True), Login(b"zed")], b"ME IS zed\n", "after the fatal"),
        ([Login(b"a b")], b"ME IS a b\n", "Login of"),
        (
            [ShortMessage((b"bob", b"bob"), b"", b"SEND bob bob")],
            b"SEND bob bob\n0\n",
            "recipients",
        ),
        ([MessageStart(None, b"BROADCAST"), Login(b"a")], b"BROADCAST\nC0\nME IS a\n", "mid"),
        (
            [MessageStart(None, b"BROADCAST"), BodyData(b""), MessageEnd()],
            b"BROADCAST\nC0\n",
            "empty",
        ),
        ([Login(b"alice")], b"ME IS al", "stand for"),
    ],
)
def test_the_server_event_check_catches_a_broken_event_list(
    events: list[object], payload: bytes, message: str
) -> None:
    """Events out of grammar, invalid userids, repeated recipients, empty body pieces, or
    more bytes than were fed fail the server event check."""
    with pytest.raises(AssertionError, match=message):
        check_server_events(events, payload, Limits())


def test_the_client_event_check_catches_a_delivery_from_an_invalid_sender() -> None:
    """A DeliveryStart naming no valid userid fails the client event check."""
    with pytest.raises(AssertionError, match="delivery from"):
        check_client_events([DeliveryStart(b"")], b"FROM \n0\n", Limits())


def test_the_datagram_check_catches_two_events_from_one_datagram(monkeypatch) -> None:
    """decode_datagram giving more than one event fails the datagram check."""
    datagram = make_input(b"ME IS a\nME IS b\n")
    targets.check_datagram(datagram)
    monkeypatch.setattr(targets, "decode_datagram", lambda data, limits: [Login(b"a")] * 2)
    with pytest.raises(AssertionError, match="2 events"):
        targets.check_datagram(datagram)


class _ShortBodiesAsBytearray(ReceiveBuffer):
    """A compiled twin gone wrong: short bodies come as ``bytearray`` (equal, not the same)."""

    __slots__ = ()

    def take_short_frame(self, line: bytes, max_body: int) -> bytes | None:
        body = super().take_short_frame(line, max_body)
        return None if body is None else bytearray(body)  # type: ignore[return-value]


def test_the_twins_check_catches_a_twin_that_differs(monkeypatch) -> None:
    """A compiled twin whose events differ from the pure one's, if only in a type, fails the
    twins check."""
    repeated = (CORPUS_DIR / "twins" / "seed-line-repeated-runs-2").read_bytes()
    monkeypatch.setitem(twins.TWINS, "compiled", compiled.PyReceiveBuffer)
    targets.check_twins(repeated)
    monkeypatch.setitem(twins.TWINS, "compiled", _ShortBodiesAsBytearray)
    with pytest.raises(AssertionError, match="twins part"):
        targets.check_twins(repeated)


def test_the_relay_check_catches_an_error_that_is_not_relay_format_error(monkeypatch) -> None:
    """A relay decoder raising anything but RelayFormatError fails the relay check."""
    decode = relay.decode

    def decode_or_raise(data: bytes) -> tuple[relay.RelayHeader, bytes]:
        if data.startswith(b"X"):
            raise IndexError("not the documented error")
        return decode(data)

    bad_kind = (CORPUS_DIR / "relay" / "seed-bad-kind").read_bytes()
    targets.check_relay(bad_kind)
    monkeypatch.setattr(relay, "decode", decode_or_raise)
    with pytest.raises(IndexError):
        targets.check_relay(bad_kind)


def test_the_relay_check_catches_a_round_trip_that_changes_a_field(monkeypatch) -> None:
    """A relay encoder that loses a recipient fails the relay round trip."""
    encode = relay.encode_message
    monkeypatch.setattr(
        relay,
        "encode_message",
        lambda kind, origin, number, size, sender, names=(): encode(
            kind, origin, number, size, sender, tuple(names)[:1]
        ),
    )
    for path in sorted((CORPUS_DIR / "relay").iterdir()):
        try:
            targets.check_relay(path.read_bytes())
        except AssertionError:
            return
    raise AssertionError("no relay corpus file has a message with two recipients")


def test_corpus_directory_is_the_one_the_runner_uses() -> None:
    """The replay test reads the directory the runner fuzzes from."""
    from tests.fuzz import run

    assert Path(run.CORPUS_DIR) == CORPUS_DIR
    assert tuple(sorted(run.TARGET_NAMES)) == tuple(sorted(TARGETS))


def test_the_runner_adds_its_defaults_unless_given() -> None:
    """The runner adds -dict, -max_len and -timeout to libFuzzer's options, unless given."""
    from tests.fuzz import run

    assert run._with_defaults(["-max_len=100", "-runs=5"]) == [
        f"-dict={run.DICTIONARY}",
        "-timeout=10",
        "-max_len=100",
        "-runs=5",
    ]
