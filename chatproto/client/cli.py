"""``chat_client``: a terminal client for the chat server, and the Twisted side of it.

The wire format is parsed by :mod:`chatproto.wire.client_codec` and framed by the
encoders of :mod:`chatproto.wire.encode`. The client is split in three modules,
each importing only the ones before it:

* :mod:`chatproto.client.files`: what a delivery becomes (:class:`Inbox`,
  :class:`TextMessage`, :class:`SavedFile`) and sending files
  (:class:`ChunkedFileSender`).
* :mod:`chatproto.client.views`: the interface between a connection and a
  front end (:class:`ChatView`, :class:`ChatConnection`), how messages are
  shown, and the front ends :class:`TerminalSession`, :class:`JsonLinesView`
  and :class:`FileSendJob`.
* this module: the connection side, which adapts transports to the codec
  and runs one user's session on a single reactor, without threads --
  :class:`ChatClientProtocol` (TCP) and :class:`ChatDatagramClient` (UDP) log
  in, send messages, stream files and receive deliveries -- and the command
  line (:class:`Options`, :func:`main`), which wires a connection to a front
  end. It re-exports the public names of the other two.

The client prints only its user-facing output; diagnostics go to
``twisted.logger``, whose observer here shows nothing but unexpected errors.
"""

import ipaddress
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Final

from twisted.internet import endpoints
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet.stdio import StandardIO
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent, globalLogBeginner
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from chatproto.argtypes import AnyOrderOptions, port_number, positive_int
from chatproto.client.files import (
    ChunkedFileSender,
    Inbox,
    Received,
    SavedFile,
    TextMessage,
    UnsavedFile,
    claim_file_name,
    open_file_to_send,
    safe_file_stem,
)
from chatproto.client.views import (
    HELP_TEXT,
    PROGRAM,
    ChatConnection,
    ChatView,
    Console,
    FileSendJob,
    JsonLinesView,
    ProgressReporter,
    TerminalSession,
    clock_text,
    error_line,
    json_record,
    parse_recipients,
    render_message,
)
from chatproto.limits import Limits
from chatproto.wire.client_codec import (
    ClientDecoder,
    DeliveryData,
    DeliveryEnd,
    DeliveryStart,
    ErrorReply,
    Malformed,
    OkReply,
    ServerEvent,
    decode_server_datagram,
)
from chatproto.wire.encode import encode_command, encode_login, encode_message
from chatproto.wire.events import NEED_DATA, _NeedData
from chatproto.wire.grammar import MAX_SHORT_BODY, is_valid_userid

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
    # re-exported from chatproto.client.files
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

#: Longest wait for the TCP connection, and then for the reply to ``ME IS``.
LOGIN_TIMEOUT_S: Final = 10.0
#: Longest wait, after the client stopped sending, for the server to close.
CLOSE_TIMEOUT_S: Final = 10.0


# -- the connection side -------------------------------------------------------


class LoginRefusedError(Exception):
    """The server answered ``ERROR`` to ``ME IS``: the userid is in use (PROTOCOL §2)."""


class NoLoginReplyError(Exception):
    """The server did not answer ``ME IS`` in time, or closed before answering."""


