"""``--workers N``: the supervisor, on a fake reactor that records ``spawnProcess``."""

import os
import signal
import sys

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure

from chatproto.server.reuseport import ReusePortCheck
from chatproto.server.workers import PARENT_PIPE_ENV, WorkerMonitor
from tests.e2e_support import HOST
from tests.workers_support import CLUSTER, supervisor

# -- the supervisor, with a fake reactor ------------------------------------------------------


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
    worker_env = {**os.environ, PARENT_PIPE_ENV: "0"}
    assert all(process.env == worker_env for process in reactor.processes)
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
