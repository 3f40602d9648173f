"""What ``chat_client`` shows, and its front ends.

* :class:`ChatView` and :class:`ChatConnection` are the two sides of the
  small interface between a connection (TCP or UDP, in
  :mod:`chatproto.client.cli`) and a front end; the front ends use nothing else
  of the connection.
* :func:`render_message`, :func:`json_record`, :class:`Console` and
  :class:`ProgressReporter` turn messages and progress into output.
* Three front ends receive what the connection reports (:class:`ChatView`):
  :class:`TerminalSession` (typed lines over ``twisted.internet.stdio``),
  :class:`JsonLinesView` (``--listen``) and :class:`FileSendJob`
  (``--send USER --file PATH``).
"""

import json
import os
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Final
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IReactorTime
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chatproto.client.files import (
    MAX_TEXT_BYTES,
    Received,
    SavedFile,
    TextMessage,
    UnsavedFile,
    open_file_to_send,
)
from chatproto.limits import MIB
from chatproto.wire.grammar import is_valid_userid

PROGRAM = "chat_client"

#: A file bigger than this shows a progress line while it is sent.
PROGRESS_MIN_BYTES: Final = MIB
#: The progress line moves in steps of this many percent.
PROGRESS_STEP_PERCENT: Final = 10

HELP_TEXT = """\
Type a line to send it to everyone (BROADCAST). Commands:
  /send USER[,USER...] TEXT   send TEXT to these users only
  /file USER [USER ...] PATH  send a file (TCP only; quote a PATH that has spaces)
  /help                       show this help
  /quit                       leave (so does Ctrl-D)
A line starting with // sends the text after its first /.
Received files are saved in {download_dir} (--download-dir)."""


# -- the connection interface --------------------------------------------------


class ChatView(TypingProtocol):
    """What a front end hears from its connection once logged in."""

    def message_received(self, message: Received) -> None:
        """A delivery arrived (text, saved file, or a file that could not be saved)."""

    def message_refused(self) -> None:
        """The server answered ``ERROR`` to something this client sent."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        """The session ended: as asked (``finish``) if ``is_expected``, else for ``reason``."""


class ChatConnection(TypingProtocol):
    """What a front end may ask of its connection, TCP or UDP.

    Attributes:
        transport_name: ``"TCP"`` or ``"UDP"``.
        max_body_bytes: the largest body :meth:`send_text` or :meth:`send_file` takes.
        can_send_files: whether :meth:`send_file` works (TCP only).
        is_sending_file: whether a file transfer is under way or queued.
    """

    transport_name: str
    max_body_bytes: int
    can_send_files: bool
    is_sending_file: bool

    def attach(self, view: ChatView) -> None:
        """Report to ``view`` from now on, starting with anything that came before."""

    def send_text(self, recipients: Sequence[bytes] | None, body: bytes) -> None:
        """Send ``body`` to ``recipients`` (``None``: BROADCAST)."""

    def send_file(
        self,
        recipients: Sequence[bytes],
        source: BinaryIO,
        size: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Deferred[int]:
        """Stream ``source`` to ``recipients`` as a chunked message."""
        raise NotImplementedError

    def finish(self) -> None:
        """Send what is queued, then end the session (``connection_lost(True, ...)``)."""


# -- showing messages ----------------------------------------------------------


def clock_text(seconds: float) -> str:
    """Return ``seconds`` since the epoch as local ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def render_message(message: Received, seconds: float) -> str:
    """Return the terminal line(s) for a received message, stamped with ``seconds``.

    Text shows as ``[HH:MM:SS] <sender>: <text>``; the lines after the first
    of a multi-line text are indented, so they cannot pass for messages.
    """
    stamp = clock_text(seconds)
    match message:
        case TextMessage(sender=sender, text=text):
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            return f"[{stamp}] {sender}: " + "\n  ".join(lines)
        case SavedFile(sender=sender, path=path, size=size):
            return f"[{stamp}] {sender} sent a file: {path} ({size} bytes)"
        case UnsavedFile(sender=sender, size=size, reason=reason):
            return (
                f"[{stamp}] {sender} sent a file ({size} bytes) that could not be saved: {reason}"
            )
    raise TypeError(f"not a received message: {message!r}")


