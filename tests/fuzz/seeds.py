"""The seed corpus: every frame example of PROTOCOL.md and the error cases it names, per target.

``python -m tests.fuzz.seeds`` writes them as ``tests/fuzz/corpus/<target>/seed-<name>``
(and removes stale ``seed-*`` files); ``test_corpus.py`` checks that the files on
disk are exactly these. Decoder seeds are written in the input layout of
``inputs.py``: each example whole, and again cut at up to 16 points
(``-cut``). The relay seeds are relay batches as nodes publish them; the
twins target's are a few of the server's and the client's, each with the
size of the runs it asks for.
"""

from pathlib import Path

from chatproto.wire import relay
from chatproto.wire.encode import split_chunks
from tests.fuzz.inputs import MAX_CUTS, make_input

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

#: Index into ``inputs.LIMIT_SETS``: the defaults, small (line 64, message 4096,
#: 4 recipients) and tiny (line 16, message 40, 2 recipients).
DEFAULT, SMALL, TINY = 0, 1, 2

_CHUNKS_5000 = b"".join(b"C%d\n%b" % (len(c), c) for c in split_chunks(b"z" * 5000))

#: What clients send (PROTOCOL §2, §3, §6): (name, bytes, limits).
CLIENT_BYTES: list[tuple[str, bytes, int]] = [
    # §2 login
    ("login", b"ME IS alice\n", DEFAULT),
    ("login-crlf", b"ME IS alice\r\n", DEFAULT),
    ("login-32", b"ME IS " + b"a" * 32 + b"\n", DEFAULT),
    ("login-33", b"ME IS " + b"a" * 33 + b"\n", DEFAULT),
    ("login-space-in-userid", b"ME IS al ice\n", DEFAULT),
    ("login-empty-userid", b"ME IS \n", DEFAULT),
    ("login-lower-case", b"me is alice\n", DEFAULT),
    ("login-two-spaces", b"ME  IS alice\n", DEFAULT),
    ("login-unprintable", b"ME IS al\x7fice\n", DEFAULT),
    ("login-twice", b"ME IS alice\nME IS bob\n", DEFAULT),
    ("send-before-login", b"SEND bob\n9\nYou suck!ME IS alice\n", DEFAULT),
    # §3 messages
    ("send-short", b"SEND bob\n9\nYou suck!", DEFAULT),
    ("broadcast-short", b"BROADCAST\n5\nhello", DEFAULT),
    ("send-chunked", b"SEND bob\nC5\nhelloC3\nabcC0\n", DEFAULT),
    ("chunked-ends-c00", b"BROADCAST\nC2\nhiC00\n", DEFAULT),
    ("chunked-ends-c000", b"BROADCAST\nC2\nhiC000\n", DEFAULT),
    ("chunk-sizes-vary", b"BROADCAST\nC1\naC10\n0123456789C3\nabcC0\n", DEFAULT),
    ("binary-body", b"SEND bob\n6\na\nb\x00c\n", DEFAULT),
    ("blank-lines-between-commands", b"\n\nME IS alice\n\r\n\nSEND bob\n2\nhi\n\n", DEFAULT),
    ("recipients-runs-of-spaces", b"SEND  bob   carol \n2\nhi", DEFAULT),
    ("recipient-twice", b"SEND bob bob\n2\nhi", DEFAULT),
    ("send-to-oneself", b"ME IS alice\nSEND alice\n2\nhi", DEFAULT),
    ("too-many-recipients", b"SEND a b c d e\n2\nhi", SMALL),
    ("length-leading-zero", b"SEND bob\n09\nYou suck!", DEFAULT),
    ("chunk-leading-zeros", b"SEND bob\nC007\nabcdefgC0\n", DEFAULT),
    ("chunked-empty", b"SEND bob\nC0\n", DEFAULT),
    ("blank-lines-before-length", b"SEND bob\n\n\r\n2\nhi", DEFAULT),
    ("blank-lines-between-chunks", b"SEND bob\nC2\nhi\n\r\nC0\n", DEFAULT),
    ("short-99", b"SEND bob\n99\n" + b"x" * 99, DEFAULT),
    ("short-0", b"SEND bob\n0\n", DEFAULT),
    ("chunk-999", b"SEND bob\nC999\n" + b"y" * 999 + b"C0\n", DEFAULT),
    ("line-repeated", b"SEND bob\n2\nhiSEND bob\n2\nhoSEND bob\n3\nhey", DEFAULT),
    ("line-repeated-crlf", b"SEND bob\r\n2\r\nhiSEND bob\n2\nho", DEFAULT),
    ("telnet", b"ME IS alice\r\nSEND bob\r\n5\r\nhelloBROADCAST\r\nC2\r\nhiC0\r\n", DEFAULT),
    # §3 errors the stream survives: ERROR once, go on
    ("unknown-commands", b"HELLO\nPING\nME IS alice\n", DEFAULT),
    ("send-no-recipient", b"SEND\n2\nhiME IS a\n", DEFAULT),
    ("send-space-no-recipient", b"SEND \n2\nhi", DEFAULT),
    ("send-invalid-recipient", b"SEND b\x01b\n2\nhi", DEFAULT),
    ("broadcast-with-arguments", b"BROADCAST x\n2\nhi", DEFAULT),
    ("broadcast-with-arguments-chunked", b"BROADCAST x\nC2\nhiC0\nME IS a\n", DEFAULT),
    ("refused-repeated", b"SEND\n1\naSEND\n1\nb", DEFAULT),
    # §3, §7 errors that close the connection
    ("length-100", b"SEND bob\n100\n", DEFAULT),
    ("length-letters", b"SEND bob\nabc\n", DEFAULT),
    ("length-sign", b"SEND bob\n-1\n", DEFAULT),
    ("chunk-1000", b"SEND bob\nC1000\n", DEFAULT),
    ("second-chunk-1000", b"SEND bob\nC5\nhelloC1000\n", DEFAULT),
    ("chunk-sign", b"SEND bob\nC+5\nhello", DEFAULT),
    ("chunk-letters", b"SEND bob\nC5a\n", DEFAULT),
    ("refused-then-bad-length", b"SEND\n100\n", DEFAULT),
    ("line-too-long", b"SEND " + b"b" * 60 + b"\n2\nhi", TINY),
    ("line-too-long-no-newline", b"ME IS " + b"a" * 70, SMALL),
    ("short-over-message-limit", b"SEND bob\n50\n" + b"x" * 50, TINY),
    ("chunked-over-message-limit", b"SEND bob\nC30\n" + b"x" * 30 + b"C30\n" + b"y" * 30, TINY),
    ("chunked-5000-over-4096", b"SEND bob\n" + _CHUNKS_5000 + b"C0\n", SMALL),
    ("eof-in-short-body", b"SEND bob\n9\nYou", DEFAULT),
    ("eof-in-chunk", b"SEND bob\nC5\nhel", DEFAULT),
    ("eof-after-command", b"SEND bob", DEFAULT),
    # §6 datagrams (one command each; the last line of a bodiless one may lack \n)
    ("datagram-login-no-newline", b"ME IS alice", DEFAULT),
    ("datagram-login-cr", b"ME IS alice\r", DEFAULT),
    ("datagram-two-commands", b"ME IS a\nME IS b\n", DEFAULT),
    ("datagram-empty", b"", DEFAULT),
    ("datagram-blank", b"\n", DEFAULT),
]

