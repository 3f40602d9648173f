"""Options and service construction, shared by ``twistd chat`` and ``chat_server``.

``makeService`` builds one :class:`~chatproto.server.service.ChatService` and, for
every port, a TCP listener and a UDP listener that share it (PROTOCOL §1);
with ``--workers N`` it builds instead a supervisor of N such processes.
Nothing else happens here: parsing, wiring, and no behaviour of its own.
"""

import random
import resource
import sys
from collections.abc import Callable, Sequence

from twisted.application import internet, strports
from twisted.application.service import MultiService
from twisted.internet.endpoints import quoteStringArgument
from twisted.python import usage

from chatproto.argtypes import (
    AnyOrderOptions,
    port_number,
    positive_float,
    positive_int,
)
from chatproto.cluster.address import redis_url
from chatproto.limits import KIB, LIMITS, MIB, PUBLIC_LIMITS, Limit, Limits, Rate, Unit
from chatproto.server.addresses import DEFAULT_EXEMPT, parse_networks
from chatproto.server.reuseport import ReusePortCheck, ReusePortTCPServer, ReusePortUDPServer
from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol, UDPClients
from chatproto.server.workers import parent_watch, worker_monitor
from chatproto.web.options import check_web_options, web_origin

_DEFAULT = Limits()


def _limit_options() -> list[list[object]]:
    """Return the ``optParameters`` rows of every limit, derived from its declaration.

    A whole-number limit (bytes, counts) takes :func:`positive_int`, a time
    :func:`positive_float`. A size's help also gives its default the way people
    read it (``64 MiB``), next to the ``[default: 67108864]`` that usage adds.
    """
    return [
        [declared.option, None, declared.default, _limit_help(declared), _coercion(declared)]
        for declared in LIMITS
    ]


def _coercion(declared: Limit) -> Callable[[str], object]:
    """Return the function that turns a limit option's text into its value."""
    if declared.is_rate:
        return _rate
    return positive_int if declared.is_whole else positive_float


def _rate(text: str) -> Rate | None:
    """Return a ``RATE[/BURST]`` option's value; ``off`` turns the limit off."""
    return None if text == "off" else Rate.parse(text)


_rate.coerceDoc = "RATE[/BURST] per second, or off (the default)."  # type: ignore[attr-defined]


def _limit_help(declared: Limit) -> str:
    """Return the help of a limit's option: its text, and a size's default in KiB/MiB/GiB."""
    if declared.unit is Unit.BYTES:
        return f"{declared.help} Default: {declared.default_text()}."
    return declared.help


def _rate_text(attribute: str) -> str:
    """``--public``'s value of a rate limit, as an option would take it (``256KiB/4MiB``)."""
    rate = PUBLIC_LIMITS[attribute]
    return f"{_amount_text(rate.per_second)}/{_amount_text(rate.burst)}"


def _amount_text(amount: float) -> str:
    for size, suffix in ((MIB, "MiB"), (KIB, "KiB")):
        if amount >= size and amount % size == 0:
            return f"{amount / size:g}{suffix}"
    return f"{amount:g}"


