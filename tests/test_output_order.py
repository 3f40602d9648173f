"""What the server sends one client leaves in the order of the input that caused it (issue 13).

Replies (``OK``/``ERROR``) and deliveries share one ordered outbox, so an
``ERROR`` never overtakes a delivery caused by an earlier frame, under any
split of the input, and the ``-v`` lines show that same order. The property
test runs random mixes of valid and refused frames from several clients, cut
at random points and interleaved, against a model of PROTOCOL.md.
"""

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import capturedLogs

from chatproto.limits import Limits
from chatproto.server.verbose import SENT
from tests.protocol_support import login
from tests.support import connect, make_service, take
from tests.verbose_support import read_back, traffic

# -- the cases issue 13 found -----------------------------------------------


def test_error_after_a_broadcast_comes_after_its_copy_to_the_sender() -> None:
    """``BROADCAST`` then ``HELLO`` in one read: the copy first, then the ``ERROR``."""
    service = make_service()
    protocol, transport = connect(service)
    protocol.dataReceived(b"ME IS o1\nBROADCAST\n2\nhiHELLO\n")
    assert transport.value() == b"OK\nFROM o1\n2\nhiERROR\n"


def test_error_for_a_second_login_comes_after_a_send_to_oneself() -> None:
    """``SEND`` to oneself then ``ME IS`` again: the delivery first, then the ``ERROR``."""
    service = make_service()
    protocol, transport = login(service, b"o3")
    protocol.dataReceived(b"SEND o3\n2\nhiME IS x\n")
    assert take(transport) == b"FROM o3\n2\nhiERROR\n"


def test_error_waits_behind_a_paused_outbox() -> None:
    """A reply to a client whose outbox is paused waits behind the deliveries queued there."""
    service = make_service()
    protocol, transport = login(service, b"o4")
    protocol._outbox.pauseProducing()
    protocol.dataReceived(b"SEND o4\n2\nhiHELLO\n")
    assert take(transport) == b""
    protocol._outbox.resumeProducing()
    assert take(transport) == b"FROM o4\n2\nhiERROR\n"


def test_fatal_error_is_written_after_earlier_deliveries() -> None:
    """A broken frame after a message: the copy, then the one ``ERROR``, then the close."""
    service = make_service()
    protocol, transport = login(service, b"o5")
    protocol.dataReceived(b"SEND o5\n2\nhiSEND o5\nxyz\n")
    assert take(transport) == b"FROM o5\n2\nhiERROR\n"
    assert transport.disconnecting


# -- the property --------------------------------------------------------------

NAMES = (b"a", b"b", b"c", b"d")


@dataclass(frozen=True)
class Frame:
    """One generated frame: its bytes and what the model needs to know of it."""

    wire: bytes
    kind: str  # "login", "send", "broadcast", "refused", "blank"
    user: bytes = b""
    recipients: tuple[bytes, ...] = ()
    delivered: bytes = b""  # the body as the server writes it (canonical framing)


def _short_body() -> st.SearchStrategy[tuple[bytes, bytes]]:
    def frame(data: bytes, zeros: bool) -> tuple[bytes, bytes]:
        length = (b"0%d\n" if zeros and len(data) < 10 else b"%d\n") % len(data)
        return length + data, b"%d\n" % len(data) + data

    return st.builds(frame, st.binary(max_size=99), st.booleans())


def _chunked_body() -> st.SearchStrategy[tuple[bytes, bytes]]:
    def frame(chunks: list[bytes], end: bytes) -> tuple[bytes, bytes]:
        wire = b"".join(b"C%d\n" % len(chunk) + chunk for chunk in chunks)
        return wire + end, wire + b"C0\n"

    chunk = st.binary(min_size=1, max_size=30)
    return st.builds(frame, st.lists(chunk, max_size=4), st.sampled_from([b"C0\n", b"C000\n"]))


_bodies = st.one_of(_short_body(), _chunked_body())
_names = st.sampled_from(NAMES)


def _frames() -> st.SearchStrategy[Frame]:
    login = st.builds(lambda user: Frame(b"ME IS %b\n" % user, "login", user), _names)
    send = st.builds(
        lambda names, body: Frame(
            b"SEND " + b" ".join(names) + b"\n" + body[0], "send", b"", names, body[1]
        ),
        st.lists(st.sampled_from((*NAMES, b"zz")), min_size=1, max_size=3).map(tuple),
        _bodies,
    )
    broadcast = st.builds(
        lambda body: Frame(b"BROADCAST\n" + body[0], "broadcast", delivered=body[1]), _bodies
    )
    refused = st.one_of(
        st.just(Frame(b"HELLO\n", "refused")),
        st.just(Frame(b"ME IS not valid\n", "refused")),
        st.builds(lambda body: Frame(b"SEND\n" + body[0], "refused"), _bodies),
        st.builds(lambda body: Frame(b"BROADCAST x\n" + body[0], "refused"), _bodies),
    )
    return st.one_of(login, send, broadcast, refused, st.just(Frame(b"\n", "blank")))