#: What the server sends (PROTOCOL §2, §4, §5): (name, bytes, limits).
SERVER_BYTES: list[tuple[str, bytes, int]] = [
    ("ok", b"OK\n", DEFAULT),
    ("error", b"ERROR\n", DEFAULT),
    ("ok-crlf-blank-lines", b"\nOK\r\n\n", DEFAULT),
    ("ok-at-eof", b"OK", DEFAULT),
    ("delivery-short", b"FROM alice\n9\nYou suck!", DEFAULT),
    ("random-no-way", b"FROM alice\n7\nNo way!", DEFAULT),
    ("random-hot", b"FROM bob\n21\nHey, you're kinda hot", DEFAULT),
    ("random-bieber", b"FROM bob\n28\nI like Justin Bieber....a lot", DEFAULT),
    ("delivery-chunked", b"FROM alice\nC5\nhelloC3\nabcC0\n", DEFAULT),
    ("delivery-leading-zeros", b"FROM alice\nC007\nabcdefgC000\n", DEFAULT),
    ("delivery-empty-short", b"FROM alice\n0\n", DEFAULT),
    ("delivery-empty-chunked", b"FROM alice\nC0\n", DEFAULT),
    ("replies-and-deliveries", b"OK\nFROM alice\n2\nhiERROR\nFROM bob\nC2\nyoC0\nOK\n", DEFAULT),
    ("from-no-sender", b"FROM \n2\nhi", DEFAULT),
    ("from-two-words", b"FROM a b\n2\nhi", DEFAULT),
    ("unknown-line", b"HELLO\nOK\n", DEFAULT),
    ("delivery-length-100", b"FROM alice\n100\n", DEFAULT),
    ("delivery-chunk-1000", b"FROM alice\nC1000\n", DEFAULT),
    ("delivery-eof-in-body", b"FROM alice\n9\nYou", DEFAULT),
    ("delivery-over-limit", b"FROM alice\n50\n" + b"x" * 50, TINY),
    ("reply-line-too-long", b"OK" + b" " * 20 + b"\n", TINY),
]

#: The examples the twins target starts from, with the runs' size each is decoded with: the
#: fast paths (repeated lines, chunk runs), what they must refuse, and the limits. Some are
#: the server's, some the client's; the target runs both decoders over each.
TWINS_EXAMPLES: list[tuple[str, int]] = [
    ("line-repeated", 2),
    ("line-repeated", 65),
    ("line-repeated-crlf", 3),
    ("telnet", 2),
    ("send-chunked", 2),
    ("chunk-sizes-vary", 2),
    ("chunk-999", 2),
    ("chunk-leading-zeros", 2),
    ("blank-lines-between-commands", 5),
    ("blank-lines-between-chunks", 2),
    ("chunked-over-message-limit", 2),
    ("chunked-5000-over-4096", 2),
    ("short-over-message-limit", 2),
    ("line-too-long", 2),
    ("refused-repeated", 3),
    ("eof-in-chunk", 2),
    ("replies-and-deliveries", 2),
    ("delivery-leading-zeros", 2),
    ("ok-crlf-blank-lines", 2),
    ("delivery-over-limit", 2),
    ("reply-line-too-long", 2),
]

