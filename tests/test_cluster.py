"""End-to-end tests of ``--cluster``: several server processes sharing one Redis.

Each test starts a real ``redis-server`` on a free loopback port (skipped
without the binary) and two or three chatproto nodes as subprocesses, and
talks to them over real TCP and UDP sockets. A node accepts logins only once
it is connected to Redis and listening on its channels, so a first ``OK``
from ``login_when_free`` (which retries on ``ERROR``) means the node is in
the cluster.
"""

import hashlib
import os
import select
import signal
from collections.abc import Callable

import pytest

from chatproto.server.service import CANNED_LINES
from chatproto.wire.encode import encode_message
from tests.e2e_support import LAUNCHERS, Deadline, Server, free_port, wait_until
from tests.metrics_page import samples_named, scrape_metrics
from tests.redis_support import RedisServer
from tests.sockets import TcpClient, UdpClient, login_when_free

pytestmark = pytest.mark.e2e  # every test here starts a process

StartNode = Callable[..., Server]


@pytest.fixture
def start_node(launch, redis: RedisServer) -> StartNode:  # type: ignore[no-untyped-def]
    """Start cluster nodes on demand (random messages off unless asked), ready to use."""

    def start(launcher: str = "chat_server", *extra: str, url: str | None = None) -> Server:
        options = ["--cluster", url or redis.url, *extra]
        if "--random-seed" not in extra:
            options.append("--no-random")
        return launch(launcher, [free_port()], options)

    return start


def udp_login_when_ready(client: UdpClient, user: bytes) -> None:
    deadline = Deadline()
    for _ in range(1000):
        client.send(b"ME IS " + user + b"\n")
        reply, _ = client.recv()
        if reply == b"OK\n":
            return
        assert reply == b"ERROR\n"
        assert not deadline.expired(), f"UDP login of {user!r} not accepted"
    raise AssertionError(f"UDP login of {user!r} not accepted")


def chunked_body(data: bytes) -> bytes:
    return b"".join(
        b"C%d\n%b" % (len(data[i : i + 999]), data[i : i + 999]) for i in range(0, len(data), 999)
    ) + (b"C0\n")


def has_data(client: TcpClient, seconds: float = 0.05) -> bool:
    """Whether ``client`` has something to read within ``seconds`` (a bounded wait)."""
    if client._buffer:
        return True
    readable, _, _ = select.select([client.sock], [], [], seconds)
    return bool(readable)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_send_reaches_users_on_every_node(launcher, start_node, tcp, udp) -> None:
    """One SEND names users on three nodes, over TCP and UDP; each gets it once."""
    node_a, node_b, node_c = (start_node(launcher) for _ in range(3))
    alice, dave = tcp(node_a.ports[0]), tcp(node_a.ports[0])
    bob, carol = tcp(node_b.ports[0]), tcp(node_c.ports[0])
    eve = udp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(dave, b"dave")
    login_when_free(bob, b"bob")
    login_when_free(carol, b"carol")
    udp_login_when_ready(eve, b"eve")

    alice.send(b"SEND bob carol dave eve nobody\n5\nhello")
    for client in (bob, carol, dave):
        assert client.recv_delivery() == (b"alice", b"hello", False)
    eve.expect(b"FROM alice\n5\nhello")

    # Nothing was delivered twice: the next delivery is the next message.
    alice.send(b"SEND bob carol dave\n4\nnext")
    for client in (bob, carol, dave):
        assert client.recv_delivery() == (b"alice", b"next", False)


def test_broadcast_reaches_every_node_once(start_node, tcp) -> None:
    nodes = [start_node() for _ in range(3)]
    users = {}
    for index, name in enumerate([b"alice", b"bob", b"carol", b"dave"]):
        users[name] = tcp(nodes[index % 3].ports[0])
        login_when_free(users[name], name)

    users[b"bob"].send(b"BROADCAST\n3\nall")
    users[b"bob"].send(b"BROADCAST\n4\nmore")
    for client in users.values():  # the sender too (PROTOCOL §3)
        assert client.recv_delivery() == (b"bob", b"all", False)
        assert client.recv_delivery() == (b"bob", b"more", False)


