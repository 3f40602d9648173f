"""What ``chat_client`` shows, and its non-interactive front ends.

* :class:`ChatView` and :class:`ChatConnection` are the two sides of the
  small interface between a connection (TCP or UDP, in
  :mod:`chatproto.client.tcp` and :mod:`chatproto.client.udp`) and a front
  end; the front ends use nothing else of the connection.
* :func:`render_message`, :func:`json_record`, :class:`Console` and
  :class:`ProgressReporter` turn messages and progress into output.
* Three front ends receive what the connection reports (:class:`ChatView`):
  :class:`~chatproto.client.terminal.TerminalSession` (typed lines over
  ``twisted.internet.stdio``, in its own module), and here
  :class:`JsonLinesView` (``--listen``) and :class:`FileSendJob`
  (``--send USER --file PATH``).
"""

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Final
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from chatproto.client.inbox import Received, SavedFile, TextMessage, UnsavedFile
from chatproto.limits import MIB
from chatproto.wire.grammar import is_valid_userid

PROGRAM = "chat_client"

#: A file bigger than this shows a progress line while it is sent.
PROGRESS_MIN_BYTES: Final = MIB
#: The progress line moves in steps of this many percent.
PROGRESS_STEP_PERCENT: Final = 10

#: The one form of ``/file``: recipients as for ``/send``, then the rest of the line.
FILE_USAGE: Final = "/file USER[,USER...] PATH"

HELP_TEXT = """\
Type a line to send it to everyone (BROADCAST). Commands:
  /send USER[,USER...] TEXT   send TEXT to these users only
  /file USER[,USER...] PATH   send a file (TCP only); PATH is the rest of the line
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
        is_datagram: whether messages travel as datagrams (UDP), so only short
            bodies fit and a longer one needs TCP.
        is_sending_file: whether a file transfer is under way or queued.
    """

    transport_name: str
    max_body_bytes: int
    can_send_files: bool
    is_datagram: bool
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
        header: bytes = b"",
    ) -> Deferred[int]:
        """Stream ``header`` and then ``source`` to ``recipients`` as a chunked message."""
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
    ``error`` (a file that could not be saved); a file the sender named also
    has ``name``, the name as sent (the saved one may differ).
    """
    record: dict[str, object]
    match message:
        case TextMessage(sender=sender, text=text, size=size):
            return {"sender": sender, "size": size, "text": text}
        case SavedFile(sender=sender, path=path, size=size, name=name):
            record = {"sender": sender, "size": size, "path": os.path.abspath(path)}
        case UnsavedFile(sender=sender, size=size, reason=reason, name=name):
            record = {"sender": sender, "size": size, "error": reason}
        case _:
            raise TypeError(f"not a received message: {message!r}")
    if name is not None:
        record["name"] = name
    return record


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
        header: the file-name header sent before the file's bytes.
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
        header: bytes = b"",
    ) -> None:
        self._connection = connection
        self._recipients = recipients
        self._header = header
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
            self._header,
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
