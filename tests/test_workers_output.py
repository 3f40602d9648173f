"""``--workers N``: the workers' output path, through the monitor and the console observer."""

import io

from twisted.internet.error import ProcessDone
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from chatproto.cli import console_observer
from chatproto.server.workers import WORKER_NAMESPACE
from tests.workers_support import CLUSTER, supervisor

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
