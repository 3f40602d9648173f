"""The fuzz targets: one check function per decoder, each raising ``AssertionError`` on a bug.

Each ``check_*`` function takes any bytes (a corpus file, or what atheris
made), decodes them and checks invariants, not just that nothing raised. A
check that raises anything at all has found a bug: the replay test
(``test_corpus.py``) runs every corpus file through every check, and the
runner (``python -m tests.fuzz.run TARGET``) hands them to atheris.

- ``server``: the server's :class:`~chatproto.wire.codec.Decoder`, with and
  without ``coalesce_chunks``, the payload whole and in the input's cuts:
  the same messages every way (PROTOCOL §3), each way well formed;
- ``client``: the client's :class:`~chatproto.wire.client_codec.ClientDecoder`
  likewise (PROTOCOL §2, §4);
- ``datagram``: :func:`~chatproto.wire.codec.decode_datagram` and
  :func:`~chatproto.wire.client_codec.decode_server_datagram` (PROTOCOL §6),
  each against its stream decoder;
- ``relay``: the node-to-node codec (:mod:`chatproto.wire.relay`), arbitrary
  bytes raising only ``RelayFormatError``, and a round trip of valid
  messages built from the bytes;
- ``twins``: the wire core's two twins (:mod:`chatproto.wire.compiled`) give
  identical events, ``consumed_bytes`` and ``buffered_bytes`` for the input,
  whole and cut, to the server's decoder (coalescing or not, one event or
  runs of the input's ``max_frames`` at a time), the client's and both
  datagram decoders. It needs the compiled twin built. Under atheris only
  the pure twin is instrumented: coverage leads the fuzzer through the
  reference, and the compiled twin must follow it.
"""

from collections.abc import Callable

from chatproto.limits import Limits
from chatproto.wire import relay
from chatproto.wire.client_codec import ClientDecoder, decode_server_datagram
from chatproto.wire.codec import Decoder, decode_datagram
from chatproto.wire.events import Login, MessageStart, OkReply, Rejected, ShortMessage
from tests.fuzz.inputs import Reader, parse_input
from tests.fuzz.streams import (
    check_client_events,
    check_resumes,
    check_server_events,
    decode,
    is_fatal,
    normalized,
)
from tests.twins import (
    first_difference,
    over_each_twin,
    trace_client,
    trace_datagrams,
    trace_server,
)


def check_server(data: bytes) -> None:
    """The server decoder gives the same messages whole and cut, coalescing or not."""
    given = parse_input(data)
    limits, payload = given.limits, given.payload
    reference = decode(Decoder(limits), [payload], limits)
    check_server_events(reference.events, payload, limits)
    check_resumes(Decoder(limits), payload, reference, (b"ME IS zed\n", Login(b"zed")))
    expected_before, expected = normalized(reference.before_eof), normalized(reference.events)
    for coalesce, pieces in ((False, given.pieces), (True, [payload]), (True, given.pieces)):
        run = decode(Decoder(limits, coalesce_chunks=coalesce), pieces, limits)
        check_server_events(run.events, payload, limits)
        how = f"coalesce_chunks={coalesce}, in {len(pieces)} pieces (cuts {given.cuts})"
        if not coalesce:  # then a BodyData is one chunk, whatever the cuts: no joining
            assert run.before_eof == reference.before_eof, f"before eof, {how}"
            assert run.events == reference.events, how
        assert normalized(run.before_eof) == expected_before, f"before eof, {how}"
        assert normalized(run.events) == expected, how


def check_client(data: bytes) -> None:
    """The client decoder gives the same deliveries and replies, piece for piece, whole and cut."""
    given = parse_input(data)
    limits, payload = given.limits, given.payload
    reference = decode(ClientDecoder(limits), [payload], limits)
    check_client_events(reference.events, payload, limits)
    check_resumes(ClientDecoder(limits), payload, reference, (b"OK\n", OkReply()))
    run = decode(ClientDecoder(limits), given.pieces, limits)
    check_client_events(run.events, payload, limits)
    # A BodyData is one chunk or a whole short body, whatever the cuts: no joining.
    assert run.before_eof == reference.before_eof, f"before eof, cut at {given.cuts}"
    assert run.events == reference.events, f"cut at {given.cuts}"


def check_datagram(data: bytes) -> None:
    """Each datagram decoder answers as its stream decoder does with the datagram and eof.

    The server's: exactly one event, never fatal (PROTOCOL §6); the stream's
    one frame when the stream has exactly one that fits a datagram. The
    client's: the stream's events, through the first fatal one.
    """
    given = parse_input(data)
    limits, datagram = given.limits, given.payload
    events = decode_datagram(datagram, limits)
    assert len(events) == 1, f"{len(events)} events of one datagram"
    (event,) = events
    assert isinstance(event, Login | ShortMessage | Rejected), f"datagram gave {event!r}"
    assert not is_fatal(event), "a fatal Rejected from a datagram"
    stream = decode(Decoder(limits), [datagram], limits).events
    one_frame = len(stream) == 1 and not is_fatal(stream[0])
    if one_frame and not isinstance(stream[0], MessageStart):
        assert events == stream, f"datagram {events!r}, stream {stream!r}"
    else:
        assert isinstance(event, Rejected), f"datagram {event!r} from the stream {stream!r}"
        if len(stream) == 1 and is_fatal(stream[0]):
            assert event.reason == stream[0].reason, f"datagram {event!r}, stream {stream!r}"

    server_events = decode_server_datagram(datagram, limits)
    check_client_events(server_events, datagram, limits)
    assert server_events == decode(ClientDecoder(limits), [datagram], limits).events


