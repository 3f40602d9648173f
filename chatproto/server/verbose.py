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
