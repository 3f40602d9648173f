"""What a fuzz input means: the bytes to decode, where to cut them, which limits; and a reader.

A corpus file must mean the same thing to the fuzzer (atheris) and to the
replay test (``test_corpus.py``, which runs without atheris), so the meaning
of its bytes is written here once, in plain Python, instead of through
``atheris.FuzzedDataProvider`` (which has no pure-Python twin). The layout
of a decoder input::

    byte 0          switches: bits 0-1 pick the limits (LIMIT_SETS, modulo its length);
                    bits 2-7 the runs' size of the twins target (max_frames, 2 plus them)
    byte 1          how many cuts, modulo MAX_CUTS + 1
    2 bytes a cut   each cut's position (big-endian), modulo len(payload) + 1
    the rest        the payload: the bytes a peer sends

A missing header byte reads as 0, so any bytes are an input. The switches
and cuts come first so that the fuzzer's insertions and deletions in the
payload leave them alone. :func:`make_input` writes this layout (for seeds).

The relay target builds structured values (userids, numbers, payloads) from
its bytes with a :class:`Reader`.
"""

from dataclasses import dataclass

from chatproto.limits import Limits

#: The limits a decoder input may pick: the defaults, small ones that a few bytes
#: reach (every limit hit in a short input), and tiny ones (a short body over the
#: message limit, two recipients at most).
LIMIT_SETS = (
    Limits(),
    Limits(max_line_bytes=64, max_message_bytes=4096, max_recipients=4),
    Limits(max_line_bytes=16, max_message_bytes=40, max_recipients=2),
)

#: At most this many cuts per input.
MAX_CUTS = 16

_HEADER = 2
_CUT_BYTES = 2


@dataclass(frozen=True)
class DecoderInput:
    """A decoder input, parsed (see the module docstring).

    Attributes:
        payload: the bytes to decode.
        cuts: where to cut them into pieces (sorted, within the payload).
        limits: the decoder's limits.
        max_frames: the most messages a run may hold, for the targets that ask
            the server's decoder for runs (2 to 65).
    """

    payload: bytes
    cuts: tuple[int, ...]
    limits: Limits
    max_frames: int = 2

    @property
    def pieces(self) -> list[bytes]:
        """The payload cut at :attr:`cuts` (empty pieces included: a read of nothing)."""
        bounds = [0, *self.cuts, len(self.payload)]
        return [self.payload[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def parse_input(data: bytes) -> DecoderInput:
    """Read a decoder input out of any bytes."""
    header = data[:_HEADER].ljust(_HEADER, b"\0")
    switches, count = header[0], header[1] % (MAX_CUTS + 1)
    cuts_end = _HEADER + count * _CUT_BYTES
    raw_cuts = data[_HEADER:cuts_end].ljust(count * _CUT_BYTES, b"\0")
    payload = data[cuts_end:]
    cuts = sorted(
        int.from_bytes(raw_cuts[i : i + _CUT_BYTES], "big") % (len(payload) + 1)
        for i in range(0, len(raw_cuts), _CUT_BYTES)
    )
    limits = LIMIT_SETS[(switches & 0b11) % len(LIMIT_SETS)]
    return DecoderInput(payload, tuple(cuts), limits, _MIN_RUN + (switches >> 2))


#: The smallest ``max_frames`` an input asks for: a run of one is no run.
_MIN_RUN = 2


def make_input(
    payload: bytes, cuts: tuple[int, ...] = (), limits: int = 0, max_frames: int = _MIN_RUN
) -> bytes:
    """Return the input that :func:`parse_input` reads as ``payload`` cut at ``cuts``.

    Args:
        payload: the bytes to decode.
        cuts: positions in ``payload`` (at most :data:`MAX_CUTS`).
        limits: an index into :data:`LIMIT_SETS`.
        max_frames: the runs' size, 2 to 65 (the default, 2, writes the
            switches byte as before it had this field).
    """
    if len(cuts) > MAX_CUTS or not all(0 <= cut <= len(payload) for cut in cuts):
        raise ValueError(f"bad cuts {cuts} for {len(payload)} bytes")
    if not _MIN_RUN <= max_frames <= _MIN_RUN + 0b111111:
        raise ValueError(f"max_frames {max_frames} is not 2 to 65")
    header = bytes([limits | (max_frames - _MIN_RUN) << 2, len(cuts)])
    return header + b"".join(cut.to_bytes(_CUT_BYTES, "big") for cut in cuts) + payload


class Reader:
    """Structured values read from the front of some bytes; past their end, zeros.

    Every method consumes what it reads, so the values depend on the bytes in
    order, as a fuzzer mutating them expects.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def byte(self) -> int:
        """One byte, 0-255."""
        value = self._data[self._offset] if self._offset < len(self._data) else 0
        self._offset += 1
        return value

    def number(self, size: int) -> int:
        """A whole number of ``size`` bytes (big-endian)."""
        return int.from_bytes(self.take(size).ljust(size, b"\0"), "big")

    def take(self, size: int) -> bytes:
        """At most ``size`` bytes (fewer at the end)."""
        piece = self._data[self._offset : self._offset + size]
        self._offset += size
        return piece

    def token(self, max_size: int = 32) -> bytes:
        """1 to ``max_size`` bytes of printable ASCII without space (what a userid may be)."""
        size = self.byte() % max_size + 1
        return bytes(0x21 + byte % 94 for byte in self.take(size).ljust(size, b"\0"))
