"""RedisRouter's logic on a scripted Redis connection: the incoming relay, upkeep, stopping.

Relayed messages and batches received, claims refreshed and released, the
router stopping, and failures it must survive. The fake connection records
each command and answers only when the test says. The real Redis is in
``test_cluster.py``.
"""

from twisted.internet.testing import MemoryReactorClock

from chatproto.cluster.router import RedisRouter
from chatproto.server.message import ShortBody
from chatproto.server.service import ChatService
from chatproto.wire import relay as relay_wire
from tests.cluster_router_support import (
    BROADCAST,
    NODE,
    NODE_CHANNEL,
    PREFIX,
    ScriptedRedis,
    clock,
    limits,
    log_in,
    relay,
    router,
    scripted_redis,
    service,
)
from tests.support import FakeClient, answer

#: The fixtures this module shares with the other ``test_cluster_router_*`` one:
#: pytest finds them here by name, and naming them keeps the import used.
FIXTURES = (limits, clock, router, scripted_redis, service)


def test_incoming_big_message_is_delivered_whole(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    bob = log_in(service, scripted_redis, b"bob")
    frames = b"C5\nhelloC3\nyouC0\n"
    relay(router, NODE_CHANNEL, b"B n2 7 8 alice bob\n")
    relay(router, NODE_CHANNEL, relay_wire.encode_piece(b"n2", 7, frames[:6]))
    assert bob.deliveries == []  # nothing before the end (PROTOCOL §4)
    relay(router, NODE_CHANNEL, relay_wire.encode_piece(b"n2", 7, frames[6:]))
    relay(router, NODE_CHANNEL, relay_wire.encode_end(b"n2", 7))
    assert bob.received() == [(b"alice", b"helloyou")]
    assert service.stats.messages_relayed_in == 1


def test_a_batch_is_delivered_in_its_order(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    bob = log_in(service, scripted_redis, b"bob")
    relay(
        router,
        NODE_CHANNEL,
        b"S n2 1 3 alice bob\none",
        b"C n2 2 3 alice bob\nC3\ntwoC0\n",
        b"S n2 3 5 carol bob nobody\nthree",
    )
    assert bob.received() == [(b"alice", b"one"), (b"alice", b"two"), (b"carol", b"three")]


def test_own_broadcasts_and_unknown_pieces_are_ignored(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    bob = log_in(service, scripted_redis, b"bob")
    relay(router, BROADCAST, b"S n1 3 2 bob\nhi")  # from this node: delivered already
    relay(router, BROADCAST, relay_wire.encode_piece(b"n2", 9, b"C1\nx"))
    relay(router, BROADCAST, relay_wire.encode_end(b"n2", 9))
    relay(router, BROADCAST, b"S n2 4 2 carol\nyo")
    router._relay_received(BROADCAST, b"7\nshort")  # a batch cut short: ignored
    assert bob.received() == [(b"carol", b"yo")]


def test_a_big_message_whose_node_went_quiet_is_dropped(
    service: ChatService,
    router: RedisRouter,
    scripted_redis: ScriptedRedis,
    clock: MemoryReactorClock,
) -> None:
    bob = log_in(service, scripted_redis, b"bob")
    relay(router, NODE_CHANNEL, b"B n2 7 300000 alice bob\n")
    body_pieces = b"".join(b"C999\n" + b"x" * 999 for _ in range(300))
    relay(router, NODE_CHANNEL, relay_wire.encode_piece(b"n2", 7, body_pieces))
    assert service.spool.bytes_in_use > 0
    clock.advance(service.limits.cluster_ttl_s * 1.5)  # maintenance runs every third of it
    assert service.spool.bytes_in_use == 0
    relay(router, NODE_CHANNEL, relay_wire.encode_end(b"n2", 7))
    assert bob.deliveries == []


def test_refresh_disconnects_a_user_whose_id_another_node_took(
    service: ChatService,
    router: RedisRouter,
    scripted_redis: ScriptedRedis,
    clock: MemoryReactorClock,
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    bob = log_in(service, scripted_redis, b"bob")
    clock.advance(service.limits.cluster_ttl_s / 3)
    ((args, refreshed),) = scripted_redis.scripts(b"table.insert")  # the refresh
    assert args[2] == [PREFIX + b"alice", PREFIX + b"bob"]
    refreshed.callback([2])  # bob's claim is held by another node now
    assert bob.disconnected == ["userid taken on another node"]
    assert alice.disconnected == []
    assert service.lookup(b"bob") is None


def test_logout_releases_the_claim(service: ChatService, scripted_redis: ScriptedRedis) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.logout(alice)
    ((args, _),) = scripted_redis.scripts(b"DEL")
    assert (args[2], args[3]) == ([PREFIX + b"alice"], [NODE])


def test_stop_publishes_what_was_accepted_first(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"last words"))
    stopped = router.stop()
    assert not stopped.called  # waiting for the lookup
    scripted_redis.named("MGET")[0][1].callback([b"n2"])
    assert scripted_redis.published() == [
        (b"chatproto:0:node:n2", [b"S n1 1 10 alice bob\nlast words"])
    ]
    assert service.stats.messages_not_relayed == {}


def test_stop_waits_for_redis_at_most_the_timeout(
    service: ChatService,
    router: RedisRouter,
    scripted_redis: ScriptedRedis,
    clock: MemoryReactorClock,
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"unanswered"))
    router.stop()
    clock.advance(service.limits.cluster_timeout_s)
    assert service.stats.messages_not_relayed == {"server stopping": 1}
    scripted_redis.named("MGET")[0][1].callback([b"n2"])  # too late: nothing is published
    assert scripted_redis.published() == []


def test_a_failing_delivery_of_a_relayed_message_spares_the_rest(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    bob = log_in(service, scripted_redis, b"bob")

    def broken(delivery):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    carol = log_in(service, scripted_redis, b"carol")
    carol.deliver = broken  # type: ignore[method-assign]
    relay(router, NODE_CHANNEL, b"S n2 1 2 alice carol\nhi", b"S n2 2 3 alice bob\nyou")
    assert bob.received() == [(b"alice", b"you")]


def test_maintenance_goes_on_after_a_failure(
    service: ChatService,
    router: RedisRouter,
    scripted_redis: ScriptedRedis,
    clock: MemoryReactorClock,
) -> None:
    log_in(service, scripted_redis, b"alice")
    calls = []

    def failing_eval(script, keys, args):  # type: ignore[no-untyped-def]
        calls.append(keys)
        raise RuntimeError("a bug")

    scripted_redis.eval = failing_eval  # type: ignore[method-assign]
    clock.advance(service.limits.cluster_ttl_s / 3)
    clock.advance(service.limits.cluster_ttl_s / 3)
    assert len(calls) == 2  # the LoopingCall survived the first failure


def test_a_claim_whose_answer_was_lost_is_released_when_redis_answers_again(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    lost = service.login(FakeClient(), b"carol")
    scripted_redis.commands[-1][1].errback(ConnectionError("timed out"))  # Redis may still do it
    assert answer(lost) is False
    router._commands_down(scripted_redis)
    router._commands_up(scripted_redis)  # back: the doubtful claim is given back
    ((args, _),) = scripted_redis.scripts(b"DEL")
    assert args[2] == [PREFIX + b"carol"]


def counted_deliveries(client: FakeClient) -> list[int]:
    """How many messages each delivery handed to ``client`` held, in order (a list that fills)."""
    handed: list[int] = []
    deliver = client.deliver
    client.deliver = lambda delivery: handed.append(delivery.count) or deliver(delivery)  # type: ignore[method-assign]
    return handed


def test_consecutive_short_messages_of_one_sender_arrive_as_one_run(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    """Short messages from one sender to the same users are delivered as a run, in order."""
    bob = log_in(service, scripted_redis, b"bob")
    handed = counted_deliveries(bob)
    relay(
        router,
        NODE_CHANNEL,
        b"S n2 1 3 alice bob\none",
        b"S n2 2 3 alice bob\ntwo",
        b"C n2 3 5 alice bob\nC5\nthreeC0\n",
        b"S n2 4 4 alice bob\nfour",
        b"S n2 5 4 carol bob\nfive",
    )
    assert handed == [2, 1, 1, 1]
    assert bob.received() == [
        (b"alice", b"one"),
        (b"alice", b"two"),
        (b"alice", b"three"),
        (b"alice", b"four"),
        (b"carol", b"five"),
    ]
    assert service.stats.messages_relayed_in == 5


def test_runs_from_another_node_join_the_run_they_continue(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    """A relayed RUN and the short messages around it, of one sender, are one delivery."""
    bob = log_in(service, scripted_redis, b"bob")
    handed = counted_deliveries(bob)
    relay(
        router,
        NODE_CHANNEL,
        b"S n2 1 4 alice bob\nzero",
        b"R n2 2 3 alice bob\n3\none3\ntwo0\n",
        b"R n2 3 1 carol bob\n5\nthree",
    )
    relay(router, BROADCAST, b"R n2 4 2 alice\n4\nfour4\nfive", b"R n1 5 1 bob\n3\nown")
    assert handed == [4, 1, 2]  # its own BROADCAST run (from n1) is skipped
    assert bob.received() == [
        (b"alice", b"zero"),
        (b"alice", b"one"),
        (b"alice", b"two"),
        (b"alice", b""),
        (b"carol", b"three"),
        (b"alice", b"four"),
        (b"alice", b"five"),
    ]
    assert service.stats.messages_relayed_in == 7


def test_a_malformed_run_is_skipped_and_the_rest_delivered(
    service: ChatService, router: RedisRouter, scripted_redis: ScriptedRedis
) -> None:
    bob = log_in(service, scripted_redis, b"bob")
    relay(
        router,
        NODE_CHANNEL,
        b"S n2 1 3 alice bob\none",
        b"R n2 2 3 alice bob\n3\ntwo",  # says three, holds one
        b"R n2 3 1 alice bob\n03\ntwo",  # not canonical
        b"S n2 4 5 alice bob\nthree",
    )
    assert bob.received() == [(b"alice", b"one"), (b"alice", b"three")]
