"""Render the ``-v`` traffic lines in the brief's RCVD/SENT format (PROTOCOL §8).

Pure functions over bytes and strings: the service decides when to call them
(only with ``-v``) and where the text goes (a log event).

A frame is given as its wire parts (command line, length line, body, chunk
header, chunk, ...). Each part starts a new display line and is split after
every ``\\n`` it holds, which is shown as the two characters ``\\n``. Any other
byte outside printable ASCII is shown as ``\\xNN`` and a backslash as ``\\\\``,
so binary bodies cannot disturb a terminal and a literal ``\\n`` in a body
cannot pass for a line end.
"""

from collections.abc import Sequence

from chatproto.wire.grammar import CHUNK_HEADER_RE, MAX_SHORT_BODY

#: Bytes of a frame shown before the rest is abbreviated.
DEFAULT_SHOWN_BYTES = 2048

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord("\\")] = "\\\\"
_ESCAPES[ord("\n")] = "\\n"

RECEIVED = "RCVD from"
SENT = "SENT to"
SENT_RANDOMLY = "SENT (randomly!) TO"


def escape(data: bytes) -> str:
    """Show ``data`` as printable ASCII: ``\\n``, ``\\\\`` and ``\\xNN`` escapes."""
    return data.decode("latin-1").translate(_ESCAPES)


def received_parts(frame: bytes) -> list[bytes]:
    """Cut a frame as received into the parts shown on lines of their own.

    Every line is a part, and so is a body's data (a short body, each chunk),
    which need not end in ``\n``: the frame is read as the decoder reads it,
    but leniently, for display only. What does not parse (broken framing, a
    frame cut short) is cut at its newlines; nothing is added or left out.
    """
    parts: list[bytes] = []
    position = 0
    size = len(frame)
    in_body = False  # after a SEND/BROADCAST line
    first = True  # the body's first length line comes next
    while position < size:
        newline = frame.find(b"\n", position)
        end = size if newline < 0 else newline + 1
        parts.append(frame[position:end])
        word = frame[position:end].rstrip(b"\n").removesuffix(b"\r")
        position = end
        if not in_body:
            in_body = word.partition(b" ")[0] in (b"SEND", b"BROADCAST")
            first = True
            continue
        if not word:  # PROTOCOL §3: blank lines between frames
            continue
        data = 0
        if first and len(word) <= len(str(MAX_SHORT_BODY)) and word.isdigit():
            data, in_body = int(word), False  # a short body: its bytes, and the frame ends
        elif header := CHUNK_HEADER_RE.fullmatch(word):
            data = int(header.group(1))
            in_body = data > 0  # C0 ends the frame
        else:
            in_body = False  # broken framing: the rest by lines
        first = False
        if data:
            parts.append(frame[position : position + data])
            position += data
    return parts


def display_lines(
    parts: Sequence[bytes],
    shown_bytes: int = DEFAULT_SHOWN_BYTES,
    total_bytes: int | None = None,
) -> list[str]:
    """Split a frame's parts into escaped display lines.

    At most ``shown_bytes`` bytes of the frame are shown; if more were left
    out, a last line says how many. ``total_bytes``, when given, is the whole
    frame's size and ``parts`` may be just its beginning.
    """
    lines: list[str] = []
    budget = shown_bytes
    left_out = 0
    for part in parts:
        if budget <= 0:
            left_out += len(part)
            continue
        if len(part) > budget:
            left_out += len(part) - budget
            part = part[:budget]
        budget -= len(part)
        start = 0
        while start < len(part):
            end = part.find(b"\n", start) + 1 or len(part)
            lines.append(escape(part[start:end]))
            start = end
    if total_bytes is not None:
        left_out = max(total_bytes - (shown_bytes - budget), 0)
    if left_out:
        lines.append(f"... ({left_out} more bytes not shown)")
    return lines


def render(
    direction: str,
    peer: str,
    user: bytes | None,
    parts: Sequence[bytes],
    total_bytes: int | None = None,
    shown_bytes: int = DEFAULT_SHOWN_BYTES,
) -> str:
    """Render one frame received from, or sent to, a client.

    Args:
        direction: :data:`RECEIVED`, :data:`SENT` or :data:`SENT_RANDOMLY`.
        peer: the client's IP address.
        user: the client's userid, or ``None`` before it logged in.
        parts: the frame's wire parts (or its first ones, see ``total_bytes``).
        total_bytes: the whole frame's size, when ``parts`` may be only its start.
        shown_bytes: how much of the frame to show before abbreviating.

    Returns:
        Before login one line, ``RCVD from <ip>: <frame>``; after login a
        header ``RCVD from <user> (<ip>):`` and the frame's lines indented by
        two spaces, joined with newlines.
    """
    lines = display_lines(parts, shown_bytes, total_bytes)
    if user is None:
        return f"{direction} {peer}: {''.join(lines)}"
    indented = "".join(f"\n  {line}" for line in lines)
    return f"{direction} {escape(user)} ({peer}):{indented}"


def render_note(text: str, peer: str, user: bytes | None) -> str:
    """Render a line about a client that is not a frame (a drop, an expiry)."""
    who = peer if user is None else f"{escape(user)} ({peer})"
    return f"NOTE {who}: {text}"
