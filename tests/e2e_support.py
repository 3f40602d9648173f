"""Helpers for the end-to-end tests: free ports, server processes, blocking clients.

Everything here is bounded: every loop has a count limit and a deadline, and
every wait is for a condition (a connect that succeeds, the exact bytes
expected), never a bare sleep. Servers bind 127.0.0.1 only.
"""

import os
import random
import re
import signal
import socket
import struct
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
_TWISTD_LINE = re.compile(r"^\S+ \[(?P<namespace>[^\]#]*)(?:#\w+)?\] (?P<text>.*)$")


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


def _family(host: str) -> socket.AddressFamily:
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
    family = _family(host)
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
    with socket.socket(_family(host), socket.SOCK_DGRAM) as probe:
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
                preexec_fn=preexec_fn,
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
    ) -> "Server":
        """Start the server with ``launcher`` on ``ports`` (see :func:`server_command`).

        ``preexec_fn`` runs in the child before the server starts (e.g. to
        lower a resource limit).
        """
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
        match = _TWISTD_LINE.match(line)
        keeping = match is not None and match["namespace"] == "chatproto.verbose"
        if keeping:
            lines.append(match["text"])
    return lines


class TcpClient:
    """A blocking TCP chat client with a receive buffer and bounded reads."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT_S)
        self._buffer = bytearray()

    def close(self) -> None:
        """Close the connection (a normal FIN)."""
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection with a TCP reset (SO_LINGER 0, then close)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.settimeout(TIMEOUT_S * 3)
        self.sock.sendall(data)

    def _fill(self, deadline: Deadline) -> None:
        """Receive at least one more byte, or fail at the deadline or on EOF."""
        if deadline.expired():
            raise AssertionError(
                f"timed out after {deadline.seconds} s; got only {bytes(self._buffer)[:200]!r}"
            )
        self.sock.settimeout(deadline.remaining())
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {deadline.seconds} s; got only {bytes(self._buffer)[:200]!r}"
            ) from None
        if not data:
            raise AssertionError(f"connection closed; got only {bytes(self._buffer)[:200]!r}")
        self._buffer += data

    def recv_exactly(self, size: int, seconds: float = TIMEOUT_S) -> bytes:
        """Return the next ``size`` bytes, waiting at most ``seconds`` for them."""
        deadline = Deadline(seconds)
        for _ in range(size + 1):
            if len(self._buffer) >= size:
                break
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def recv_line(self, max_bytes: int = 8192, seconds: float = TIMEOUT_S) -> bytes:
        """Return the next line, its ``\\n`` included."""
        deadline = Deadline(seconds)
        for _ in range(max_bytes + 1):
            end = self._buffer.find(b"\n", 0, max_bytes + 1)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > max_bytes:
                break
            self._fill(deadline)
        raise AssertionError(f"no line within {max_bytes} bytes: {bytes(self._buffer)[:200]!r}")

    def expect(self, expected: bytes, seconds: float = TIMEOUT_S) -> None:
        """Assert that the next bytes received are exactly ``expected``."""
        got = self.recv_exactly(len(expected), seconds)
        assert got == expected

    def login(self, user: bytes) -> None:
        """Log in as ``user`` and assert the reply is ``OK``."""
        self.send(b"ME IS " + user + b"\n")
        self.expect(b"OK\n")

    def recv_until(
        self, suffix: bytes, max_bytes: int = 1 << 20, seconds: float = TIMEOUT_S
    ) -> tuple[bytes, bool]:
        """Receive until the data ends with ``suffix`` or the peer closes.

        Returns:
            ``(data, closed)``: everything up to and including the first
            ``suffix`` and False; or, when the peer closes first (EOF or
            reset), everything received and True. Fails after ``seconds``
            or past ``max_bytes``.
        """
        deadline = Deadline(seconds)
        for _ in range(max_bytes + 2):
            end = self._buffer.find(suffix) if suffix else -1
            if end >= 0:
                size = end + len(suffix)
                data = bytes(self._buffer[:size])
                del self._buffer[:size]
                return data, False
            if len(self._buffer) > max_bytes:
                break
            if deadline.expired():
                raise AssertionError(
                    f"neither {suffix!r} nor a close within {seconds} s; "
                    f"got {bytes(self._buffer)[:200]!r}"
                )
            self.sock.settimeout(deadline.remaining())
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                rest = bytes(self._buffer)
                self._buffer.clear()
                return rest, True
            self._buffer += data
        raise AssertionError(f"more than {max_bytes} bytes: {bytes(self._buffer)[:200]!r}")

    def recv_until_closed(self, max_bytes: int = 1 << 20, seconds: float = TIMEOUT_S) -> bytes:
        """Return every byte still to come before the peer closes (EOF or reset).

        Fails if the connection is still open after ``seconds`` or more than
        ``max_bytes`` arrive first.
        """
        data, closed = self.recv_until(b"", max_bytes, seconds)
        assert closed
        return data

    @classmethod
    def from_socket(cls, sock: socket.socket) -> "TcpClient":
        """Wrap an already connected stream socket (TLS, UNIX, IPv6) as a client."""
        client = cls.__new__(cls)
        client.sock = sock
        client.sock.settimeout(TIMEOUT_S)
        client._buffer = bytearray()
        return client

    @classmethod
    def with_receive_buffer(cls, port: int, size: int) -> "TcpClient":
        """Connect with SO_RCVBUF set to ``size`` before the connect (a small TCP window)."""
        client = cls.__new__(cls)
        client.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        client.sock.settimeout(TIMEOUT_S)
        client.sock.connect((HOST, port))
        client._buffer = bytearray()
        return client

    def recv_delivery(self) -> tuple[bytes, bytes, bool]:
        """Read one delivery; return (sender, body, chunked)."""
        line = self.recv_line()
        assert line.startswith(b"FROM ") and line.endswith(b"\n"), line
        sender = line[5:-1]
        length = self.recv_line()
        if not length.startswith(b"C"):
            assert re.fullmatch(rb"[0-9]{1,2}\n", length), length
            return sender, self.recv_exactly(int(length)), False
        pieces: list[bytes] = []
        for _ in range(1 << 20):
            assert re.fullmatch(rb"C[0-9]{1,3}\n", length), length
            size = int(length[1:])
            if size == 0:
                return sender, b"".join(pieces), True
            pieces.append(self.recv_exactly(size))
            length = self.recv_line()
        raise AssertionError("too many chunks")


class UdpClient:
    """A blocking UDP chat client bound to its own port on ``host`` (127.0.0.1 by default)."""

    def __init__(self, server_port: int, host: str = HOST) -> None:
        self.server = (host, server_port)
        self.sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        self.sock.bind((host, 0))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, datagram: bytes) -> None:
        """Send one datagram to the server port."""
        self.sock.sendto(datagram, self.server)

    def recv(self, seconds: float = TIMEOUT_S) -> tuple[bytes, tuple[str, int]]:
        """Return the next datagram and its source address; fail after ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recvfrom(65536)
        except TimeoutError:
            raise AssertionError(f"no datagram within {seconds} s") from None

    def expect(self, expected: bytes, seconds: float = TIMEOUT_S) -> None:
        """Assert the next datagram is exactly ``expected``, from the server's port."""
        data, source = self.recv(seconds)
        # An IPv6 source is (host, port, flowinfo, scope_id).
        assert (data, source[:2]) == (expected, self.server)


