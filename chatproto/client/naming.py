"""Names for received files in the download directory, for ``chat_client``.

:func:`safe_file_stem` derives a name from a userid, :func:`saved_name_parts`
one from the name a sender gave (see :mod:`chatproto.client.file_header`);
:func:`claim_file_name` gives a complete file a free name without ever
replacing an existing file. Nothing here reads or writes a file's contents.
"""

import os
import re
from pathlib import Path
from typing import Final

#: Most numbered names tried before giving up on saving a file.
MAX_NAME_ATTEMPTS: Final = 10_000
#: Extension of a received file that came without a name (the protocol carries none).
RECEIVED_FILE_SUFFIX: Final = ".bin"
#: Longest saved name in UTF-8 bytes: a Linux name's 255, less room for ``-9999``.
MAX_SAVED_NAME_BYTES: Final = 255 - len(f"-{MAX_NAME_ATTEMPTS - 1}")
#: Longest extension kept apart from the stem, in UTF-8 bytes.
MAX_SUFFIX_BYTES: Final = 32

# Characters kept in a file name derived from a userid; the rest become "_".
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")
# What separates directories, on this system or the sender's.
_SEPARATORS = re.compile(r"[/\\]")
# Control characters (C0, DEL, C1): never in a saved name.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_file_stem(sender: bytes) -> str:
    """Return a file name stem for ``sender``: letters, digits, ``_`` and ``-`` only.

    Every other byte of the userid (``/``, ``\\``, ``.``, ...) becomes ``_``, so
    the stem can name neither another directory nor a hidden file.
    """
    return _UNSAFE_NAME_CHARACTERS.sub("_", sender.decode("ascii", "replace"))


def saved_name_parts(name: str) -> tuple[str, str] | None:
    """Return the (stem, extension) to save a file the sender called ``name`` under.

    The name is untrusted: only what follows its last ``/`` or ``\\`` is kept
    (a base name, so never another directory), control characters become
    ``_``, and so does a leading ``.`` (no hidden files). Stem and extension
    together fit :data:`MAX_SAVED_NAME_BYTES`, the stem losing its end.

    Returns:
        ``(stem, extension)``, the extension with its dot or ``""``; None if
        nothing usable is left (``""``, ``.``, ``..``): then name it after the sender.
    """
    base = _SEPARATORS.split(name)[-1]
    if base in ("", ".", ".."):
        return None
    base = _CONTROL_CHARACTERS.sub("_", base)
    if base.startswith("."):
        base = "_" + base[1:]
    stem, dot, extension = base.rpartition(".")
    suffix = dot + extension
    if not stem or len(suffix.encode("utf-8")) > MAX_SUFFIX_BYTES:
        stem, suffix = base, ""
    room = MAX_SAVED_NAME_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore"), suffix


def claim_file_name(
    directory: Path, stem: str, source: Path, suffix: str = RECEIVED_FILE_SUFFIX
) -> Path:
    """Give the complete file ``source`` a free name in ``directory``; return it.

    Tries ``<stem><suffix>``, then ``<stem>-1<suffix>``, ``<stem>-2<suffix>``,
    ... (``suffix`` is ``.bin`` unless given). An existing file is never
    replaced: the new name is created by a hard link, which fails if the
    name is taken, and ``source`` is then removed.

    Raises:
        OSError: no free name, or the file system refused.
    """
    for attempt in range(MAX_NAME_ATTEMPTS):
        number = f"-{attempt}" if attempt else ""
        target = directory / f"{stem}{number}{suffix}"
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError:
            # No hard links here (some file systems): check, then rename.
            if os.path.lexists(target):
                continue
            os.rename(source, target)
            return target
        os.unlink(source)
        return target
    raise FileExistsError(f"no free name for {stem}{suffix} in {directory}")
