"""Shared test configuration: a hypothesis profile, the ``e2e`` marker, server and client fixtures.

Every test that starts a process (a server, ``chat_client``, twistd,
redis-server) carries the ``e2e`` marker, so that ``pytest -m "not e2e"`` is
the quick loop: tests using a process-starting fixture are marked here, the
others by their module or their own mark. A test without the marker that
starts a process anyway fails, naming the marker it lacks.

The codec tests run over both twins of the wire core through ``wire_twin``.
"""

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from chatproto.wire.stream import StreamDecoder
from tests import twins
from tests.daemons import Daemon
from tests.e2e_support import CHAT_SERVER, Server
from tests.redis_support import RedisServer
from tests.sockets import TcpClient, UdpClient

settings.register_profile(
    "chatproto",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("chatproto")

#: Fixtures that start processes: a test using any of them (directly or not) is ``e2e``.
PROCESS_FIXTURES = frozenset({"launch", "redis", "daemons"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every test that uses a process-starting fixture."""
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


class _UnmarkedProcessError(AssertionError):
    """A test without the ``e2e`` marker tried to start a process."""


@pytest.fixture(autouse=True)
def _processes_need_the_e2e_marker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail a test that starts a process without carrying the ``e2e`` marker."""
    if request.node.get_closest_marker("e2e") is not None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise _UnmarkedProcessError(
            f"{request.node.nodeid} starts a process: mark it e2e (pytest.mark.e2e)"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(autouse=True)
def _start_up_objects_stay_collectable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep ``makeService`` from freezing the test runner's heap.

    A server freezes what its start-up made (``chatproto.tap.freeze_startup_objects``),
    once. In-process tests build services by the dozen, and each freeze would
    keep everything alive at that moment, the other tests' garbage included,
    out of collection for the rest of the run. ``tests/test_tap.py`` tests
    the freeze itself; the e2e tests' servers freeze for real.
    """
    monkeypatch.setattr("chatproto.tap.freeze_startup_objects", lambda: None)


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    """Let a hypothesis test run once per parameter under pytest-twisted.

    pytest-twisted's own ``pytest_pyfunc_call`` wraps a hypothesis test's
    ``inner_test`` to run it in the reactor greenlet, and stores the
    wrapper on the test function, which every parametrized item of the
    test shares: the second item would wrap the wrapper, and fail
    ("blockon cannot be called from the twisted greenlet"). Put the
    original back after each call.
    """
    hypothesis = getattr(pyfuncitem.obj, "hypothesis", None)
    inner_test = getattr(hypothesis, "inner_test", None)
    yield
    if inner_test is not None:
        hypothesis.inner_test = inner_test


@pytest.fixture(params=twins.TWIN_NAMES)
def wire_twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Run the test over one twin of the wire core, ``python`` or ``compiled`` (its test id).

    Every decoder the test makes buffers with that twin
    (``StreamDecoder.buffer_type``), and a ``ReceiveBuffer`` name in the
    test's module is that twin, for the tests that make buffers themselves.
    The codec test modules use it for all their tests
    (``pytestmark = pytest.mark.usefixtures("wire_twin")``), as aiohttp's
    ``REQUEST_PARSERS`` runs its parser tests over both parsers. The
    ``compiled`` run skips, saying why, where that twin is not built or
    ``CHATPROTO_NO_EXTENSIONS`` is set; unbuilt, it fails instead under
    ``CHATPROTO_REQUIRE_EXTENSIONS`` (see ``tests/twins.py``).
    """
    twins.require_twin(request.param)
    twin = twins.TWINS[request.param]
    assert twin is not None
    monkeypatch.setattr(StreamDecoder, "buffer_type", twin)
    if hasattr(request.module, "ReceiveBuffer"):
        monkeypatch.setattr(request.module, "ReceiveBuffer", twin)
    return twin


@pytest.fixture
def both_twins() -> None:
    """Need both twins of the wire core (the differential tests): skip, or fail, without one.

    It skips where the compiled twin is not built or ``CHATPROTO_NO_EXTENSIONS``
    is set; unbuilt, it fails instead under ``CHATPROTO_REQUIRE_EXTENSIONS``.
    """
    twins.require_twin("compiled")


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(launch) -> StartServer:  # type: ignore[no-untyped-def]
    """Start chat_server processes (``--no-random`` plus options), ready to use.

    For the ``test_robustness_*`` modules; ``tests/test_e2e.py`` has its own
    ``start_server`` (taking a launcher), which overrides this one there.
    """

    def start(
        ports: list[int], *extra: str, preexec_fn: Callable[[], None] | None = None
    ) -> Server:
        return launch("chat_server", ports, ["--no-random", *extra], preexec_fn)

    return start


@pytest.fixture
def tcp() -> Iterator[Callable[..., TcpClient]]:
    """Open TCP clients on demand (``tcp(port, source=None)``); close them all at teardown."""
    clients: list[TcpClient] = []

    def connect(port: int, source: str | None = None) -> TcpClient:
        client = TcpClient(port, source)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def udp() -> Iterator[Callable[..., UdpClient]]:
    """Open UDP clients on demand (``udp(port, source=None)``); close them all at teardown."""
    clients: list[UdpClient] = []

    def open_client(port: int, source: str | None = None) -> UdpClient:
        client = UdpClient(port, source=source)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free 127.0.0.1 port (skips, or fails in CI, without one)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start server processes on demand; stop them all at teardown.

    ``launch(launcher, ports, extra=(), preexec_fn=None, *, wait="ready",
    workdir=None, command=None)`` starts one (see ``Server.launch``) in
    ``workdir`` (default ``tmp_path``; created if missing) and waits until
    it is ``"ready"`` (every port answers), ``"serving"`` (this very process
    listens: for shared ports) or, with ``None``, not at all.
    """
    servers: list[Server] = []

    def start(
        launcher: str,
        ports: list[int],
        extra: Sequence[str] = (),
        preexec_fn: Callable[[], None] | None = None,
        *,
        wait: str | None = "ready",
        workdir: Path | None = None,
        command: Sequence[str] | None = None,
    ) -> Server:
        directory = workdir if workdir is not None else tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        server = Server.launch(
            launcher, ports, extra, directory, preexec_fn=preexec_fn, command=command
        )
        servers.append(server)
        if wait == "ready":
            server.wait_ready()
        elif wait == "serving":
            server.wait_serving()
        elif wait is not None:
            raise ValueError(f"unknown wait {wait!r}")
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemonised servers on demand; SIGKILL any still alive at teardown.

    ``daemons(port, *extra, name="chat")`` starts ``twistd chat`` in the
    background (see ``tests/daemons.py``); the ``test_deploy_*`` modules use it.
    """
    started: list[Daemon] = []

    def start(port: int, *extra: str, name: str = "chat") -> Daemon:
        daemon = Daemon(tmp_path, port, extra, name)
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def chat_server(launch: Callable[..., Server]) -> Callable[..., Server]:
    """Start ``chat_server`` with exactly these arguments through ``launch``, not waited on."""

    def start(port: int, *args: str) -> Server:
        return launch("chat_server", [port], command=[str(CHAT_SERVER), *args], wait=None)

    return start


@pytest.fixture
def clients() -> Iterator[Callable[[object], object]]:
    """Track clients (stream or datagram) and close them all at teardown.

    For the ``test_deploy_*`` modules; ``tests/test_client_e2e.py`` has its own
    ``clients`` (``chat_client`` processes), which overrides this one there.
    """
    opened: list[TcpClient | UdpClient] = []

    def track(client):  # type: ignore[no-untyped-def]
        opened.append(client)
        return client

    yield track
    for client in opened:
        client.close()