def test_order_from_one_sender_is_kept_across_nodes(start_node, tcp) -> None:
    """Short, chunked and broadcast messages from one sender arrive in the order sent."""
    node_a, node_b = start_node(), start_node()
    alice, bob = tcp(node_a.ports[0]), tcp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(bob, b"bob")

    expected = []
    stream = []
    for index in range(1500):
        text = b"%d" % index
        if index % 100 == 7:
            big = text * 40_000  # spooled on both nodes, relayed in pieces
            stream.append(b"SEND bob\n" + chunked_body(big))
            expected.append((b"alice", big, True))
        elif index % 10 == 3:
            stream.append(encode_message(None, text))
            expected.append((b"alice", text, False))
        else:
            stream.append(encode_message([b"bob"], text))
            expected.append((b"alice", text, False))
    alice.send(b"".join(stream))
    got = [bob.recv_delivery() for _ in expected]
    assert got == expected


def test_a_run_crosses_nodes_whole_and_is_counted_message_by_message(start_node, tcp) -> None:
    """Hundreds of messages in one write go to the other node as runs, and arrive all in order.

    The sending node counts each message it relayed (to bob's node, and to
    the broadcast channel), not each run.
    """
    metrics = free_port()
    node_a = start_node("chat_server", "--metrics-port", str(metrics))
    node_b = start_node()
    alice, carol, bob = tcp(node_a.ports[0]), tcp(node_a.ports[0]), tcp(node_b.ports[0])
    for client, name in ((alice, b"alice"), (carol, b"carol"), (bob, b"bob")):
        login_when_free(client, name)
    sends = [b"%d: %b" % (index, b"x" * (index % 90)) for index in range(300)]
    broadcasts = [b"all %d" % index for index in range(100)]
    alice.send(
        b"".join(encode_message([b"bob", b"carol"], text) for text in sends)
        + b"".join(encode_message(None, text) for text in broadcasts)
    )
    expected = [(b"alice", text, False) for text in sends + broadcasts]
    assert [bob.recv_delivery() for _ in expected] == expected
    assert [carol.recv_delivery() for _ in expected] == expected
    sent = samples_named(scrape_metrics(metrics), "chat_cluster_messages_out_total")
    assert sent == {(): 400}


def test_five_megabyte_chunked_message_across_nodes(start_node, tcp) -> None:
    node_a, node_b, node_c = start_node(), start_node(), start_node()
    alice = tcp(node_a.ports[0])
    local, bob, carol = tcp(node_a.ports[0]), tcp(node_b.ports[0]), tcp(node_c.ports[0])
    for client, name in ((alice, b"alice"), (local, b"lee"), (bob, b"bob"), (carol, b"carol")):
        login_when_free(client, name)
    data = os.urandom(5 * 1024 * 1024)
    alice.send(b"SEND lee bob carol\n" + chunked_body(data))
    digest = hashlib.sha256(data).hexdigest()
    for client in (local, bob, carol):
        sender, body, chunked = client.recv_delivery()
        assert (sender, chunked, hashlib.sha256(body).hexdigest()) == (b"alice", True, digest)


def test_userid_online_on_one_node_is_refused_on_the_others(start_node, tcp, redis) -> None:
    node_a, node_b = start_node(), start_node()
    alice = tcp(node_a.ports[0])
    login_when_free(alice, b"alice")
    impostor = tcp(node_b.ports[0])
    login_when_free(impostor, b"probe")  # node B is in the cluster
    impostor2 = tcp(node_b.ports[0])
    impostor2.send(b"ME IS alice\n")
    impostor2.expect(b"ERROR\n")

    # Logging out gives the id back at once (the claim is deleted, not left to lapse).
    alice.close()
    wait_until(lambda: b"chatproto:0:user:alice" not in redis.keys(), what="alice released")
    impostor2.send(b"ME IS alice\n")
    impostor2.expect(b"OK\n")


