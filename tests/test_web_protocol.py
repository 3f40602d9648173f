"""The WebSocket adapter on Twisted's test helpers: the real site and resource, no reactor.

Each test runs the site of ``--web`` over a ``StringTransport`` with a
wsproto client (:class:`tests.web_support.MemoryBrowser`) and a ``Clock``.
"""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.web.iweb import IRequest

from chatproto.limits import Limits
from chatproto.server.outbox import Outbox
from chatproto.server.service import ChatService
from chatproto.web.protocol import WebChatFactory, WebChatProtocol
from chatproto.web.site import web_site
from tests.support import connect, make_service, take
from tests.web_support import MemoryBrowser, binary_frame_header

OWN_ORIGIN = "http://chat.example:8080"


class RecordingFactory(WebChatFactory):
    """A factory that keeps the protocols it built, for the tests to look at."""

    def __init__(self, service: ChatService) -> None:
        super().__init__(service)
        self.built: list[WebChatProtocol] = []

    def buildProtocol(self, request: IRequest) -> WebChatProtocol:
        protocol = super().buildProtocol(request)
        self.built.append(protocol)
        return protocol


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_site(clock: Clock, origins: tuple[str, ...] = (), **limits: int):  # type: ignore[no-untyped-def]
    """Return (service, factory, site) with these limits."""
    service = make_service(clock=clock, limits=Limits(**limits))
    service.startService()
    factory = RecordingFactory(service)
    return service, factory, web_site(service, factory, origins, reactor=clock)


def logged_in(site, user: bytes, **kwargs) -> MemoryBrowser:  # type: ignore[no-untyped-def]
    browser = MemoryBrowser(site, origin=OWN_ORIGIN, **kwargs)
    assert browser.accepted
    browser.send(b"ME IS " + user + b"\n")
    assert browser.take() == b"OK\n"
    return browser


def test_login_over_a_websocket_gets_ok_and_counts_as_websocket(clock: Clock) -> None:
    """A browser logs in with ME IS in a binary message; metrics count it as websocket."""
    service, factory, site = make_site(clock)
    logged_in(site, b"alice")
    assert service.lookup(b"alice") is factory.built[0]
    assert factory.built[0].peer == "10.0.0.7"
    assert service.users_by_transport() == {"tcp": 0, "udp": 0, "websocket": 1}
    assert factory.connections == 1


def test_the_login_log_line_names_the_websocket_transport(clock: Clock) -> None:
    """The log says a browser logged in over WebSocket."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        _, _, site = make_site(clock)
        logged_in(site, b"alice")
    finally:
        globalLogPublisher.removeObserver(observe)
    assert "alice logged in from 10.0.0.7 over WebSocket" in lines


def test_message_boundaries_mean_nothing(clock: Clock) -> None:
    """A frame may span messages and a message may hold many frames (PROTOCOL §9)."""
    service, _, site = make_site(clock)
    alice = logged_in(site, b"alice")
    bob, bob_transport = connect(service)
    bob.dataReceived(b"ME IS bob\n")
    take(bob_transport)
    for piece in (b"SEN", b"D bob\n5", b"\nhel", b"loSEND bob\n2\nhiBROADCAST\n1\n!"):
        alice.send(piece)
    assert take(bob_transport) == b"FROM alice\n5\nhelloFROM alice\n2\nhiFROM alice\n1\n!"
    assert alice.take() == b"FROM alice\n1\n!"


def test_a_tcp_broadcast_reaches_the_browser_in_a_binary_message(clock: Clock) -> None:
    """What the server sends a browser is its stream, in binary messages."""
    service, _, site = make_site(clock)
    alice = logged_in(site, b"alice")
    bob, _ = connect(service)
    bob.dataReceived(b"ME IS bob\nBROADCAST\nC3\nabcC0\n")
    service.writes.flush()
    assert alice.take() == b"FROM bob\nC3\nabcC0\n"


def test_a_duplicate_login_from_a_browser_gets_error(clock: Clock) -> None:
    """Browsers share the namespace with TCP users: a taken userid is refused."""
    service, _, site = make_site(clock)
    tcp, _ = connect(service)
    tcp.dataReceived(b"ME IS alice\n")
    browser = MemoryBrowser(site, origin=OWN_ORIGIN)
    browser.send(b"ME IS alice\n")
    assert browser.take() == b"ERROR\n"
    browser.send(b"ME IS alice2\n")
    assert browser.take() == b"OK\n"


@pytest.mark.parametrize(
    "origin",
    [OWN_ORIGIN, "HTTP://Chat.Example:8080", None, "https://trusted.example"],
    ids=["own", "own-in-capitals", "none (not a browser)", "given with --web-origin"],
)
def test_an_allowed_origin_is_upgraded(clock: Clock, origin: str | None) -> None:
    """The page's own origin, one given with --web-origin, or none at all, is let in."""
    _, _, site = make_site(clock, origins=("https://trusted.example",))
    assert MemoryBrowser(site, origin=origin).accepted


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "https://chat.example:8080", "http://chat.example", "null", "x"],
)
def test_a_foreign_origin_is_refused_with_403(clock: Clock, origin: str) -> None:
    """Any other origin (another site, scheme or port, a local file) gets 403, no protocol."""
    service, factory, site = make_site(clock)
    browser = MemoryBrowser(site, origin=origin)
    assert (browser.accepted, browser.status) == (False, 403)
    assert factory.built == [] and factory.connections == 0


