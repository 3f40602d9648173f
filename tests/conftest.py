"""Shared test configuration: a deterministic hypothesis profile, and socket client fixtures."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.e2e_support import TcpClient, UdpClient
from tests.redis_support import RedisServer

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
