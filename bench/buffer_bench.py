"""Micro-benchmark of the two ``ReceiveBuffer`` twins: pure Python against compiled.

Times the hot methods on one buffer holding a typical read, best of
``--repeat`` runs (``timeit``, a fresh buffer for each run): a run of 1,000
short messages (``SEND bob\\n32\\n`` and 32 bytes) taken by
``take_message_run`` in one call and by ``take_short_frame`` one by one;
1,000 lines by ``take_line``; 1,000 chunks of 32 bytes by ``take_chunk_run``.
Build the compiled twin first (``cythonize -i -3 chatproto/wire/_buffer.pyx``).

Usage::

    python bench/buffer_bench.py [--repeat 200]
"""

import argparse
import timeit
from typing import Any

from chatproto.wire import buffer as pure

COUNT = 1000
LINE = b"SEND bob"
MESSAGES = (LINE + b"\n32\n" + b"m" * 32) * COUNT
LINES = b"SEND bob carol dave\n" * COUNT
CHUNKS = (b"C32\n" + b"c" * 32) * COUNT

#: name: (what is fed, what is timed on ``buffer``)
CASES = {
    "take_message_run": (MESSAGES, "buffer.take_message_run(LINE, 65536, COUNT)"),
    "take_short_frame": (MESSAGES, "for _ in RANGE: buffer.take_short_frame(LINE, 99)"),
    "take_line": (LINES, "for _ in RANGE: buffer.take_line(8192)"),
    "take_chunk_run": (CHUNKS, "buffer.take_chunk_run(1 << 20)"),
}


def best(cls: Any, data: bytes, statement: str, repeat: int) -> float:
    """Best time of ``statement`` on a fresh ``cls`` fed ``data``, in seconds."""
    names = {"cls": cls, "data": data, "LINE": LINE, "COUNT": COUNT, "RANGE": range(COUNT)}
    setup = "buffer = cls(); buffer.feed(data)"
    return min(timeit.repeat(statement, setup, number=1, repeat=repeat, globals=names))


def main() -> None:
    """Print each case's best time on both twins and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="runs per case (best is kept)")
    args = parser.parse_args()
    from chatproto.wire import _buffer as compiled  # build it first (see above)

    print(f"{'case':18} {'pure µs':>10} {'compiled µs':>12} {'speed-up':>9}")
    for name, (data, statement) in CASES.items():
        slow = best(pure.ReceiveBuffer, data, statement, args.repeat)
        fast = best(compiled.ReceiveBuffer, data, statement, args.repeat)
        print(f"{name:18} {slow * 1e6:10.1f} {fast * 1e6:12.1f} {slow / fast:8.1f}x")


if __name__ == "__main__":
    main()