def test_connections_past_max_connections_are_refused_with_503(clock: Clock) -> None:
    """Past --max-connections a WebSocket upgrade is refused, as a TCP connection is closed."""
    service, _, site = make_site(clock, max_connections=1)
    assert MemoryBrowser(site, origin=OWN_ORIGIN).accepted
    refused = MemoryBrowser(site, origin=OWN_ORIGIN)
    assert refused.status == 503
    assert service.stats.connections_refused == 1


def test_a_text_message_closes_the_connection_with_1003(clock: Clock) -> None:
    """PROTOCOL §9: the chat stream is binary; a text message closes (1003)."""
    service, _, site = make_site(clock)
    browser = logged_in(site, b"alice")
    browser.send("ME IS bob\n")  # type: ignore[arg-type]
    assert browser.closed is not None and browser.closed.code == 1003
    browser.lose()
    assert service.lookup(b"alice") is None


def test_a_message_over_the_limit_closes_with_1009_before_it_ends(clock: Clock) -> None:
    """A message bigger than --max-web-message is refused while it arrives, not held whole."""
    service, _, site = make_site(clock, max_web_message_bytes=4096)
    browser = logged_in(site, b"alice")
    # A frame announcing 1 GiB; 5000 bytes of it arrive.
    browser.send_raw(binary_frame_header(1 << 30) + b"BROADCAST\nC999\n" + b"x" * 4985)
    assert browser.closed is not None and browser.closed.code == 1009
    assert service.stats.errors["websocket message too big"] == 1
    assert browser.transport.disconnecting


def test_messages_up_to_the_limit_pass_and_the_count_starts_again_for_each(clock: Clock) -> None:
    """The limit is per message: many messages of just under it are all fine."""
    service, _, site = make_site(clock, max_web_message_bytes=1004)
    alice = logged_in(site, b"alice")
    alice.send(b"BROADCAST\n")
    for _ in range(5):
        alice.send(b"C999\n" + b"y" * 999)  # 1004 bytes each
    alice.send(b"C0\n")
    assert alice.closed is None
    assert alice.take() == b"FROM alice\n" + (b"C999\n" + b"y" * 999) * 5 + b"C0\n"


def test_the_outbox_is_the_producer_of_the_stream_under_the_websocket(clock: Clock) -> None:
    """Backpressure: the HTTP channel's producer is replaced by the client's outbox."""
    _, factory, site = make_site(clock)
    browser = logged_in(site, b"alice")
    assert isinstance(browser.transport.producer, Outbox)
    assert browser.transport.streaming


