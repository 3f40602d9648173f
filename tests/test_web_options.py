"""``--web`` and ``--web-origin``: parsing, refusals, and the listeners makeService builds."""

import sys

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, _FakePort
from twisted.python import usage
from twisted.web.server import Site

from chatproto.server.service import ChatService
from chatproto.tap import Options, makeService
from chatproto.web.origins import normalize_origin
from chatproto.web.site import web_endpoint


class UDPMemoryReactor(MemoryReactorClock):
    """A MemoryReactorClock that also takes listenUDP (which it lacks), for makeService."""

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # type: ignore[no-untyped-def]
        return _FakePort(IPv4Address("UDP", interface or "0.0.0.0", port))


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_web_and_web_origin_accumulate() -> None:
    """Both are repeatable; origins are kept as browsers write them."""
    config = parse(
        "9000",
        "--web",
        "8080",
        "--web=tcp6:8081",
        "--web-origin",
        "HTTPS://Chat.Example.org:443/",
        "--web-origin=http://10.0.0.5:8080",
    )
    assert config["web"] == ["8080", "tcp6:8081"]
    assert config["web-origin"] == ["https://chat.example.org", "http://10.0.0.5:8080"]


def test_without_web_there_is_no_web_listener() -> None:
    """The defaults: no --web, no extra origins."""
    config = parse("9000")
    assert (config["web"], config["web-origin"]) == ([], [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--web", "8080", "--web-origin", "chat.example.org"), "--web-origin"),
        (("--web", "8080", "--web-origin", "ftp://chat.example.org"), "--web-origin"),
        (("--web", "8080", "--web-origin", "https://a.example/path"), "--web-origin"),
        (("--web-origin", "https://a.example"), "needs --web"),
        (("--web", "8080", "--workers", "2", "--cluster", "redis://127.0.0.1:6379"), "--web"),
    ],
    ids=["no scheme", "not http", "a path", "origin without web", "with workers"],
)
def test_bad_web_options_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    """A bad origin, an origin without --web, or --web with --workers: a usage error."""
    with pytest.raises(usage.UsageError, match=message):
        parse("9000", *args)


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("http://a.example", "http://a.example"),
        ("http://a.example:80", "http://a.example"),
        ("https://a.example:8443", "https://a.example:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", "null"),
    ],
)
def test_origins_are_normalized_as_browsers_write_them(text: str, origin: str) -> None:
    """The default port is dropped, case folded, IPv6 literals kept in brackets."""
    assert normalize_origin(text) == origin


def test_a_bare_port_listens_on_the_interface_and_an_endpoint_is_kept() -> None:
    """--web 8080 is tcp:8080 on --interface; anything else is an endpoint string."""
    assert web_endpoint("8080", "::") == "tcp:8080:interface=\\:\\:"
    assert web_endpoint("ssl:8443:privateKey=k.pem", "0.0.0.0") == "ssl:8443:privateKey=k.pem"


def test_make_service_serves_one_site_on_every_web_port() -> None:
    """Each --web value gets a listener; all serve one site for the one chat service."""
    reactor = UDPMemoryReactor()
    top = makeService(
        parse("9000", "--interface", "127.0.0.1", "--web", "8080", "--web", "8081"),
        reactor=reactor,
    )
    top.startService()
    web = [(port, factory, interface) for port, factory, _, interface in reactor.tcpServers[1:]]
    assert [(port, interface) for port, _, interface in web] == [
        (8080, "127.0.0.1"),
        (8081, "127.0.0.1"),
    ]
    sites = {id(factory) for _, factory, _ in web}
    assert len(sites) == 1 and isinstance(web[0][1], Site)
    (chat,) = [s for s in top if isinstance(s, ChatService)]
    socket = web[0][1].resource.children[b"chat"]
    assert socket._factory.service is chat
    top.stopService()


def test_web_without_the_web_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without twisted[websocket] (wsproto), --web is a usage error naming the extra."""
    monkeypatch.setitem(sys.modules, "twisted.web.websocket", None)  # import fails
    with pytest.raises(usage.UsageError, match=r"chatproto\[web\]"):
        parse("9000", "--web", "8080")
