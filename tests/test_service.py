"""ChatService: users, routing, random messages and UDP expiry, with fake clients."""

import pytest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from chatproto.limits import Limits
from chatproto.server.message import MessageBody, ShortBody
from chatproto.server.service import CANNED_LINES, VERBOSE_NAMESPACE, ChatService
from tests.support import FakeClient, ScriptedRandom, answer, make_service


def logged_in(service: ChatService, name: bytes, **kwargs) -> FakeClient:  # type: ignore[no-untyped-def]
    client = FakeClient(**kwargs)
    assert answer(service.login(client, name)) is True
    client.name = name
    return client


def short(text: bytes) -> MessageBody:
    return ShortBody(text)


def chunked(*chunks: bytes) -> MessageBody:
    body = MessageBody()
    for chunk in chunks:
        body.append(chunk)
    body.finish()
    return body


def test_userid_in_use_is_refused() -> None:
    """A second client cannot log in with a userid that is online."""
    service = make_service()
    logged_in(service, b"alice")
    assert answer(service.login(FakeClient(), b"alice")) is False


def test_userid_is_free_after_logout() -> None:
    """Logging out releases the userid for the next client."""
    service = make_service()
    alice = logged_in(service, b"alice")
    service.logout(alice)
    assert answer(service.login(FakeClient(), b"alice")) is True


def test_logout_of_a_stale_client_keeps_the_new_owner() -> None:
    """A late logout of a replaced client does not log out the userid's new owner."""
    service = make_service()
    old = logged_in(service, b"alice")
    service.logout(old)
    new = logged_in(service, b"alice")
    service.logout(old)
    assert service.lookup(b"alice") is new


def test_send_reaches_only_named_recipients() -> None:
    """SEND delivers to each named online user and no one else."""
    service = make_service()
    alice, bob, carol, dave = (
        logged_in(service, n) for n in (b"alice", b"bob", b"carol", b"dave")
    )
    service.send(alice, (b"bob", b"carol"), short(b"hi"))
    assert bob.received() == [(b"alice", b"hi")]
    assert carol.received() == [(b"alice", b"hi")]
    assert dave.received() == [] and alice.received() == []


def test_offline_recipients_are_skipped() -> None:
    """A recipient that is not online is skipped and the others still get it."""
    service = make_service()
    alice, bob = logged_in(service, b"alice"), logged_in(service, b"bob")
    service.send(alice, (b"ghost", b"bob"), short(b"hi"))
    assert bob.received() == [(b"alice", b"hi")]


def test_broadcast_reaches_everyone_including_the_sender() -> None:
    """BROADCAST goes to every logged-in user, the sender included."""
    service = make_service()
    users = [logged_in(service, n) for n in (b"alice", b"bob", b"carol")]
    service.send(users[0], None, short(b"all"))
    assert [u.received() for u in users] == [[(b"alice", b"all")]] * 3


def test_delivery_frames_carry_from_line_and_body() -> None:
    """A delivery is FROM <sender> followed by the body framed as it was sent."""
    service = make_service()
    alice, bob = logged_in(service, b"alice"), logged_in(service, b"bob")
    service.send(alice, (b"bob",), chunked(b"abc", b"de"))
    assert b"".join(bob.deliveries[0].frames) == b"FROM alice\nC3\nabcC2\ndeC0\n"


def test_failing_recipient_does_not_stop_the_others() -> None:
    """A recipient whose delivery raises is disconnected; the rest still get the message."""
    service = make_service()
    alice, bob, carol = (logged_in(service, n) for n in (b"alice", b"bob", b"carol"))

    def broken(delivery):  # type: ignore[no-untyped-def]
        raise OSError("broken pipe")

    bob.deliver = broken  # type: ignore[method-assign]
    with capturedLogs() as events:
        service.send(alice, None, short(b"x"))
    assert carol.received() == [(b"alice", b"x")]
    assert bob.disconnected == ["delivery failed"]
    assert service.lookup(b"bob") is None
    assert any(e.get("log_failure") for e in events)