def test_a_browser_that_stops_reading_is_a_slow_consumer(clock: Clock) -> None:
    """While the stream is paused deliveries wait; past --max-backlog the browser is dropped."""
    service, _, site = make_site(clock, max_backlog_bytes=4096)
    alice = logged_in(site, b"alice")
    bob, _ = connect(service)
    bob.dataReceived(b"ME IS bob\n")
    alice.transport.producer.pauseProducing()  # the socket's buffer is full
    bob.dataReceived(b"SEND alice\n5\nfirst")
    service.writes.flush()
    assert alice.take() == b""  # queued, not written
    alice.transport.producer.resumeProducing()
    assert alice.take() == b"FROM bob\n5\nfirst"
    alice.transport.producer.pauseProducing()
    for _ in range(100):
        bob.dataReceived(b"SEND alice\n50\n" + b"z" * 50)
    service.writes.flush()
    assert service.stats.slow_consumers == 1
    assert service.lookup(b"alice") is None
    assert alice.transport.disconnecting


def test_pieces_after_a_yielded_turn_wait_for_the_next_turn(clock: Clock) -> None:
    """Frames past --max-frames-per-turn wait, with reading paused, and go on next turn."""
    service, _, site = make_site(clock, max_frames_per_turn=2)
    alice = logged_in(site, b"alice")
    alice.send(b"BROADCAST\n1\na" * 3 + b"BROADCAST\n1\nb")
    assert alice.take() == b"FROM alice\n1\na" * 2
    assert alice.transport.producerState == "paused"
    # The rest of the same read, parsed by wsproto after the pause: it waits too.
    alice.send(b"BROADCAST\n1\nc")
    assert alice.take() == b""
    clock.advance(0)
    clock.advance(0)
    assert alice.take() == b"FROM alice\n1\na" + b"FROM alice\n1\nb" + b"FROM alice\n1\nc"
    assert alice.transport.producerState == "producing"


def test_a_browser_gone_mid_message_leaves_no_trace(clock: Clock) -> None:
    """A partial message is dropped whole and the userid is released (PROTOCOL §4)."""
    service, factory, site = make_site(clock)
    alice = logged_in(site, b"alice")
    bob, bob_transport = connect(service)
    bob.dataReceived(b"ME IS bob\n")
    take(bob_transport)
    alice.send(b"SEND bob\nC5\nhel")
    alice.lose()
    assert take(bob_transport) == b""
    assert service.lookup(b"alice") is None
    assert factory.connections == 0
    assert service.users_by_transport()["websocket"] == 0


def test_a_broken_frame_gets_error_and_a_normal_close(clock: Clock) -> None:
    """PROTOCOL §3: broken framing answers ERROR, then the WebSocket is closed (1000)."""
    _, _, site = make_site(clock)
    alice = logged_in(site, b"alice")
    alice.send(b"BROADCAST\n123\n")
    assert alice.take() == b"ERROR\n"
    assert alice.closed is not None and alice.closed.code == 1000


def test_the_login_timeout_closes_a_silent_browser(clock: Clock) -> None:
    """A browser that never logs in is closed after --login-timeout, as a TCP client is."""
    _, _, site = make_site(clock, login_timeout_s=5)
    browser = MemoryBrowser(site, origin=OWN_ORIGIN)
    clock.advance(5)
    browser.pump()
    assert browser.closed is not None


def test_without_twisted_s_message_buffer_to_replace_no_connection_is_made(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If Twisted drops the hook, browsers are refused rather than read without a bound."""
    monkeypatch.setattr("chatproto.web.protocol._MESSAGE_BUFFERS", ("_noSuchBuffer",))
    service, factory, site = make_site(clock)
    browser = MemoryBrowser(site, origin=OWN_ORIGIN)
    assert not browser.accepted
    assert factory.connections == 0


def test_an_idle_http_connection_is_closed_after_the_login_timeout(clock: Clock) -> None:
    """A connection to the web port that sends nothing does not stay open for hours."""
    _, _, site = make_site(clock, login_timeout_s=7)
    channel = site.buildProtocol(IPv4Address("TCP", "10.0.0.9", 1234))
    transport = StringTransport()
    channel.makeConnection(transport)
    clock.advance(6.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting
