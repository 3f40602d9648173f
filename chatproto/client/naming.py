"""Names for received files in the download directory, for ``chat_client``.

:func:`safe_file_stem` derives a name from a userid; :func:`claim_file_name`
gives a complete file a free name without ever replacing an existing file.
Nothing here reads or writes a file's contents.
"""

import os
import re
from pathlib import Path
from typing import Final

#: Most numbered names tried before giving up on saving a file.
MAX_NAME_ATTEMPTS: Final = 10_000
#: Extension of received files: the protocol carries no file name or type.
RECEIVED_FILE_SUFFIX: Final = ".bin"

# Characters kept in a file name derived from a userid; the rest become "_".
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


def safe_file_stem(sender: bytes) -> str:
    """Return a file name stem for ``sender``: letters, digits, ``_`` and ``-`` only.

    Every other byte of the userid (``/``, ``\\``, ``.``, ...) becomes ``_``, so
    the stem can name neither another directory nor a hidden file.
    """
    return _UNSAFE_NAME_CHARACTERS.sub("_", sender.decode("ascii", "replace"))


def claim_file_name(directory: Path, stem: str, source: Path) -> Path:
    """Give the complete file ``source`` a free name in ``directory``; return it.

    Tries ``<stem>.bin``, then ``<stem>-1.bin``, ``<stem>-2.bin``, ... An
    existing file is never replaced: the new name is created by a hard link,
    which fails if the name is taken, and ``source`` is then removed.

    Raises:
        OSError: no free name, or the file system refused.
    """
    for attempt in range(MAX_NAME_ATTEMPTS):
        suffix = f"-{attempt}" if attempt else ""
        target = directory / f"{stem}{suffix}{RECEIVED_FILE_SUFFIX}"
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
    raise FileExistsError(f"no free name for {stem}{RECEIVED_FILE_SUFFIX} in {directory}")
