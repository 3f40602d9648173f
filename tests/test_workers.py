"""``--workers N``: options, the workers' command line, the supervisor and its output path.

Most tests use a fake reactor that records ``spawnProcess`` instead of
running anything. The end-to-end test runs ``chat_server --workers 2`` for
real, with a throwaway ``redis-server`` for ``--cluster`` (skipped without
one).
"""

import io
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.runner.procmon import LoggingProtocol
from twisted.scripts.twistd import ServerOptions

from chatproto.cli import console_observer
from chatproto.cluster.address import RedisAddress
from chatproto.server.reuseport import ReusePortCheck
from chatproto.server.workers import WORKER_NAMESPACE, WorkerMonitor
from chatproto.tap import Options, makeService
from tests.e2e_support import (
    CHAT_SERVER,
    HOST,
    TIMEOUT_S,
    Server,
    free_port,
    pid_alive,
    wait_until,
)
from tests.procfs import child_pids, serves_port
from tests.redis_support import RedisServer
from tests.sockets import login_when_free
from tests.test_e2e import assert_one_line_error, run_chat_server

CLUSTER = "redis://127.0.0.1:6379/0"


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


# -- options ---------------------------------------------------------------------------------


def test_defaults_are_one_process_without_cluster_or_reuse_port() -> None:
    """A bare port gives one process, no --cluster and no --reuse-port."""
    options = parse("9000")
    assert (options["workers"], options["cluster"], options["reuse-port"]) == (1, None, 0)


def test_workers_and_cluster_are_parsed() -> None:
    """--workers takes a whole number and --cluster a Redis URL, after the ports too."""
    options = parse("9000", "--workers", "4", "--cluster=redis://10.0.0.5:6380/2", "--reuse-port")
    assert (options["workers"], options["cluster"], options["reuse-port"]) == (
        4,
        RedisAddress("10.0.0.5", 6380, 2),
        1,
    )


def test_one_worker_needs_no_cluster() -> None:
    """--workers 1 is the single process, which needs no --cluster."""
    assert parse("9000", "--workers", "1")["workers"] == 1


def test_workers_without_cluster_is_a_usage_error() -> None:
    """More than one worker without --cluster is refused: the users would not be shared."""
    with pytest.raises(usage.UsageError) as raised:
        parse("9000", "--workers", "2")
    assert str(raised.value) == (
        "--workers needs --cluster: separate processes share users only through Redis"
    )


@pytest.mark.parametrize("count", ["0", "-1", "two", "1.5"])
def test_workers_must_be_a_positive_whole_number(count: str) -> None:
    """--workers 0, negative or not a whole number is a usage error."""
    with pytest.raises(usage.UsageError):
        parse("9000", "--workers", count, "--cluster", CLUSTER)


@pytest.mark.parametrize(
    "extra",
    [("--listen", "tcp6:9001"), ("--metrics-port", "9100")],
    ids=["listen", "metrics-port"],
)
def test_workers_refuse_listeners_they_cannot_share(extra: tuple[str, ...]) -> None:
    """--listen endpoints and --metrics-port cannot be bound by several workers: refused."""
    with pytest.raises(usage.UsageError, match="--workers"):
        parse("9000", "--workers", "2", "--cluster", CLUSTER, *extra)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--workers", "3", "--cluster", CLUSTER, "9000"],
            [f"--cluster={CLUSTER}", "--reuse-port", "--", "9000"],
        ),
        (
            ["--workers=3", f"--cluster={CLUSTER}", "9000", "9001"],
            [f"--cluster={CLUSTER}", "--reuse-port", "--", "9000", "9001"],
        ),
        (
            ["9000", "-v", "--workers", "3", "9001", "--cluster", CLUSTER, "--no-random"],
            ["-v", f"--cluster={CLUSTER}", "--no-random", "--reuse-port", "--", "9000", "9001"],
        ),
        (
            ["-vp", "9000", "--work=3", "--cluster", CLUSTER, "-i", HOST, "--max-line", "100"],
            ["-v", "-p", "9000", f"--cluster={CLUSTER}", "-i", HOST, "--max-line=100"]
            + ["--reuse-port", "--"],
        ),
        (
            ["9000", "--reuse-port", "--workers", "2", "--cluster", CLUSTER],
            ["--reuse-port", f"--cluster={CLUSTER}", "--", "9000"],
        ),
        (
            ["9000", "--spool-dir", "--workers=9", "--workers", "2", "--cluster", CLUSTER],
            ["--spool-dir=--workers=9", f"--cluster={CLUSTER}", "--reuse-port", "--", "9000"],
        ),
    ],
    ids=["space", "equals", "after_ports", "short_and_abbreviated", "reuse_port_given", "value"],
)
def test_worker_args_drop_workers_and_add_reuse_port(argv: list[str], expected: list[str]) -> None:
    """A worker gets the same options without --workers, with --reuse-port once, ports last."""
    options = parse(*argv)
    assert options.worker_args() == expected
    # A worker parses them back to the same configuration, as one process sharing the ports.
    worker = parse(*options.worker_args())
    assert {**worker, "workers": 3, "reuse-port": 1} == {**options, "workers": 3, "reuse-port": 1}
    assert (worker["workers"], worker["reuse-port"]) == (1, 1)


