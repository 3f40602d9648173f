"""One write per client per input read: the batcher the service flushes.

:class:`WriteBatcher` is shared by the service and the outboxes of its TCP
clients. It knows an outbox only as something with pending writes
(:class:`PendingWrites`), so this module imports neither the outbox nor the
service, and both can import it.
"""

from typing import Protocol

from twisted.logger import Logger


class PendingWrites(Protocol):
    """What the batcher flushes: a client's writes gathered during one read."""

    def write_pending(self) -> None:
        """Write what was gathered, as one transport write."""


class WriteBatcher:
    """Gathers the writes of one read's processing into one write per client.

    A sender's read holds many messages; each would cost every recipient a
    transport write. Outboxes add in-memory deliveries to a pending list and
    mark themselves here; whoever processed the input calls :meth:`flush` when
    done, and each marked client gets one write.
    """

    __slots__ = ("_marked",)

    log = Logger()

    def __init__(self) -> None:
        self._marked: list[PendingWrites] = []

    def mark(self, outbox: PendingWrites) -> None:
        """Remember ``outbox`` as holding pending writes."""
        self._marked.append(outbox)

    def flush(self) -> None:
        """Write every marked outbox's pending frames."""
        while self._marked:
            marked, self._marked = self._marked, []
            for outbox in marked:
                try:
                    outbox.write_pending()
                except Exception:
                    self.log.failure("writing to a client failed")
