"""Read ``-v`` traffic lines back into bytes, to check them against what went over the wire."""

import re
from dataclasses import dataclass

from chatproto.server.service import VERBOSE_NAMESPACE

_BEFORE_LOGIN = re.compile(r"(RCVD from|SENT to|SENT \(randomly!\) TO) ([^ ]+): (.*)", re.S)
_AFTER_LOGIN = re.compile(r"(RCVD from|SENT to|SENT \(randomly!\) TO) ([^ ]+) \(([^)]*)\):")
_LEFT_OUT = re.compile(r"\.\.\. \((\d+) more bytes not shown\)")
_ESCAPE = re.compile(rb"\\(x[0-9a-f]{2}|n|\\)")


@dataclass(frozen=True)
class Shown:
    """One traffic line read back.

    Attributes:
        direction: ``RCVD from``, ``SENT to`` or ``SENT (randomly!) TO``.
        peer: the address shown.
        user: the userid shown, or None (the one-line form before login).
        data: the frame's bytes, unescaped.
        left_out: how many bytes the line says it did not show.
    """

    direction: str
    peer: str
    user: str | None
    data: bytes
    left_out: int = 0


def unescape(text: str) -> bytes:
    """Undo :func:`chatproto.server.verbose.escape`."""

    def replace(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code == b"n":
            return b"\n"
        if code == b"\\":
            return b"\\"
        return bytes([int(code[1:], 16)])

    return _ESCAPE.sub(replace, text.encode("ascii"))


def read_back(text: str) -> Shown:
    """Parse one rendered traffic line (:func:`chatproto.server.verbose.render`)."""
    header, *lines = text.split("\n")
    after = _AFTER_LOGIN.fullmatch(header)
    if after is not None:
        left_out = 0
        if lines and (more := _LEFT_OUT.fullmatch(lines[-1].removeprefix("  "))):
            left_out = int(more.group(1))
            lines.pop()
        assert all(line.startswith("  ") for line in lines), text
        data = b"".join(unescape(line[2:]) for line in lines)
        return Shown(after.group(1), after.group(3), after.group(2), data, left_out)
    before = _BEFORE_LOGIN.fullmatch(text)
    assert before is not None, f"not a traffic line: {text!r}"
    body = before.group(3)
    left_out = 0
    if more := re.search(r"\.\.\. \((\d+) more bytes not shown\)$", body):
        left_out = int(more.group(1))
        body = body[: more.start()]
    return Shown(before.group(1), before.group(2), None, unescape(body), left_out)


def traffic(events: list[dict]) -> list[str]:  # type: ignore[type-arg]
    """The ``-v`` lines among captured log events."""
    return [e["text"] for e in events if e.get("log_namespace") == VERBOSE_NAMESPACE]