def test_worker_args_under_twistd_come_from_the_chat_arguments() -> None:
    """Under twistd the workers get the chat subcommand's arguments, not twistd's own."""
    config = ServerOptions()
    config.parseOptions(
        ["-n", "--pidfile", "x.pid", "chat", "-p", "9000", "--workers", "2"]
        + ["--cluster", CLUSTER]
    )
    assert config.subOptions.worker_args() == [
        "-p",
        "9000",
        f"--cluster={CLUSTER}",
        "--reuse-port",
        "--",
    ]


@pytest.mark.e2e
def test_chat_server_workers_without_cluster_exits_2_with_one_line(tmp_path: Path) -> None:
    """chat_server --workers 2 without --cluster exits 2 with one line on stderr only."""
    result = run_chat_server(tmp_path, "--workers", "2", "--interface", HOST, str(free_port()))
    assert_one_line_error(result, 2)
    assert b"--workers needs --cluster" in result.stderr


@pytest.mark.e2e
def test_chat_server_workers_0_exits_2_with_one_line(tmp_path: Path) -> None:
    """chat_server --workers 0 exits 2 with one line on stderr only."""
    result = run_chat_server(tmp_path, "--workers", "0", "--cluster", CLUSTER, "9000")
    assert_one_line_error(result, 2)


# -- the supervisor, with a fake reactor ------------------------------------------------------


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


def test_make_service_with_3_workers_runs_3_processes_with_the_worker_command() -> None:
    """--workers 3 builds a port check and a monitor of 3 `python -m chatproto` workers."""
    args = ["9000", "-v", "--workers", "3", "--cluster", CLUSTER, "--interface", HOST, "9001"]
    (check, monitor), reactor = supervisor(*args)
    assert isinstance(check, ReusePortCheck)
    assert (check.ports, check.interface) == ([9000, 9001], HOST)
    assert isinstance(monitor, WorkerMonitor)
    monitor.startService()  # spawns nothing real: the reactor records the processes
    command = [sys.executable, "-m", "chatproto", "-v", f"--cluster={CLUSTER}"]
    command += [f"--interface={HOST}", "--reuse-port", "--", "9000", "9001"]
    assert [process.args for process in reactor.processes] == [command] * 3
    assert all(process.env == dict(os.environ) for process in reactor.processes)
    assert sorted(monitor.protocols) == ["worker-1", "worker-2", "worker-3"]


def test_supervisor_does_not_build_a_chat_service_or_listen() -> None:
    """The supervising process holds no chat service and no listener of its own."""
    services, reactor = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    assert [type(service) for service in services] == [ReusePortCheck, WorkerMonitor]
    assert (reactor.processes, reactor.getDelayedCalls()) == ([], [])


def test_stop_waits_until_every_worker_has_exited() -> None:
    """stopService sends SIGTERM to each worker and fires only once all of them have exited."""
    (_, monitor), reactor = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    monitor.startService()
    first, second = reactor.processes
    stopped = monitor.stopService()
    assert (first.signals, second.signals) == (["TERM"], ["TERM"])
    fired: list[None] = []
    stopped.addCallback(fired.append)
    first.end(Failure(ProcessDone(0)))
    assert fired == []
    second.end(Failure(ProcessTerminated(signal=signal.SIGTERM)))
    assert fired == [None]
    reactor.advance(monitor.maxRestartDelay)
    assert len(reactor.processes) == 2  # nobody restarted after the stop


