"""``--workers N`` end to end: ``chat_server --workers 2`` for real.

With a throwaway ``redis-server`` for ``--cluster`` (skipped without one).
"""

import os
import signal
import socket
from collections.abc import Callable, Iterator

import pytest

from tests.e2e_support import (
    CHAT_SERVER,
    HOST,
    TIMEOUT_S,
    Server,
    free_port,
    pid_alive,
    wait_until,
)
from tests.procfs import child_pids, serves_port
from tests.redis_support import RedisServer
from tests.sockets import login_when_free
from tests.test_e2e import assert_one_line_error, run_chat_server
from tests.workers_support import CLUSTER

# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    return redis.url


class Supervisor:
    """A ``chat_server --workers N`` process, and every worker pid seen under it.

    Attributes:
        server: the chat_server process.
        port: the one port it serves.
        seen: the pid of every worker seen so far.
    """

    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port
        self.seen: set[int] = set()

    def workers(self) -> list[int]:
        """Return the pids of the workers running now (and remember them)."""
        pids = child_pids(self.server.process.pid)
        self.seen.update(pids)
        return pids

    def serving(self, count: int) -> bool:
        """Whether exactly ``count`` workers run and each listens on the port (TCP and UDP)."""
        if self.server.process.poll() is not None:
            raise AssertionError(f"chat_server exited with {self.server.process.returncode}")
        pids = self.workers()
        return len(pids) == count and all(serves_port(pid, self.port) for pid in pids)

    def kill_leftovers(self) -> None:
        """SIGKILL every worker seen that is still alive (a parent that died leaves them)."""
        for pid in self.seen:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_supervisor(launch, redis_url: str) -> Iterator[Callable[..., Supervisor]]:  # type: ignore[no-untyped-def]
    """Start ``chat_server --workers 2 --cluster <redis>`` on a free port with ``extra``
    options (through ``launch``, not waiting: the workers come up on their own);
    at teardown stop it and kill any worker it left behind."""
    started: list[Supervisor] = []

    def start(*extra: str) -> Supervisor:
        port = free_port()
        args = ["--workers", "2", "--cluster", redis_url, "--interface", HOST, str(port)]
        command = [str(CHAT_SERVER), *args, *extra]
        server = launch("chat_server", [port], wait=None, command=command)
        started.append(Supervisor(server, port))
        return started[-1]

    yield start
    for supervisor in started:
        supervisor.server.stop()
        supervisor.kill_leftovers()


def test_chat_server_with_2_workers_serves_restarts_and_stops(start_supervisor, tcp):
    """chat_server --workers 2 -v: both workers serve the port, their -v lines reach its
    stdout, a killed worker is replaced, and SIGTERM stops them all with status 0."""
    supervisor = start_supervisor("-v")
    server, port = supervisor.server, supervisor.port
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    login_when_free(tcp(port), b"alice")  # a worker answers OK once it is in the cluster
    victim = supervisor.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in supervisor.workers(), what="the killed worker to go")
    wait_until(lambda: supervisor.serving(2), what="a new worker")
    login_when_free(tcp(port), b"bob")
    assert (server.stop(), server.stderr) == (0, b"")
    assert len(supervisor.seen) == 3
    assert not [pid for pid in supervisor.seen if pid_alive(pid)]
    lines = server.stdout.decode("ascii").splitlines()
    for user in ("alice", "bob"):
        assert f"RCVD from {HOST}: ME IS {user}\\n" in lines
    assert "" not in lines
    assert lines.count(f"SENT to {HOST}: OK\\n") == 2


def test_workers_share_one_namespace(start_supervisor, tcp, redis: RedisServer) -> None:
    """Users spread over the workers by the kernel talk to each other, and a userid
    online on one worker is refused on the others."""
    supervisor = start_supervisor()
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    clients = {}
    for index in range(16):
        name = b"user%d" % index
        clients[name] = tcp(supervisor.port)
        login_when_free(clients[name], name)
    holders = {redis.execute(b"GET", b"chatproto:0:user:" + name) for name in clients}
    assert len(holders) == 2  # the kernel put users on both workers

    names = list(clients)
    for index, name in enumerate(names):
        receiver = names[(index + 1) % len(names)]
        clients[name].send(b"SEND %b\n%d\nhi from %b" % (receiver, 8 + len(name), name))
    for index, name in enumerate(names):
        sender = names[index - 1]
        assert clients[name].recv_delivery() == (sender, b"hi from " + sender, False)
    for _ in range(8):  # new connections land on either worker: refused on both
        duplicate = tcp(supervisor.port)
        duplicate.send(b"ME IS user0\n")
        duplicate.expect(b"ERROR\n")


def test_chat_server_with_workers_stops_them_all_on_sigint(start_supervisor):
    """SIGINT to chat_server --workers 2 (Ctrl-C) stops both workers; it exits 0, silent."""
    supervisor = start_supervisor()
    server = supervisor.server
    # Both workers listening means the parent has long been in reactor.run,
    # where SIGINT is Twisted's to handle.
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    server.process.send_signal(signal.SIGINT)
    status = server.process.wait(timeout=TIMEOUT_S)
    assert (status, server.stdout, server.stderr) == (0, b"", b"")
    assert not [pid for pid in supervisor.seen if pid_alive(pid)]


def test_workers_stop_cleanly_when_their_parent_is_killed(start_supervisor, tcp, redis) -> None:
    """SIGKILL to chat_server --workers 2 (which cannot stop its workers) makes each worker
    stop as on SIGTERM: its clients are disconnected and their userids freed in Redis at
    once, not after --cluster-ttl, and no worker is left running."""
    supervisor = start_supervisor()
    wait_until(lambda: supervisor.serving(2), what="2 workers listening")
    alice = tcp(supervisor.port)
    login_when_free(alice, b"alice")
    key = b"chatproto:0:user:alice"
    assert redis.execute(b"GET", key) != b"$-1\r\n"  # claimed by her worker
    workers = supervisor.workers()
    supervisor.server.process.send_signal(signal.SIGKILL)
    supervisor.server.process.wait(timeout=TIMEOUT_S)
    # Now orphans: child_pids of the dead parent says nothing, so poll the pids seen.
    wait_until(
        lambda: not [pid for pid in workers if pid_alive(pid)],
        what=f"workers {workers} to exit after their parent",
    )
    assert alice.recv_until_closed() == b""
    assert redis.execute(b"GET", key) == b"$-1\r\n"  # released: the stop was a clean one


@pytest.mark.e2e
def test_chat_server_with_workers_on_a_port_in_use_exits_1_with_one_line(tmp_path):
    """chat_server --workers 2 on a port held without SO_REUSEPORT exits 1 before any worker."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, port))
        holder.listen()
        result = run_chat_server(
            tmp_path, "--workers", "2", "--cluster", CLUSTER, "--interface", HOST, str(port)
        )
    assert_one_line_error(result, 1)
    assert b"Address already in use" in result.stderr