def json_record(message: Received) -> dict[str, object]:
    """Return the ``--listen`` JSON object for a message.

    Keys: ``sender``, ``size`` and one of ``text``, ``path`` (absolute) or
    ``error`` (a file that could not be saved).
    """
    match message:
        case TextMessage(sender=sender, text=text, size=size):
            return {"sender": sender, "size": size, "text": text}
        case SavedFile(sender=sender, path=path, size=size):
            return {"sender": sender, "size": size, "path": os.path.abspath(path)}
        case UnsavedFile(sender=sender, size=size, reason=reason):
            return {"sender": sender, "size": size, "error": reason}
    raise TypeError(f"not a received message: {message!r}")


class Console:
    """User-facing text output, with a progress line rewritten in place on terminals.

    Args:
        write: writes text as it is (the caller adds no newline).
        is_terminal: whether the output is a terminal; elsewhere each
            progress step is a line of its own.
    """

    def __init__(self, write: Callable[[str], None], is_terminal: bool) -> None:
        self._write = write
        self._is_terminal = is_terminal
        self._is_progress_open = False

    def line(self, text: str) -> None:
        """Write ``text`` as a line of its own (ending an open progress line first)."""
        if self._is_progress_open:
            self._write("\n")
            self._is_progress_open = False
        self._write(text + "\n")

    def progress(self, text: str) -> None:
        """Show ``text`` as the current progress line."""
        if self._is_terminal:
            self._write("\r" + text)
            self._is_progress_open = True
        else:
            self._write(text + "\n")


class ProgressReporter:
    """Turn a sender's progress into a line every ``PROGRESS_STEP_PERCENT`` percent.

    Only for files over ``PROGRESS_MIN_BYTES``; smaller ones show nothing.
    """

    def __init__(self, console: Console, label: str) -> None:
        self._console = console
        self._label = label
        self._shown_percent = 0

    def __call__(self, sent: int, size: int) -> None:
        """Note that ``sent`` of ``size`` bytes were written."""
        if size <= PROGRESS_MIN_BYTES:
            return
        percent = sent * 100 // size // PROGRESS_STEP_PERCENT * PROGRESS_STEP_PERCENT
        if percent > self._shown_percent:
            self._shown_percent = percent
            self._console.progress(f"sending {self._label}: {percent}% ({sent} of {size} bytes)")


def parse_recipients(words: Sequence[str]) -> list[bytes]:
    """Return the userids named by ``words``, each a name or comma-separated names.

    Raises:
        ValueError: a name is not a valid userid (PROTOCOL §2), or there is none.
    """
    recipients: list[bytes] = []
    for word in words:
        for name in word.split(","):
            raw = name.encode("utf-8", "surrogateescape")
            if not is_valid_userid(raw):
                raise ValueError(f"not a valid userid: {name!r}")
            recipients.append(raw)
    if not recipients:
        raise ValueError("no recipient")
    return list(dict.fromkeys(recipients))


def error_line(err: IO[str], text: str) -> None:
    err.write(text + "\n")
    err.flush()