_ORIGIN = b"node-1"

#: What nodes publish to each other (``chatproto/wire/relay.py``): (name, bytes).
RELAY_BYTES: list[tuple[str, bytes]] = [
    (
        "short",
        relay.encode_batch(
            [relay.encode_message(relay.SHORT, _ORIGIN, 1, 9, b"alice", [b"bob"]) + b"You suck!"]
        ),
    ),
    (
        "broadcast-chunked",
        relay.encode_batch(
            [relay.encode_message(relay.CHUNKED, _ORIGIN, 2, 5, b"alice") + b"C5\nhelloC0\n"]
        ),
    ),
    (
        "big-in-pieces",
        relay.encode_batch(
            [
                relay.encode_message(relay.BEGIN, _ORIGIN, 3, 8, b"alice", [b"bob", b"carol"]),
                relay.encode_piece(_ORIGIN, 3, b"C8\nhel"),
                relay.encode_piece(_ORIGIN, 3, b"lo, yoC0\n"),
                relay.encode_end(_ORIGIN, 3),
            ]
        ),
    ),
    (
        "runs",
        relay.encode_batch(
            [
                relay.encode_message(relay.RUN, _ORIGIN, 4, 3, b"alice", [b"bob"])
                + relay.encode_run_bodies([b"3\none", b"0\n", b"5\nthree"]),
                relay.encode_message(relay.RUN, _ORIGIN, 5, 1, b"alice")
                + relay.encode_run_bodies([b"3\nall"]),
            ]
        ),
    ),
    ("run-miscounted", relay.encode_batch([b"R n 1 2 a b\n1\nx"])),
    ("empty-batch", b""),
    ("bad-length-line", b"x\nS n 1 0 a\n"),
    ("batch-too-short", b"50\nS n 1 0 a\n"),
    ("no-header-line", relay.encode_batch([b"S n 1 0 a"])),
    ("bad-kind", relay.encode_batch([b"X n 1 0 a\n"])),
    ("id-not-a-number", relay.encode_batch([b"S n one 0 a\n"])),
    ("empty-origin", relay.encode_batch([b"S  1 0 a\n"])),
    ("piece-extra-field", relay.encode_batch([b"P n 1 2\n"])),
]


def seeds() -> dict[str, dict[str, bytes]]:
    """Return every seed file: ``{target: {file name: bytes}}``."""
    stream_server = {name: (data, limits) for name, data, limits in CLIENT_BYTES}
    stream_client = {name: (data, limits) for name, data, limits in SERVER_BYTES}
    datagrams = {
        name: (data, limits)
        for name, data, limits in CLIENT_BYTES + SERVER_BYTES
        if len(data) < 200 and not name.startswith(("eof-", "line-repeated", "telnet"))
    }
    result = {
        "server": _decoder_seeds(stream_server, cut=True),
        "client": _decoder_seeds(stream_client, cut=True),
        "datagram": _decoder_seeds(datagrams, cut=False),
        "relay": {f"seed-{name}": data for name, data in RELAY_BYTES},
        "twins": _twins_seeds({**stream_server, **stream_client}),
    }
    return result


def _twins_seeds(examples: dict[str, tuple[bytes, int]]) -> dict[str, bytes]:
    """The twins target's seeds: each of :data:`TWINS_EXAMPLES` whole and cut, with its runs."""
    files = {}
    for name, max_frames in TWINS_EXAMPLES:
        data, limits = examples[name]
        count = min(MAX_CUTS, len(data) - 1)
        cuts = tuple(sorted({len(data) * i // (count + 1) for i in range(1, count + 1)}))
        stem = f"seed-{name}-runs-{max_frames}"
        files[stem] = make_input(data, (), limits, max_frames)
        files[f"{stem}-cut"] = make_input(data, cuts, limits, max_frames)
    return files


def _decoder_seeds(examples: dict[str, tuple[bytes, int]], cut: bool) -> dict[str, bytes]:
    files = {}
    for name, (data, limits) in examples.items():
        files[f"seed-{name}"] = make_input(data, (), limits)
        if cut and len(data) > 1:
            count = min(MAX_CUTS, len(data) - 1)
            cuts = tuple(sorted({len(data) * i // (count + 1) for i in range(1, count + 1)}))
            files[f"seed-{name}-cut"] = make_input(data, cuts, limits)
    return files


def write_seeds(corpus: Path = CORPUS_DIR) -> None:
    """Write every seed under ``corpus`` and remove ``seed-*`` files that are no seed."""
    for target, files in seeds().items():
        directory = corpus / target
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("seed-*"):
            if stale.name not in files:
                stale.unlink()
        for name, data in files.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    write_seeds()
