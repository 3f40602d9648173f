"""The command line of ``chat_client``: :class:`Options`, and :class:`SetupError`.

Parsing only: what the options name (a file to send, a certificate) is
opened by :mod:`chatproto.client.cli` and :mod:`chatproto.client.endpoints`.
"""

import os

from twisted.python import usage

from chatproto.argtypes import AnyOrderOptions, port_number, positive_int
from chatproto.client.views import PROGRAM, parse_recipients
from chatproto.limits import Limits
from chatproto.wire.grammar import is_valid_userid

#: How a server argument names a unix socket: ``unix:PATH``.
UNIX_PREFIX = "unix:"


class Options(AnyOrderOptions):
    """Command-line options of ``chat_client``: the server, ``USERID`` and flags, in any order.

    The server is ``HOST PORT`` or ``unix:PATH`` (a unix socket: the rest of
    the argument is the path, as it is). After parsing: ``host`` (str) and
    ``port`` (int), both None for a unix socket; ``unix`` (the socket's path,
    or None); ``user`` (bytes); ``send`` (list of recipient userids as bytes);
    ``file`` (str or None); ``udp``, ``tls``, ``ca`` (str or None),
    ``insecure``, ``listen``, ``download-dir`` and ``max-message``.
    """

    synopsis = f"Usage: {PROGRAM} [options] (HOST PORT | unix:PATH) USERID"
    longdesc = (
        "Log in to a chat server as USERID and chat from the terminal: a typed line goes to "
        "everyone, /help lists the commands. With --listen, print received messages as JSON "
        "lines; with --send USER --file PATH, send one file and exit."
    )

    optFlags = [
        ["udp", None, "Talk to the server over UDP (short messages only; files need TCP)."],
        ["listen", None, "Print received messages as JSON lines until interrupted."],
        [
            "tls",
            None,
            "Connect with TLS (needs: pip install 'chatproto[tls]'), checking the server's "
            "certificate against the system's CAs.",
        ],
        [
            "insecure",
            None,
            "With --tls: do not check the server's certificate (anyone on the way could "
            "read and change the chat).",
        ],
    ]
    optParameters = [
        [
            "ca",
            None,
            None,
            "With --tls: trust the CA or self-signed certificate(s) in this PEM file instead "
            "of the system's CAs.",
        ],
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

    def parseArgs(self, *args: str) -> None:
        if len(args) == 2 and args[0].startswith(UNIX_PREFIX):
            where, user = args
            self["host"] = self["port"] = None
            self["unix"] = where.removeprefix(UNIX_PREFIX)
            if not self["unix"]:
                raise usage.UsageError(f"no path in {where!r} (unix:PATH)")
        elif len(args) == 3:
            host, port, user = args
            self["host"], self["port"], self["unix"] = host, port_number(port), None
        else:
            raise usage.UsageError("give HOST PORT USERID, or unix:PATH USERID")
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
        for flag in ("ca", "insecure"):
            if self[flag] and not self["tls"]:
                raise usage.UsageError(f"--{flag} needs --tls")
        if self["ca"] is not None and self["insecure"]:
            raise usage.UsageError("--ca and --insecure do not go together")
        if self["unix"] is not None and (self["tls"] or self["udp"]):
            flag = "--tls" if self["tls"] else "--udp"
            raise usage.UsageError(f"{flag} needs HOST PORT, not unix:PATH")
        if self["tls"] and self["udp"]:
            raise usage.UsageError("--tls and --udp do not go together (TLS needs TCP)")
        if not os.path.isdir(self["download-dir"]):
            raise usage.UsageError(f"not a directory: {self['download-dir']}")

    def limits(self) -> Limits:
        """Return the :class:`Limits` these options ask for."""
        return Limits(max_message_bytes=self["max-message"])


class SetupError(Exception):
    """Something the command line names cannot be used: say it in one line, exit with 2."""
