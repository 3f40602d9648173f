"""Helpers for the end-to-end tests: free ports, deadlines, server processes, waiting.

Everything here is bounded: every loop has a count limit and a deadline, and
every wait is for a condition (a port that answers, a process that exits),
never a bare sleep. Servers bind 127.0.0.1 only. Blocking protocol clients are
in ``tests/sockets.py``, what /proc says about a process in ``tests/procfs.py``,
daemonised twistd in ``tests/daemons.py``, the metrics page in
``tests/metrics_page.py``.
"""

import functools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HOST = "127.0.0.1"


REPO_ROOT = Path(__file__).resolve().parent.parent


BIN_DIR = Path(sys.executable).parent


CHAT_SERVER = BIN_DIR / "chat_server"


TWISTD = BIN_DIR / "twistd"


#: Longest wait for a server to start, a reply to arrive or a process to end.
TIMEOUT_S = 10.0


#: Poll interval while waiting for something that has no event to wait on.
POLL_S = 0.01


#: The launchers every main scenario runs under.
LAUNCHERS = ("chat_server", "twistd")


# A twistd log line: "<timestamp> [<namespace>#<level>] <text>".
TWISTD_LINE = re.compile(r"^\S+ \[(?P<namespace>[^\]#]*)(?:#\w+)?\] (?P<text>.*)$")


class Deadline:
    """A point in time a bounded wait must not pass."""

    def __init__(self, seconds: float = TIMEOUT_S) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, at least a millisecond so a socket timeout stays valid."""
        return max(self._end - time.monotonic(), 0.001)

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._end


def address_family(host: str) -> socket.AddressFamily:
    """Return the address family of the literal IP address ``host``."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _ephemeral_port_range() -> tuple[int, int]:
    """The ports the kernel gives to outgoing connections (Linux), or its default."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(attempts: int = 200, host: str = HOST) -> int:
    """Return a port free on ``host`` (127.0.0.1 by default) for both TCP and UDP.

    The port is picked outside the kernel's ephemeral range: a port from it
    could be handed, between this check and the server's bind, to an outgoing
    connection (a server's own connection to Redis, a test client), and the
    server would then fail to listen. Tries a bounded number of random ports.
    """
    family = address_family(host)
    low, high = _ephemeral_port_range()
    below = (10000, low - 1) if low - 10000 >= 2000 else (high + 1, 65535)
    for _ in range(attempts):
        port = random.randint(*below)
        with (
            socket.socket(family, socket.SOCK_STREAM) as tcp,
            socket.socket(family, socket.SOCK_DGRAM) as udp,
        ):
            try:
                tcp.bind((host, port))
                udp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free for TCP and UDP after {attempts} attempts")


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports, each free for TCP and UDP."""
    ports: list[int] = []
    for _ in range(count * 20):
        port = free_port()
        if port not in ports:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"could not find {count} distinct free ports")


def server_command(
    launcher: str, ports: Sequence[int], extra: Sequence[str], pidfile: Path
) -> list[str]:
    """Return the command line that runs the server on ``ports`` in the foreground."""
    if launcher == "chat_server":
        return [str(CHAT_SERVER), *map(str, ports), "--interface", HOST, *extra]
    if launcher == "twistd":
        port_args = [arg for port in ports for arg in ("-p", str(port))]
        return [
            str(TWISTD),
            "-n",
            "--pidfile",
            str(pidfile),
            "chat",
            *port_args,
            "--interface",
            HOST,
            *extra,
        ]
    raise ValueError(f"unknown launcher {launcher!r}")


def server_env() -> dict[str, str]:
    """Return the environment for a server: the repo on PYTHONPATH, for the twistd plugin."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tcp_accepts(port: int, deadline: Deadline, host: str = HOST) -> bool:
    """Whether a TCP connect to ``host``:``port`` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=deadline.remaining()):
            return True
    except OSError:
        return False


