"""The scripted Redis connection, fixtures and helpers of the ``RedisRouter`` tests.

``ScriptedRedis`` records each command and answers only when the test says.
The ``test_cluster_router_*`` modules import the fixtures (``limits``,
``clock``, ``router``, ``scripted_redis``, ``service``) from here. The fake is
``scripted_redis``, not ``redis``: conftest's ``redis`` starts a real
redis-server, and marks the tests that use it ``e2e``; these start nothing.
"""

from collections.abc import Iterator

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

from chatproto.cluster.address import RedisAddress
from chatproto.cluster.router import RedisRouter
from chatproto.limits import Limits
from chatproto.server.message import MessageBody
from chatproto.server.service import ChatService
from chatproto.wire import relay as relay_wire
from tests.support import FakeClient, answer

NODE = b"n1"
NODE_CHANNEL = b"chatproto:0:node:n1"
BROADCAST = b"chatproto:0:broadcast"
PREFIX = b"chatproto:0:user:"


class ScriptedRedis:
    """Stands in for txredisapi's connection: records commands, answers on demand."""

    connected = 1

    def __init__(self) -> None:
        self.commands: list[tuple[tuple, Deferred]] = []

    def execute_command(self, *args, **kwargs) -> Deferred:  # type: ignore[no-untyped-def]
        reply: Deferred = Deferred()
        self.commands.append((args, reply))
        return reply

    def eval(self, script: bytes, keys: list, args: list) -> Deferred:  # type: ignore[type-arg]
        return self.execute_command("EVAL", script, keys, args)

    def subscribe(self, channels: list[bytes]) -> Deferred:  # type: ignore[type-arg]
        self.channels = channels
        return succeed(None)

    def named(self, command: str) -> list[tuple[tuple, Deferred]]:
        return [(args, reply) for args, reply in self.commands if args[0] == command]

    def scripts(self, marker: bytes) -> list[tuple[tuple, Deferred]]:
        """The EVALs of the script that holds ``marker`` (e.g. b"DEL" for the release)."""
        return [(args, reply) for args, reply in self.named("EVAL") if marker in args[1]]

    def published(self) -> list[tuple[bytes, list[bytes]]]:
        """Each PUBLISH: its channel and the relay messages of its batch."""
        return [(args[1], relay_wire.decode_batch(args[2])) for args, _ in self.named("PUBLISH")]

    def answer_all(self, command: str, value: object) -> None:
        for _, reply in self.named(command):
            if not reply.called:
                reply.callback(value)


@pytest.fixture
def limits() -> Limits:
    return Limits(spill_threshold_bytes=64 * 1024)


@pytest.fixture
def clock() -> MemoryReactorClock:
    return MemoryReactorClock()


@pytest.fixture
def router(clock: MemoryReactorClock, limits: Limits) -> RedisRouter:
    return RedisRouter(RedisAddress("127.0.0.1", 6379), clock, limits, node_id=NODE)


@pytest.fixture
def scripted_redis(router: RedisRouter) -> ScriptedRedis:
    return ScriptedRedis()


@pytest.fixture
def service(
    router: RedisRouter, scripted_redis: ScriptedRedis, clock: MemoryReactorClock, limits: Limits
) -> Iterator[ChatService]:
    chat = ChatService(clock, limits, router=router, random_messages=False)
    chat.startService()
    router._commands_up(scripted_redis)  # as if both connections came up
    router._subscriber_up(scripted_redis)
    yield chat
    chat.stopService()


def log_in(service: ChatService, scripted_redis: ScriptedRedis, name: bytes) -> FakeClient:
    client = FakeClient()
    claim = service.login(client, name)
    args, reply = scripted_redis.commands[-1]
    assert (args[0], args[2], args[3]) == ("EVAL", [PREFIX + name], [NODE, 30_000])
    reply.callback(1)
    assert answer(claim) is True
    client.name = name
    return client


def relay(router: RedisRouter, channel: bytes, *messages: bytes) -> None:
    """Hand ``router`` a batch of relay messages as if it arrived on ``channel``."""
    router._relay_received(channel, relay_wire.encode_batch(list(messages)))


def spooled_body(service: ChatService, size: int) -> MessageBody:
    body = service.new_body()
    data = bytes(range(256)) * (size // 256)
    for start in range(0, len(data), 999):
        body.append(data[start : start + 999])
    body.finish()
    assert not body.is_in_memory
    return body
