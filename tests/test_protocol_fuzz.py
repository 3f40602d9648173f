"""Property tests: any mix of valid and refused frames, split anywhere, through the TCP protocol.

The protocol must never raise, must answer each refused frame with exactly one
``ERROR``, and must deliver every valid message exactly once and in order,
however the bytes are cut into reads (PROTOCOL §3, §4).
"""

from hypothesis import given
from hypothesis import strategies as st

from chatproto.wire.encode import encode_message
from tests.support import connect, make_service, take

#: Frames the server refuses without closing: each gets exactly one ERROR.
REFUSED_FRAMES = [
    b"HELLO\n",
    b"PING\r\n",
    b"ME IS bad name\n",
    b"ME IS alice\n",  # a second login on a logged-in connection
    b"SEND\n2\nhi",
    b"SEND bad\x01name\n3\nabc",
    b"BROADCAST everyone\nC3\nabcC0\n",
    b"SEND " + b"x" * 40 + b"\n1\nz",
]

valid_bodies = st.binary(max_size=2500)
items = st.lists(
    st.one_of(
        st.tuples(st.just("valid"), valid_bodies, st.booleans()),
        st.tuples(st.just("refused"), st.sampled_from(REFUSED_FRAMES), st.just(False)),
        st.tuples(st.just("blank"), st.sampled_from([b"\n", b"\r\n"]), st.just(False)),
    ),
    max_size=12,
)


def build_stream(script: list[tuple[str, bytes, bool]]) -> tuple[bytes, bytes, int]:
    """Return the bytes alice sends, what bob must receive, and how many ERRORs alice gets."""
    sent, expected, errors = [], [], 0
    for number, (kind, data, chunked) in enumerate(script):
        if kind == "valid":
            body = b"%d:" % number + data
            use_chunks = chunked or len(body) > 99
            frame = encode_message([b"bob"], body, chunked=use_chunks)
            sent.append(frame)
            expected.append(b"FROM alice\n" + frame[len(b"SEND bob\n") :])
        else:
            sent.append(data)
            errors += kind == "refused"
    return b"".join(sent), b"".join(expected), errors


@given(script=items, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_mixed_frames_split_anywhere_deliver_valid_ones_once_in_order(
    script: list[tuple[str, bytes, bool]], cuts: list[int]
) -> None:
    """Valid messages around refused frames arrive once, in order; each refusal: one ERROR."""
    service = make_service()
    alice, alice_transport = connect(service)
    bob, bob_transport = connect(service, port=40001)
    alice.dataReceived(b"ME IS alice\n")
    bob.dataReceived(b"ME IS bob\n")
    take(alice_transport), take(bob_transport)
    stream, expected, errors = build_stream(script)
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    for start, end in zip(points, points[1:], strict=False):
        alice.dataReceived(stream[start:end])
    assert bob_transport.value() == expected
    assert alice_transport.value() == b"ERROR\n" * errors
    assert not alice_transport.disconnecting


@given(garbage=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_garbage_never_raises_and_never_reaches_others(garbage: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes from one client never escape as an exception and never reach others."""
    service = make_service()
    fuzzer, fuzzer_transport = connect(service)
    bob, bob_transport = connect(service, port=40001)
    bob.dataReceived(b"ME IS bob\n")
    take(bob_transport)
    points = sorted({cut % (len(garbage) + 1) for cut in cuts} | {0, len(garbage)})
    for start, end in zip(points, points[1:], strict=False):
        fuzzer.dataReceived(garbage[start:end])
    reply = fuzzer_transport.value()
    assert set(reply.replace(b"ERROR\n", b"").replace(b"OK\n", b"")) == set()
    delivered = bob_transport.value()
    assert delivered == b"" or delivered.startswith(b"FROM ")
