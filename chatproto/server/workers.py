"""Run several chat server processes on one host, under Twisted's process monitor.

With ``--workers N`` the process given the command line does not listen
itself: it runs N copies of ``python -m chatproto`` with the same options
plus ``--reuse-port`` (see :mod:`chatproto.server.reuseport`), restarts any that
dies, and stops them all when it stops. Users are shared between the
workers only through ``--cluster``.

Each line a worker writes becomes a log event in :data:`WORKER_NAMESPACE`
with the fields ``line`` (the text, without its newline) and ``stream``
(``"stdout"`` or ``"stderr"``); ``chat_server`` prints it as it is, twistd
logs it.
"""

import os
from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.runner.procmon import ProcessMonitor

#: Namespace of the log events that carry the workers' output lines.
WORKER_NAMESPACE = "chatproto.workers"


class _WorkerLog(Logger):
    """The monitor's logger, without the empty line Twisted makes up when a worker exits.

    ``LoggingProtocol.outReceived`` tests ``data[-1] == b"\\n"``, which is
    never true for ``bytes`` on Python 3, so at every exit it feeds one more
    newline and logs an empty line.
    """

    def emit(self, level, format=None, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("line") == "":
            return
        super().emit(level, format, **kwargs)


class WorkerMonitor(ProcessMonitor):
    """A ``ProcessMonitor`` whose stop waits until every worker has exited.

    ``ProcessMonitor.stopService`` only signals the processes (SIGTERM, then
    SIGKILL after ``killTime`` seconds); returning a Deferred lets the
    reactor keep running until the workers are gone, so their last output
    lines are still read and the parent never exits before its children.
    """

    def __init__(self, reactor) -> None:  # type: ignore[no-untyped-def]
        super().__init__(reactor)
        # An instance attribute wins over the class's Logger descriptor, whose
        # namespace would be this class's name.
        self.log = _WorkerLog(namespace=WORKER_NAMESPACE, source=self)
        self._waiting: list[Deferred[None]] = []

    # IService.stopService may return a Deferred (MultiService waits for it);
    # ProcessMonitor's annotation says None.
    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        """Stop every worker; return a Deferred that fires once all have exited."""
        super().stopService()
        exited: Deferred[None] = Deferred()
        self._waiting.append(exited)
        self._fire_if_all_exited()
        return exited

    def _monitoredProcessExited(self, name: str, reason: Failure | None = None) -> None:
        # ProcessMonitor's own hook, called by its LoggingProtocol once the
        # process has exited and its output pipes are drained.
        super()._monitoredProcessExited(name, reason)
        self._fire_if_all_exited()

    def _fire_if_all_exited(self) -> None:
        """Fire the stop Deferreds once the monitor is stopped and no worker runs."""
        if self.running or self.protocols:
            return
        waiting, self._waiting = self._waiting, []
        for exited in waiting:
            exited.callback(None)


def worker_monitor(
    command: Sequence[str],
    count: int,
    reactor,  # type: ignore[no-untyped-def]
) -> WorkerMonitor:
    """Return a monitor that runs ``count`` workers, each running ``command``.

    The workers are named ``worker-1`` to ``worker-<count>`` and get this
    process's environment and working directory.
    """
    monitor = WorkerMonitor(reactor)
    for number in range(1, count + 1):
        monitor.addProcess(f"worker-{number}", list(command), env=dict(os.environ))
    return monitor
