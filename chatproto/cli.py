"""``chat_server``: run the chat service in the foreground, as the brief asks.

A thin wrapper over :mod:`chatproto.tap`: the same options (:mod:`chatproto.options`) and the same
service as ``twistd chat``. It prints nothing unless ``-v`` is given; then
the traffic lines go to stdout and unexpected errors to stderr. With
``--workers N`` the workers' output lines are passed on as they are: their
stdout (the ``-v`` lines) only with ``-v``, their stderr always.
"""

import sys
from collections.abc import Callable, Sequence
from typing import IO

from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogBeginner
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import provider

from chatproto.options import Options, usage_error_line
from chatproto.server.service import VERBOSE_NAMESPACE
from chatproto.server.workers import WORKER_NAMESPACE
from chatproto.serving import ListenError
from chatproto.tap import makeService

PROGRAM = "chat_server"


def console_observer(
    out: IO[str], err: IO[str], is_verbose: bool = True
) -> Callable[[LogEvent], None]:
    """Return a log observer that prints what ``chat_server`` shows.

    With ``is_verbose`` (``-v``): traffic lines to ``out``, errors to
    ``err``, and the workers' stdout lines to ``out``. Always: the workers'
    stderr lines to ``err``. Every other event (Twisted's own chatter
    included) is dropped.
    """

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if event.get("log_namespace") == WORKER_NAMESPACE and "line" in event:
            stream = err if event.get("stream") == "stderr" else out
            if is_verbose or stream is err:
                stream.write(f"{event['line']}\n")
                stream.flush()
        elif not is_verbose:
            return
        elif event.get("log_namespace") == VERBOSE_NAMESPACE:
            out.write(formatEvent(event) + "\n")
            out.flush()
        elif isinstance(failure := event.get("log_failure"), Failure):
            err.write(f"{formatEvent(event)}\n{failure.getTraceback()}")
            err.flush()

    return observe


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until it is stopped; return the process exit status.

    Exit status 2 for bad usage, 1 when a port cannot be listened on, 0 after
    a clean stop (SIGINT or SIGTERM).
    """
    options = Options()
    options.synopsis = f"Usage: {PROGRAM} {Options.synopsis}"
    try:
        options.parseOptions(argv)
    except usage.UsageError as error:
        sys.stderr.write(usage_error_line(PROGRAM, error))
        return 2

    from twisted.internet import reactor

    observer = console_observer(sys.stdout, sys.stderr, is_verbose=options["verbose"])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    # Its observer drops the login and logout lines: do not make them.
    service = makeService(options, reactor, session_log=False)
    try:
        service.startService()
    except ListenError as error:
        sys.stderr.write(f"{PROGRAM}: {error}\n")
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
