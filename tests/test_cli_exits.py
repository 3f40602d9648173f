"""What the installed ``chat_server`` and ``twistd -n chat`` print and exit with when they fail.

Each program is started through the ``launch`` fixture, as a user would run
it, and left to exit on its own (bounded). A bad command line is one line on
stderr and status 2; what cannot be listened on is one line and status 1;
nothing ever prints a traceback. A missing extra is simulated with a
``sitecustomize`` that makes its module unimportable, as if it had never
been installed.
"""

import importlib.util
import itertools
import re
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatproto import __version__
from chatproto.wire.compiled import NO_EXTENSIONS_VARIABLE
from tests.e2e_support import (
    CHAT_SERVER,
    HOST,
    LAUNCHERS,
    REPO_ROOT,
    TIMEOUT_S,
    TWISTD,
    Server,
    free_port,
)
from tests.sockets import TcpClient
from tests.twins import extensions_required

#: Gives each run its own output files (the launch fixture names them by port).
_RUNS = itertools.count(1)


@dataclass
class Exit:
    """How a program ended: its status and everything it wrote."""

    status: int
    stdout: str
    stderr: str


def program_command(launcher: str, args: Sequence[str]) -> list[str]:
    """Return the command line a user types for ``launcher`` with ``args`` after ``chat``."""
    if launcher == "chat_server":
        return [str(CHAT_SERVER), *args]
    return [str(TWISTD), "-n", "--pidfile=", "chat", *args]


def without_modules(directory: Path, modules: Sequence[str]) -> list[str]:
    """Return an ``env`` prefix under which ``modules`` cannot be imported (a missing extra)."""
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    )
    return ["env", f"PYTHONPATH={directory}:{REPO_ROOT}"]


@pytest.fixture
def run_to_exit(launch: Callable[..., Server], tmp_path: Path) -> Callable[..., Exit]:
    """Run a program through ``launch`` until it exits by itself; return how it ended.

    ``run_to_exit(launcher, *args, missing=(), no_extensions=None)`` runs
    ``chat_server ARGS`` or ``twistd -n --pidfile= chat ARGS`` with the
    modules in ``missing`` unimportable and ``CHATPROTO_NO_EXTENSIONS`` set
    to ``no_extensions`` (or unset), and fails if it is still running after
    the usual timeout.
    """

    def run(
        launcher: str, *args: str, missing: Sequence[str] = (), no_extensions: str | None = None
    ) -> Exit:
        command = program_command(launcher, args)
        if missing:
            command = [*without_modules(tmp_path / "shim", missing), *command]
        # CHATPROTO_NO_EXTENSIONS as given (unset for None), whatever this run has.
        if no_extensions is None:
            command = ["env", "-u", NO_EXTENSIONS_VARIABLE, *command]
        else:
            command = ["env", f"{NO_EXTENSIONS_VARIABLE}={no_extensions}", *command]
        server = launch(launcher, [next(_RUNS)], command=command, wait=None)
        server.process.wait(timeout=TIMEOUT_S)
        status = server.stop()
        return Exit(status, server.stdout.decode(), server.stderr.decode())

    return run


def assert_one_line(result: Exit, status: int, line: str) -> None:
    """Assert ``status``, exactly ``line`` on stderr, nothing on stdout, no traceback."""
    assert (result.status, result.stderr, result.stdout) == (status, line + "\n", "")


# -- item 4: a bad or unusable --listen, --metrics-port, --cluster ---------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--listen", "bogus:123"],
            "--listen: not a usable endpoint: Unknown endpoint type: 'bogus' (got 'bogus:123')",
        ),
        (
            ["--listen", "tcp:notaport"],
            "--listen: the port must be a number from 0 to 65535 (got 'tcp:notaport')",
        ),
        (["--max-line=0"], "--max-line: must be an integer of at least 1 (got '0')"),
        (["--max-line=abc"], "--max-line: must be an integer of at least 1 (got 'abc')"),
    ],
)
def test_chat_server_bad_option_is_one_line_and_status_2(run_to_exit, args, line) -> None:  # type: ignore[no-untyped-def]
    """A bad --listen endpoint or limit: status 2 and one line naming the option."""
    result = run_to_exit("chat_server", "9000", "-i", HOST, *args)
    assert_one_line(result, 2, f"chat_server: {line}")