#: What a relay message's header may begin with.
_KINDS = (relay.SHORT, relay.RUN, relay.CHUNKED, relay.BEGIN, relay.PIECE, relay.END)


def check_relay(data: bytes) -> None:
    """Relay messages built from ``data`` round-trip, and ``data`` itself decodes safely.

    Decoding ``data`` as a batch and as a message raises only
    ``RelayFormatError``, and what it decodes to decodes the same once re-encoded.
    """
    _check_relay_decode(data)
    reader = Reader(data)
    messages = [_relay_message(reader) for _ in range(reader.byte() % 4 + 1)]
    encoded = []
    for header, payload in messages:
        if header.kind == relay.RUN:
            assert relay.decode_run_bodies(payload, header.size) == _split(payload)
        if header.kind in (relay.SHORT, relay.RUN, relay.CHUNKED, relay.BEGIN):
            line = relay.encode_message(
                header.kind,
                header.origin,
                header.message_id,
                header.size,
                header.sender,
                header.recipients,
            )
            message = line + payload
        elif header.kind == relay.PIECE:
            message = relay.encode_piece(header.origin, header.message_id, payload)
        else:
            message = relay.encode_end(header.origin, header.message_id)
        assert relay.decode(message) == (header, payload), f"round trip of {message[:80]!r}"
        encoded.append(message)
    assert relay.decode_batch(relay.encode_batch(encoded)) == encoded


def _relay_message(reader: Reader) -> tuple[relay.RelayHeader, bytes]:
    """A valid relay message's header and payload, read from ``reader``."""
    kind = _KINDS[reader.byte() % len(_KINDS)]
    origin, message_id = reader.token(), reader.number(8)
    if kind == relay.END:
        return relay.RelayHeader(kind, origin, message_id), b""
    if kind == relay.RUN:  # short bodies, each framed
        datas = [reader.take(reader.byte() % 100) for _ in range(reader.byte() % 20 + 1)]
        payload = relay.encode_run_bodies([b"%d\n%b" % (len(data), data) for data in datas])
        sender = reader.token()
        recipients = tuple(reader.token() for _ in range(reader.byte() % 5))
        return relay.RelayHeader(kind, origin, message_id, len(datas), sender, recipients), payload
    payload = reader.take(reader.number(2) % 1200)
    if kind == relay.PIECE:
        return relay.RelayHeader(kind, origin, message_id), payload
    size, sender = reader.number(8), reader.token()
    recipients = tuple(reader.token() for _ in range(reader.byte() % 5))
    return relay.RelayHeader(kind, origin, message_id, size, sender, recipients), payload


def _split(payload: bytes) -> list[bytes]:
    """A run's bodies, split by their length lines: the reference for ``decode_run_bodies``."""
    bodies = []
    while payload:
        length, _, rest = payload.partition(b"\n")
        end = len(length) + 1 + int(length)
        bodies.append(payload[:end])
        payload = payload[end:]
    return bodies


def _check_relay_decode(data: bytes) -> None:
    """``data`` as a batch and as a message: only ``RelayFormatError``, and stable."""
    try:
        messages = relay.decode_batch(data)
    except relay.RelayFormatError:
        messages = [data]
    else:
        assert relay.decode_batch(relay.encode_batch(messages)) == messages
    for message in messages:
        try:
            header, payload = relay.decode(message)
        except relay.RelayFormatError:
            continue
        assert header.kind in _KINDS and header.origin, f"decoded {header!r}"
        if header.kind == relay.RUN:
            try:
                bodies = relay.decode_run_bodies(payload, header.size)
            except relay.RelayFormatError:
                pass
            else:
                assert len(bodies) == header.size and b"".join(bodies) == payload
        if header.kind in (relay.PIECE, relay.END):
            again = b"%b %b %d\n" % (header.kind, header.origin, header.message_id) + payload
        else:
            assert header.sender, f"decoded {header!r}"
            again = (
                relay.encode_message(
                    header.kind,
                    header.origin,
                    header.message_id,
                    header.size,
                    header.sender,
                    header.recipients,
                )
                + payload
            )
        assert relay.decode(again) == (header, payload), f"re-encoded {message[:80]!r}"


def check_twins(data: bytes) -> None:
    """Both twins of the wire core give identical events for the input, whole and cut.

    Raises:
        AssertionError: the twins' records differ (the message says where and how).
        RuntimeError: the compiled twin is not there to compare.
    """
    given = parse_input(data)
    limits, payload = given.limits, given.payload
    runs: list[tuple[str, Callable[[], list[object]]]] = []
    for pieces in ([payload], given.pieces):
        where = f"in {len(pieces)} pieces (cuts {given.cuts})"
        for coalesce in (False, True):
            for max_frames in (1, given.max_frames):
                how = f"server, coalesce_chunks={coalesce}, max_frames={max_frames}, {where}"
                runs.append((how, _server_run(limits, pieces, coalesce, max_frames)))
        runs.append((f"client, {where}", lambda pieces=pieces: trace_client(limits, pieces)))
    runs.append(("datagrams", lambda: trace_datagrams(limits, payload)))
    for how, run in runs:
        difference = first_difference(over_each_twin(run))
        assert difference is None, f"{how}: {difference}"


def _server_run(
    limits: Limits, pieces: list[bytes], coalesce: bool, max_frames: int
) -> Callable[[], list[object]]:
    return lambda: trace_server(
        limits, pieces, coalesce_chunks=coalesce, max_frames=max_frames, eof=True
    )


#: Every target: its name (a corpus directory) and its check.
TARGETS: dict[str, Callable[[bytes], None]] = {
    "server": check_server,
    "client": check_client,
    "datagram": check_datagram,
    "relay": check_relay,
    "twins": check_twins,
}