class _ServerEventHandler:
    """The part of a connection shared by TCP and UDP: login state, events, the view.

    Attributes:
        user: the userid to log in as.
        logged_in: fires when the server answers ``OK``; fails with
            :class:`LoginRefusedError`, :class:`NoLoginReplyError` or the connection
            error otherwise.
        is_logged_in: whether ``OK`` has arrived.
    """

    log = Logger()

    def __init__(self, user: bytes, inbox: Inbox, clock: IReactorTime) -> None:
        self.user = user
        self.logged_in: Deferred[None] = Deferred()
        self.is_logged_in = False
        self._inbox = inbox
        self._clock = clock
        self._view: ChatView | None = None
        self._pending: list[Callable[[ChatView], None]] = []
        self._login_timer: IDelayedCall | None = None

    def attach(self, view: ChatView) -> None:
        """Report to ``view`` from now on, starting with what arrived before."""
        self._view = view
        pending, self._pending = self._pending, []
        for notify in pending:
            notify(view)

    def _notify(self, notify: Callable[[ChatView], None]) -> None:
        if self._view is None:
            self._pending.append(notify)
        else:
            notify(self._view)

    def _start_login_timer(self) -> None:
        self._login_timer = self._clock.callLater(LOGIN_TIMEOUT_S, self._login_timed_out)

    def _login_timed_out(self) -> None:
        self._login_timer = None
        self._fail_login(NoLoginReplyError(f"no reply to ME IS within {LOGIN_TIMEOUT_S:g} s"))
        self._drop()

    def _fail_login(self, error: Exception) -> None:
        """Fail :attr:`logged_in` unless it already fired."""
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        if not self.logged_in.called:
            self.logged_in.errback(Failure(error))

    def _drop(self) -> None:
        """Close the transport at once (the session is over)."""
        raise NotImplementedError

    def _handle(self, event: ServerEvent) -> None:
        """Act on one decoded server event."""
        match event:
            case OkReply():
                self._on_ok()
            case ErrorReply():
                self._on_error()
            case DeliveryStart(sender=sender):
                self._inbox.start(sender)
            case DeliveryData(data=data):
                self._inbox.add(data)
            case DeliveryEnd():
                message = self._inbox.finish()
                self._notify(lambda view: view.message_received(message))
            case Malformed():
                self._on_malformed(event)

    def _on_ok(self) -> None:
        if self.logged_in.called:
            self.log.warn("unexpected OK from the server")
            return
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        self.is_logged_in = True
        self.log.info("logged in as {user}", user=self.user.decode("ascii"))
        self.logged_in.callback(None)

    def _on_error(self) -> None:
        if not self.logged_in.called:
            user = self.user.decode("ascii")
            self._fail_login(LoginRefusedError(f"userid {user} is already in use"))
            self._drop()
        else:
            self._notify(lambda view: view.message_refused())

    def _on_malformed(self, event: Malformed) -> None:
        self.log.warn(
            "the server sent {reason}: {line!r}", reason=event.reason, line=event.line[:80]
        )
        if event.fatal:
            self._inbox.abort()