def _udp_bound(port: int, host: str = HOST) -> bool:
    """Whether someone holds UDP ``port`` on ``host`` (our own bind fails)."""
    with socket.socket(address_family(host), socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
        return False


def wait_for_port(
    port: int,
    process: subprocess.Popen | None = None,
    seconds: float = TIMEOUT_S,
    host: str = HOST,
) -> None:
    """Wait until ``port`` on ``host`` accepts TCP connections and is bound for UDP.

    Retries until ``seconds`` have passed, and fails at once if ``process``
    exits meanwhile. Checking the UDP side too (quietly, by failing to bind
    it) means a datagram sent afterwards cannot hit a port not yet open.
    """
    deadline = Deadline(seconds)
    for _ in range(int(seconds / POLL_S) + 1):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before listening")
        if _tcp_accepts(port, deadline, host) and _udp_bound(port, host):
            return
        if deadline.expired():
            break
        time.sleep(POLL_S)
    raise AssertionError(f"{host}:{port} not listening on TCP and UDP after {seconds} s")


def stop_process(process: subprocess.Popen, seconds: float = TIMEOUT_S) -> int:
    """Stop ``process``: SIGTERM, wait up to ``seconds``, then SIGKILL. Return its status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout=seconds)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def wait_until(condition, seconds: float = TIMEOUT_S, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail after ``seconds``."""
    deadline = Deadline(seconds)
    for _ in range(int(seconds / POLL_S) + 1):
        if condition():
            return
        if deadline.expired():
            break
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _default_interrupt(then: Callable[[], None] | None) -> None:
    """In the child: SIGINT back to its default disposition, then ``then`` if given.

    A test run started in the background (``cmd &`` without job control)
    inherits SIGINT ignored, and a server that inherits that ignores Ctrl-C
    as the shell meant it to; the tests send SIGINT on purpose (four
    failed so when .ci/run was started that way).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if then is not None:
        then()


class Server:
    """A chat server process, its output in files under ``workdir``.

    Attributes:
        launcher: ``"chat_server"`` or ``"twistd"``.
        ports: the ports it listens on (TCP and UDP each).
        process: the running process.
        returncode: its exit status once stopped, else None.
    """

    def __init__(
        self,
        launcher: str,
        ports: Sequence[int],
        command: Sequence[str],
        workdir: Path,
        *,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.launcher = launcher
        self.ports = list(ports)
        self._stdout_path = workdir / f"{launcher}-{ports[0]}.out"
        self._stderr_path = workdir / f"{launcher}-{ports[0]}.err"
        self.returncode: int | None = None
        with open(self._stdout_path, "wb") as out, open(self._stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env=server_env(),
                preexec_fn=functools.partial(_default_interrupt, preexec_fn),
            )

    @classmethod
    def launch(
        cls,
        launcher: str,
        ports: Sequence[int],
        extra: Sequence[str],
        workdir: Path,
        *,
        preexec_fn: Callable[[], None] | None = None,
        command: Sequence[str] | None = None,
    ) -> "Server":
        """Start the server with ``launcher`` on ``ports`` (see :func:`server_command`).

        ``preexec_fn`` runs in the child before the server starts (e.g. to
        lower a resource limit). ``command``, if given, is the whole command
        line instead of :func:`server_command`'s (``extra`` is then unused),
        for tests of other interfaces or listeners than 127.0.0.1 ports.
        """
        if command is None:
            pidfile = workdir / f"twistd-{ports[0]}.pid"
            command = server_command(launcher, ports, extra, pidfile)
        return cls(launcher, ports, command, workdir, preexec_fn=preexec_fn)

    def wait_ready(self) -> None:
        """Wait until every port listens on TCP and UDP."""
        for port in self.ports:
            wait_for_port(port, self.process)

    def wait_serving(self) -> None:
        """Wait until this very process listens on every port, on TCP and UDP.

        For servers sharing ports (``--reuse-port``), where a port that
        answers may belong to another process.
        """

        from tests.procfs import serves_port  # here: tests.procfs imports this module

        def serving() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}")
            return all(serves_port(self.process.pid, port) for port in self.ports)

        wait_until(serving, what=f"{self.launcher} to listen on {self.ports}")

    def stop(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL) and return its exit status."""
        if self.returncode is None:
            self.returncode = stop_process(self.process)
        return self.returncode

    @property
    def stdout(self) -> bytes:
        """Everything written to stdout so far (complete once stopped)."""
        return self._stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        """Everything written to stderr so far (complete once stopped)."""
        return self._stderr_path.read_bytes()

    def verbose_lines(self) -> list[str]:
        """Return the ``-v`` traffic lines, the same for both launchers.

        For ``chat_server`` that is stdout as it is. For twistd, only events of
        the ``chatproto.verbose`` namespace are kept, without the timestamp and
        namespace prefix, and their continuation lines without the leading tab;
        twistd's own lines are dropped.
        """
        text = self.stdout.decode("ascii")
        if self.launcher == "chat_server":
            return text.splitlines()
        return twistd_verbose_lines(text)


def twistd_verbose_lines(text: str) -> list[str]:
    """Extract the ``chatproto.verbose`` lines from a twistd log (see Server.verbose_lines)."""
    lines: list[str] = []
    keeping = False
    for line in text.splitlines():
        if line.startswith("\t"):
            if keeping:
                lines.append(line[1:])
            continue
        match = TWISTD_LINE.match(line)
        keeping = match is not None and match["namespace"] == "chatproto.verbose"
        if keeping:
            lines.append(match["text"])
    return lines


def wait_for_stream(
    connect: Callable[[float], socket.socket],
    process: subprocess.Popen | None = None,
    seconds: float = TIMEOUT_S,
    what: str = "a listener",
) -> None:
    """Wait until ``connect(timeout)`` opens a stream connection (then close it).

    For listeners that have no UDP side (TLS, UNIX sockets, ``--listen``,
    the metrics page). Fails at once if ``process`` exits meanwhile.
    """
    deadline = Deadline(seconds)
    for _ in range(int(seconds / POLL_S) + 1):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before {what}")
        try:
            connect(deadline.remaining()).close()
            return
        except OSError:
            pass
        if deadline.expired():
            break
        time.sleep(POLL_S)
    raise AssertionError(f"{what} not accepting connections after {seconds} s")
