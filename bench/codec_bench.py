"""Micro-benchmark of the wire decoder alone: no network, no reactor.

Builds streams of typical client traffic with the project's own encoders,
feeds them to ``chatproto.wire.codec.Decoder`` in reads of realistic sizes (as
Twisted hands them over) and drains every event, printing MB/s and frames/s
per stream and per twin of the wire core (pure Python, compiled), best of
``--repeat`` runs. A parser regression shows here first. The "TCP" rows
decode as the TCP protocol does without ``-v``: runs of whole chunks as one
event (``coalesce_chunks``), and a read's whole messages under one command
line as one ``MessageRun`` (``next_event(256)``).

Usage::

    python bench/codec_bench.py [--mb 8] [--read 65536] [--repeat 5]
"""

import argparse
import time
from collections.abc import Callable

from chatproto.limits import Limits
from chatproto.wire import compiled
from chatproto.wire.codec import Decoder
from chatproto.wire.encode import encode_login, encode_message
from chatproto.wire.events import NEED_DATA


def short_stream(size: int) -> Callable[[int], tuple[bytes, int]]:
    """Return a builder of a stream of SENDs with ``size``-byte short bodies."""

    def build(total: int) -> tuple[bytes, int]:
        frame = encode_message([b"bob"], b"m" * size)
        count = max(1, total // len(frame))
        return encode_login(b"alice") + frame * count, count

    return build


def chunked_stream(size: int) -> Callable[[int], tuple[bytes, int]]:
    """Return a builder of a stream of SENDs with ``size``-byte chunked bodies."""

    def build(total: int) -> tuple[bytes, int]:
        frame = encode_message([b"bob"], b"c" * size, chunked=True)
        count = max(1, total // len(frame))
        return encode_login(b"alice") + frame * count, count

    return build


def broadcast_stream(size: int) -> Callable[[int], tuple[bytes, int]]:
    """Return a builder of a stream of BROADCASTs with ``size``-byte short bodies."""

    def build(total: int) -> tuple[bytes, int]:
        frame = encode_message(None, b"b" * size)
        count = max(1, total // len(frame))
        return encode_login(b"alice") + frame * count, count

    return build


#: What the TCP protocol asks of its decoder without -v: runs of up to this many.
TCP_RUN = 256

# name: (stream builder, as the TCP protocol decodes: coalesce_chunks and runs)
STREAMS = {
    "short SEND 32 B": (short_stream(32), False),
    "short SEND 99 B": (short_stream(99), False),
    "short BROADCAST 32 B": (broadcast_stream(32), False),
    "chunked SEND 1000 B": (chunked_stream(1000), False),
    "chunked SEND 64 KiB": (chunked_stream(64 * 1024), False),
    "short SEND 32 B, TCP": (short_stream(32), True),
    "short BROADCAST 32 B, TCP": (broadcast_stream(32), True),
    "chunked 1000 B, TCP": (chunked_stream(1000), True),
    "chunked 64 KiB, TCP": (chunked_stream(64 * 1024), True),
}

#: The twins of the wire core there are to time (the compiled one where built).
TWINS = {"python": compiled.PyReceiveBuffer, "compiled": compiled.CReceiveBuffer}


def decode(stream: bytes, read_size: int, as_tcp: bool = False) -> int:
    """Feed ``stream`` in reads of ``read_size`` bytes; return how many events came out."""
    decoder = Decoder(Limits(), coalesce_chunks=as_tcp)
    max_frames = TCP_RUN if as_tcp else 1
    events = 0
    next_event = decoder.next_event
    for start in range(0, len(stream), read_size):
        decoder.feed(stream[start : start + read_size])
        while next_event(max_frames) is not NEED_DATA:
            events += 1
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=8.0, help="stream size per case, MB")
    parser.add_argument("--read", type=int, default=65536, help="bytes per feed() call")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; best is shown")
    args = parser.parse_args()
    print(f"decoder, {args.mb} MB per stream, {args.read}-byte reads, best of {args.repeat}")
    print(f"  {'stream':26} {'twin':9} {'MB/s':>8} {'frames/s':>12}")
    for name, (build, as_tcp) in STREAMS.items():
        stream, frames = build(int(args.mb * 1e6))
        for twin, buffer_type in TWINS.items():
            if buffer_type is None:
                print(f"  {name:26} {twin:9} not built ({compiled.compiled_core_status()})")
                continue
            Decoder.buffer_type = buffer_type
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                decode(stream, args.read, as_tcp)
                best = min(best, time.perf_counter() - started)
            rate = len(stream) / best / 1e6
            print(f"  {name:26} {twin:9} {rate:8.1f} {frames / best:12,.0f}")


if __name__ == "__main__":
    main()