@pytest.mark.parametrize(
    ("args", "missing", "line"),
    [
        (
            ["--listen", "ssl:9443:privateKey=key.pem"],
            ["OpenSSL"],
            "--listen: ssl endpoints need pyOpenSSL: pip install 'chatproto[tls]'",
        ),
        (
            ["--metrics-port", "9100"],
            ["prometheus_client"],
            "--metrics-port: needs prometheus_client: pip install 'chatproto[metrics]'",
        ),
        (
            ["--cluster", "redis://127.0.0.1:6379"],
            ["txredisapi"],
            "--cluster: needs txredisapi: pip install 'chatproto[cluster]'",
        ),
    ],
    ids=["tls", "metrics", "cluster"],
)
@pytest.mark.parametrize(
    ("launcher", "program"), [("chat_server", "chat_server"), ("twistd", "twistd chat")]
)
def test_an_option_without_its_extra_says_which_pip_install(  # type: ignore[no-untyped-def]
    run_to_exit, launcher, program, args, missing, line
) -> None:
    """An option whose extra is not installed: status 2 and the pip install that fixes it."""
    result = run_to_exit(launcher, "-p", "9000", "-i", HOST, *args, missing=missing)
    assert_one_line(result, 2, f"{program}: {line}")


# -- item 7: --version -----------------------------------------------------------------------


