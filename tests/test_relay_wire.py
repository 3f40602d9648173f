"""The codec of the messages cluster nodes publish to each other (no Redis, no reactor)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatproto.cluster.address import RedisAddress, redis_url
from chatproto.wire import relay as relay_wire
from chatproto.wire.relay import RelayFormatError, RelayHeader

userids = st.binary(min_size=1, max_size=32).map(
    lambda raw: bytes(0x21 + byte % 94 for byte in raw)  # printable ASCII, no space
)


@given(
    kind=st.sampled_from([relay_wire.SHORT, relay_wire.RUN, relay_wire.CHUNKED, relay_wire.BEGIN]),
    origin=userids,
    message_id=st.integers(min_value=0, max_value=2**63),
    size=st.integers(min_value=0, max_value=2**40),
    sender=userids,
    recipients=st.lists(userids, max_size=5),
    payload=st.binary(max_size=300),
)
def test_message_round_trip(kind, origin, message_id, size, sender, recipients, payload) -> None:
    data = relay_wire.encode_message(kind, origin, message_id, size, sender, recipients)
    header, rest = relay_wire.decode(data + payload)
    assert header == RelayHeader(kind, origin, message_id, size, sender, tuple(recipients))
    assert rest == payload  # a payload holding newlines or binary is untouched


@given(origin=userids, message_id=st.integers(min_value=0, max_value=2**63), frames=st.binary())
def test_piece_and_end_round_trip(origin, message_id, frames) -> None:
    header, rest = relay_wire.decode(relay_wire.encode_piece(origin, message_id, frames))
    assert (header, rest) == (RelayHeader(relay_wire.PIECE, origin, message_id), frames)
    header, rest = relay_wire.decode(relay_wire.encode_end(origin, message_id))
    assert (header, rest) == (RelayHeader(relay_wire.END, origin, message_id), b"")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"S node 1 5 alice",  # no newline
        b"X node 1 5 alice\n",  # unknown kind
        b"S node 1 5\n",  # no sender
        b"S node one 5 alice\n",
        b"S node 1 five alice\n",
        b"P node\n",
        b"P node 1 extra\n",
        b"E node x\n",
        b"S  1 5 alice\n",  # empty origin
        b"S node 1 5 \n",  # empty sender
    ],
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(RelayFormatError):
        relay_wire.decode(data)


@given(st.binary(max_size=200))
def test_garbage_is_refused_or_decoded_never_crashes(data: bytes) -> None:
    try:
        header, _ = relay_wire.decode(data)
    except RelayFormatError:
        return
    assert header.kind in (b"S", b"R", b"C", b"B", b"P", b"E")


#: Short bodies as a client frames them (canonical: no leading zero).
short_bodies = st.binary(max_size=99).map(lambda data: b"%d\n%b" % (len(data), data))


@given(
    origin=userids,
    sender=userids,
    recipients=st.lists(userids, max_size=5),
    bodies=st.lists(short_bodies, min_size=1, max_size=40),
)
def test_run_round_trip(origin, sender, recipients, bodies) -> None:
    """A run's bodies come back as they went, however many, whatever bytes they hold."""
    line = relay_wire.encode_message(relay_wire.RUN, origin, 7, len(bodies), sender, recipients)
    header, payload = relay_wire.decode(line + relay_wire.encode_run_bodies(bodies))
    assert header == RelayHeader(relay_wire.RUN, origin, 7, len(bodies), sender, tuple(recipients))
    assert relay_wire.decode_run_bodies(payload, header.size) == bodies


@pytest.mark.parametrize(
    ("payload", "count"),
    [
        (b"", 0),  # no node publishes an empty run
        (b"", 1),
        (b"1\nx", 2),  # fewer than it says
        (b"1\nx1\ny", 1),  # more
        (b"2\nx", 1),  # shorter than its length line says
        (b"01\nx", 1),  # a leading zero: not what a node relays
        (b"1\r\nx", 1),
        (b"100\n" + b"x" * 100, 1),  # not a short body
        (b"C1\nxC0\n", 1),  # a chunked one
        (b"x\n", 1),
    ],
)
def test_malformed_runs_are_refused(payload: bytes, count: int) -> None:
    with pytest.raises(RelayFormatError):
        relay_wire.decode_run_bodies(payload, count)


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=50))
def test_a_garbage_run_is_refused_or_split_never_crashes(payload: bytes, count: int) -> None:
    try:
        bodies = relay_wire.decode_run_bodies(payload, count)
    except RelayFormatError:
        return
    assert len(bodies) == count and b"".join(bodies) == payload


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://127.0.0.1:6380/2", RedisAddress("127.0.0.1", 6380, 2)),
        ("redis://redis.example", RedisAddress("redis.example", 6379, 0)),
        ("redis://:secret@localhost:7000", RedisAddress("localhost", 7000, 0, "secret")),
        ("redis://[::1]:6379/0", RedisAddress("::1", 6379, 0)),
    ],
)
def test_redis_urls(url: str, address: RedisAddress) -> None:
    assert redis_url(url) == address


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379",
        "localhost:6379",
        "redis://host:port",
        "redis://h:1/x",
        "redis://h:0",
    ],
)
def test_bad_redis_urls(url: str) -> None:
    with pytest.raises(ValueError):
        redis_url(url)
