"""``--workers N``: a worker stops when its parent is gone (EOF on the pipe only it holds).

On a real pipe and a fake reactor; ``tests/test_workers_e2e.py`` kills a real
parent with SIGKILL.
"""

import os
from collections.abc import Iterator

import pytest
from twisted.internet.error import ConnectionDone, ReactorNotRunning
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure

from chatproto.server.workers import PARENT_PIPE_ENV, ParentWatch, parent_watch
from chatproto.tap import makeService
from tests.workers_support import CLUSTER, parse


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe ``(read end, write end)``; whichever end a test has not closed is closed after."""
    ends = os.pipe()
    yield ends
    for fd in ends:
        try:
            os.close(fd)
        except OSError:
            pass


class RunningReactor(MemoryReactorClock):
    """A fake reactor that is running, and whose ``stop`` raises ``ReactorNotRunning`` once
    it is not, as a real reactor's does."""

    def __init__(self) -> None:
        super().__init__()
        self.running = True

    def stop(self) -> None:
        if not self.running:
            raise ReactorNotRunning()
        super().stop()


def started_watch(read_end: int) -> tuple[ParentWatch, RunningReactor]:
    """A ParentWatch of ``read_end``, started on a running fake reactor."""
    reactor = RunningReactor()
    watch = ParentWatch(read_end, reactor)
    watch.startService()
    return watch, reactor


def the_reader(reactor: MemoryReactorClock):  # type: ignore[no-untyped-def]
    (reader,) = reactor.readers
    return reader


def test_parent_watch_is_made_only_for_a_process_the_monitor_started() -> None:
    """Only a process whose environment names the parent pipe gets a ParentWatch, on that fd."""
    reactor = MemoryReactorClock()
    assert parent_watch(reactor, {}) is None
    watch = parent_watch(reactor, {PARENT_PIPE_ENV: "0"})
    assert isinstance(watch, ParentWatch)
    assert watch.fd == 0


def test_the_watch_reads_the_pipe_and_ignores_what_is_written_to_it(pipe) -> None:
    """Started, the watch has the reactor read the pipe; bytes on it do not stop anything."""
    read_end, write_end = pipe
    watch, reactor = started_watch(read_end)
    reader = the_reader(reactor)
    assert reader.fileno() == read_end
    os.write(write_end, b"x")
    assert reader.doRead() is None
    assert reader.doRead() is None  # nothing more to read yet: not an EOF either
    assert not reactor.hasStopped


def test_eof_on_the_pipe_stops_the_reactor(pipe) -> None:
    """Once the parent's end is closed, reading gives ConnectionDone, and its connectionLost
    (what the reactor calls then) stops the reactor."""
    read_end, write_end = pipe
    watch, reactor = started_watch(read_end)
    reader = the_reader(reactor)
    os.close(write_end)
    reason = reader.doRead()
    assert isinstance(reason, ConnectionDone)
    assert not reactor.hasStopped  # the reactor calls connectionLost: the stop comes from there
    reader.connectionLost(Failure(reason))
    assert reactor.hasStopped


def test_a_stopped_watch_reads_nothing_and_stops_nothing(pipe) -> None:
    """After stopService the pipe is no longer watched, and a late EOF stops nothing."""
    read_end, write_end = pipe
    watch, reactor = started_watch(read_end)
    reader = the_reader(reactor)
    watch.stopService()
    assert reactor.readers == set()
    os.close(write_end)
    reader.connectionLost(Failure(reader.doRead()))
    assert not reactor.hasStopped


def test_eof_while_the_reactor_is_already_stopping_is_not_an_error(pipe) -> None:
    """The parent dying while the worker is already stopping (SIGTERM) raises nothing."""
    read_end, write_end = pipe
    watch, reactor = started_watch(read_end)
    reactor.stop()  # SIGTERM came first
    reader = the_reader(reactor)
    os.close(write_end)
    reader.connectionLost(Failure(reader.doRead()))


@pytest.mark.parametrize("environ", [{}, {PARENT_PIPE_ENV: "0"}])
def test_a_worker_service_watches_its_parent_only_when_started_by_the_monitor(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """makeService of a worker (not --workers itself) holds a ParentWatch on fd 0 exactly
    when its environment names the parent pipe."""
    monkeypatch.delenv(PARENT_PIPE_ENV, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    service = makeService(parse("9000", "--cluster", CLUSTER), reactor=MemoryReactorClock())
    watches = [child for child in service if isinstance(child, ParentWatch)]
    assert [watch.fd for watch in watches] == ([0] if environ else [])


def test_an_error_reading_the_pipe_is_logged_and_stops_nothing(pipe) -> None:
    """A read error (here EBADF) ends the watch with a logged failure, not a stop: it does
    not mean the parent is gone."""
    read_end, write_end = pipe
    watch, reactor = started_watch(read_end)
    reader = the_reader(reactor)
    os.close(read_end)
    reason = reader.doRead()
    assert isinstance(reason, OSError)
    logged: list[LogEvent] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        reader.connectionLost(Failure(reason))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert not reactor.hasStopped
    failures = [event["log_failure"] for event in logged if "log_failure" in event]
    assert [failure.check(OSError) for failure in failures] == [OSError]
