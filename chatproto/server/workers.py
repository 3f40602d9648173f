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

A worker stops when its parent does, even a parent killed with ``SIGKILL``
that could not stop it: the monitor tells each worker, through
:data:`PARENT_PIPE_ENV`, that its standard input is a pipe whose other end only
the parent holds, and the worker's :class:`ParentWatch` stops its reactor at
EOF on it, as ``SIGTERM`` would (its clients are disconnected, their userids
released in Redis).
"""

import os
from collections.abc import Callable, Mapping, Sequence

from twisted.application.service import Service
from twisted.internet import fdesc
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ReactorNotRunning
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.main import CONNECTION_DONE
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.runner.procmon import ProcessMonitor
from zope.interface import implementer

#: Namespace of the log events that carry the workers' output lines.
WORKER_NAMESPACE = "chatproto.workers"

#: Set by the monitor in each worker's environment: the number of a descriptor
#: (0, the standard input Twisted gives every child as a pipe) whose write end
#: only the parent holds, so that EOF on it means the parent is gone.
PARENT_PIPE_ENV = "CHATPROTO_PARENT_PIPE"


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
    process's environment, plus :data:`PARENT_PIPE_ENV` (their standard input,
    whose write end Twisted keeps in this process alone), and working directory.
    """
    monitor = WorkerMonitor(reactor)
    env = {**os.environ, PARENT_PIPE_ENV: "0"}
    for number in range(1, count + 1):
        monitor.addProcess(f"worker-{number}", list(command), env=dict(env))
    return monitor


@implementer(IReadDescriptor)
class _ParentPipe:
    """The read end of the parent's pipe, as the reactor watches it.

    What is read is dropped (nothing is meant to be written to it). At EOF,
    ``on_eof`` is called; any other end of the watch is passed to ``on_error``.
    """

    def __init__(
        self, fd: int, on_eof: Callable[[], None], on_error: Callable[[Failure], None]
    ) -> None:
        self._fd = fd
        self._on_eof = on_eof
        self._on_error = on_error

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "parent pipe"

    # IReadDescriptor says Failure, but the reactors take an exception, as
    # Twisted's own descriptors return it (fdesc.readFromFD: CONNECTION_DONE).
    def doRead(self) -> Exception | None:  # type: ignore[override]
        """Read what is there; return why to stop watching (``CONNECTION_DONE`` at EOF)."""
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return None
        except OSError as error:
            return error
        return None if data else CONNECTION_DONE

    def connectionLost(self, reason: Failure) -> None:
        # The reactor calls this with doRead's reason, or with ConnectionDone
        # when epoll reports the hang-up (EPOLLHUP) before any read.
        if reason.check(ConnectionDone):
            self._on_eof()
        else:
            self._on_error(reason)


class ParentWatch(Service):
    """Stop the reactor once the parent process is gone (EOF on a pipe only it writes to).

    EOF persists: a parent that died before :meth:`startService` is noticed
    at the reactor's first turn, so there is no window in which a worker can
    miss its parent's death. Stopping the reactor stops the worker as
    ``SIGTERM`` does (``chat_server`` stops its services on shutdown).

    Args:
        fd: the pipe's read end.
        reactor: the reactor to watch it with and to stop.
    """

    log = Logger()

    def __init__(self, fd: int, reactor) -> None:  # type: ignore[no-untyped-def]
        self.fd = fd
        self._reactor = reactor
        self._pipe = _ParentPipe(fd, self._parent_gone, self._watch_failed)

    def startService(self) -> None:
        super().startService()
        fdesc.setNonBlocking(self.fd)
        self._reactor.addReader(self._pipe)

    def stopService(self) -> None:
        super().stopService()
        self._reactor.removeReader(self._pipe)

    def _parent_gone(self) -> None:
        if not self.running:
            return
        self.log.info("parent process gone: stopping")
        try:
            self._reactor.stop()
        except ReactorNotRunning:  # already stopping
            pass

    def _watch_failed(self, reason: Failure) -> None:
        # Not a sign that the parent is gone: say so, and serve on.
        self.log.failure("cannot watch the parent process any more", reason)


def parent_watch(reactor, environ: Mapping[str, str] = os.environ) -> ParentWatch | None:  # type: ignore[no-untyped-def]
    """Return the :class:`ParentWatch` a worker needs, or ``None`` if this is no worker.

    A worker is a process the monitor started: :data:`PARENT_PIPE_ENV` in
    ``environ`` names its parent's pipe.
    """
    fd = environ.get(PARENT_PIPE_ENV)
    if fd is None:
        return None
    return ParentWatch(int(fd), reactor)
