"""Helpers shared by the ``test_robustness_*`` modules: expected deliveries, threads, reports."""

import threading
from collections.abc import Callable

import pytest

from tests.sockets import TcpClient


def delivery(sender: bytes, body: bytes) -> bytes:
    """Return the exact bytes a recipient gets for a short message."""
    return b"FROM %s\n%d\n%s" % (sender, len(body), body)


def send_tolerating_close(client: TcpClient, data: bytes) -> None:
    """Send ``data``; the server may close the connection before it has all of it."""
    try:
        client.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def start_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """Run ``target`` in a daemon thread; any exception is appended to ``errors``."""

    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print a measured figure so that it shows even with ``-q``."""
    with capsys.disabled():
        print(f"\n[robustness] {text}")
