"""``chat_client``: the command line, which wires a connection to a front end.

The client is split by job; each module imports only the ones listed before it:

* :mod:`chatproto.client.naming`: names for received files
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
* this module: the command line (:class:`Options`, :func:`main`, :func:`run`),
  which connects, logs in, starts the chosen front end on a single reactor
  and turns how the session ended into the exit status. It re-exports the
  public names of the others.

The client prints only its user-facing output; diagnostics go to
``twisted.logger``, whose observer here shows nothing but unexpected errors.
"""

import ipaddress
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.stdio import StandardIO
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent, globalLogBeginner
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import provider

from chatproto.argtypes import AnyOrderOptions, port_number, positive_int
from chatproto.client.connection import (
    CLOSE_TIMEOUT_S,
    LOGIN_TIMEOUT_S,
    LoginRefusedError,
    NoLoginReplyError,
)
from chatproto.client.inbox import Inbox, Received, SavedFile, TextMessage, UnsavedFile
from chatproto.client.naming import claim_file_name, safe_file_stem
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
    parse_recipients,
    render_message,
)
from chatproto.limits import Limits
from chatproto.wire.grammar import is_valid_userid

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


# -- command line ----------------------------------------------------------------


class Options(AnyOrderOptions):
    """Command-line options of ``chat_client``: ``HOST PORT USERID`` and flags, in any order.

    After parsing: ``host`` (str), ``port`` (int), ``user`` (bytes), ``send``
    (list of recipient userids as bytes), ``file`` (str or None), ``udp``,
    ``listen``, ``download-dir`` and ``max-message``.
    """

    synopsis = f"Usage: {PROGRAM} [options] HOST PORT USERID"
    longdesc = (
        "Log in to a chat server as USERID and chat from the terminal: a typed line goes to "
        "everyone, /help lists the commands. With --listen, print received messages as JSON "
        "lines; with --send USER --file PATH, send one file and exit."
    )

    optFlags = [
        ["udp", None, "Talk to the server over UDP (short messages only; files need TCP)."],
        ["listen", None, "Print received messages as JSON lines until interrupted."],
    ]
    optParameters = [
        ["download-dir", "d", ".", "Directory where received files are saved."],
        ["file", None, None, "With --send: the file to send; exit when it is sent."],
        [
            "max-message",
            None,
            Limits().max_message_bytes,
            "Largest message body in bytes, received or sent (the server's default).",
            positive_int,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["send"] = []

    def opt_send(self, value: str) -> None:
        """Send --file to USER (repeatable, or USER,USER,...), then exit."""
        try:
            self["send"].extend(parse_recipients([value]))
        except ValueError as error:
            raise usage.UsageError(f"--send: {error}") from None

    def parseArgs(self, host: str, port: str, user: str) -> None:
        self["host"] = host
        self["port"] = port_number(port)
        raw_user = user.encode("utf-8", "surrogateescape")
        if not is_valid_userid(raw_user):
            raise usage.UsageError(
                f"not a valid userid: {user!r} (1 to 32 printable ASCII characters, no space)"
            )
        self["user"] = raw_user

    def postOptions(self) -> None:
        self["send"] = list(dict.fromkeys(self["send"]))
        if self["send"] and self["file"] is None:
            raise usage.UsageError("--send needs --file PATH")
        if self["file"] is not None and not self["send"]:
            raise usage.UsageError("--file needs --send USER")
        if self["send"] and self["listen"]:
            raise usage.UsageError("--send and --listen do not go together")
        if self["file"] is not None and self["udp"]:
            raise usage.UsageError("files need TCP: drop --udp to send a file")
        if not os.path.isdir(self["download-dir"]):
            raise usage.UsageError(f"not a directory: {self['download-dir']}")

    def limits(self) -> Limits:
        """Return the :class:`Limits` these options ask for."""
        return Limits(max_message_bytes=self["max-message"])


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


def connect(options: Options, reactor, inbox: Inbox) -> Deferred:  # type: ignore[no-untyped-def]
    """Connect and log in as ``options`` say; fire with the logged-in connection.

    Fails with the connection error, :class:`LoginRefusedError` or :class:`NoLoginReplyError`.
    """
    host, port, user, limits = options["host"], options["port"], options["user"], options.limits()
    if options["udp"]:

        def listen(address: str) -> Deferred:
            client = ChatDatagramClient(user, (address, port), inbox, reactor, limits)
            # A server on loopback is reached from loopback: bind nothing wider.
            is_loopback = ipaddress.ip_address(address).is_loopback
            reactor.listenUDP(0, client, interface=address if is_loopback else "")
            return client.logged_in.addCallback(lambda _: client)

        return reactor.resolve(host).addCallback(listen)
    endpoint = endpoints.HostnameEndpoint(reactor, host, port, timeout=LOGIN_TIMEOUT_S)
    protocol = ChatClientProtocol(user, inbox, reactor, limits)
    connected = endpoints.connectProtocol(endpoint, protocol)
    return connected.addCallback(lambda _: protocol.logged_in).addCallback(lambda _: protocol)


def _login_error(options: Options, failure: Failure) -> str:
    """Say in one line why connecting or logging in failed."""
    where = f"{options['host']}:{options['port']}"
    if failure.check(LoginRefusedError):
        return f"cannot log in as {options['user'].decode('ascii')}: {failure.getErrorMessage()}"
    if failure.check(NoLoginReplyError):
        return f"cannot log in at {where}: {failure.getErrorMessage()}"
    if failure.check(ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is the server running?)"
    return f"cannot connect to {where}: {failure.getErrorMessage().rstrip('.')}"


class SetupError(Exception):
    """Something the command line names cannot be used: say it in one line, exit with 2."""


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
) -> Deferred:
    """Connect, log in and start the chosen front end.

    ``outgoing`` is the ``--file`` opened by :func:`open_outgoing` (owned from
    now on). Every way this can end calls ``on_exit`` with the exit status, once.
    """
    source: BinaryIO | None = None
    if outgoing is not None:
        source, size, header = outgoing
        path = Path(options["file"])
    download_dir = Path(options["download-dir"])
    inbox = Inbox(download_dir)
    where = f"{options['host']}:{options['port']}"
    user = options["user"].decode("ascii")

    def logged_in(connection: ChatConnection) -> None:
        # Once the process is stopping, the connection closing is no news.
        reactor.addSystemEventTrigger("before", "shutdown", connection.attach, _QuietView())
        banner = f"logged in as {user} at {where} over {connection.transport_name}"
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
        error_line(stderr, f"{PROGRAM}: {_login_error(options, failure)}")
        on_exit(1)

    return connect(options, reactor, inbox).addCallbacks(logged_in, failed)


def main(
    argv: Sequence[str] | None = None,
    reactor=None,  # type: ignore[no-untyped-def]
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the client until its session ends; return the process exit status.

    Exit status 2 for bad usage, including a ``--file`` that cannot be sent
    (checked before connecting); 1 when connecting or logging in fails, the
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
        started = start(options, reactor, stdout, stderr, outcome.exit, outgoing)
        started.addErrback(crashed)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome.status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