def test_stop_kills_a_worker_that_ignores_sigterm() -> None:
    """A worker still running killTime seconds after SIGTERM gets SIGKILL."""
    (_, monitor), reactor = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    monitor.startService()
    stopped = monitor.stopService()
    reactor.advance(monitor.killTime)
    assert [process.signals for process in reactor.processes] == [["TERM", "KILL"]] * 2
    for process in reactor.processes:
        process.end(Failure(ProcessTerminated(signal=signal.SIGKILL)))
    assert stopped.called


def test_stop_with_no_worker_running_fires_at_once() -> None:
    """A monitor that never started any worker stops at once."""
    (_, monitor), _ = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    assert monitor.stopService().called


def test_a_worker_that_dies_is_started_again() -> None:
    """A worker that exits while the supervisor runs is started again with the same command."""
    (_, monitor), reactor = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    monitor.startService()
    reactor.advance(monitor.threshold)  # it ran long enough: restart at once
    dead = reactor.processes[0]
    dead.end(Failure(ProcessTerminated(signal=signal.SIGKILL)))
    reactor.advance(0)
    assert len(reactor.processes) == 3
    assert reactor.processes[2].args == dead.args
    assert sorted(monitor.protocols) == ["worker-1", "worker-2"]


# -- the workers' output ----------------------------------------------------------------------


def worker_output(is_verbose: bool) -> tuple[str, str]:
    """Run a worker's output through the monitor and chat_server's console observer.

    The worker writes two traffic events in pieces that split lines, one
    stderr line, then exits. Returns what chat_server prints: (stdout, stderr).
    """
    (_, monitor), reactor = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    with capturedLogs() as events:
        monitor.startService()
        protocol = reactor.processes[0].protocol
        protocol.outReceived(b"RCVD from 127.0.0.1: ME IS alice\\n\nSENT to 127.")
        protocol.outReceived(b"0.0.1: OK\\n\nRCVD from alice (127.0.0.1):\n  BROAD")
        protocol.outReceived(b"CAST\\n\n  2\\n\n  hi\n")
        protocol.errReceived(b"chat_server: something went wrong\n")
        reactor.processes[0].end(Failure(ProcessDone(0)))
    out, err = io.StringIO(), io.StringIO()
    observe = console_observer(out, err, is_verbose=is_verbose)
    for event in events:
        observe(event)
    return out.getvalue(), err.getvalue()


def test_worker_lines_reach_stdout_whole_with_v() -> None:
    """With -v each line a worker writes is printed once, whole, without prefix."""
    out, err = worker_output(is_verbose=True)
    assert out == (
        "RCVD from 127.0.0.1: ME IS alice\\n\n"
        "SENT to 127.0.0.1: OK\\n\n"
        "RCVD from alice (127.0.0.1):\n"
        "  BROADCAST\\n\n"
        "  2\\n\n"
        "  hi\n"
    )
    assert err == "chat_server: something went wrong\n"


def test_without_v_only_the_workers_stderr_is_printed() -> None:
    """Without -v nothing reaches stdout; a worker's stderr line (an error) still does."""
    assert worker_output(is_verbose=False) == ("", "chat_server: something went wrong\n")


def test_worker_lines_are_log_events_of_the_workers_namespace() -> None:
    """A worker's line is a log event in WORKER_NAMESPACE with its text and its stream."""
    (_, monitor), reactor = supervisor("9000", "--workers", "2", "--cluster", CLUSTER)
    with capturedLogs() as events:
        monitor.startService()
        reactor.processes[1].protocol.outReceived(b"SENT to 127.0.0.1: OK\\n\n")
    (event,) = [event for event in events if "line" in event]
    assert (event["log_namespace"], event["line"], event["stream"]) == (
        WORKER_NAMESPACE,
        "SENT to 127.0.0.1: OK\\n",
        "stdout",
    )


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    return redis.url


