"""A read's messages under one command line go as one run, with the same result (issue 16).

Without ``-v`` and flood control, the TCP protocol asks its decoder for
``MessageRun`` events and the service delivers each run at once. These tests
hold that path to the message-by-message one: the same bytes to every
client, random messages included (a seeded random source draws the same
numbers in the same order), under any cut of the input.
"""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproto.limits import Limits, Rate
from chatproto.server.message import DeliveryRun
from chatproto.server.routing import LocalRouter
from chatproto.server.service import CANNED_LINES, MESSAGES_PER_RANDOM, ChatService
from chatproto.server.tcp import ChatProtocol
from chatproto.wire.client_codec import ClientDecoder
from chatproto.wire.events import NEED_DATA, BodyData, DeliveryStart, MessageEnd, Rejected
from tests.protocol_support import login
from tests.support import connect, make_service, take
from tests.test_output_order import NAMES, Frame, Model, _bodies, _frames, completed_in_order

# Every test here runs over both twins of the wire core (the wire_twin fixture, conftest.py).
pytestmark = pytest.mark.usefixtures("wire_twin")


def _same_line_frames() -> st.SearchStrategy[list[Frame]]:
    """A command repeated with several bodies: what a run is made of."""
    send = st.lists(st.sampled_from((*NAMES, b"zz")), min_size=1, max_size=3).map(tuple)
    line = st.one_of(
        send.map(lambda names: (b"SEND " + b" ".join(names) + b"\n", "send", names)),
        st.just((b"BROADCAST\n", "broadcast", ())),
    )

    def repeat(command: tuple[bytes, str, tuple[bytes, ...]], bodies: list) -> list[Frame]:  # type: ignore[type-arg]
        head, kind, names = command
        return [Frame(head + wire, kind, b"", names, delivered) for wire, delivered in bodies]

    return st.builds(repeat, line, st.lists(_bodies, min_size=1, max_size=7))


@st.composite
def _conversations(draw: st.DrawFn) -> tuple[list[list[Frame]], list[tuple[int, int]]]:
    """Frames per client (runs of one command among others), and the order of their pieces."""
    clients = draw(st.integers(2, 3))
    frames: list[list[Frame]] = []
    for index in range(clients):
        own = [Frame(b"ME IS %b\n" % NAMES[index], "login", NAMES[index])]
        for part in draw(st.lists(st.one_of(_same_line_frames(), _frames().map(lambda f: [f])))):
            own += part
        frames.append(own[: 1 + draw(st.integers(0, 30))])
    schedule: list[tuple[int, int]] = []
    ends = []
    for own in frames:
        size = sum(len(frame.wire) for frame in own)
        points = draw(st.lists(st.integers(1, size), max_size=4, unique=True))
        ends.append(sorted({*points, size}))
    positions = [0] * clients
    while any(positions[c] < len(ends[c]) for c in range(clients)):
        client = draw(st.sampled_from([c for c in range(clients) if positions[c] < len(ends[c])]))
        schedule.append((client, ends[client][positions[client]]))
        positions[client] += 1
    return frames, schedule


def _play(service: ChatService, frames: list[list[Frame]], schedule, runs: bool) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Feed each client's pieces in ``schedule`` order; return what each client was sent."""
    connections = [connect(service, host=f"10.0.0.{index + 1}") for index in range(len(frames))]
    for protocol, _ in connections:
        assert protocol._takes_runs  # without -v or flood control, runs are asked for
        protocol._takes_runs = runs
    streams = [b"".join(frame.wire for frame in own) for own in frames]
    fed = [0] * len(frames)
    for client, end in schedule:
        connections[client][0].dataReceived(streams[client][fed[client] : end])
        fed[client] = end
    return [transport.value() for _, transport in connections]


@settings(max_examples=300, deadline=None)
@given(_conversations())
def test_runs_give_every_client_the_models_bytes(conversation) -> None:  # type: ignore[no-untyped-def]
    """With runs, any mix and any cuts: each client gets what PROTOCOL.md says, in order."""
    frames, schedule = conversation
    model = Model(len(frames))
    # The model is fed whole frames in the order the server completes them.
    for client, frame in completed_in_order(frames, schedule):
        model.handle(client, frame)
    service = make_service(limits=Limits(max_frames_per_turn=100_000))
    sent = _play(service, frames, schedule, runs=True)
    assert sent == [bytes(model.output.get(index, b"")) for index in range(len(frames))]


def _with_randoms_marked(stream: bytes) -> list[object]:
    """A client's stream as replies and deliveries, each random message checked and marked.

    PROTOCOL §5: every fourth delivery is a canned line "from" one of the
    senders of the three before it; which line and which of them is chance,
    so it becomes ``"random"`` once checked.
    """
    decoder = ClientDecoder(Limits())
    decoder.feed(stream)
    decoder.eof()
    items: list[object] = []
    senders: list[bytes] = []
    body = b""
    while (event := decoder.next_event()) is not NEED_DATA:
        if isinstance(event, DeliveryStart):
            sender, body = event.sender, b""
        elif isinstance(event, BodyData):
            body += event.data
        elif isinstance(event, MessageEnd):
            if len(senders) == MESSAGES_PER_RANDOM:
                assert sender in senders and body in CANNED_LINES
                items.append("random")
                senders = []
            else:
                items.append((sender, body))
                senders.append(sender)
        else:
            assert not isinstance(event, Rejected)
            items.append(event.__class__.__name__)
    return items