def test_random_message_follows_every_third_delivery() -> None:
    """After the third delivery a random canned line comes from one of the three senders."""
    rng = ScriptedRandom(picks=[1, 2])  # second canned line, third sender
    service = make_service(random_messages=True, rng=rng)
    bob = logged_in(service, b"bob")
    senders = [logged_in(service, n) for n in (b"s1", b"s2", b"s3")]
    for sender in senders[:2]:
        service.send(sender, (b"bob",), short(b"m"))
    assert len(bob.deliveries) == 2
    service.send(senders[2], (b"bob",), short(b"m"))
    assert bob.received()[3] == (b"s3", CANNED_LINES[1])
    assert rng.choices == [CANNED_LINES, (b"s1", b"s2", b"s3")]


def test_random_messages_do_not_count_toward_the_next_three() -> None:
    """Six deliveries give exactly two random messages, one after the 3rd and one after the 6th."""
    service = make_service(random_messages=True, rng=ScriptedRandom())
    alice, bob = logged_in(service, b"alice"), logged_in(service, b"bob")
    for i in range(6):
        service.send(alice, (b"bob",), short(b"%d" % i))
    bodies = [body for _, body in bob.received()]
    assert bodies == [b"0", b"1", b"2", CANNED_LINES[0], b"3", b"4", b"5", CANNED_LINES[0]]


def test_own_broadcasts_count_toward_random_messages() -> None:
    """A user's own broadcasts are deliveries to it and count (PROTOCOL §5)."""
    service = make_service(random_messages=True, rng=ScriptedRandom())
    alice = logged_in(service, b"alice")
    for _ in range(3):
        service.send(alice, None, short(b"me"))
    assert alice.received()[-1] == (b"alice", CANNED_LINES[0])


def test_undelivered_message_does_not_count() -> None:
    """A chunked message dropped for a UDP-like recipient does not count toward three."""
    service = make_service(random_messages=True, rng=ScriptedRandom())
    alice = logged_in(service, b"alice")
    carol = logged_in(service, b"carol", takes_chunked=False)
    service.send(alice, (b"carol",), short(b"1"))
    service.send(alice, (b"carol",), chunked(b"big"))
    service.send(alice, (b"carol",), short(b"2"))
    assert [body for _, body in carol.received()] == [b"1", b"2"]
    service.send(alice, (b"carol",), short(b"3"))
    assert carol.received()[-1] == (b"alice", CANNED_LINES[0])


def test_random_messages_can_be_turned_off() -> None:
    """With random messages off, three deliveries bring nothing more."""
    service = make_service(random_messages=False)
    alice, bob = logged_in(service, b"alice"), logged_in(service, b"bob")
    for _ in range(3):
        service.send(alice, (b"bob",), short(b"x"))
    assert len(bob.deliveries) == 3


def test_count_restarts_after_logout() -> None:
    """A user who logs out and in again starts counting toward three from zero."""
    service = make_service(random_messages=True, rng=ScriptedRandom())
    alice, bob = logged_in(service, b"alice"), logged_in(service, b"bob")
    service.send(alice, (b"bob",), short(b"1"))
    service.send(alice, (b"bob",), short(b"2"))
    service.logout(bob)
    bob2 = logged_in(service, b"bob")
    service.send(alice, (b"bob",), short(b"3"))
    assert bob2.received() == [(b"alice", b"3")]


def test_default_canned_lines_include_the_briefs_three() -> None:
    """At least ten canned lines, including the three the brief names."""
    assert len(CANNED_LINES) >= 10
    for line in (b"Hey, you're kinda hot", b"No way!", b"I like Justin Bieber....a lot"):
        assert line in CANNED_LINES


def test_canned_lines_must_fit_a_short_body() -> None:
    """A canned line over 99 bytes is refused when the service is built."""
    with pytest.raises(ValueError):
        ChatService(Clock(), canned_lines=[b"x" * 100])


