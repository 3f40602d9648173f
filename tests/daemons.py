"""Daemonised ``twistd chat`` (no ``-n``) and its log file, for the deployment tests."""

import os
import re
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.e2e_support import (
    HOST,
    TIMEOUT_S,
    TWISTD,
    TWISTD_LINE,
    pid_alive,
    server_env,
    stop_process,
    wait_for_port,
    wait_until,
)


def read_pid(pidfile: Path) -> int | None:
    """Return the pid in ``pidfile``, or None while it is missing or incomplete."""
    try:
        text = pidfile.read_text()
    except FileNotFoundError:
        return None
    return int(text) if re.fullmatch(r"\d+\s*", text) else None


def daemon_command(
    logfile: Path,
    pidfile: Path,
    port: int,
    extra: Sequence[str],
    twistd_options: Sequence[str] = (),
) -> list[str]:
    """Return ``twistd [twistd_options] --logfile L --pidfile P chat -p PORT ... extra``."""
    return [
        str(TWISTD),
        *twistd_options,
        "--logfile",
        str(logfile),
        "--pidfile",
        str(pidfile),
        "chat",
        "-p",
        str(port),
        "--interface",
        HOST,
        *extra,
    ]


class Daemon:
    """A daemonised ``twistd chat`` (no ``-n``): it forks away, a pidfile tracks it.

    Attributes:
        port: its TCP and UDP port.
        logfile: twistd's ``--logfile``.
        pidfile: twistd's ``--pidfile``.
        pid: the daemon's pid once started, else None.
    """

    def __init__(
        self,
        workdir: Path,
        port: int,
        extra: Sequence[str] = (),
        name: str = "chat",
        twistd_options: Sequence[str] = (),
    ) -> None:
        self.port = port
        self._twistd_options = list(twistd_options)
        self.logfile = workdir / f"{name}.log"
        self.pidfile = workdir / f"{name}.pid"
        self.pid: int | None = None
        self._workdir = workdir
        self._extra = list(extra)

    def start(self) -> None:
        """Run twistd, check it returns 0 at once, and wait for the pidfile and the port."""
        launcher = subprocess.Popen(
            daemon_command(
                self.logfile, self.pidfile, self.port, self._extra, self._twistd_options
            ),
            cwd=self._workdir,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert launcher.wait(timeout=TIMEOUT_S) == 0
        finally:
            stop_process(launcher)
        wait_until(lambda: read_pid(self.pidfile) is not None, what="the pidfile")
        self.pid = read_pid(self.pidfile)
        wait_for_port(self.port)

    def terminate(self) -> None:
        """Send SIGTERM and wait (bounded) until the daemon is gone."""
        pid = self.pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), what=f"daemon {pid} to exit")

    def kill(self) -> None:
        """SIGKILL the daemon if it is still alive (teardown)."""
        if self.pid is not None and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(self.pid), what=f"daemon {self.pid} to die")

    def log_text(self) -> str:
        """The current logfile (rotated parts not included)."""
        return self.logfile.read_text("ascii")


def twistd_log_entries(text: str) -> list[tuple[str, str]]:
    """Return ``(namespace, text)`` of every event line of a twistd log.

    Continuation lines (verbose frames, tracebacks) are not included.
    """
    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        match = TWISTD_LINE.match(line)
        if match is not None:
            entries.append((match["namespace"], match["text"]))
    return entries


def wait_for_log_text(path: Path, text: str, seconds: float = TIMEOUT_S) -> None:
    """Wait until the file at ``path`` contains ``text`` (twistd flushes each event)."""

    def present() -> bool:
        try:
            return text in path.read_text("ascii")
        except FileNotFoundError:
            return False

    wait_until(present, seconds, what=f"{text!r} in {path.name}")