@settings(max_examples=300, deadline=None)
@given(_conversations(), st.integers(0, 2**32))
def test_runs_send_random_messages_where_one_by_one_would(conversation, seed) -> None:  # type: ignore[no-untyped-def]
    """Random messages on: runs and message-by-message give the same output and counts.

    The same messages in the same order, a random message after every third
    delivery in both; only which canned line and which of the three senders
    may differ (a run draws its recipients' random numbers in another order).
    """
    frames, schedule = conversation
    outputs = []
    for runs in (False, True):
        service = make_service(
            random_messages=True, rng=random.Random(seed), limits=Limits(max_frames_per_turn=10**5)
        )
        sent = _play(service, frames, schedule, runs)
        stats = service.stats
        outputs.append(
            (
                [_with_randoms_marked(stream) for stream in sent],
                stats.random_messages,
                dict(stats.deliveries_out),
            )
        )
    assert outputs[0][0] == outputs[1][0]
    assert outputs[0][1:] == outputs[1][1:]


def test_a_read_of_many_messages_is_one_run_to_the_recipient() -> None:
    """64 SENDs in one read reach their recipient as one delivery of 64, in one write."""
    service = make_service()
    _, bob_wire = login(service, b"bob")
    alice, _ = login(service, b"alice")
    delivered: list[int] = []
    bob = service.lookup(b"bob")
    assert isinstance(bob, ChatProtocol)
    push = bob.deliver
    bob.deliver = lambda delivery: delivered.append(delivery.count) or push(delivery)  # type: ignore[method-assign]
    bodies = [b"message %02d" % index for index in range(64)]
    alice.dataReceived(b"".join(b"SEND bob\n%d\n%b" % (len(body), body) for body in bodies))
    assert delivered == [64]
    assert take(bob_wire) == b"".join(b"FROM alice\n%d\n%b" % (len(b), b) for b in bodies)
    assert service.stats.messages_in["send", "short"] == 64


def test_a_run_is_cut_at_the_frames_per_turn_budget() -> None:
    """A run never holds more frames than the turn's budget: the rest waits for the next turn."""
    service = make_service(limits=Limits(max_frames_per_turn=10))
    login(service, b"bob")
    alice, _ = login(service, b"alice")
    counts: list[int] = []
    bob = service.lookup(b"bob")
    push = bob.deliver  # type: ignore[union-attr]
    bob.deliver = lambda delivery: counts.append(delivery.count) or push(delivery)  # type: ignore[union-attr]
    alice.dataReceived(b"SEND bob\n1\nx" * 25)
    assert counts == [10]
    service.clock.advance(0)  # type: ignore[attr-defined]
    service.clock.advance(0)  # type: ignore[attr-defined]
    assert counts == [10, 10, 5]


def test_runs_are_not_asked_for_with_verbose_or_flood_control() -> None:
    """-v shows each frame, flood control charges each: both keep message-by-message events."""
    assert not connect(make_service(is_verbose=True))[0]._takes_runs
    flood = make_service(limits=Limits(flood_messages=Rate(100.0, 100.0)))
    assert not connect(flood)[0]._takes_runs
    assert connect(make_service())[0]._takes_runs


def test_a_paused_recipient_queues_a_run_as_its_messages() -> None:
    """A run waiting in a paused outbox counts each message's overhead, and leaves in order."""
    service = make_service()
    bob, bob_wire = login(service, b"bob")
    alice, _ = login(service, b"alice")
    bob._outbox.pauseProducing()
    alice.dataReceived(b"SEND bob\n1\na" * 3)
    assert take(bob_wire) == b""
    run = DeliveryRun.of_bodies(b"alice", [b"1\na"] * 3, 0)
    assert bob._outbox.backlog_bytes > run.size + 2 * 512
    bob._outbox.resumeProducing()
    assert take(bob_wire) == b"FROM alice\n1\na" * 3
    assert bob._outbox.backlog_bytes == 0


class ForwardingRouter(LocalRouter):
    """A router with an elsewhere: it records what it is asked to forward."""

    forwards = True

    def __init__(self) -> None:
        super().__init__()
        self.forwarded: list[tuple[bytes, object, list[bytes]]] = []

    def forward(self, sender, recipients, body) -> None:  # type: ignore[no-untyped-def]
        self.forwarded.append((sender, recipients, [body.read()]))

    def forward_run(self, sender, recipients, bodies) -> None:  # type: ignore[no-untyped-def]
        data = [body.partition(b"\n")[2] for body in bodies]  # short bodies: "<n>\\n<data>"
        self.forwarded.append((sender, recipients, data))


def test_a_run_for_users_elsewhere_is_forwarded_as_a_run() -> None:
    """With a clustered router, the local part of a run goes as a run, the rest is forwarded.

    Short messages are forwarded as one run; a run with a chunked message
    among them, message by message.
    """
    router = ForwardingRouter()
    service = make_service(router=router)
    _, bob_wire = login(service, b"bob")
    alice, _ = login(service, b"alice")
    alice.dataReceived(
        b"SEND bob carol\n1\nxSEND bob carol\n1\nv"
        b"SEND bob dave\n1\nuSEND bob dave\nC2\nyzC0\nBROADCAST\n1\nw"
    )
    assert take(bob_wire) == (
        b"FROM alice\n1\nxFROM alice\n1\nvFROM alice\n1\nuFROM alice\nC2\nyzC0\nFROM alice\n1\nw"
    )
    assert router.forwarded == [
        (b"alice", [b"carol"], [b"x", b"v"]),
        (b"alice", [b"dave"], [b"u"]),
        (b"alice", [b"dave"], [b"yz"]),
        (b"alice", None, [b"w"]),
    ]
