"""The interactive front end of ``chat_client``: :class:`TerminalSession`.

Typed lines come in over ``twisted.internet.stdio``; messages go out through
a :class:`~chatproto.client.views.Console`. It talks to its connection only
through :class:`~chatproto.client.views.ChatConnection`.
"""

import os
from collections.abc import Callable
from pathlib import Path

from twisted.internet.interfaces import IHalfCloseableProtocol, IReactorTime
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chatproto.client.inbox import MAX_TEXT_BYTES, Received
from chatproto.client.sending import file_header_for, open_file_to_send
from chatproto.client.views import (
    FILE_USAGE,
    HELP_TEXT,
    ChatConnection,
    Console,
    ProgressReporter,
    clock_text,
    parse_recipients,
    render_message,
)


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
            is_datagram = self._connection.is_datagram
            hint = "; longer messages need TCP (run without --udp)" if is_datagram else ""
            self.console.line(f"message too long: {len(body)} bytes, at most {limit}{hint}")
            return False
        self._connection.send_text(recipients, body)
        return True

    def _file(self, arguments: str) -> None:
        names, _, rest = arguments.partition(" ")
        path_text = rest.strip(" ")  # the rest of the line, spaces inside included
        if not names or not path_text:
            self.console.line(f"usage: {FILE_USAGE}")
            return
        if not self._connection.can_send_files:
            self.console.line("files need TCP: run chat_client without --udp to send files")
            return
        try:
            recipients = parse_recipients([names])
        except ValueError as error:
            self.console.line(f"/file: {error}")
            return
        path = Path(os.path.expanduser(path_text))
        header = file_header_for(path)
        try:
            source, size = open_file_to_send(path, self._connection.max_body_bytes, len(header))
        except FileNotFoundError as error:
            self.console.line(_missing_file_hint(names, path_text) or _cannot_send(path, error))
            return
        except OSError as error:
            self.console.line(_cannot_send(path, error))
            return
        names = ",".join(name.decode("ascii") for name in recipients)
        done = self._connection.send_file(
            recipients, source, size, ProgressReporter(self.console, str(path)), header
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


def _cannot_send(path: Path, error: OSError) -> str:
    return f"cannot send {path}: {error.strerror or error}"


def _missing_file_hint(names: str, path_text: str) -> str | None:
    """Explain ``/file bob carol PATH`` (the old form) when that PATH is missing, else None.

    Under ``/file USER[,USER...] PATH`` the words after the first are all the
    path; when no such file exists and they start with a userid, the user
    most likely listed recipients with spaces.
    """
    words = path_text.split()
    if len(words) < 2:
        return None
    try:
        parse_recipients(words[:-1])
    except ValueError:
        return None
    fixed = ",".join([names, *words[:-1]])
    return (
        f"/file: no file {path_text!r}; recipients go in one comma-separated word: "
        f"/file {fixed} {words[-1]}"
    )