@implementer(IHalfCloseableProtocol)
class ChatClientProtocol(_ServerEventHandler, Protocol):
    """The client's TCP connection: log in, then send and receive (PROTOCOL §2-§4).

    Outgoing messages and files are queued and written one after the other,
    so a message typed during a file transfer never lands inside its body.
    Files are streamed by a :class:`ChunkedFileSender` registered on the
    transport. :meth:`finish` half-closes after the queue is empty and waits
    for the server to close, so an ``ERROR`` for the last message still
    arrives.

    Attributes:
        transport_name: ``"TCP"``.
        can_send_files: True.
        max_body_bytes: the largest message body (``limits.max_message_bytes``).
    """

    transport_name = "TCP"
    can_send_files = True

    def __init__(
        self, user: bytes, inbox: Inbox, clock: IReactorTime, limits: Limits | None = None
    ) -> None:
        super().__init__(user, inbox, clock)
        limits = limits if limits is not None else Limits()
        self.max_body_bytes = limits.max_message_bytes
        self._decoder = ClientDecoder(limits)
        self._outbox: deque[bytes | tuple[bytes, ChunkedFileSender]] = deque()
        self._file_sender: ChunkedFileSender | None = None
        self._is_finishing = False
        self._is_write_closed = False
        self._close_timer: IDelayedCall | None = None
        self._lost_reason: str | None = None

    @property
    def is_sending_file(self) -> bool:
        """Whether a file transfer is under way or queued."""
        return self._file_sender is not None or any(
            isinstance(item, tuple) for item in self._outbox
        )

    # -- Twisted callbacks -------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.write(encode_login(self.user))
        self._start_login_timer()

    def dataReceived(self, data: bytes) -> None:
        if self.transport.disconnecting:
            return
        try:
            self._decoder.feed(data)
            while not self.transport.disconnecting:
                event = self._decoder.next_event()
                if event is NEED_DATA:
                    return
                assert not isinstance(event, _NeedData)
                self._handle(event)
        except Exception:
            self.log.failure("error handling data from the server")
            self._lost_reason = "internal error (see above)"
            self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """The server closed its side: close ours too (a delivery cut short is dropped).

        A file still being sent could never arrive, so it is not flushed first.
        """
        if self._file_sender is not None:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our sending side is closed; keep reading until the server closes."""

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        for timer in (self._login_timer, self._close_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._login_timer = self._close_timer = None
        self._inbox.abort()
        self._abandon_outbox()
        if not self.logged_in.called:
            self._fail_login(NoLoginReplyError("the server closed the connection first"))
            return
        is_expected = self._is_finishing and self._lost_reason is None
        why = self._lost_reason or _reason_text(reason)
        self._notify(lambda view: view.connection_lost(is_expected, why))

    # -- ChatConnection ----------------------------------------------------------

    def send_text(self, recipients: Sequence[bytes] | None, body: bytes) -> None:
        """Queue ``body`` for ``recipients`` (``None``: BROADCAST); over 99 bytes it is chunked."""
        self._outbox.append(encode_message(recipients, body))
        self._pump()

    def send_file(
        self,
        recipients: Sequence[bytes],
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Deferred[int]:
        """Queue ``source`` (``size`` bytes, owned from now on) as a chunked ``SEND``.

        Returns:
            The sender's :attr:`ChunkedFileSender.done`.
        """
        sender = ChunkedFileSender(source, size, on_progress)
        self._outbox.append((encode_command(recipients), sender))
        self._pump()
        return sender.done

    def finish(self) -> None:
        """Write what is queued, then half-close and wait for the server to close."""
        self._is_finishing = True
        self._pump()

    # -- internals ---------------------------------------------------------------

    def _pump(self) -> None:
        """Write queued items in order; a file holds the line until it is done."""
        transport = self.transport
        if transport is None or self._is_write_closed:
            return
        while self._file_sender is None and self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, bytes):
                transport.write(item)
                continue
            command, sender = item
            transport.write(command)
            self._file_sender = sender
            sender.done.addBoth(self._file_done, sender)
            sender.start(transport)
        if self._file_sender is None and not self._outbox and self._is_finishing:
            self._close_write()

    def _file_done(self, result: object, sender: ChunkedFileSender) -> object:
        if self._file_sender is sender:
            self._file_sender = None
            if isinstance(result, Failure):
                # The body cannot be finished: only closing makes the server drop it.
                self._lost_reason = f"sending a file failed: {result.getErrorMessage()}"
                if self.transport is not None and not self.transport.disconnecting:
                    self.transport.abortConnection()
            else:
                self._pump()
        return result

    def _close_write(self) -> None:
        if self._is_write_closed:
            return
        self._is_write_closed = True
        self.transport.loseWriteConnection()
        self._close_timer = self._clock.callLater(CLOSE_TIMEOUT_S, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self.transport.abortConnection()

    def _abandon_outbox(self) -> None:
        """The connection is gone: stop the transfer and fail the queued ones."""
        if self._file_sender is not None:
            self._file_sender.stopProducing()
        while self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, tuple):
                item[1].stopProducing()

    def _on_malformed(self, event: Malformed) -> None:
        super()._on_malformed(event)
        if event.fatal:
            # The stream cannot be delimited any more: this connection is over.
            self._lost_reason = f"the server sent something unreadable ({event.reason})"
            self._drop()

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


class ChatDatagramClient(_ServerEventHandler, DatagramProtocol):
    """The client over UDP: one datagram per command, short bodies only (PROTOCOL §6).

    The socket is connected to the server, so only its datagrams arrive and
    an ICMP "port unreachable" reports a server that is down.

    Attributes:
        transport_name: ``"UDP"``.
        can_send_files: False: a chunked body cannot travel over UDP.
        max_body_bytes: 99, the largest short body.
        is_sending_file: always False.
    """

    transport_name = "UDP"
    can_send_files = False
    is_sending_file = False
    max_body_bytes = MAX_SHORT_BODY

    def __init__(
        self,
        user: bytes,
        server: tuple[str, int],
        inbox: Inbox,
        clock: IReactorTime,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(user, inbox, clock)
        self._server = server
        self._limits = limits if limits is not None else Limits()
        self._is_finishing = False
        self._is_closed = False

    # -- Twisted callbacks -------------------------------------------------------

    def startProtocol(self) -> None:
        self.transport.connect(*self._server)
        self.transport.write(encode_login(self.user))
        self._start_login_timer()

    def datagramReceived(self, datagram: bytes, address: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            for event in decode_server_datagram(datagram, self._limits):
                self._handle(event)
        except Exception:
            self.log.failure("error handling a datagram from the server")

    def connectionRefused(self) -> None:
        if not self.logged_in.called:
            self._fail_login(ConnectionRefusedError("nothing listens on that UDP port"))
            self._drop()
        elif not self._is_closed:
            self._close(False, "the server is not reachable over UDP")

    def stopProtocol(self) -> None:
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None
        if not self._is_closed:
            # Closed without being asked: under epoll, Twisted reports an ICMP
            # "port unreachable" on a connected UDP socket this way.
            self._is_closed = True
            self._inbox.abort()
            if not self.logged_in.called:
                self._fail_login(ConnectionRefusedError("nothing listens on that UDP port"))
            else:
                self._notify(
                    lambda view: view.connection_lost(
                        False, "the server is not reachable over UDP"
                    )
                )

    # -- ChatConnection ----------------------------------------------------------

    def send_text(self, recipients: Sequence[bytes] | None, body: bytes) -> None:
        """Send ``body`` (at most 99 bytes) to ``recipients`` in one datagram.

        Raises:
            ValueError: ``body`` is longer than a short body.
        """
        self.transport.write(encode_message(recipients, body, chunked=False))

    def send_file(
        self,
        recipients: Sequence[bytes],
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Deferred[int]:
        """Refuse: files travel as chunked bodies, and those need TCP (PROTOCOL §3)."""
        source.close()
        raise ValueError("files need TCP")

    def finish(self) -> None:
        """Stop listening; UDP has nothing in flight to wait for."""
        self._is_finishing = True
        self._close(True, "")

    def _close(self, is_expected: bool, reason: str) -> None:
        self._is_closed = True
        self._inbox.abort()
        if self.transport is not None:
            self.transport.stopListening()
        self._notify(lambda view: view.connection_lost(is_expected, reason))

    def _drop(self) -> None:
        self._is_closed = True
        if self.transport is not None:
            self.transport.stopListening()


def _reason_text(reason: Failure | None) -> str:
    """Say in a few words why a connection ended."""
    if reason is None or reason.check(ConnectionDone):
        return "the server closed the connection"
    return reason.getErrorMessage().rstrip(".")


# -- command line ----------------------------------------------------------------


class Options(AnyOrderOptions):
    """Command-line options of ``chat_client``: ``HOST PORT USERID`` and flags, in any order.

    After parsing: ``host`` (str), ``port`` (int), ``user`` (bytes), ``send``
    (list of recipient userids as bytes), ``file`` (str or None), ``udp``,
    ``listen``, ``download-dir`` and ``max-message``.
    """

    synopsis = "[options] HOST PORT USERID"
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


def start(
    options: Options,
    reactor,  # type: ignore[no-untyped-def]
    stdout: IO[str],
    stderr: IO[str],
    on_exit: Callable[[int], None],
) -> Deferred:
    """Open the file to send (if any), connect, log in and start the chosen front end.

    Every way this can end calls ``on_exit`` with the exit status, once.
    """
    source: BinaryIO | None = None
    if options["file"] is not None:
        path = Path(options["file"])
        try:
            source, size = open_file_to_send(path, options["max-message"])
        except OSError as error:
            error_line(stderr, f"{PROGRAM}: cannot send {path}: {error.strerror or error}")
            on_exit(1)
            return succeed(None)
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
            job = FileSendJob(connection, recipients, path, source, size, stdout, stderr, on_exit)
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

    Exit status 2 for bad usage; 1 when connecting or logging in fails, the
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
    if reactor is None:
        from twisted.internet import reactor
    globalLogBeginner.beginLoggingTo([error_observer(stderr)], redirectStandardIO=False)
    outcome = _Outcome(reactor, status=1 if options["send"] else 0)

    def begin() -> None:
        def crashed(failure: Failure) -> None:
            _log.failure("start-up failed", failure)
            outcome.exit(1)

        start(options, reactor, stdout, stderr, outcome.exit).addErrback(crashed)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome.status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
