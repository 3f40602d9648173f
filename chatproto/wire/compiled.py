"""Which twin of the wire core this process runs: the compiled one if built, else the pure one.

The receive buffer has two twins with one API (STYLE §9): the reference,
pure Python (:class:`chatproto.wire.buffer.ReceiveBuffer`), and a compiled
one (``chatproto.wire._buffer``, Cython), built by ``pip install`` where a C
compiler is there. This module decides, once, at import, which one the
decoders use: the compiled twin when it imports, unless the environment
variable ``CHATPROTO_NO_EXTENSIONS`` is set (to anything but empty or
``0``), as aiohttp's ``AIOHTTP_NO_EXTENSIONS`` does. It only imports; it
prints and logs nothing.

Attributes:
    PyReceiveBuffer: the pure-Python twin (always there).
    CReceiveBuffer: the compiled twin, or ``None`` where it is not built or
        not wanted.
    ReceiveBuffer: the twin in use, the one
        :class:`~chatproto.wire.stream.StreamDecoder` makes its buffers from.
"""

import os
from collections.abc import Mapping
from typing import Final, cast

from chatproto.wire.buffer import ReceiveBuffer as PyReceiveBuffer

#: The environment variable that forces the pure-Python twin.
NO_EXTENSIONS_VARIABLE: Final = "CHATPROTO_NO_EXTENSIONS"


def extensions_refused(environ: Mapping[str, str] = os.environ) -> bool:
    """Tell whether ``environ`` asks for the pure twin: the variable set, not empty, not ``0``."""
    return environ.get(NO_EXTENSIONS_VARIABLE, "") not in ("", "0")


def _compiled_twin() -> tuple[type[PyReceiveBuffer] | None, str]:
    """Import the compiled twin unless refused: ``(the class, "")`` or ``(None, why not)``."""
    if extensions_refused():
        return None, f"{NO_EXTENSIONS_VARIABLE} is set"
    try:
        import chatproto.wire._buffer as _buffer
    except ImportError as error:
        return None, f"not built: {error}"
    # Not a subclass of the pure twin, but the same API: typed as it.
    return cast(type[PyReceiveBuffer], _buffer.ReceiveBuffer), ""


CReceiveBuffer, _WHY_NOT = _compiled_twin()

#: The twin the decoders use.
ReceiveBuffer: Final[type[PyReceiveBuffer]] = (
    CReceiveBuffer if CReceiveBuffer is not None else PyReceiveBuffer
)


def compiled_core_status() -> str:
    """Return whether the compiled core runs: ``"yes"``, or ``"no (<reason>)"``.

    The reason is ``CHATPROTO_NO_EXTENSIONS is set`` or ``not built: <the
    import error>``; ``--version`` prints this after ``compiled core:``.
    """
    return "yes" if CReceiveBuffer is not None else f"no ({_WHY_NOT})"
