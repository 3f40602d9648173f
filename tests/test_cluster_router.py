"""RedisRouter's logic against a scripted Redis connection, on a MemoryReactorClock.

The fake connection records each command and answers only when the test
says, so the tests can hold a lookup open and check what waits for it. The
real Redis is in ``test_cluster.py``.
"""

from collections.abc import Iterator

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from chatproto.cluster.address import RedisAddress
from chatproto.cluster.router import (
    RELAY_ENTRY_OVERHEAD_BYTES,
    RELAY_PIECE_BYTES,
    RELAY_WINDOW_BYTES,
    RedisRouter,
)
from chatproto.limits import Limits
from chatproto.server.interfaces import IRouter, IRouterHost
from chatproto.server.message import MessageBody, ShortBody
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
def redis(router: RedisRouter) -> ScriptedRedis:
    return ScriptedRedis()


@pytest.fixture
def service(
    router: RedisRouter, redis: ScriptedRedis, clock: MemoryReactorClock, limits: Limits
) -> Iterator[ChatService]:
    chat = ChatService(clock, limits, router=router, random_messages=False)
    chat.startService()
    router._commands_up(redis)  # as if both connections came up
    router._subscriber_up(redis)
    yield chat
    chat.stopService()


def log_in(service: ChatService, redis: ScriptedRedis, name: bytes) -> FakeClient:
    client = FakeClient()
    claim = service.login(client, name)
    args, reply = redis.commands[-1]
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


def test_router_and_service_provide_the_interfaces_they_meet_by(
    service: ChatService, router: RedisRouter
) -> None:
    """The router is an IRouter and calls back on the service only as an IRouterHost."""
    assert verifyObject(IRouter, router)
    assert verifyObject(IRouterHost, service)


def test_claims_are_answered_by_redis(service: ChatService, redis: ScriptedRedis) -> None:
    log_in(service, redis, b"alice")
    taken = service.login(FakeClient(), b"bob")
    redis.commands[-1][1].callback(0)  # another node holds it
    assert answer(taken) is False
    failed = service.login(FakeClient(), b"carol")
    redis.commands[-1][1].errback(ConnectionError("lost"))
    assert answer(failed) is False
    assert service.user_count == 1


def test_no_login_without_redis(service: ChatService, router: RedisRouter, redis) -> None:
    router._subscriber_down(redis)  # not listening: could not receive anything
    assert answer(service.login(FakeClient(), b"alice")) is False
    assert redis.named("EVAL") == []


def test_a_turn_is_published_in_runs_that_keep_the_order(
    service: ChatService, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"one"))
    service.send(alice, [b"bob"], ShortBody(b"two"))
    service.send(alice, None, ShortBody(b"three"))
    service.send(alice, [b"bob"], ShortBody(b"four"))
    assert redis.named("MGET") == []  # nothing until the end of the turn
    clock.advance(0)
    ((mget, where),) = redis.named("MGET")
    assert mget == ("MGET", PREFIX + b"bob")  # one lookup for the turn
    assert redis.published() == []  # everything waits for it, the BROADCAST too
    where.callback([b"n2"])
    node = b"chatproto:0:node:n2"
    assert redis.published() == [
        (node, [b"S n1 1 3 alice bob\none", b"S n1 2 3 alice bob\ntwo"]),
        (BROADCAST, [b"S n1 3 5 alice\nthree"]),
        (node, [b"S n1 4 4 alice bob\nfour"]),
    ]


def test_the_next_turn_waits_for_the_lookup_of_the_last(
    service: ChatService, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"first"))
    clock.advance(0)
    service.send(alice, None, ShortBody(b"second"))
    clock.advance(0)
    assert redis.published() == []
    redis.named("MGET")[0][1].callback([b"n2"])
    assert [channel for channel, _ in redis.published()] == [b"chatproto:0:node:n2", BROADCAST]


