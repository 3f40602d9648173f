"""The server's top service: listeners that fail to listen are one line, not a traceback."""

from twisted.application.service import IService, MultiService, Service
from twisted.internet.error import CannotListenError
from twisted.logger import Logger


class ListenError(SystemExit, Exception):
    """The server cannot listen on an address it was given; the message says which and why.

    An ``Exception``, so that twistd's start-up, which catches those, removes
    its pidfile and tells a waiting daemon parent; and a ``SystemExit``, so
    that re-raised out of twistd it ends the process with status 1 and no
    traceback. ``chat_server`` catches it and prints the message itself.

    Attributes:
        where: what could not be listened on (``TCP 127.0.0.1:9000``).
        reason: why not (``Address already in use``).
        code: the exit status, 1 (as for ``SystemExit``).
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot listen on {where}: {reason}")
        self.where = where
        self.reason = reason
        self.code = 1


def _reason(error: object) -> str:
    """Return why a listen failed, from its ``OSError`` (its ``strerror``) or its text."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def listen_address(interface: str, port: object) -> str:
    """Return ``interface:port``, an IPv6 interface in brackets (``[::1]:9000``)."""
    return f"[{interface}]:{port}" if ":" in interface else f"{interface}:{port}"


class ServerService(MultiService):
    """The server's services, started so that a listener that fails is one line, not a traceback.

    Listeners are added with :meth:`add_listener`, which records what each
    one is for the message. Whichever start is called (twistd calls
    ``privilegedStartService`` first, to bind before dropping privileges;
    ``chat_server`` only ``startService``), a child that cannot listen
    stops it with :class:`ListenError`, after logging the same line as a
    critical event (twistd's log shows it; ``chat_server`` prints it).
    """

    log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self._where: dict[IService, str] = {}

    def add_listener(self, listener: IService, where: str) -> None:
        """Add ``listener``, which listens on ``where`` (named so in a failure)."""
        listener.setServiceParent(self)
        self._where[listener] = where

    def privilegedStartService(self) -> None:
        """Bind every listener now (twistd does so before it drops privileges)."""
        Service.privilegedStartService(self)
        for child in self:
            self._starting(child, child.privilegedStartService)

    def startService(self) -> None:
        """Start every child (binding the listeners not bound yet)."""
        Service.startService(self)
        for child in self:
            self._starting(child, child.startService)

    def _starting(self, child: IService, start) -> None:  # type: ignore[no-untyped-def]
        """Call ``start``; turn a listen failure of ``child`` into :class:`ListenError`.

        A listener's ``OSError`` counts (a UNIX socket in a directory that does
        not exist fails in Twisted's lock file, before the bind); other
        errors are bugs and keep their traceback.
        """
        where = self._where.get(child)
        try:
            start()
        except CannotListenError as error:
            where = where or listen_address(error.interface or "*", error.port)
            self._fail(ListenError(where, _reason(error.socketError)))
        except OSError as error:
            if where is None:
                raise
            self._fail(ListenError(where, _reason(error)))

    def _fail(self, error: ListenError) -> None:
        """Log ``error`` as one critical line, then raise it."""
        self.log.critical("{message}", message=str(error))
        raise error