class Options(AnyOrderOptions):
    """Command-line options of the chat server.

    Ports are given as arguments or with ``-p`` (repeatable); options may
    come before or after the ports.
    """

    synopsis = "[options] <port> [<port> ...]"
    longdesc = (
        "A chat server: every port listens on TCP and UDP, and all users share one "
        "namespace. Silent unless -v is given."
    )

    optFlags = [
        ["verbose", "v", "Show every frame received and sent, in the RCVD/SENT format."],
        [
            "public",
            None,
            "Turn on flood control for a public network, unless given otherwise: "
            f"flood-messages {_rate_text('flood_messages')}, "
            f"flood-bytes {_rate_text('flood_bytes')}.",
        ],
        ["no-random", None, "Do not send a random message after every third delivery."],
        [
            "reuse-port",
            None,
            "Bind every port with SO_REUSEPORT, so that several processes can serve it.",
        ],
    ]
    optParameters = [
        ["interface", "i", "0.0.0.0", "Address to listen on (default: all IPv4 interfaces)."],
        ["spool-dir", None, None, "Directory for spool files (default: the system's temp dir)."],
        [
            "metrics-port",
            None,
            None,
            "Serve Prometheus metrics over HTTP at /metrics on this port "
            "(needs: pip install 'chatproto[metrics]').",
            port_number,
        ],
        ["metrics-interface", None, "127.0.0.1", "Address the metrics page listens on."],
        [
            "cluster",
            None,
            None,
            "Share users and messages with other chatproto processes through Redis "
            "(needs: pip install 'chatproto[cluster]').",
            redis_url,
        ],
        [
            "random-seed",
            None,
            None,
            "Seed for the random messages, for reproducible runs (default: unpredictable).",
            int,
        ],
        [
            "workers",
            None,
            1,
            "Processes serving the ports (each with --reuse-port); more than 1 needs --cluster.",
            positive_int,
        ],
        *_limit_options(),
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []
        self["listen"] = []
        self["limit-exempt"] = parse_networks(DEFAULT_EXEMPT)
        self["web"] = []  # issue 17: --web, --web-origin (chatproto.web)
        self["web-origin"] = []
        #: The arguments as given, kept to build the workers' command line.
        self.argv: list[str] = []
        self._exempt_given = False

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse ``options`` (default: ``sys.argv[1:]``) and remember them as given."""
        self.argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(self.argv)

    def opt_port(self, value: str) -> None:
        """Listen on TCP and UDP port PORT (repeatable)."""
        self["ports"].append(port_number(value))

    opt_p = opt_port

    def opt_listen(self, endpoint: str) -> None:
        """Also listen on a Twisted stream endpoint (repeatable): tcp6:9000, ssl:9443:privateKey=key.pem:certKey=cert.pem, unix:/run/chat.sock ..."""  # noqa: E501
        self["listen"].append(endpoint)

    # -- issue 17: the web page and its WebSocket; the work is in chatproto.web --

    def opt_web(self, value: str) -> None:
        """Serve the chat page and its WebSocket on this port (on --interface) or endpoint (repeatable): 8080, tcp6:8080, ssl:8443:privateKey=key.pem:certKey=cert.pem"""  # noqa: E501
        self["web"].append(value)

    def opt_web_origin(self, origin: str) -> None:
        """Also accept WebSockets from pages of this origin (repeatable), e.g. https://chat.example.org. Default: only the page's own."""  # noqa: E501
        self["web-origin"].append(web_origin(origin))

    # -- end of issue 17 --

    def opt_limit_exempt(self, network: str) -> None:
        """Do not apply the per-address limits to this network (CIDR, repeatable; 'none' for no exemption). Default: 127.0.0.0/8 and ::1."""  # noqa: E501
        if not self._exempt_given:
            self["limit-exempt"] = ()
            self._exempt_given = True
        if network != "none":
            try:
                self["limit-exempt"] += parse_networks([network])
            except ValueError:
                raise usage.UsageError(
                    f"--limit-exempt: not a network (CIDR, or none): {network!r}"
                ) from None

    def parseArgs(self, *ports: str) -> None:
        for port in ports:
            self.opt_port(port)

    def postOptions(self) -> None:
        if not self["ports"] and not self["listen"]:
            raise usage.UsageError("give at least one port (or --listen endpoint) to listen on")
        self["ports"] = list(dict.fromkeys(self["ports"]))
        if self["workers"] > 1:
            self._check_workers()
        check_web_options(self)  # issue 17
        if self["metrics-port"] is not None:
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise usage.UsageError(
                    "--metrics-port needs prometheus_client: pip install 'chatproto[metrics]'"
                ) from None
        if self["cluster"] is not None:
            try:  # the cluster layer, and the extra it needs (txredisapi)
                import chatproto.cluster.router  # noqa: F401
            except ImportError:
                raise usage.UsageError(
                    "--cluster needs txredisapi: pip install 'chatproto[cluster]'"
                ) from None

    def _check_workers(self) -> None:
        """Refuse what several worker processes cannot share."""
        if self["cluster"] is None:
            raise usage.UsageError(
                "--workers needs --cluster: separate processes share users only through Redis"
            )
        if self["listen"]:
            raise usage.UsageError(
                "--workers shares only <port>s: a --listen endpoint cannot be shared"
            )
        if self["metrics-port"] is not None:
            raise usage.UsageError(
                "--workers cannot serve --metrics-port: each worker would need its own port"
            )

    def worker_args(self) -> list[str]:
        """Return a worker's arguments: these options without ``--workers``, with ``--reuse-port``.

        Long options come out in full and before the ports, which follow ``--``.
        """
        args = self._options_first(self.argv, without=frozenset({"--workers"}))
        if "--reuse-port" not in args:
            args.insert(args.index("--"), "--reuse-port")
        return args

    def limits(self) -> Limits:
        """Return the :class:`Limits` these options ask for (``--public``'s among them)."""
        values = {declared.attribute: self[declared.option] for declared in LIMITS}
        if self["public"]:
            given = set(self._options_first(self.argv))
            for declared in LIMITS:
                if declared.attribute in PUBLIC_LIMITS and not any(
                    argument.startswith(f"--{declared.option}=") for argument in given
                ):
                    values[declared.attribute] = PUBLIC_LIMITS[declared.attribute]
        return Limits(**values)


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit: every client is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tcp_endpoint(port: int, interface: str, backlog: int = _DEFAULT.listen_backlog) -> str:
    """Return the endpoint string for a TCP port on ``interface`` (IPv4 or IPv6)."""
    return f"tcp:{port}:interface={quoteStringArgument(interface)}:backlog={backlog}"


def _supervisor(config: Options, reactor) -> MultiService:  # type: ignore[no-untyped-def]
    """Build the service of ``--workers N``: no listener, N worker processes.

    It first checks that every port can be shared (see :class:`ReusePortCheck`).
    """
    top = MultiService()
    ReusePortCheck(config["ports"], config["interface"]).setServiceParent(top)
    command = [sys.executable, "-m", "chatproto", *config.worker_args()]
    worker_monitor(command, config["workers"], reactor).setServiceParent(top)
    return top


def makeService(config: Options, reactor=None) -> MultiService:  # type: ignore[no-untyped-def]
    """Build the chat service and its TCP and UDP listeners on every port.

    Args:
        config: parsed :class:`Options`.
        reactor: the reactor to listen with and take time from; the global
            reactor when omitted.
    """
    if reactor is None:
        from twisted.internet import reactor
    if config["workers"] > 1:
        return _supervisor(config, reactor)
    raise_open_file_limit()
    top = MultiService()
    watch = parent_watch(reactor)  # a worker of --workers stops with its parent
    if watch is not None:
        watch.setServiceParent(top)
    limits = config.limits()
    router = None
    if config["cluster"] is not None:
        from chatproto.cluster.router import RedisRouter

        router = RedisRouter(config["cluster"], reactor, limits)
    chat = ChatService(
        reactor,
        limits,
        router=router,
        rng=random.Random(config["random-seed"]),
        random_messages=not config["no-random"],
        is_verbose=config["verbose"],
        spool_directory=config["spool-dir"],
        limit_exempt=config["limit-exempt"],
    )
    chat.setServiceParent(top)
    factory = ChatFactory(chat)
    interface = config["interface"]
    udp_clients = UDPClients()  # PROTOCOL §6: one UDP user whatever port it writes to
    for port in config["ports"]:
        backlog = chat.limits.listen_backlog
        udp_protocol = ChatDatagramProtocol(chat, udp_clients)
        if config["reuse-port"]:
            tcp = ReusePortTCPServer(port, interface, backlog, factory, reactor)
            udp = ReusePortUDPServer(port, interface, udp_protocol, reactor)
        else:
            tcp = strports.service(
                _tcp_endpoint(port, interface, backlog), factory, reactor=reactor
            )
            udp = internet.UDPServer(port, udp_protocol, interface=interface, reactor=reactor)
        tcp.setServiceParent(top)
        udp.setServiceParent(top)
    for endpoint in config["listen"]:
        strports.service(endpoint, factory, reactor=reactor).setServiceParent(top)
    # -- issue 17: the web listeners (--web), serving the same service --
    if config["web"]:
        from chatproto.web.site import web_services

        for web in web_services(
            chat, config["web"], interface, config["web-origin"], reactor=reactor
        ):
            web.setServiceParent(top)
    # -- end of issue 17 --
    if config["metrics-port"] is not None:
        from chatproto.server.metrics import metrics_site

        metrics = _tcp_endpoint(config["metrics-port"], config["metrics-interface"])
        site = metrics_site(chat, factory)
        strports.service(metrics, site, reactor=reactor).setServiceParent(top)
    return top