def test_recipients_are_grouped_by_node(
    service: ChatService, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    service.send(alice, [b"bob", b"carol", b"dave", b"gone", b"back"], ShortBody(b"hi"))
    clock.advance(0)
    ((_, where),) = redis.named("MGET")
    where.callback([b"n2", b"n3", b"n2", None, NODE])  # "back" is (was) here: skipped
    assert redis.published() == [
        (b"chatproto:0:node:n2", [b"S n1 1 2 alice bob dave\nhi"]),
        (b"chatproto:0:node:n3", [b"S n1 1 2 alice carol\nhi"]),
    ]
    assert service.stats.messages_relayed_out == 2


def test_big_body_goes_in_pieces_within_the_window(
    service: ChatService, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    body = spooled_body(service, 3 * 1024 * 1024)
    expected = body.read_wire(0, body.wire_size)
    service.send(alice, None, body)
    body.release()  # the session's reference: the router holds its own
    clock.advance(0)
    published = [message for _, (message,) in redis.published()]
    pieces = [message for message in published if message.startswith(b"P ")]
    assert published[0] == b"B n1 1 %d alice\n" % body.size
    assert len(pieces) == RELAY_WINDOW_BYTES // RELAY_PIECE_BYTES  # then it waits
    for _ in range(100):  # Redis answers; more pieces follow, bounded
        unanswered = [reply for _, reply in redis.named("PUBLISH") if not reply.called]
        if not unanswered:
            break
        for reply in unanswered:
            reply.callback(1)
    published = [message for _, (message,) in redis.published()]
    wire = b"".join(message.split(b"\n", 1)[1] for message in published[1:-1])
    assert published[-1] == b"E n1 1\n"
    assert wire == expected
    assert service.spool.bytes_in_use == 0  # the spool file is given back


def test_relay_backlog_limit_drops_and_counts(
    clock: MemoryReactorClock, redis: ScriptedRedis
) -> None:
    """Queued messages count their bytes and a per-message overhead against the limit."""
    limit = 2 * (40 + RELAY_ENTRY_OVERHEAD_BYTES)
    limits = Limits(max_relay_backlog_bytes=limit)
    router = RedisRouter(RedisAddress(), clock, limits, node_id=NODE)
    service = ChatService(clock, limits, router=router, random_messages=False)
    service.startService()
    router._commands_up(redis)
    router._subscriber_up(redis)
    alice = log_in(service, redis, b"alice")
    for _ in range(3):
        service.send(alice, None, ShortBody(b"x" * 40))
    assert service.stats.messages_not_relayed == {"relay backlog full": 1}  # the third
    clock.advance(0)
    ((_, messages),) = redis.published()
    assert len(messages) == 2
    service.stopService()


def test_spooled_bodies_count_their_size_against_the_relay_backlog(
    clock: MemoryReactorClock, redis: ScriptedRedis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A spooled body waiting to be published holds disk and a file: its size counts.

    One message is always let in, even one bigger than the limit; the next is
    dropped and its spool file is not kept open.
    """
    limits = Limits(max_relay_backlog_bytes=1024 * 1024)
    router = RedisRouter(RedisAddress(), clock, limits, node_id=NODE)
    service = ChatService(
        clock, limits, router=router, random_messages=False, spool_directory=str(tmp_path)
    )
    service.startService()
    router._commands_up(redis)
    router._subscriber_up(redis)
    alice = log_in(service, redis, b"alice")
    for _ in range(2):
        body = spooled_body(service, 3 * 1024 * 1024)
        service.send(alice, None, body)
        body.release()
    assert service.stats.messages_not_relayed == {"relay backlog full": 1}  # the second
    assert service.spool.files_open == 1  # the first, waiting for its turn
    service.stopService()


def test_lost_connection_drops_the_queue_and_releases_bodies(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    body = spooled_body(service, 512 * 1024)
    service.send(alice, [b"bob"], body)
    body.release()
    clock.advance(0)  # the first is being looked up
    service.send(alice, [b"bob"], ShortBody(b"hi"))  # the second is gathered
    router._commands_down(redis)
    assert service.spool.bytes_in_use == 0
    assert service.stats.messages_not_relayed == {"Redis connection lost": 2}
    redis.named("MGET")[0][1].errback(ConnectionError("lost"))  # counted once only
    assert service.stats.messages_not_relayed == {"Redis connection lost": 2}
    service.send(alice, [b"bob"], ShortBody(b"later"))
    assert service.stats.messages_not_relayed["Redis unreachable"] == 1
    assert answer(service.login(FakeClient(), b"carol")) is False


def test_incoming_big_message_is_delivered_whole(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis
) -> None:
    bob = log_in(service, redis, b"bob")
    frames = b"C5\nhelloC3\nyouC0\n"
    relay(router, NODE_CHANNEL, b"B n2 7 8 alice bob\n")
    relay(router, NODE_CHANNEL, relay_wire.encode_piece(b"n2", 7, frames[:6]))
    assert bob.deliveries == []  # nothing before the end (PROTOCOL §4)
    relay(router, NODE_CHANNEL, relay_wire.encode_piece(b"n2", 7, frames[6:]))
    relay(router, NODE_CHANNEL, relay_wire.encode_end(b"n2", 7))
    assert bob.received() == [(b"alice", b"helloyou")]
    assert service.stats.messages_relayed_in == 1


def test_a_batch_is_delivered_in_its_order(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis
) -> None:
    bob = log_in(service, redis, b"bob")
    relay(
        router,
        NODE_CHANNEL,
        b"S n2 1 3 alice bob\none",
        b"C n2 2 3 alice bob\nC3\ntwoC0\n",
        b"S n2 3 5 carol bob nobody\nthree",
    )
    assert bob.received() == [(b"alice", b"one"), (b"alice", b"two"), (b"carol", b"three")]


def test_own_broadcasts_and_unknown_pieces_are_ignored(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis
) -> None:
    bob = log_in(service, redis, b"bob")
    relay(router, BROADCAST, b"S n1 3 2 bob\nhi")  # from this node: delivered already
    relay(router, BROADCAST, relay_wire.encode_piece(b"n2", 9, b"C1\nx"))
    relay(router, BROADCAST, relay_wire.encode_end(b"n2", 9))
    relay(router, BROADCAST, b"S n2 4 2 carol\nyo")
    router._relay_received(BROADCAST, b"7\nshort")  # a batch cut short: ignored
    assert bob.received() == [(b"carol", b"yo")]


def test_a_big_message_whose_node_went_quiet_is_dropped(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    bob = log_in(service, redis, b"bob")
    relay(router, NODE_CHANNEL, b"B n2 7 300000 alice bob\n")
    body_pieces = b"".join(b"C999\n" + b"x" * 999 for _ in range(300))
    relay(router, NODE_CHANNEL, relay_wire.encode_piece(b"n2", 7, body_pieces))
    assert service.spool.bytes_in_use > 0
    clock.advance(service.limits.cluster_ttl_s * 1.5)  # maintenance runs every third of it
    assert service.spool.bytes_in_use == 0
    relay(router, NODE_CHANNEL, relay_wire.encode_end(b"n2", 7))
    assert bob.deliveries == []


def test_refresh_disconnects_a_user_whose_id_another_node_took(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    bob = log_in(service, redis, b"bob")
    clock.advance(service.limits.cluster_ttl_s / 3)
    ((args, refreshed),) = redis.scripts(b"table.insert")  # the refresh
    assert args[2] == [PREFIX + b"alice", PREFIX + b"bob"]
    refreshed.callback([2])  # bob's claim is held by another node now
    assert bob.disconnected == ["userid taken on another node"]
    assert alice.disconnected == []
    assert service.lookup(b"bob") is None


def test_logout_releases_the_claim(service: ChatService, redis: ScriptedRedis) -> None:
    alice = log_in(service, redis, b"alice")
    service.logout(alice)
    ((args, _),) = redis.scripts(b"DEL")
    assert (args[2], args[3]) == ([PREFIX + b"alice"], [NODE])


def test_stop_publishes_what_was_accepted_first(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis
) -> None:
    alice = log_in(service, redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"last words"))
    stopped = router.stop()
    assert not stopped.called  # waiting for the lookup
    redis.named("MGET")[0][1].callback([b"n2"])
    assert redis.published() == [(b"chatproto:0:node:n2", [b"S n1 1 10 alice bob\nlast words"])]
    assert service.stats.messages_not_relayed == {}


def test_stop_waits_for_redis_at_most_the_timeout(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"unanswered"))
    router.stop()
    clock.advance(service.limits.cluster_timeout_s)
    assert service.stats.messages_not_relayed == {"server stopping": 1}
    redis.named("MGET")[0][1].callback([b"n2"])  # too late: nothing is published
    assert redis.published() == []


def test_a_failing_delivery_of_a_relayed_message_spares_the_rest(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis
) -> None:
    bob = log_in(service, redis, b"bob")

    def broken(delivery):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    carol = log_in(service, redis, b"carol")
    carol.deliver = broken  # type: ignore[method-assign]
    relay(router, NODE_CHANNEL, b"S n2 1 2 alice carol\nhi", b"S n2 2 3 alice bob\nyou")
    assert bob.received() == [(b"alice", b"you")]


def test_maintenance_goes_on_after_a_failure(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    log_in(service, redis, b"alice")
    calls = []

    def failing_eval(script, keys, args):  # type: ignore[no-untyped-def]
        calls.append(keys)
        raise RuntimeError("a bug")

    redis.eval = failing_eval  # type: ignore[method-assign]
    clock.advance(service.limits.cluster_ttl_s / 3)
    clock.advance(service.limits.cluster_ttl_s / 3)
    assert len(calls) == 2  # the LoopingCall survived the first failure


def test_a_claim_whose_answer_was_lost_is_released_when_redis_answers_again(
    service: ChatService, router: RedisRouter, redis: ScriptedRedis
) -> None:
    lost = service.login(FakeClient(), b"carol")
    redis.commands[-1][1].errback(ConnectionError("timed out"))  # Redis may still do it
    assert answer(lost) is False
    router._commands_down(redis)
    router._commands_up(redis)  # back: the doubtful claim is given back
    ((args, _),) = redis.scripts(b"DEL")
    assert args[2] == [PREFIX + b"carol"]
