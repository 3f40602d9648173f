"""Shared test configuration: a hypothesis profile, and server and socket client fixtures."""

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.e2e_support import Server
from tests.redis_support import RedisServer
from tests.sockets import TcpClient, UdpClient

settings.register_profile(
    "chatproto",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("chatproto")


@pytest.fixture
def tcp() -> Iterator[Callable[[int], TcpClient]]:
    """Open TCP clients on demand; close them all at teardown."""
    clients: list[TcpClient] = []

    def connect(port: int) -> TcpClient:
        client = TcpClient(port)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def udp() -> Iterator[Callable[[int], UdpClient]]:
    """Open UDP clients on demand; close them all at teardown."""
    clients: list[UdpClient] = []

    def open_client(port: int) -> UdpClient:
        client = UdpClient(port)
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
    """Start servers on demand, each ready to use; stop them all at teardown.

    ``launch(launcher, ports, extra=(), preexec_fn=None)``: see ``Server.launch``.
    """
    servers: list[Server] = []

    def start(
        launcher: str,
        ports: list[int],
        extra: Sequence[str] = (),
        preexec_fn: Callable[[], None] | None = None,
    ) -> Server:
        server = Server.launch(launcher, ports, extra, tmp_path, preexec_fn=preexec_fn)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()
