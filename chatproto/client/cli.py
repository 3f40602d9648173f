"""``chat_client``: the command line, which wires a connection to a front end.

The client is split by job; each module imports only the ones listed before it:

* :mod:`chatproto.client.file_header`: the header that names a file in a
  body (pure); :mod:`chatproto.client.naming`: names for received files
  (:func:`claim_file_name`); :mod:`chatproto.client.inbox`: what a delivery
  becomes (:class:`Inbox`, :class:`TextMessage`, :class:`SavedFile`);
  :mod:`chatproto.client.sending`: sending files (:class:`ChunkedFileSender`).
* :mod:`chatproto.client.views`: the interface between a connection and a
  front end (:class:`ChatView`, :class:`ChatConnection`), how messages are
  shown, and the front ends :class:`JsonLinesView` and :class:`FileSendJob`.
* :mod:`chatproto.client.terminal`: the interactive front end,
  :class:`TerminalSession`.
* :mod:`chatproto.client.connection`: what TCP and UDP share (login, server
  events, the view); :mod:`chatproto.client.tcp` (:class:`ChatClientProtocol`)
  and :mod:`chatproto.client.udp` (:class:`ChatDatagramClient`) adapt the two
  transports to the codec of :mod:`chatproto.wire.client_codec`.
* :mod:`chatproto.client.options`: the command line (:class:`Options`);
  :mod:`chatproto.client.endpoints`: reaching the server it names and
  logging in (:func:`connect`), and why that failed.
* this module: :func:`main` and :func:`run`, which start the chosen front
  end on a single reactor and turn how the session ended into the exit
  status. It re-exports the public names of the others.

The client prints only its user-facing output; diagnostics go to
``twisted.logger``, whose observer here shows nothing but unexpected errors.
"""

import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.stdio import StandardIO
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent, globalLogBeginner
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import provider

from chatproto.client.connection import (
    CLOSE_TIMEOUT_S,
    LOGIN_TIMEOUT_S,
    LoginRefusedError,
    NoLoginReplyError,
)
from chatproto.client.endpoints import connect, login_error, tls_client_options, where
from chatproto.client.inbox import Inbox, Received, SavedFile, TextMessage, UnsavedFile
from chatproto.client.naming import claim_file_name, safe_file_stem
from chatproto.client.options import Options, SetupError
from chatproto.client.sending import ChunkedFileSender, file_header_for, open_file_to_send
from chatproto.client.tcp import ChatClientProtocol
from chatproto.client.terminal import TerminalSession
from chatproto.client.udp import ChatDatagramClient
from chatproto.client.views import (
    HELP_TEXT,
    PROGRAM,
    ChatConnection,
    Console,
    FileSendJob,
    JsonLinesView,
    ProgressReporter,
    clock_text,
    error_line,
    json_record,
    render_message,
)

__all__ = [
    # the connection side and the command line
    "CLOSE_TIMEOUT_S",
    "LOGIN_TIMEOUT_S",
    "ChatClientProtocol",
    "ChatDatagramClient",
    "LoginRefusedError",
    "NoLoginReplyError",
    "Options",
    "connect",
    "error_observer",
    "main",
    "run",
    "start",
    # re-exported from chatproto.client.naming, .inbox and .sending
    "ChunkedFileSender",
    "Inbox",
    "Received",
    "SavedFile",
    "TextMessage",
    "UnsavedFile",
    "claim_file_name",
    "safe_file_stem",
    # re-exported from chatproto.client.views
    "HELP_TEXT",
    "Console",
    "ProgressReporter",
    "TerminalSession",
    "clock_text",
    "json_record",
    "render_message",
]

_log = Logger()


def error_observer(err: IO[str]) -> Callable[[LogEvent], None]:
    """Return a log observer that shows unexpected errors on ``err`` and drops the rest."""

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if isinstance(failure := event.get("log_failure"), Failure):
            err.write(f"{PROGRAM}: {formatEvent(event)}\n{failure.getTraceback()}")
            err.flush()

    return observe


