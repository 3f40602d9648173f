"""RedisRouter's logic on a scripted Redis connection: login claims and the outgoing relay.

The fake connection records each command and answers only when the test
says, so the tests can hold a lookup open and check what waits for it. The
real Redis is in ``test_cluster.py``.
"""

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
from chatproto.server.message import ShortBody
from chatproto.server.service import ChatService
from chatproto.wire import relay as relay_wire
from tests.cluster_router_support import (
    BROADCAST,
    NODE,
    PREFIX,
    ScriptedRedis,
    clock,
    limits,
    log_in,
    router,
    scripted_redis,
    service,
    spooled_body,
)
from tests.support import FakeClient, answer

#: The fixtures this module shares with the other ``test_cluster_router_*`` one:
#: pytest finds them here by name, and naming them keeps the import used.
FIXTURES = (limits, clock, router, scripted_redis, service)


def test_router_and_service_provide_the_interfaces_they_meet_by(
    service: ChatService, router: RedisRouter
) -> None:
    """The router is an IRouter and calls back on the service only as an IRouterHost."""
    assert verifyObject(IRouter, router)
    assert verifyObject(IRouterHost, service)


def test_claims_are_answered_by_redis(service: ChatService, scripted_redis: ScriptedRedis) -> None:
    log_in(service, scripted_redis, b"alice")
    taken = service.login(FakeClient(), b"bob")
    scripted_redis.commands[-1][1].callback(0)  # another node holds it
    assert answer(taken) is False
    failed = service.login(FakeClient(), b"carol")
    scripted_redis.commands[-1][1].errback(ConnectionError("lost"))
    assert answer(failed) is False
    assert service.user_count == 1


def test_no_login_without_redis(service: ChatService, router: RedisRouter, scripted_redis) -> None:
    router._subscriber_down(scripted_redis)  # not listening: could not receive anything
    assert answer(service.login(FakeClient(), b"alice")) is False
    assert scripted_redis.named("EVAL") == []


def test_a_turn_is_published_in_runs_that_keep_the_order(
    service: ChatService, scripted_redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"one"))
    service.send(alice, [b"bob"], ShortBody(b"two"))
    service.send(alice, None, ShortBody(b"three"))
    service.send(alice, [b"bob"], ShortBody(b"four"))
    assert scripted_redis.named("MGET") == []  # nothing until the end of the turn
    clock.advance(0)
    ((mget, where),) = scripted_redis.named("MGET")
    assert mget == ("MGET", PREFIX + b"bob")  # one lookup for the turn
    assert scripted_redis.published() == []  # everything waits for it, the BROADCAST too
    where.callback([b"n2"])
    node = b"chatproto:0:node:n2"
    assert scripted_redis.published() == [
        (node, [b"S n1 1 3 alice bob\none", b"S n1 2 3 alice bob\ntwo"]),
        (BROADCAST, [b"S n1 3 5 alice\nthree"]),
        (node, [b"S n1 4 4 alice bob\nfour"]),
    ]


def test_a_run_goes_as_one_relay_message_to_each_node(
    service: ChatService, scripted_redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    """A run of short messages is one RUN per node, in its place among the others.

    Each of its messages counts as relayed, once per node it went to.
    """
    alice = log_in(service, scripted_redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"zero"))
    service.send_run(alice, [b"bob", b"carol"], [b"3\none", b"3\ntwo", b"0\n"], 6, 0)
    service.send(alice, [b"bob"], ShortBody(b"three"))
    service.send_run(alice, None, [b"4\nfour", b"4\nfive"], 8, 0)
    clock.advance(0)
    ((mget, where),) = scripted_redis.named("MGET")
    assert mget == ("MGET", PREFIX + b"bob", PREFIX + b"carol")
    where.callback([b"n2", b"n3"])
    node_2, node_3 = b"chatproto:0:node:n2", b"chatproto:0:node:n3"
    assert scripted_redis.published() == [
        (
            node_2,
            [
                b"S n1 1 4 alice bob\nzero",
                b"R n1 2 3 alice bob\n3\none3\ntwo0\n",
                b"S n1 3 5 alice bob\nthree",
            ],
        ),
        (node_3, [b"R n1 2 3 alice carol\n3\none3\ntwo0\n"]),
        (BROADCAST, [b"R n1 4 2 alice\n4\nfour4\nfive"]),
    ]
    assert service.stats.messages_relayed_out == 1 + 3 * 2 + 1 + 2