def test_idle_udp_session_expires() -> None:
    """A session with no activity for the TTL is disconnected and its userid freed."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(udp_session_ttl_s=10))
    service.startService()
    carol = logged_in(service, b"carol")
    service.touch(carol)
    clock.advance(9.5)
    assert carol.disconnected == []
    clock.advance(1.5)
    assert carol.disconnected == ["UDP session expired"]
    assert service.lookup(b"carol") is None
    service.stopService()


def test_activity_postpones_expiry() -> None:
    """Each touch restarts the TTL."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(udp_session_ttl_s=10))
    service.startService()
    carol = logged_in(service, b"carol")
    for _ in range(5):
        service.touch(carol)
        clock.advance(8)
    assert carol.disconnected == []
    assert service.lookup(b"carol") is carol
    service.stopService()


def test_only_touched_sessions_expire() -> None:
    """TCP users (never touched) are not expired by the UDP sweep."""
    clock = Clock()
    service = make_service(clock=clock, limits=Limits(udp_session_ttl_s=1))
    service.startService()
    alice = logged_in(service, b"alice")
    clock.pump([0.5] * 10)
    assert alice.disconnected == [] and service.lookup(b"alice") is alice
    service.stopService()


def test_stopping_the_service_stops_the_sweep() -> None:
    """After stopService no timer is left on the clock."""
    clock = Clock()
    service = make_service(clock=clock)
    service.startService()
    service.stopService()
    assert clock.getDelayedCalls() == []


def verbose_texts(events) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["text"] for e in events if e.get("log_namespace") == VERBOSE_NAMESPACE]


def test_verbose_shows_each_delivery() -> None:
    """With -v each delivery is a SENT line in the brief's format."""
    service = make_service(is_verbose=True)
    alice = logged_in(service, b"alice")
    bob = logged_in(service, b"bob", peer="10.0.0.2")
    with capturedLogs() as events:
        service.send(alice, (b"bob",), short(b"You suck!"))
    assert bob.deliveries
    assert verbose_texts(events) == [
        "SENT to bob (10.0.0.2):\n  FROM alice\\n\n  9\\n\n  You suck!"
    ]


def test_verbose_marks_random_messages() -> None:
    """A random message is shown as SENT (randomly!) TO."""
    service = make_service(is_verbose=True, random_messages=True, rng=ScriptedRandom([1]))
    alice = logged_in(service, b"alice")
    with capturedLogs() as events:
        for _ in range(3):
            service.send(alice, None, short(b"x"))
    assert verbose_texts(events)[-1] == (
        "SENT (randomly!) TO alice (10.0.0.1):\n  FROM alice\\n\n  7\\n\n  No way!"
    )


def test_verbose_notes_a_chunked_message_dropped_for_udp() -> None:
    """With -v, a chunked message that cannot go to a UDP user is shown as dropped."""
    service = make_service(is_verbose=True)
    alice = logged_in(service, b"alice")
    logged_in(service, b"carol", takes_chunked=False)
    with capturedLogs() as events:
        service.send(alice, (b"carol",), chunked(b"abc"))
    assert verbose_texts(events) == [
        "NOTE carol (10.0.0.1): message dropped: this client cannot take it"
    ]


def test_quiet_service_emits_no_traffic_lines() -> None:
    """Without -v no verbose event is emitted at all."""
    service = make_service()
    alice = logged_in(service, b"alice")
    with capturedLogs() as events:
        service.send(alice, None, short(b"x"))
    assert verbose_texts(events) == []


def test_stopping_the_service_disconnects_everyone() -> None:
    """stopService disconnects every logged-in user and frees their ids."""
    service = make_service()
    service.startService()
    users = [logged_in(service, name) for name in (b"alice", b"bob")]
    service.stopService()
    assert [u.disconnected for u in users] == [["server stopping"]] * 2
    assert service.user_count == 0