#: ``tcpi_state`` of an established connection (linux/tcp_states.h).
TCP_ESTABLISHED = 1


def tcp_state(sock: socket.socket) -> int:
    """Return the kernel's TCP state of ``sock`` (Linux TCP_INFO), without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def login_when_free(
    client: TcpClient, user: bytes, attempts: int = 500, seconds: float = TIMEOUT_S
) -> None:
    """Send ``ME IS user`` until ``OK`` (bounded): a closed user's id is freed asynchronously."""
    deadline = Deadline(seconds)
    for attempt in range(attempts):
        client.send(b"ME IS " + user + b"\n")
        reply = client.recv_line()
        if reply == b"OK\n":
            return
        assert reply == b"ERROR\n"
        if deadline.expired():
            break
        time.sleep(min(0.001 * (attempt + 1), 0.05))
    raise AssertionError(f"{user!r} still taken after {attempts} attempts / {seconds} s")


def memory_kib(pid: int) -> dict[str, int]:
    """Return ``VmRSS`` and ``VmHWM`` (peak RSS) of process ``pid``, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def open_fd_count(pid: int) -> int:
    """Return how many file descriptors process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    """Return what each open descriptor of ``pid`` points to (vanished ones are skipped)."""
    targets: list[str] = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return targets


def server_receive_queue(server_port: int, client: socket.socket) -> int:
    """Return the bytes the server's end of ``client``'s connection has received but not read.

    Read from ``/proc/net/tcp`` (rx_queue), so it shows how far the server
    has consumed a client's input without asking the server.
    """
    host_hex = socket.inet_aton(HOST)[::-1].hex().upper()  # /proc shows it little-endian
    local = f"{host_hex}:{server_port:04X}"
    remote = f"{host_hex}:{client.getsockname()[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server socket {local} for {remote} in /proc/net/tcp")