class _QuietView:
    """A view that ignores everything: the process is shutting down."""

    def message_received(self, message: Received) -> None:
        """Too late to show it."""

    def message_refused(self) -> None:
        """Too late to show it."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        """Expected: the reactor is stopping."""


class _Outcome:
    """The exit status, and the one way to stop the reactor with it."""

    def __init__(self, reactor, status: int) -> None:  # type: ignore[no-untyped-def]
        self.status = status
        self._reactor = reactor
        self._is_stopping = False
        reactor.addSystemEventTrigger("before", "shutdown", self._shutting_down)

    def _shutting_down(self) -> None:
        self._is_stopping = True

    def exit(self, status: int) -> None:
        """Stop the reactor; ``status`` is returned by :func:`main` (the first one wins)."""
        if not self._is_stopping:
            self.status = status
            self._is_stopping = True
            self._reactor.stop()

    def interrupted(self, terminal: IO[str] | None) -> None:
        """Ctrl-C: end the line the terminal echoed ``^C`` on, then stop as planned.

        The status stays the one set at the start: 0, or 1 for ``--send``
        (the file did not go out whole).
        """
        if terminal is not None and not self._is_stopping:
            terminal.write("\n")
            terminal.flush()
        self.exit(self.status)


def _terminal(*streams: IO[str]) -> IO[str] | None:
    """Return the first of ``streams`` that is a terminal, or None."""
    for stream in streams:
        try:
            if stream.isatty():
                return stream
        except (OSError, ValueError):  # closed, or no file behind it
            continue
    return None


def open_outgoing(options: Options) -> tuple[BinaryIO, int, bytes] | None:
    """Open ``--file`` (if given) as :func:`open_file_to_send` checks it.

    Returns:
        The open file, its size and the file-name header to send before it.

    Raises:
        SetupError: it is missing, unreadable, not a regular file or too big.
    """
    if options["file"] is None:
        return None
    path = Path(options["file"])
    header = file_header_for(path)
    try:
        source, size = open_file_to_send(path, options["max-message"], len(header))
    except OSError as error:
        raise SetupError(f"cannot send {path}: {error.strerror or error}") from None
    return source, size, header


def start(
    options: Options,
    reactor,  # type: ignore[no-untyped-def]
    stdout: IO[str],
    stderr: IO[str],
    on_exit: Callable[[int], None],
    outgoing: tuple[BinaryIO, int, bytes] | None = None,
    tls: Any = None,
) -> Deferred:
    """Connect, log in and start the chosen front end.

    ``outgoing`` is the ``--file`` opened by :func:`open_outgoing` (owned from
    now on), ``tls`` the options :func:`tls_client_options` made. Every way
    this can end calls ``on_exit`` with the exit status, once.
    """
    source: BinaryIO | None = None
    if outgoing is not None:
        source, size, header = outgoing
        path = Path(options["file"])
    download_dir = Path(options["download-dir"])
    inbox = Inbox(download_dir)
    user = options["user"].decode("ascii")

    def logged_in(connection: ChatConnection) -> None:
        # Once the process is stopping, the connection closing is no news.
        reactor.addSystemEventTrigger("before", "shutdown", connection.attach, _QuietView())
        banner = f"logged in as {user} at {where(options)} over {connection.transport_name}"
        if options["listen"]:
            error_line(stderr, f"{banner}; listening (Ctrl-C to stop)")
            connection.attach(JsonLinesView(stdout, stderr, on_exit))
        elif source is not None:
            error_line(stderr, banner)
            recipients = options["send"]
            job = FileSendJob(
                connection, recipients, path, source, size, stdout, stderr, on_exit, header
            )
            job.start()
        else:
            session = TerminalSession(
                connection,
                reactor,
                on_exit,
                f"{banner}; type /help for commands",
                stdout.isatty(),
                download_dir,
            )
            StandardIO(session, reactor=reactor)

    def failed(failure: Failure) -> None:
        if source is not None:
            source.close()
        error_line(stderr, f"{PROGRAM}: {login_error(options, failure)}")
        on_exit(1)

    return connect(options, reactor, inbox, tls).addCallbacks(logged_in, failed)


def main(
    argv: Sequence[str] | None = None,
    reactor=None,  # type: ignore[no-untyped-def]
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the client until its session ends; return the process exit status.

    Exit status 2 for bad usage, including a ``--file`` that cannot be sent,
    a ``--ca`` that cannot be read, or ``--tls`` without the ``[tls]`` extra
    (all checked before connecting); 1 when connecting or logging in fails, the
    connection is lost, or a ``--send`` fails; 0 otherwise (``/quit``,
    end of input, or Ctrl-C under ``--listen``).
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as error:
        error_line(stderr, f"{PROGRAM}: {error} (see {PROGRAM} --help)")
        return 2
    try:
        tls = tls_client_options(options)
        outgoing = open_outgoing(options)
    except SetupError as error:
        error_line(stderr, f"{PROGRAM}: {error}")
        return 2
    is_own_reactor = reactor is None
    if reactor is None:
        from twisted.internet import reactor
    globalLogBeginner.beginLoggingTo([error_observer(stderr)], redirectStandardIO=False)
    outcome = _Outcome(reactor, status=1 if options["send"] else 0)

    def begin() -> None:
        def crashed(failure: Failure) -> None:
            _log.failure("start-up failed", failure)
            outcome.exit(1)

        def on_sigint(number: int, frame: object) -> None:
            # Only note it here; the reactor thread does the writing.
            reactor.callFromThread(outcome.interrupted, _terminal(stderr, stdout))

        if is_own_reactor:
            # In place of the reactor's own SIGINT handler (it restores the
            # original one when it stops).
            signal.signal(signal.SIGINT, on_sigint)
        started = start(options, reactor, stdout, stderr, outcome.exit, outgoing, tls)
        started.addErrback(crashed)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome.status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
