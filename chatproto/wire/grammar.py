"""The grammar of the chat wire format, written once for both directions (PROTOCOL §2-§4).

The replies, the userid rule, the short length line, the chunk header and
the size maxima: every constant and pattern the decoders
(:mod:`chatproto.wire.codec`, :mod:`chatproto.wire.client_codec`, the shared
:mod:`chatproto.wire.body`), the receive buffer and the encoders use. A rule
of the contract changes here, and only here.
"""

import re
from typing import Final

#: Reply to an accepted ``ME IS``.
OK: Final = b"OK\n"
#: Reply to anything refused (PROTOCOL §2, §3).
ERROR: Final = b"ERROR\n"
#: Largest short body: its length is one or two decimal digits (PROTOCOL §3).
MAX_SHORT_BODY: Final = 99
#: Largest chunk: its size is one to three decimal digits (PROTOCOL §3).
MAX_CHUNK: Final = 999
#: Longest userid (PROTOCOL §2).
MAX_USERID: Final = 32
#: The last chunk header of a chunked body, as this side writes it (PROTOCOL §3).
LAST_CHUNK: Final = b"C0\n"
#: What starts a login line (PROTOCOL §2).
LOGIN_PREFIX: Final = b"ME IS "
#: What starts a delivery's first line (PROTOCOL §4).
FROM_PREFIX: Final = b"FROM "

_SHORT_DIGITS = len(str(MAX_SHORT_BODY))
_CHUNK_DIGITS = len(str(MAX_CHUNK))

# PROTOCOL §2: 1 to 32 bytes of printable ASCII without space.
USERID_RE: Final = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_USERID)
# PROTOCOL §3: a short length line, 0..99 (leading zero allowed).
SHORT_LENGTH_RE: Final = re.compile(rb"[0-9]{1,%d}" % _SHORT_DIGITS)
# What follows a command line when a short body comes at once: the line end,
# a short length line, its line end.
SHORT_LENGTH_LINE_RE: Final = re.compile(rb"\r?\n([0-9]{1,%d})\r?\n" % _SHORT_DIGITS)
# PROTOCOL §3: chunk size C0..C999 (leading zeros allowed).
CHUNK_HEADER_RE: Final = re.compile(rb"C([0-9]{1,%d})" % _CHUNK_DIGITS)
# A whole chunk header line, as it comes in the common case.
CHUNK_HEADER_LINE_RE: Final = re.compile(rb"C([0-9]{1,%d})\r?\n" % _CHUNK_DIGITS)
# A chunk header in the form this side writes: C1..C999, plain \n.
CANONICAL_CHUNK_HEADER_RE: Final = re.compile(rb"C([1-9][0-9]{0,%d})\n" % (_CHUNK_DIGITS - 1))
# A short length line in the form this side writes: 0..99 without leading zero, plain \n.
CANONICAL_SHORT_LENGTH_RE: Final = re.compile(rb"(0|[1-9][0-9]{0,%d})\n" % (_SHORT_DIGITS - 1))


def is_valid_userid(name: bytes) -> bool:
    """Tell whether ``name`` may be a userid: 1-32 bytes of 0x21-0x7E (PROTOCOL §2)."""
    return USERID_RE.fullmatch(name) is not None