class Supervisor:
    """A ``chat_server --workers N`` process, and every worker pid seen under it.

    Attributes:
        server: the chat_server process.
        port: the one port it serves.
        seen: the pid of every worker seen so far.
    """

    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port
        self.seen: set[int] = set()

    def workers(self) -> list[int]:
        """Return the pids of the workers running now (and remember them)."""
        pids = child_pids(self.server.process.pid)
        self.seen.update(pids)
        return pids

    def serving(self, count: int) -> bool:
        """Whether exactly ``count`` workers run and each listens on the port (TCP and UDP)."""
        if self.server.process.poll() is not None:
            raise AssertionError(f"chat_server exited with {self.server.process.returncode}")
        pids = self.workers()
        return len(pids) == count and all(serves_port(pid, self.port) for pid in pids)

    def kill_leftovers(self) -> None:
        """SIGKILL every worker seen that is still alive (a parent that died leaves them)."""
        for pid in self.seen:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_supervisor(launch, redis_url: str) -> Iterator[Callable[..., Supervisor]]:  # type: ignore[no-untyped-def]
    """Start ``chat_server --workers 2 --cluster <redis>`` on a free port with ``extra``
    options (through ``launch``, not waiting: the workers come up on their own);
    at teardown stop it and kill any worker it left behind."""
    started: list[Supervisor] = []

    def start(*extra: str) -> Supervisor:
        port = free_port()
        args = ["--workers", "2", "--cluster", redis_url, "--interface", HOST, str(port)]
        command = [str(CHAT_SERVER), *args, *extra]
        server = launch("chat_server", [port], wait=None, command=command)
        started.append(Supervisor(server, port))
        return started[-1]

    yield start
    for supervisor in started:
        supervisor.server.stop()
        supervisor.kill_leftovers()


def test_chat_server_with_2_workers_serves_restarts_and_stops(start_supervisor, tcp):
    """chat_server --workers 2 -v: both workers serve the port, their -v lines reach its
    stdout, a killed worker is replaced, and SIGTERM stops them all with status 0."""
    supervisor = start_supervisor("-v")
    server, port = supervisor.server, supervisor.port
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    login_when_free(tcp(port), b"alice")  # a worker answers OK once it is in the cluster
    victim = supervisor.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in supervisor.workers(), what="the killed worker to go")
    wait_until(lambda: supervisor.serving(2), what="a new worker")
    login_when_free(tcp(port), b"bob")
    assert (server.stop(), server.stderr) == (0, b"")
    assert len(supervisor.seen) == 3
    assert not [pid for pid in supervisor.seen if pid_alive(pid)]
    lines = server.stdout.decode("ascii").splitlines()
    for user in ("alice", "bob"):
        assert f"RCVD from {HOST}: ME IS {user}\\n" in lines
    assert "" not in lines
    assert lines.count(f"SENT to {HOST}: OK\\n") == 2


def test_workers_share_one_namespace(start_supervisor, tcp, redis: RedisServer) -> None:
    """Users spread over the workers by the kernel talk to each other, and a userid
    online on one worker is refused on the others."""
    supervisor = start_supervisor()
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    clients = {}
    for index in range(16):
        name = b"user%d" % index
        clients[name] = tcp(supervisor.port)
        login_when_free(clients[name], name)
    holders = {redis.execute(b"GET", b"chatproto:0:user:" + name) for name in clients}
    assert len(holders) == 2  # the kernel put users on both workers

    names = list(clients)
    for index, name in enumerate(names):
        receiver = names[(index + 1) % len(names)]
        clients[name].send(b"SEND %b\n%d\nhi from %b" % (receiver, 8 + len(name), name))
    for index, name in enumerate(names):
        sender = names[index - 1]
        assert clients[name].recv_delivery() == (sender, b"hi from " + sender, False)
    for _ in range(8):  # new connections land on either worker: refused on both
        duplicate = tcp(supervisor.port)
        duplicate.send(b"ME IS user0\n")
        duplicate.expect(b"ERROR\n")


def test_chat_server_with_workers_stops_them_all_on_sigint(start_supervisor):
    """SIGINT to chat_server --workers 2 (Ctrl-C) stops both workers; it exits 0, silent."""
    supervisor = start_supervisor()
    server = supervisor.server
    # Both workers listening means the parent has long been in reactor.run,
    # where SIGINT is Twisted's to handle.
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    server.process.send_signal(signal.SIGINT)
    status = server.process.wait(timeout=TIMEOUT_S)
    assert (status, server.stdout, server.stderr) == (0, b"", b"")
    assert not [pid for pid in supervisor.seen if pid_alive(pid)]


@pytest.mark.e2e
def test_chat_server_with_workers_on_a_port_in_use_exits_1_with_one_line(tmp_path):
    """chat_server --workers 2 on a port held without SO_REUSEPORT exits 1 before any worker."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, port))
        holder.listen()
        result = run_chat_server(
            tmp_path, "--workers", "2", "--cluster", CLUSTER, "--interface", HOST, str(port)
        )
    assert_one_line_error(result, 1)
    assert b"Address already in use" in result.stderr
