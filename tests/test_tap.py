"""Options parsing and service wiring, with a memory reactor (no sockets)."""

import sys

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, _FakePort
from twisted.python import usage

from chatproto import tap
from chatproto.limits import LIMITS, MIB, Limit, Limits, Rate
from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol
from chatproto.tap import Options, makeService
from tests.tls_support import make_certificate

#: The real one: conftest stubs ``tap.freeze_startup_objects`` for in-process tests.
FREEZE_STARTUP_OBJECTS = tap.freeze_startup_objects

DEFAULTS = {
    "ports": [9000],
    "verbose": 0,
    "no-random": 0,
    "interface": "0.0.0.0",
    "max-message": 64 * MIB,
    "max-line": 8192,
    "max-recipients": 1000,
    "login-timeout": 60.0,
    "udp-expiry": 600.0,
    "spill-threshold": 256 * 1024,
    "max-spool": 4096 * MIB,
    "spool-dir": None,
    "max-backlog": 16 * MIB,
    "max-spool-backlog": 64 * MIB,
    "max-spool-messages": 32,
    "send-timeout": 120.0,
    "max-connections": 16384,
    "max-udp-sessions": 65536,
    "random-seed": None,
    "listen": [],
    "listen-backlog": 1024,
    "max-frames-per-turn": 256,
    "metrics-port": None,
    "metrics-interface": "127.0.0.1",
}


def parse(*args: str) -> dict:
    options = Options()
    options.parseOptions(list(args))
    return {key: options[key] for key in DEFAULTS}


def test_defaults() -> None:
    """A bare port gives every default."""
    assert parse("9000") == DEFAULTS


def test_ports_as_arguments_and_with_p_accumulate() -> None:
    """Ports given as arguments and with -p/--port all count, duplicates once."""
    assert parse("9000", "-p", "9001", "--port=9002", "9003", "9001")["ports"] == [
        9001,
        9002,
        9000,
        9003,
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("9000", "9001", "-v"),
        ("-v", "9000", "9001"),
        ("9000", "--verbose", "9001"),
    ],
)
def test_options_may_come_before_or_after_ports(args: tuple[str, ...]) -> None:
    """Options and ports may be mixed in any order."""
    assert parse(*args) == {**DEFAULTS, "ports": [9000, 9001], "verbose": 1}


def test_every_option_is_parsed() -> None:
    """Each option sets its own key, with its type."""
    config = parse(
        "9000",
        "--interface",
        "127.0.0.1",
        "--no-random",
        "--max-message",
        "1000",
        "--max-line=100",
        "--max-recipients",
        "5",
        "--login-timeout",
        "2.5",
        "--udp-expiry",
        "30",
        "--random-seed",
        "7",
        "--spill-threshold",
        "1000",
        "--max-spool",
        "5000",
        "--spool-dir",
        "/var/tmp",
        "--max-backlog",
        "4096",
        "--max-connections",
        "10",
        "--max-udp-sessions",
        "20",
    )
    assert config == {
        **DEFAULTS,
        "interface": "127.0.0.1",
        "no-random": 1,
        "max-message": 1000,
        "max-line": 100,
        "max-recipients": 5,
        "login-timeout": 2.5,
        "udp-expiry": 30.0,
        "random-seed": 7,
        "spill-threshold": 1000,
        "max-spool": 5000,
        "spool-dir": "/var/tmp",
        "max-backlog": 4096,
        "max-connections": 10,
        "max-udp-sessions": 20,
    }


def test_spool_backlog_limits_come_from_their_options() -> None:
    """--max-spool-backlog and --max-spool-messages set the spooled backlog limits."""
    options = Options()
    options.parseOptions(["9000", "--max-spool-backlog", "5000", "--max-spool-messages", "3"])
    limits = options.limits()
    assert (limits.max_spool_backlog_bytes, limits.max_spool_backlog_messages) == (5000, 3)
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["9000", "--max-spool-messages", "0"])


def test_limits_come_from_the_options() -> None:
    """Options.limits() builds the Limits the options ask for."""
    options = Options()
    options.parseOptions(["9000", "--max-line", "100", "--udp-expiry", "5"])
    assert options.limits() == Limits(max_line_bytes=100, udp_session_ttl_s=5.0)


@pytest.mark.parametrize("declared", LIMITS, ids=lambda declared: declared.option)
def test_each_limit_option_sets_its_field(declared: Limit) -> None:
    """Every declared limit has an option, which sets that Limits field with the field's type."""
    options = Options()
    options.parseOptions(["9000", f"--{declared.option}", "7"])
    value = getattr(options.limits(), declared.attribute)
    if declared.is_rate:  # RATE[/BURST]; the burst defaults to the rate
        assert value == Rate(7.0, 7.0)
    else:
        assert (value, type(value)) == (7, type(declared.default))
    assert options.limits() == Limits(**{declared.attribute: value})