@dataclass
class Model:
    """PROTOCOL.md for these frames: who is logged in, and what each client is owed."""

    clients: int
    names: dict[int, bytes] = field(default_factory=dict)
    output: dict[int, bytearray] = field(default_factory=dict)

    def handle(self, client: int, frame: Frame) -> None:
        out = self.output.setdefault(client, bytearray())
        name = self.names.get(client)
        if frame.kind == "blank":
            return
        if frame.kind == "login":
            taken = frame.user in self.names.values()
            if name is None and not taken:
                self.names[client] = frame.user
                out += b"OK\n"
            else:
                out += b"ERROR\n"
            return
        if frame.kind == "refused" or name is None:
            out += b"ERROR\n"
            return
        by_name = {user: index for index, user in self.names.items()}
        if frame.kind == "broadcast":
            targets = sorted(self.names)
        else:
            wanted = dict.fromkeys(frame.recipients)
            targets = [by_name[user] for user in wanted if user in by_name]
        for target in targets:
            self.output.setdefault(target, bytearray()).extend(
                b"FROM " + name + b"\n" + frame.delivered
            )


def completed_in_order(
    frames: list[list[Frame]], schedule: list[tuple[int, int]]
) -> list[tuple[int, Frame]]:
    """Each client's frames in the order their last byte arrives under ``schedule``."""
    completed = []
    done = [0] * len(frames)  # frames of each client completed so far
    for client, end in schedule:
        own = frames[client]
        while done[client] < len(own):
            frame_end = sum(len(frame.wire) for frame in own[: done[client] + 1])
            if frame_end > end:
                break
            completed.append((client, own[done[client]]))
            done[client] += 1
    return completed


@st.composite
def _conversations(draw: st.DrawFn) -> tuple[list[list[Frame]], list[tuple[int, int]]]:
    """Frames per client, and the order their pieces are fed: (client, piece end)."""
    clients = draw(st.integers(2, 3))
    frames = [draw(st.lists(_frames(), max_size=8)) for _ in range(clients)]
    cuts: list[list[int]] = []
    for own in frames:
        size = sum(len(frame.wire) for frame in own)
        points = draw(st.lists(st.integers(1, max(size, 1)), max_size=6, unique=True))
        cuts.append(sorted({*points, size}) if size else [])
    # Interleave the clients' pieces, each client's in order.
    schedule: list[tuple[int, int]] = []
    positions = [0] * clients
    while any(positions[c] < len(cuts[c]) for c in range(clients)):
        ready = [c for c in range(clients) if positions[c] < len(cuts[c])]
        client = draw(st.sampled_from(ready))
        schedule.append((client, cuts[client][positions[client]]))
        positions[client] += 1
    return frames, schedule


@settings(max_examples=300, deadline=None)
@given(_conversations())
def test_every_client_gets_its_output_in_input_order(conversation) -> None:  # type: ignore[no-untyped-def]
    """Any mix, any cuts: each client gets the model's bytes, and ``-v`` shows them in order."""
    frames, schedule = conversation
    service = make_service(is_verbose=True, limits=Limits(max_frames_per_turn=100_000))
    connections = [connect(service, host=f"10.0.0.{index + 1}") for index in range(len(frames))]
    streams = [b"".join(frame.wire for frame in own) for own in frames]
    model = Model(len(frames))
    fed = [0] * len(frames)
    with capturedLogs() as events:
        for client, end in schedule:
            connections[client][0].dataReceived(streams[client][fed[client] : end])
            fed[client] = end
    for client, frame in completed_in_order(frames, schedule):
        model.handle(client, frame)
    shown: dict[str, bytearray] = {}
    for text in traffic(events):
        line = read_back(text)
        if line.direction == SENT:
            shown.setdefault(line.peer, bytearray()).extend(line.data)
    for index, (_, transport) in enumerate(connections):
        expected = bytes(model.output.get(index, b""))
        assert transport.value() == expected
        assert bytes(shown.get(f"10.0.0.{index + 1}", b"")) == expected