# -- front ends ----------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class TerminalSession(LineReceiver):
    """The interactive front end: typed lines in, messages out, over ``StandardIO``.

    A typed line is a BROADCAST; ``/send``, ``/file``, ``/help`` and ``/quit``
    are commands (see ``HELP_TEXT``). End of input (Ctrl-D) is ``/quit``.
    When the session ends, the output is flushed and ``on_exit`` is called
    with the exit status: 0 after ``/quit``, 1 if the server went away.

    Args:
        connection: the logged-in connection.
        clock: the time source for message stamps.
        on_exit: called once, with the exit status, when output is closed.
        banner: the first line shown.
        is_terminal: whether the output is a terminal (for progress lines).
        download_dir: where received files go (named in ``/help``).

    Attributes:
        console: the session's output.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_TEXT_BYTES
    log = Logger()

    def __init__(
        self,
        connection: ChatConnection,
        clock: IReactorTime,
        on_exit: Callable[[int], None],
        banner: str,
        is_terminal: bool,
        download_dir: Path,
    ) -> None:
        self._connection = connection
        self._clock = clock
        self._on_exit = on_exit
        self._banner = banner
        self._download_dir = download_dir
        self.console = Console(self._write, is_terminal)
        self._is_quitting = False
        self._is_output_lost = False
        self._exit_status: int | None = None
        self._commands: dict[str, Callable[[str], None]] = {
            "/help": self._help,
            "/quit": self._quit,
            "/send": self._send,
            "/file": self._file,
        }

    def _write(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8", "replace"))

    # -- stdin ---------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.console.line(self._banner)
        self._connection.attach(self)

    def lineReceived(self, line: bytes) -> None:
        text = line.removesuffix(b"\r").decode("utf-8", "surrogateescape")
        try:
            self._on_line(text)
        except Exception:
            self.log.failure("error handling the typed line {line!r}", line=text)
            self.console.line("internal error; the line was not sent")

    def lineLengthExceeded(self, line: bytes) -> None:
        self.console.line(f"line too long (more than {self.MAX_LENGTH} bytes); not sent")

    def readConnectionLost(self) -> None:
        """End of input: leave as ``/quit`` does."""
        self._quit("")

    def writeConnectionLost(self) -> None:
        """The terminal is gone: nobody can read the output, so leave."""
        self._is_output_lost = True
        self._quit("")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._on_exit(self._exit_status if self._exit_status is not None else 0)

    # -- ChatView ------------------------------------------------------------------

    def message_received(self, message: Received) -> None:
        self.console.line(render_message(message, self._clock.seconds()))

    def message_refused(self) -> None:
        self.console.line("the server answered ERROR: it refused a message")

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        if not is_expected:
            self.console.line(f"connection lost: {reason}")
        self._exit(0 if is_expected else 1)

    # -- commands ------------------------------------------------------------------

    def _on_line(self, text: str) -> None:
        if self._is_quitting:
            self.console.line("leaving; input ignored")
            return
        if not text.strip():
            return
        if text.startswith("//"):
            self._send_text(None, text[1:])
        elif text.startswith("/"):
            name, _, arguments = text.partition(" ")
            command = self._commands.get(name)
            if command is None:
                self.console.line(f"unknown command {name}; /help lists the commands")
            else:
                command(arguments.lstrip(" "))
        else:
            self._send_text(None, text)

    def _help(self, arguments: str) -> None:
        self.console.line(HELP_TEXT.format(download_dir=os.path.abspath(self._download_dir)))

    def _quit(self, arguments: str) -> None:
        if self._is_quitting:
            return
        self._is_quitting = True
        if self._connection.is_sending_file:
            self.console.line("leaving once the file transfer is done")
        self._connection.finish()

    def _send(self, arguments: str) -> None:
        names, _, text = arguments.partition(" ")
        text = text.lstrip(" ")
        if not names or not text:
            self.console.line("usage: /send USER[,USER...] TEXT")
            return
        try:
            recipients = parse_recipients([names])
        except ValueError as error:
            self.console.line(f"/send: {error}")
            return
        if self._send_text(recipients, text):
            stamp = clock_text(self._clock.seconds())
            self.console.line(f"[{stamp}] -> {names}: {text}")

    def _send_text(self, recipients: list[bytes] | None, text: str) -> bool:
        body = text.encode("utf-8", "surrogateescape")
        limit = self._connection.max_body_bytes
        if len(body) > limit:
            hint = "; longer messages need TCP (run without --udp)" if limit < MIB else ""
            self.console.line(f"message too long: {len(body)} bytes, at most {limit}{hint}")
            return False
        self._connection.send_text(recipients, body)
        return True

    def _file(self, arguments: str) -> None:
        try:
            words = shlex.split(arguments)
        except ValueError as error:
            self.console.line(f"/file: {error}")
            return
        if len(words) < 2:
            self.console.line("usage: /file USER [USER ...] PATH")
            return
        if not self._connection.can_send_files:
            self.console.line("files need TCP: run chat_client without --udp to send files")
            return
        try:
            recipients = parse_recipients(words[:-1])
        except ValueError as error:
            self.console.line(f"/file: {error}")
            return
        path = Path(os.path.expanduser(words[-1]))
        try:
            source, size = open_file_to_send(path, self._connection.max_body_bytes)
        except OSError as error:
            self.console.line(f"cannot send {path}: {error.strerror or error}")
            return
        names = ",".join(name.decode("ascii") for name in recipients)
        done = self._connection.send_file(
            recipients, source, size, ProgressReporter(self.console, str(path))
        )
        done.addCallbacks(
            lambda sent: self.console.line(f"sent {path} ({sent} bytes) to {names}"),
            lambda failure: self.console.line(
                f"sending {path} failed: {failure.getErrorMessage()}"
            ),
        )

    def _exit(self, status: int) -> None:
        """Flush and close the output; ``connectionLost`` then reports ``status``."""
        if self._exit_status is None:
            self._exit_status = status
            if self._is_output_lost:
                self._on_exit(status)  # nothing to flush, and no connectionLost to wait for
            else:
                self.transport.loseConnection()


class JsonLinesView:
    """The ``--listen`` front end: every message as one JSON line (see :func:`json_record`).

    Args:
        out: where the JSON lines go (flushed after each).
        err: where the reason for an unexpected end goes.
        on_exit: called with 0 when the session ends as asked, 1 otherwise.
    """

    def __init__(self, out: IO[str], err: IO[str], on_exit: Callable[[int], None]) -> None:
        self._out = out
        self._err = err
        self._on_exit = on_exit

    def message_received(self, message: Received) -> None:
        self._out.write(json.dumps(json_record(message)) + "\n")
        self._out.flush()

    def message_refused(self) -> None:
        """Nothing is sent in this mode, so there is nothing to report."""

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        if not is_expected:
            error_line(self._err, f"connection lost: {reason}")
        self._on_exit(0 if is_expected else 1)


class FileSendJob:
    """The ``--send USER --file PATH`` front end: send one file, then leave.

    Exit status 0 once the whole file was written and the server closed the
    connection without an ``ERROR``; 1 otherwise. Recipients that are not
    online are skipped by the server without telling anyone (PROTOCOL §3).

    Args:
        connection: the logged-in TCP connection.
        recipients: who gets the file.
        path: the file's name, for messages.
        source: the open file (owned from now on) and ``size`` its length.
        out: where the final "sent" line goes; ``err``: progress and errors.
        on_exit: called once with the exit status.
    """

    def __init__(
        self,
        connection: ChatConnection,
        recipients: Sequence[bytes],
        path: Path,
        source: BinaryIO,
        size: int,
        out: IO[str],
        err: IO[str],
        on_exit: Callable[[int], None],
    ) -> None:
        self._connection = connection
        self._recipients = recipients
        self._path = path
        self._source = source
        self._size = size
        self._out = out
        self._err = err
        self._on_exit = on_exit
        self._sent: int | None = None
        self._failure: str | None = None
        self._is_refused = False
        self._console = Console(self._write_err, err.isatty())

    def _write_err(self, text: str) -> None:
        self._err.write(text)
        self._err.flush()

    def start(self) -> None:
        """Queue the file and ask the connection to finish after it."""
        self._connection.attach(self)
        done = self._connection.send_file(
            self._recipients,
            self._source,
            self._size,
            ProgressReporter(self._console, str(self._path)),
        )
        done.addCallbacks(self._file_sent, self._file_failed)
        self._connection.finish()

    def _file_sent(self, sent: int) -> None:
        self._sent = sent

    def _file_failed(self, failure: Failure) -> None:
        self._failure = failure.getErrorMessage()

    def message_received(self, message: Received) -> None:
        """Messages to this user are not this mode's business."""

    def message_refused(self) -> None:
        self._is_refused = True

    def connection_lost(self, is_expected: bool, reason: str) -> None:
        if self._is_refused:
            self._console.line(f"{PROGRAM}: the server refused the file (it answered ERROR)")
            self._on_exit(1)
        elif self._sent is None or not is_expected:
            self._console.line(
                f"{PROGRAM}: sending {self._path} failed: {self._failure or reason}"
            )
            self._on_exit(1)
        else:
            names = ",".join(name.decode("ascii") for name in self._recipients)
            self._out.write(f"sent {self._path} ({self._sent} bytes) to {names}\n")
            self._out.flush()
            self._on_exit(0)