def socket_inodes(pid: int) -> set[int]:
    """Return the inodes of the sockets process ``pid`` has open (none once it is gone)."""
    try:
        targets = fd_targets(pid)
    except FileNotFoundError:  # gone already
        return set()
    inodes: set[int] = set()
    for target in targets:
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def port_inodes(port: int, host: str = HOST) -> tuple[set[int], set[int]]:
    """Return the inodes of the TCP listeners and of the UDP sockets bound to ``host``:``port``.

    Read from ``/proc/net/tcp`` and ``/proc/net/udp`` (IPv4): one entry per
    socket, so processes sharing a port with SO_REUSEPORT each have their own.
    """
    local = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    found: list[set[int]] = []
    for table, state in (("tcp", "0A"), ("udp", None)):  # 0A: TCP_LISTEN
        inodes: set[int] = set()
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local and (state is None or fields[3] == state):
                inodes.add(int(fields[9]))
        found.append(inodes)
    return found[0], found[1]


def serves_port(pid: int, port: int, host: str = HOST) -> bool:
    """Whether process ``pid`` itself holds a TCP listener and a UDP socket on ``port``.

    Unlike :func:`wait_for_port`, this tells apart processes that share the
    port with SO_REUSEPORT: a connect may reach any of them.
    """
    tcp, udp = port_inodes(port, host)
    mine = socket_inodes(pid)
    return bool(mine & tcp) and bool(mine & udp)


def child_pids(pid: int) -> list[int]:
    """Return the pids of the children of process ``pid`` (Linux /proc), none once it is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


# -- deployment: other listeners, daemons, twistd logs, metrics -----------------------------


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


def tcp_connector(port: int, host: str = HOST) -> Callable[[float], socket.socket]:
    """Return ``connect(timeout)`` opening a TCP connection to ``host``:``port``."""
    return lambda timeout: socket.create_connection((host, port), timeout=timeout)


def unix_connector(path: Path) -> Callable[[float], socket.socket]:
    """Return ``connect(timeout)`` opening a UNIX stream connection to ``path``."""

    def connect(timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

    return connect


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
        match = _TWISTD_LINE.match(line)
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


#: A metric sample's key: its name and its labels, sorted.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape_metrics(port: int, host: str = HOST) -> dict[SampleKey, float]:
    """Fetch ``http://host:port/metrics`` (no proxy) and return every sample's value."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{host}:{port}/metrics", timeout=TIMEOUT_S) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def samples_named(samples: dict[SampleKey, float], name: str) -> dict[tuple[str, ...], float]:
    """Return the values of the samples called ``name``, keyed by their label values."""
    return {
        tuple(value for _, value in labels): value_
        for (sample_name, labels), value_ in samples.items()
        if sample_name == name
    }