@pytest.mark.parametrize("declared", LIMITS, ids=lambda declared: declared.option)
@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_each_limit_option_refuses_what_its_field_refuses(declared: Limit, bad: str) -> None:
    """A limit's option refuses zero, negatives and non-numbers with UsageError."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["9000", f"--{declared.option}", bad])


def test_whole_number_limits_refuse_fractions() -> None:
    """A size or a count must be a whole number; a time may have a fraction."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["9000", "--max-line", "1.5"])
    options = Options()
    options.parseOptions(["9000", "--send-timeout", "1.5"])
    assert options.limits().send_timeout_s == 1.5


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("-v",),
        ("0",),
        ("65536",),
        ("http",),
        ("9000", "--max-message", "0"),
        ("9000", "--udp-expiry", "-1"),
        ("9000", "--login-timeout", "soon"),
        ("9000", "--no-such-option"),
    ],
)
def test_bad_command_lines_are_usage_errors(args: tuple[str, ...]) -> None:
    """No port, a bad port or a bad option value raises UsageError."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(list(args))


class UDPMemoryReactor(MemoryReactorClock):
    """MemoryReactorClock that also records listenUDP, which it lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.udpServers: list[tuple] = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # type: ignore[no-untyped-def]
        self.udpServers.append((port, protocol, interface))
        return _FakePort(IPv4Address("UDP", interface or "0.0.0.0", port))


def test_make_service_listens_tcp_and_udp_on_every_port() -> None:
    """Each port gets a TCP and a UDP listener on the interface, all sharing one service."""
    options = Options()
    options.parseOptions(["9000", "9001", "--interface", "127.0.0.1"])
    reactor = UDPMemoryReactor()
    top = makeService(options, reactor=reactor)
    top.startService()
    assert [(port, backlog, iface) for port, _, backlog, iface in reactor.tcpServers] == [
        (9000, 1024, "127.0.0.1"),
        (9001, 1024, "127.0.0.1"),
    ]
    assert [(port, iface) for port, _, iface in reactor.udpServers] == [
        (9000, "127.0.0.1"),
        (9001, "127.0.0.1"),
    ]
    chat = [s for s in top if isinstance(s, ChatService)]
    assert len(chat) == 1
    factories = {id(f) for _, f, _, _ in reactor.tcpServers}
    assert len(factories) == 1
    (factory,) = {f for _, f, _, _ in reactor.tcpServers}
    assert isinstance(factory, ChatFactory) and factory.service is chat[0]
    for _, protocol, _ in reactor.udpServers:
        assert isinstance(protocol, ChatDatagramProtocol) and protocol.service is chat[0]
    top.stopService()


def test_make_service_passes_flags_to_the_service() -> None:
    """-v, --no-random and the limits reach the ChatService."""
    options = Options()
    options.parseOptions(["9000", "-v", "--no-random", "--max-recipients", "3"])
    top = makeService(options, reactor=UDPMemoryReactor())
    (chat,) = [s for s in top if isinstance(s, ChatService)]
    assert chat.is_verbose
    assert not chat.random_messages
    assert chat.limits.max_recipients == 3


def test_make_service_freezes_what_start_up_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the service is built, its start-up objects are left out of later collections."""
    frozen: list[bool] = []
    monkeypatch.setattr(tap, "freeze_startup_objects", lambda: frozen.append(True))
    options = Options()
    options.parseOptions(["9000"])
    makeService(options, reactor=UDPMemoryReactor())
    assert frozen == [True]


def test_the_freeze_collects_garbage_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """What is garbage already is collected, not frozen for good."""
    calls: list[str] = []
    monkeypatch.setattr("gc.collect", lambda: calls.append("collect") or 0)
    monkeypatch.setattr("gc.freeze", lambda: calls.append("freeze"))
    FREEZE_STARTUP_OBJECTS()
    assert calls == ["collect", "freeze"]


def test_listen_endpoints_accumulate_and_suffice_without_ports() -> None:
    """--listen is repeatable, and endpoints alone are enough to run."""
    config = parse("--listen", "tcp6:9000", "--listen=unix:/tmp/chat.sock")
    listen = ["tcp6:9000", "unix:/tmp/chat.sock:mode=660"]
    assert config == {**DEFAULTS, "ports": [], "listen": listen}


@pytest.mark.parametrize(
    ("args", "endpoint"),
    [
        (("-i", "127.0.0.1", "--listen", "tcp:9000"), "tcp:9000:interface=127.0.0.1"),
        (("--listen", "tcp:9000", "-i", "127.0.0.1"), "tcp:9000:interface=127.0.0.1"),
        (("--listen", "tcp:9000"), "tcp:9000:interface=0.0.0.0"),
        (("-i", "::1", "--listen", "tcp6:9000"), "tcp6:9000:interface=\\:\\:1"),
        (("-i", "127.0.0.1", "--listen", "tcp6:9000"), "tcp6:9000"),
        (
            ("-i", "127.0.0.1", "--listen", "tcp:9000:interface=10.0.0.1"),
            "tcp:9000:interface=10.0.0.1",
        ),
        (("--listen", "unix:/tmp/chat.sock"), "unix:/tmp/chat.sock:mode=660"),
        (("--listen", "unix:/tmp/chat.sock:mode=600"), "unix:/tmp/chat.sock:mode=600"),
    ],
)
def test_listen_endpoints_get_the_interface_and_a_unix_mode(
    args: tuple[str, ...], endpoint: str
) -> None:
    """-i fills in a tcp endpoint's interface (tcp6: an IPv6 one), 660 a unix one's mode."""
    assert parse(*args)["listen"] == [endpoint]


def test_ssl_endpoint_gets_the_interface(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An ssl: endpoint without interface= listens on --interface."""
    cert, key = make_certificate(tmp_path)
    ssl = f"ssl:9443:privateKey={key}:certKey={cert}"
    options = Options()
    options.parseOptions(["-i", "127.0.0.1", "--listen", ssl])
    reactor = UDPMemoryReactor()
    top = makeService(options, reactor=reactor)
    top.startService()
    assert [(port, interface) for port, *_, interface in reactor.sslServers] == [
        (9443, "127.0.0.1")
    ]
    top.stopService()