def test_a_run_not_relayed_counts_each_of_its_messages(
    service: ChatService,
    router: RedisRouter,
    scripted_redis: ScriptedRedis,
    clock: MemoryReactorClock,
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.send_run(alice, [b"bob"], [b"1\na", b"1\nb", b"1\nc"], 3, 0)
    router._commands_down(scripted_redis)  # gathered, never published
    assert service.stats.messages_not_relayed == {"Redis connection lost": 3}
    service.send_run(alice, None, [b"1\nd", b"1\ne"], 2, 0)
    assert service.stats.messages_not_relayed["Redis unreachable"] == 2
    assert scripted_redis.published() == []


def test_a_run_costs_one_entry_against_the_relay_backlog(
    clock: MemoryReactorClock, scripted_redis: ScriptedRedis
) -> None:
    """A queued run counts its bytes and one overhead; one that does not fit is dropped whole."""
    limits = Limits(max_relay_backlog_bytes=2 * RELAY_ENTRY_OVERHEAD_BYTES + 100)
    router = RedisRouter(RedisAddress(), clock, limits, node_id=NODE)
    service = ChatService(clock, limits, router=router, random_messages=False)
    service.startService()
    router._commands_up(scripted_redis)
    router._subscriber_up(scripted_redis)
    alice = log_in(service, scripted_redis, b"alice")
    service.send_run(alice, None, [b"9\n" + b"x" * 9] * 5, 45, 0)  # 55 bytes
    service.send_run(alice, None, [b"9\n" + b"y" * 9] * 4, 36, 0)  # 44: fits
    service.send_run(alice, None, [b"0\n"] * 3, 0, 0)  # no room for its overhead
    assert service.stats.messages_not_relayed == {"relay backlog full": 3}
    clock.advance(0)
    ((_, messages),) = scripted_redis.published()
    assert [relay_wire.decode(message)[0].size for message in messages] == [5, 4]
    service.stopService()


def test_the_next_turn_waits_for_the_lookup_of_the_last(
    service: ChatService, scripted_redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.send(alice, [b"bob"], ShortBody(b"first"))
    clock.advance(0)
    service.send(alice, None, ShortBody(b"second"))
    clock.advance(0)
    assert scripted_redis.published() == []
    scripted_redis.named("MGET")[0][1].callback([b"n2"])
    assert [channel for channel, _ in scripted_redis.published()] == [
        b"chatproto:0:node:n2",
        BROADCAST,
    ]


def test_recipients_are_grouped_by_node(
    service: ChatService, scripted_redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    service.send(alice, [b"bob", b"carol", b"dave", b"gone", b"back"], ShortBody(b"hi"))
    clock.advance(0)
    ((_, where),) = scripted_redis.named("MGET")
    where.callback([b"n2", b"n3", b"n2", None, NODE])  # "back" is (was) here: skipped
    assert scripted_redis.published() == [
        (b"chatproto:0:node:n2", [b"S n1 1 2 alice bob dave\nhi"]),
        (b"chatproto:0:node:n3", [b"S n1 1 2 alice carol\nhi"]),
    ]
    assert service.stats.messages_relayed_out == 2


def test_big_body_goes_in_pieces_within_the_window(
    service: ChatService, scripted_redis: ScriptedRedis, clock: MemoryReactorClock
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    body = spooled_body(service, 3 * 1024 * 1024)
    expected = body.read_wire(0, body.wire_size)
    service.send(alice, None, body)
    body.release()  # the session's reference: the router holds its own
    clock.advance(0)
    published = [message for _, (message,) in scripted_redis.published()]
    pieces = [message for message in published if message.startswith(b"P ")]
    assert published[0] == b"B n1 1 %d alice\n" % body.size
    assert len(pieces) == RELAY_WINDOW_BYTES // RELAY_PIECE_BYTES  # then it waits
    for _ in range(100):  # Redis answers; more pieces follow, bounded
        unanswered = [reply for _, reply in scripted_redis.named("PUBLISH") if not reply.called]
        if not unanswered:
            break
        for reply in unanswered:
            reply.callback(1)
    published = [message for _, (message,) in scripted_redis.published()]
    wire = b"".join(message.split(b"\n", 1)[1] for message in published[1:-1])
    assert published[-1] == b"E n1 1\n"
    assert wire == expected
    assert service.spool.bytes_in_use == 0  # the spool file is given back


def test_relay_backlog_limit_drops_and_counts(
    clock: MemoryReactorClock, scripted_redis: ScriptedRedis
) -> None:
    """Queued messages count their bytes and a per-message overhead against the limit."""
    limit = 2 * (40 + RELAY_ENTRY_OVERHEAD_BYTES)
    limits = Limits(max_relay_backlog_bytes=limit)
    router = RedisRouter(RedisAddress(), clock, limits, node_id=NODE)
    service = ChatService(clock, limits, router=router, random_messages=False)
    service.startService()
    router._commands_up(scripted_redis)
    router._subscriber_up(scripted_redis)
    alice = log_in(service, scripted_redis, b"alice")
    for _ in range(3):
        service.send(alice, None, ShortBody(b"x" * 40))
    assert service.stats.messages_not_relayed == {"relay backlog full": 1}  # the third
    clock.advance(0)
    ((_, messages),) = scripted_redis.published()
    assert len(messages) == 2
    service.stopService()


def test_spooled_bodies_count_their_size_against_the_relay_backlog(
    clock: MemoryReactorClock, scripted_redis: ScriptedRedis, tmp_path
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
    router._commands_up(scripted_redis)
    router._subscriber_up(scripted_redis)
    alice = log_in(service, scripted_redis, b"alice")
    for _ in range(2):
        body = spooled_body(service, 3 * 1024 * 1024)
        service.send(alice, None, body)
        body.release()
    assert service.stats.messages_not_relayed == {"relay backlog full": 1}  # the second
    assert service.spool.files_open == 1  # the first, waiting for its turn
    service.stopService()


def test_lost_connection_drops_the_queue_and_releases_bodies(
    service: ChatService,
    router: RedisRouter,
    scripted_redis: ScriptedRedis,
    clock: MemoryReactorClock,
) -> None:
    alice = log_in(service, scripted_redis, b"alice")
    body = spooled_body(service, 512 * 1024)
    service.send(alice, [b"bob"], body)
    body.release()
    clock.advance(0)  # the first is being looked up
    service.send(alice, [b"bob"], ShortBody(b"hi"))  # the second is gathered
    router._commands_down(scripted_redis)
    assert service.spool.bytes_in_use == 0
    assert service.stats.messages_not_relayed == {"Redis connection lost": 2}
    scripted_redis.named("MGET")[0][1].errback(ConnectionError("lost"))  # counted once only
    assert service.stats.messages_not_relayed == {"Redis connection lost": 2}
    service.send(alice, [b"bob"], ShortBody(b"later"))
    assert service.stats.messages_not_relayed["Redis unreachable"] == 1
    assert answer(service.login(FakeClient(), b"carol")) is False
