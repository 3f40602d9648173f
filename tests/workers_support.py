"""Helpers shared by the ``--workers`` tests: option parsing and a fake reactor.

``SpawnRecorder`` records ``spawnProcess`` instead of running anything;
``supervisor`` builds the services ``makeService`` makes on it.
"""

from twisted.internet.error import ProcessExitedAlready
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.runner.procmon import LoggingProtocol

from chatproto.tap import Options, makeService

CLUSTER = "redis://127.0.0.1:6379/0"


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class FakeProcess:
    """The transport of a process that was never started: it records signals.

    Attributes:
        args: the argv it was spawned with.
        env: its environment.
        protocol: the monitor's protocol for it.
        signals: the signals sent to it, in order.
    """

    def __init__(self, protocol: LoggingProtocol, args: list[str], env: dict) -> None:
        self.protocol = protocol
        self.args = args
        self.env = env
        self.signals: list[str] = []
        self.ended = False

    def signalProcess(self, name: str) -> None:
        if self.ended:
            raise ProcessExitedAlready()
        self.signals.append(name)

    def end(self, reason: Failure) -> None:
        """Make the process exit with ``reason``, as the reactor reports it."""
        self.ended = True
        self.protocol.processEnded(reason)


class SpawnRecorder(Clock):
    """A clock whose ``spawnProcess`` records the process instead of running it.

    Attributes:
        processes: every process spawned, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[FakeProcess] = []

    def spawnProcess(self, protocol, executable, args, env=None, path=None, uid=None, gid=None):  # type: ignore[no-untyped-def]
        assert executable == args[0]
        process = FakeProcess(protocol, list(args), dict(env or {}))
        self.processes.append(process)
        protocol.makeConnection(process)
        return process


def supervisor(*argv: str) -> tuple[list, SpawnRecorder]:
    """Return the services makeService builds for ``argv``, and their reactor."""
    reactor = SpawnRecorder()
    return list(makeService(parse(*argv), reactor=reactor)), reactor