def test_chat_server_version_names_chatproto(run_to_exit) -> None:  # type: ignore[no-untyped-def]
    """chat_server --version prints 'chatproto <version>' first and exits 0."""
    result = run_to_exit("chat_server", "--version")
    assert (result.status, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == f"chatproto {__version__}"


#: What --version says of the compiled core when it is left to choose.
COMPILED_CORE = (
    "compiled core: yes"
    if importlib.util.find_spec("chatproto.wire._buffer") is not None
    else re.compile(r"compiled core: no \(not built: .+\)")
)


@pytest.mark.parametrize(
    ("launcher", "no_extensions", "line"),
    [
        ("chat_server", None, COMPILED_CORE),
        ("chat_server", "1", "compiled core: no (CHATPROTO_NO_EXTENSIONS is set)"),
        ("twistd", None, COMPILED_CORE),
        ("twistd", "1", "compiled core: no (CHATPROTO_NO_EXTENSIONS is set)"),
    ],
    ids=["chat_server", "chat_server-no-extensions", "twistd", "twistd-no-extensions"],
)
def test_version_says_whether_the_compiled_core_runs(  # type: ignore[no-untyped-def]
    run_to_exit, launcher, no_extensions, line
) -> None:
    """--version's last line is 'compiled core: yes' where the extension is built, and
    'compiled core: no (CHATPROTO_NO_EXTENSIONS is set)' under CHATPROTO_NO_EXTENSIONS=1."""
    result = run_to_exit(launcher, "--version", no_extensions=no_extensions)
    assert (result.status, result.stderr) == (0, "")
    last = result.stdout.splitlines()[-1]
    if isinstance(line, re.Pattern):
        assert line.fullmatch(last), last
    else:
        assert last == line
    if extensions_required() and no_extensions is None:
        assert last == "compiled core: yes"


# -- item 6: the same failures under both programs, and how each stops -----------------------

#: The log line twistd -n shows (on stdout) for a listener that failed.
TWISTD_CRITICAL = re.compile(r"^\S+ \[chatproto\.serving\.ServerService#critical\] (?P<text>.*)$")


@contextmanager
def holding_tcp_port(port: int) -> Iterator[None]:
    """Hold a listening TCP socket on 127.0.0.1:``port`` for the ``with`` block."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, port))
        sock.listen()
        yield


def assert_failed_to_listen(result: Exit, launcher: str, text: str) -> None:
    """Assert status 1 and ``text`` as the one line the program gives for it, no traceback.

    chat_server prints it on stderr. twistd -n logs it, once, on stdout (its
    log), among its own start-up lines, and writes nothing on stderr.
    """
    if launcher == "chat_server":
        assert_one_line(result, 1, f"chat_server: {text}")
        return
    mentions = [line for line in result.stdout.splitlines() if "cannot listen" in line]
    logged = [TWISTD_CRITICAL.match(line) for line in mentions]
    assert (result.status, [m and m["text"] for m in logged], result.stderr) == (1, [text], "")
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_port_in_use_is_one_line_and_status_1(run_to_exit, launcher) -> None:  # type: ignore[no-untyped-def]
    """A TCP port held by another socket: status 1 and one line naming it, under both programs."""
    port = free_port()
    with holding_tcp_port(port):
        result = run_to_exit(launcher, "-p", str(port), "-i", HOST)
    text = f"cannot listen on TCP {HOST}:{port}: Address already in use"
    assert_failed_to_listen(result, launcher, text)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_unix_socket_in_a_missing_directory_is_one_line_and_status_1(  # type: ignore[no-untyped-def]
    run_to_exit, launcher
) -> None:
    """--listen unix:/nonexistent/dir/x.sock: status 1 and one line, found when listening."""
    result = run_to_exit(launcher, "--listen", "unix:/nonexistent/dir/x.sock")
    endpoint = "unix:/nonexistent/dir/x.sock:mode=660"
    text = f"cannot listen on --listen {endpoint}: No such file or directory"
    assert_failed_to_listen(result, launcher, text)


@pytest.mark.parametrize(
    ("launcher", "program"), [("chat_server", "chat_server"), ("twistd", "twistd chat")]
)
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-p", "abc"], "--port: must be a port number from 1 to 65535 (got 'abc')"),
        (["-p", "9000", "--max-line=0"], "--max-line: must be an integer of at least 1 (got '0')"),
        (
            ["-p", "9000", "--listen", "tcp:notaport"],
            "--listen: the port must be a number from 0 to 65535 (got 'tcp:notaport')",
        ),
    ],
)
def test_a_bad_option_is_one_line_and_status_2(run_to_exit, launcher, program, args, line) -> None:  # type: ignore[no-untyped-def]
    """A bad option value: status 2 and one line naming it, under both programs (no usage dump)."""
    assert_one_line(run_to_exit(launcher, *args), 2, f"{program}: {line}")


def test_twistd_chat_version_names_chatproto(run_to_exit) -> None:  # type: ignore[no-untyped-def]
    """twistd chat --version prints 'chatproto <version>' first and exits 0."""
    result = run_to_exit("twistd", "--version")
    assert (result.status, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == f"chatproto {__version__}"


#: How each program ends on each signal: chat_server exits 0; twistd re-raises
#: the signal (twisted.scripts.twistd.runApp), so it dies of it (Popen: -N).
STOP_STATUS = {
    ("chat_server", signal.SIGTERM): 0,
    ("chat_server", signal.SIGINT): 0,
    ("twistd", signal.SIGTERM): -signal.SIGTERM,
    ("twistd", signal.SIGINT): -signal.SIGINT,
}


@pytest.mark.parametrize(("launcher", "signum"), list(STOP_STATUS), ids=lambda v: str(v))
def test_each_program_stops_on_sigterm_and_ctrl_c_with_its_status(
    launch, launcher, signum
) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM and SIGINT (Ctrl-C) stop each program cleanly, with the status README gives."""
    port = free_port()
    server = launch(launcher, [port])
    # A bound port is not yet a running reactor: twistd binds first, then runs
    # the reactor, which installs the signal handlers. A signal in between is
    # Python's default (a KeyboardInterrupt traceback; seen once in 90 runs).
    # A login answered means the reactor runs.
    probe = TcpClient(port)
    probe.login(b"probe")
    probe.close()
    server.process.send_signal(signum)
    server.process.wait(timeout=TIMEOUT_S)
    assert server.stop() == STOP_STATUS[(launcher, signum)]
    output = server.stdout + server.stderr
    assert b"Traceback" not in output and b"Unhandled" not in output
    if launcher == "chat_server":
        assert output == b""