def test_listen_endpoints_are_built_with_the_interface_and_mode() -> None:
    """makeService listens on a --listen tcp endpoint at -i, and a unix one with mode 0660."""
    options = Options()
    options.parseOptions(["-i", "127.0.0.1", "--listen", "tcp:9000", "--listen", "unix:/tmp/c"])
    reactor = UDPMemoryReactor()
    top = makeService(options, reactor=reactor)
    top.startService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (9000, "127.0.0.1")
    ]
    assert [(path, mode) for path, _, _, mode, _ in reactor.unixServers] == [("/tmp/c", 0o660)]
    top.stopService()


def test_make_service_listens_on_endpoints_and_metrics() -> None:
    """--listen endpoints get the chat factory; --metrics-port gets a web site."""
    options = Options()
    options.parseOptions(
        ["--listen", "tcp6:9000:interface=\\:\\:1", "--listen", "unix:/tmp/chat.sock"]
        + ["--metrics-port", "9100"]
    )
    reactor = UDPMemoryReactor()
    top = makeService(options, reactor=reactor)
    top.startService()
    (tcp6, metrics) = reactor.tcpServers
    assert (tcp6[0], tcp6[3], type(tcp6[1])) == (9000, "::1", ChatFactory)
    assert (metrics[0], metrics[3], type(metrics[1]).__name__) == (9100, "127.0.0.1", "Site")
    assert reactor.unixServers[0][0] == "/tmp/chat.sock"
    assert isinstance(reactor.unixServers[0][1], ChatFactory)
    assert reactor.udpServers == []
    top.stopService()


def test_cluster_options_reach_the_limits_and_the_router() -> None:
    """--cluster builds a RedisRouter; its limits come from the cluster options."""
    from chatproto.cluster.address import RedisAddress
    from chatproto.cluster.router import RedisRouter

    options = Options()
    options.parseOptions(
        [
            "9000",
            "--cluster",
            "redis://127.0.0.1:6390/3",
            "--cluster-ttl",
            "9",
            "--cluster-timeout",
            "2",
            "--max-relay-backlog",
            "1000",
            "--max-held-commands",
            "8",
        ]
    )
    assert options["cluster"] == RedisAddress("127.0.0.1", 6390, 3)
    limits = options.limits()
    assert (limits.cluster_ttl_s, limits.cluster_timeout_s) == (9.0, 2.0)
    assert (limits.max_relay_backlog_bytes, limits.max_held_commands) == (1000, 8)
    top = makeService(options, reactor=UDPMemoryReactor())
    (chat,) = [s for s in top if isinstance(s, ChatService)]
    assert isinstance(chat._router, RedisRouter)
    assert chat._router.address == RedisAddress("127.0.0.1", 6390, 3)


def test_without_cluster_the_router_is_local() -> None:
    from chatproto.server.routing import LocalRouter

    options = Options()
    options.parseOptions(["9000"])
    top = makeService(options, reactor=UDPMemoryReactor())
    (chat,) = [s for s in top if isinstance(s, ChatService)]
    assert isinstance(chat._router, LocalRouter)


@pytest.mark.parametrize(
    "args",
    [
        ("9000", "--cluster", "localhost:6379"),
        ("9000", "--cluster", "redis://h:port"),
        ("9000", "--cluster-ttl", "0"),
        ("9000", "--max-held-commands", "0"),
    ],
)
def test_bad_cluster_options_are_usage_errors(args: tuple[str, ...]) -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(list(args))


def test_cluster_without_its_extra_is_a_usage_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--cluster without txredisapi installed says which pip install fixes it."""
    monkeypatch.setitem(sys.modules, "txredisapi", None)  # import txredisapi now fails
    monkeypatch.delitem(sys.modules, "chatproto.cluster.router", raising=False)
    with pytest.raises(usage.UsageError, match=r"pip install 'chatproto\[cluster\]'"):
        Options().parseOptions(["9000", "--cluster", "redis://127.0.0.1:6379"])