def test_killed_node_frees_its_ids_after_the_ttl(start_node, tcp) -> None:
    node_a = start_node("chat_server", "--cluster-ttl", "1")
    node_b = start_node("chat_server", "--cluster-ttl", "1")
    alice = tcp(node_a.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(tcp(node_b.ports[0]), b"probe")  # node B is in the cluster

    node_a.process.send_signal(signal.SIGKILL)
    node_a.process.wait(timeout=10)
    other = tcp(node_b.ports[0])
    other.send(b"ME IS alice\n")
    other.expect(b"ERROR\n")  # the dead node's claim is still there
    login_when_free(other, b"alice", seconds=5)  # ... until it lapses


def test_redis_restart_in_the_middle_of_traffic(start_node, tcp, redis) -> None:
    node_a, node_b = start_node(), start_node()
    alice, dave = tcp(node_a.ports[0]), tcp(node_a.ports[0])
    bob = tcp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(dave, b"dave")
    login_when_free(bob, b"bob")
    for index in range(200):
        alice.send(encode_message([b"bob"], b"%d" % index))
    for index in range(200):
        assert bob.recv_delivery() == (b"alice", b"%d" % index, False)

    redis.stop()
    # Users stay connected; local delivery goes on; nothing crosses nodes.
    newcomer = tcp(node_a.ports[0])

    def refused() -> bool:
        newcomer.send(b"ME IS newcomer\n")
        return newcomer.recv_line() == b"ERROR\n"

    wait_until(refused, what="logins refused while Redis is away")
    alice.send(b"SEND bob dave\n4\nlost")
    assert dave.recv_delivery() == (b"alice", b"lost", False)

    redis.start()  # empty: the nodes must make their claims again
    wait_until(
        lambda: {b"chatproto:0:user:alice", b"chatproto:0:user:bob"} <= set(redis.keys()),
        what="the registry rebuilt from the nodes' users",
    )
    # Relaying resumes: probe until one arrives (probes sent before node B
    # listens again are dropped, like the "lost" message).
    deadline = Deadline()
    for attempt in range(1000):
        alice.send(encode_message([b"bob"], b"probe %d" % attempt))
        sender, body, _ = bob.recv_delivery() if has_data(bob) else (None, None, None)
        if body is not None:
            assert body.startswith(b"probe ")  # never the message sent while Redis was away
            break
        assert not deadline.expired(), "relaying did not resume after Redis came back"
    impostor = tcp(node_b.ports[0])
    impostor.send(b"ME IS alice\n")
    impostor.expect(b"ERROR\n")


def test_random_messages_are_counted_on_the_recipients_node(start_node, tcp) -> None:
    node_a = start_node("chat_server", "--random-seed", "1")
    node_b = start_node("chat_server", "--random-seed", "1")
    alice, bob = tcp(node_a.ports[0]), tcp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(bob, b"bob")
    for text in (b"one", b"two", b"three"):
        alice.send(encode_message([b"bob"], text))
    assert [bob.recv_delivery() for _ in range(3)] == [
        (b"alice", b"one", False),
        (b"alice", b"two", False),
        (b"alice", b"three", False),
    ]
    sender, text, chunked = bob.recv_delivery()
    assert (sender, chunked) == (b"alice", False)
    assert text in CANNED_LINES


def test_garbage_on_the_relay_channels_is_ignored(start_node, tcp, redis) -> None:
    node_a, node_b = start_node(), start_node()
    alice, bob = tcp(node_a.ports[0]), tcp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(bob, b"bob")
    junk_messages = (
        b"",
        b"\n",
        b"S x\n",
        b"P a notanumber\nzz",
        b"E a 1\n",  # the end of a message never begun
        b"B a 1 5 mallory\n",  # a beginning never ended: dropped after the TTL
        b"\xff" * 100,
    )
    for junk in junk_messages:
        redis.execute(b"PUBLISH", b"chatproto:0:broadcast", junk)
    alice.send(b"SEND bob\n2\nok")
    assert bob.recv_delivery() == (b"alice", b"ok", False)
    assert node_b.process.poll() is None


def test_logins_wait_for_redis_to_be_reachable(start_node, tcp, tmp_path) -> None:
    """A node whose Redis is not up refuses logins and stays up; it joins when Redis comes."""
    late = RedisServer(tmp_path)
    node = start_node("chat_server", url=late.url)
    alice = tcp(node.ports[0])
    alice.send(b"ME IS alice\n")
    alice.expect(b"ERROR\n")
    late.start()
    try:
        login_when_free(alice, b"alice")
    finally:
        late.stop()


def test_relayed_messages_are_counted_in_the_metrics(start_node, tcp, redis) -> None:
    metrics_a, metrics_b = free_port(), free_port()
    node_a = start_node("chat_server", "--metrics-port", str(metrics_a))
    node_b = start_node("chat_server", "--metrics-port", str(metrics_b))
    alice, bob = tcp(node_a.ports[0]), tcp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(bob, b"bob")
    for text in (b"one", b"two", b"three"):
        alice.send(encode_message([b"bob"], text))
    alice.send(encode_message(None, b"all"))
    for _ in range(4):
        bob.recv_delivery()
    assert alice.recv_delivery() == (b"alice", b"all", False)
    sent = samples_named(scrape_metrics(metrics_a), "chat_cluster_messages_out_total")
    received = samples_named(scrape_metrics(metrics_b), "chat_cluster_messages_in_total")
    assert (sent, received) == ({(): 4}, {(): 4})

    redis.stop()
    wait_until(lambda: not accepts_logins(tcp, node_a), what="node A out of the cluster")
    alice.send(encode_message([b"bob"], b"gone"))
    alice.send(encode_message([b"alice"], b"marker"))  # handled after "gone"
    assert alice.recv_delivery() == (b"alice", b"marker", False)
    dropped = samples_named(scrape_metrics(metrics_a), "chat_cluster_messages_dropped_total")
    assert dropped == {("Redis unreachable",): 1}


def accepts_logins(tcp, node: Server) -> bool:
    client = tcp(node.ports[0])
    client.send(b"ME IS someone\n")
    accepted = client.recv_line() == b"OK\n"
    client.close()
    return accepted


def test_redis_with_a_password(start_node, tcp, tmp_path) -> None:
    """redis://:PASSWORD@HOST:PORT/DB works; a wrong password keeps logins refused."""
    guarded = RedisServer(tmp_path, password="s3cret")
    guarded.start()
    try:
        node_a = start_node("chat_server", url=guarded.url)
        node_b = start_node("chat_server", url=guarded.url)
        alice, bob = tcp(node_a.ports[0]), tcp(node_b.ports[0])
        login_when_free(alice, b"alice")
        login_when_free(bob, b"bob")
        alice.send(b"SEND bob\n2\nhi")
        assert bob.recv_delivery() == (b"alice", b"hi", False)
        assert guarded.keys() and b"chatproto:0:user:alice" in guarded.keys()

        wrong = start_node("chat_server", url=guarded.url.replace("s3cret", "wrong"))
        client = tcp(wrong.ports[0])
        for _ in range(3):  # refused, and the node stays up
            client.send(b"ME IS carol\n")
            client.expect(b"ERROR\n")
        assert wrong.process.poll() is None
    finally:
        guarded.stop()


def test_a_hung_redis_is_given_up_on_after_the_timeout(start_node, tcp, redis) -> None:
    """Redis stops answering (SIGSTOP): a login waits at most --cluster-timeout, then ERROR;
    the node stays up and serves local traffic, and recovers when Redis answers again."""
    node = start_node("chat_server", "--cluster-timeout", "1")
    alice, dave = tcp(node.ports[0]), tcp(node.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(dave, b"dave")
    redis.pause()
    try:
        carol = tcp(node.ports[0])
        carol.send(b"ME IS carol\n")
        alice.send(b"SEND dave\n5\nlocal")
        assert dave.recv_delivery() == (b"alice", b"local", False)  # not held up by Redis
        carol.expect(b"ERROR\n", seconds=5)  # after the 1 s timeout, not never
    finally:
        redis.resume()
    login_when_free(carol, b"carol")
    assert node.process.poll() is None


def test_a_big_message_crossing_a_redis_restart_arrives_whole_or_not_at_all(
    start_node, tcp, redis
) -> None:
    node_a, node_b = start_node(), start_node()
    alice, bob = tcp(node_a.ports[0]), tcp(node_b.ports[0])
    login_when_free(alice, b"alice")
    login_when_free(bob, b"bob")
    data = os.urandom(20 * 1024 * 1024)
    alice.send(b"SEND bob\n" + chunked_body(data))
    redis.restart()  # somewhere during the relay, or before or after it
    login_when_free(tcp(node_b.ports[0]), b"probe")  # node B is back in the cluster
    # Markers until one gets through: what came before it has come (order per
    # sender); markers sent while a node was away are dropped, like the big one may be.
    deadline = Deadline()
    big_ones = 0
    for attempt in range(1000):
        alice.send(encode_message([b"bob"], b"marker %d" % attempt))
        if not has_data(bob):
            assert not deadline.expired(), "relaying did not resume"
            continue
        sender, body, chunked = bob.recv_delivery()
        if not chunked:
            assert sender == b"alice" and body.startswith(b"marker ")
            break
        big_ones += 1  # the big one made it: whole, and once
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert big_ones <= 1


def test_a_node_stopped_cleanly_gives_its_ids_back_at_once(start_node, tcp, redis) -> None:
    node_a = start_node("chat_server", "--cluster-ttl", "300")
    node_b = start_node()
    for name in (b"alice", b"dave"):
        login_when_free(tcp(node_a.ports[0]), name)
    assert node_a.stop() == 0  # SIGTERM
    assert [key for key in redis.keys() if key.startswith(b"chatproto:0:user:")] == []
    other = tcp(node_b.ports[0])
    other.send(b"ME IS alice\n")
    other.expect(b"OK\n")  # not after the 300 s TTL: now
