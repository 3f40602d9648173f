"""Disk space for big message bodies, with a limit on the total in use.

A body that outgrows ``Limits.spill_threshold_bytes`` moves into a spool file
(see ``chatproto.server.message``). Spool files are unnamed temporary files: they
are unlinked as soon as they are created, so they vanish when closed, and
even a killed server leaves nothing behind on disk.
"""

import tempfile
from typing import IO


class SpoolFullError(Exception):
    """The spool has no room for more bytes (its limit, or the disk)."""


class Spool:
    """Hands out spool files in one directory and counts the bytes they hold.

    Attributes:
        directory: where spool files are created (None: the system default).
        max_bytes: the most bytes all spool files may hold at once.
        bytes_in_use: what they hold now.
        files_open: how many spool files are open now.
    """

    def __init__(self, max_bytes: int, directory: str | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.bytes_in_use = 0
        self.files_open = 0

    def open(self) -> IO[bytes]:
        """Return a new unnamed read/write spool file, unbuffered.

        A buffered file would hold its buffer for as long as the body waits
        in recipients' queues; the body gathers its own writes instead
        (``chatproto.server.message.SPOOL_WRITE_BYTES``) and drops them once written.

        Raises:
            SpoolFullError: the file could not be created (no room, no descriptors).
        """
        try:
            spool_file = tempfile.TemporaryFile(
                dir=self.directory, prefix="chatproto-", buffering=0
            )
        except OSError as error:
            raise SpoolFullError(f"cannot create a spool file: {error}") from error
        self.files_open += 1
        return spool_file

    def close(self, spool_file: IO[bytes]) -> None:
        """Close a spool file (it vanishes from the disk)."""
        spool_file.close()
        self.files_open -= 1

    def reserve(self, size: int) -> None:
        """Count ``size`` more bytes as in use.

        Raises:
            SpoolFullError: that would pass :attr:`max_bytes`.
        """
        if self.bytes_in_use + size > self.max_bytes:
            raise SpoolFullError("spool limit reached")
        self.bytes_in_use += size

    def release(self, size: int) -> None:
        """Count ``size`` bytes as no longer in use."""
        self.bytes_in_use -= size
