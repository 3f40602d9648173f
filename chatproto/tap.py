"""Options and service construction, shared by ``twistd chat`` and ``chat_server``.

``makeService`` builds one :class:`~chatproto.server.service.ChatService` and, for
every port, a TCP listener and a UDP listener that share it (PROTOCOL §1);
with ``--workers N`` it builds instead a supervisor of N such processes.
Nothing else happens here: parsing, wiring, and no behaviour of its own.
"""

import platform
import random
import resource
import sys
from collections.abc import Callable, Sequence

from twisted.application import internet, strports
from twisted.application.service import IService, MultiService, Service
from twisted.copyright import version as twisted_version
from twisted.internet.abstract import isIPv6Address
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python import usage

from chatproto import __version__
from chatproto.argtypes import (
    AnyOrderOptions,
    BadValueError,
    OptionError,
    directory,
    integer,
    missing_extra,
    port_number,
    positive_float,
    positive_int,
    require_extra,
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

#: How a usage error under twistd names the program.
TWISTD_PROGRAM = "twistd chat"


def version_text() -> str:
    """Return what ``--version`` prints: chatproto's version, then what it runs on.

    The first line is ``chatproto <version>``; each later line names one
    thing the server is built on, so that a bug report can quote them all.
    """
    lines = [
        f"chatproto {__version__}",
        f"Twisted {twisted_version}, Python {platform.python_version()}",
    ]
    return "\n".join(lines)


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
        [
            "interface",
            "i",
            "0.0.0.0",
            "IPv4 or IPv6 address to listen on; 0.0.0.0 is every IPv4 interface, :: every "
            "interface.",
        ],
        [
            "spool-dir",
            None,
            None,
            "Directory for spool files (default: the system's temp dir).",
            directory,
        ],
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
            integer,
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
        self["web"] = []  # --web, --web-origin (chatproto.web)
        self["web-origin"] = []
        #: The arguments as given, kept to build the workers' command line.
        self.argv: list[str] = []
        self._exempt_given = False

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse ``options`` (default: ``sys.argv[1:]``) and remember them as given.

        As ``twistd chat``'s options (when twistd is the parent), a usage
        error is one line on stderr and exit status 2, as for ``chat_server``.
        """
        self.argv = list(sys.argv[1:] if options is None else options)
        try:
            super().parseOptions(self.argv)
        except usage.UsageError as error:
            if self.parent is None:
                raise
            # Under twistd (our parent): it would print its whole usage and exit 1.
            sys.stderr.write(usage_error_line(TWISTD_PROGRAM, error))
            raise SystemExit(2) from None

    def opt_version(self) -> None:
        """Print chatproto's version (and Twisted's and Python's) and exit."""
        print(version_text())
        sys.exit(0)

    def opt_port(self, value: str) -> None:
        """Listen on TCP and UDP port PORT (repeatable)."""
        self["ports"].append(_port(value, "--port"))

    opt_p = opt_port

    def opt_listen(self, endpoint: str) -> None:
        """Also listen on a Twisted stream endpoint (repeatable): tcp6:9000, ssl:9443:privateKey=key.pem:certKey=cert.pem, unix:/run/chat.sock ... A tcp: or ssl: endpoint without interface= gets --interface; a unix: one without mode= gets mode=660."""  # noqa: E501
        self["listen"].append(endpoint)

    # The web page and its WebSocket; the work is in chatproto.web.

    def opt_web(self, value: str) -> None:
        """Serve the chat page and its WebSocket on this port (on --interface) or endpoint (repeatable): 8080, tcp6:8080, ssl:8443:privateKey=key.pem:certKey=cert.pem"""  # noqa: E501
        self["web"].append(value)

    def opt_web_origin(self, origin: str) -> None:
        """Also accept WebSockets from pages of this origin (repeatable), e.g. https://chat.example.org. Default: only the page's own."""  # noqa: E501
        self["web-origin"].append(web_origin(origin))

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
            self["ports"].append(_port(port, "<port>"))

    def postOptions(self) -> None:
        if not self["ports"] and not self["listen"]:
            raise usage.UsageError("give at least one port (or --listen endpoint) to listen on")
        self["ports"] = list(dict.fromkeys(self["ports"]))
        given = list(dict.fromkeys(self["listen"]))
        for endpoint in given:  # as given, so that an error quotes what the user wrote
            check_endpoint(endpoint)
        self["listen"] = [effective_endpoint(endpoint, self["interface"]) for endpoint in given]
        if self["workers"] > 1:
            self._check_workers()
        check_web_options(self)
        if self["metrics-port"] is not None:
            require_extra("--metrics-port", "prometheus_client")
        if self["cluster"] is not None:  # the cluster layer, and the extra it needs
            require_extra("--cluster", "chatproto.cluster.router")

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


#: Endpoint types whose first argument is a port number.
_PORT_ENDPOINTS = frozenset({"tcp", "tcp6", "ssl"})

#: The mode of a UNIX socket whose endpoint names none: read and write for the
#: server's user and group, nothing for others. Twisted's own default, 0666,
#: lets every local user connect, and a socket's mode is its only access
#: control; the group is how a front end running as another user is let in.
UNIX_SOCKET_MODE = 0o660


def effective_endpoint(text: str, interface: str) -> str:
    """Return the ``--listen`` endpoint ``text`` with the server's defaults filled in.

    A ``tcp:`` or ``ssl:`` endpoint that names no ``interface=`` gets
    ``--interface`` (a ``tcp6:`` one too when ``--interface`` is an IPv6
    address), so ``-i 127.0.0.1`` keeps every listener on loopback. A
    ``unix:`` endpoint that names no ``mode=`` gets :data:`UNIX_SOCKET_MODE`.
    Anything the endpoint names itself is kept.
    """
    kind, _, keywords = endpoint_arguments(text)
    takes_interface = kind in ("tcp", "ssl") or (kind == "tcp6" and isIPv6Address(interface))
    if takes_interface and "interface" not in keywords:
        return f"{text}:interface={quoteStringArgument(interface)}"
    if kind == "unix" and "mode" not in keywords:
        return f"{text}:mode={UNIX_SOCKET_MODE:o}"
    return text


def endpoint_arguments(text: str) -> tuple[str, list[str], list[str]]:
    """Return an endpoint string's type, its positional arguments and its keywords' names.

    Follows Twisted's grammar (``twisted.internet.endpoints``): arguments
    are separated by ``:``, a keyword argument is ``name=value``, and ``\\``
    makes the next character plain. Values come back unescaped.
    """
    parts: list[list[tuple[str, bool]]] = [[]]
    escaped = False
    for char in text:
        if escaped:
            parts[-1].append((char, True))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append([])
        else:
            parts[-1].append((char, False))
    kind = "".join(char for char, _ in parts[0])
    positional: list[str] = []
    keywords: list[str] = []
    for part in parts[1:]:
        plain = "".join(char for char, _ in part)
        if ("=", False) in part:
            keywords.append(plain[: part.index(("=", False))])
        else:
            positional.append(plain)
    return kind, positional, keywords


def check_endpoint(text: str) -> None:
    """Check that ``text`` is a server endpoint Twisted can build, without listening on it.

    The endpoint is built against the reactor and dropped: this reads an
    ``ssl:`` endpoint's key and certificate and imports what its type needs,
    so a mistake there is a usage error before anything starts. What only
    listening can tell (a port in use, a directory that does not exist) is
    found when the service starts.

    Raises:
        OptionError: ``--listen`` cannot use ``text``; the message says why,
            and for a type whose extra is not installed, how to install it.
    """
    kind, positional, keywords = endpoint_arguments(text)
    if kind in _PORT_ENDPOINTS and positional and not _is_port_or_zero(positional[0]):
        raise OptionError("--listen", f"the port must be a number from 0 to 65535 (got {text!r})")
    if kind == "unix" and not any(positional[:1]) and "address" not in keywords:
        raise OptionError("--listen", f"a unix endpoint needs the socket's path (got {text!r})")
    from twisted.internet import reactor

    try:
        serverFromString(reactor, text)
    except ImportError as error:
        hint = missing_extra(error)
        if hint is None:
            raise OptionError("--listen", f"{kind} endpoints cannot be used: {error}") from None
        raise OptionError("--listen", f"{kind} endpoints need {hint}") from None
    except OSError as error:
        raise OptionError(
            "--listen", f"cannot read {error.filename}: {error.strerror} (got {text!r})"
        ) from None
    except Exception as error:  # what Twisted's parsers refuse: ValueError, TypeError, SSL errors
        raise OptionError("--listen", f"not a usable endpoint: {error} (got {text!r})") from None


def _is_port_or_zero(text: str) -> bool:
    """Whether ``text`` is a port number an endpoint accepts: 0 (any free port) to 65535."""
    return text.isdigit() and int(text) <= 65535


def usage_error_line(program: str, error: usage.UsageError) -> str:
    """Return the one line that reports a bad command line of ``program``.

    An error about one option's value names that option already; any other
    (no port, an unknown option) also points at ``--help``.
    """
    if isinstance(error, OptionError):
        return f"{program}: {error}\n"
    return f"{program}: {error} (see {program} --help)\n"


def _port(text: str, option: str) -> int:
    """Return the port number ``text`` given as ``option``, or raise an error naming it."""
    try:
        return port_number(text)
    except BadValueError as error:
        raise OptionError(option, str(error)) from None


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit: every client is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tcp_endpoint(port: int, interface: str, backlog: int = _DEFAULT.listen_backlog) -> str:
    """Return the endpoint string for a TCP port on ``interface`` (IPv4 or IPv6)."""
    return f"tcp:{port}:interface={quoteStringArgument(interface)}:backlog={backlog}"


class ListenError(SystemExit, Exception):
    """The server cannot listen on an address it was given; the message says which and why.

    An ``Exception``, so that twistd's start-up, which catches those, removes
    its pidfile and tells a waiting daemon parent; and a ``SystemExit``, so
    that re-raised out of twistd it ends the process with status 1 and no
    traceback. ``chat_server`` catches it and prints the message itself.

    Attributes:
        where: what could not be listened on (``TCP 127.0.0.1:9000``).
        reason: why not (``Address already in use``).
        code: the exit status, 1 (as for ``SystemExit``).
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot listen on {where}: {reason}")
        self.where = where
        self.reason = reason
        self.code = 1


def _reason(error: object) -> str:
    """Return why a listen failed, from its ``OSError`` (its ``strerror``) or its text."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _address(interface: str, port: object) -> str:
    """Return ``interface:port``, an IPv6 interface in brackets (``[::1]:9000``)."""
    return f"[{interface}]:{port}" if ":" in interface else f"{interface}:{port}"


class ServerService(MultiService):
    """The server's services, started so that a listener that fails is one line, not a traceback.

    Listeners are added with :meth:`add_listener`, which records what each
    one is for the message. Whichever start is called (twistd calls
    ``privilegedStartService`` first, to bind before dropping privileges;
    ``chat_server`` only ``startService``), a child that cannot listen
    stops it with :class:`ListenError`, after logging the same line as a
    critical event (twistd's log shows it; ``chat_server`` prints it).
    """

    log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self._where: dict[IService, str] = {}

    def add_listener(self, listener: IService, where: str) -> None:
        """Add ``listener``, which listens on ``where`` (named so in a failure)."""
        listener.setServiceParent(self)
        self._where[listener] = where

    def privilegedStartService(self) -> None:
        """Bind every listener now (twistd does so before it drops privileges)."""
        Service.privilegedStartService(self)
        for child in self:
            self._starting(child, child.privilegedStartService)

    def startService(self) -> None:
        """Start every child (binding the listeners not bound yet)."""
        Service.startService(self)
        for child in self:
            self._starting(child, child.startService)

    def _starting(self, child: IService, start) -> None:  # type: ignore[no-untyped-def]
        """Call ``start``; turn a listen failure of ``child`` into :class:`ListenError`.

        A listener's ``OSError`` counts (a UNIX socket in a directory that does
        not exist fails in Twisted's lock file, before the bind); other
        errors are bugs and keep their traceback.
        """
        where = self._where.get(child)
        try:
            start()
        except CannotListenError as error:
            where = where or _address(error.interface or "*", error.port)
            self._fail(ListenError(where, _reason(error.socketError)))
        except OSError as error:
            if where is None:
                raise
            self._fail(ListenError(where, _reason(error)))

    def _fail(self, error: ListenError) -> None:
        """Log ``error`` as one critical line, then raise it."""
        self.log.critical("{message}", message=str(error))
        raise error


def _supervisor(config: Options, reactor) -> MultiService:  # type: ignore[no-untyped-def]
    """Build the service of ``--workers N``: no listener, N worker processes.

    It first checks that every port can be shared (see :class:`ReusePortCheck`).
    """
    top = ServerService()
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
    top = ServerService()
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
        top.add_listener(tcp, f"TCP {_address(interface, port)}")
        top.add_listener(udp, f"UDP {_address(interface, port)}")
    for endpoint in config["listen"]:
        listener = strports.service(endpoint, factory, reactor=reactor)
        top.add_listener(listener, f"--listen {endpoint}")
    if config["web"]:  # the chat page and its WebSocket (chatproto.web)
        from chatproto.web.site import web_services

        webs = web_services(chat, config["web"], interface, config["web-origin"], reactor=reactor)
        for value, listener in zip(config["web"], webs, strict=True):
            top.add_listener(listener, f"--web {value}")
    if config["metrics-port"] is not None:
        from chatproto.server.metrics import metrics_site

        where = _address(config["metrics-interface"], config["metrics-port"])
        metrics = _tcp_endpoint(config["metrics-port"], config["metrics-interface"])
        site = metrics_site(chat, factory)
        listener = strports.service(metrics, site, reactor=reactor)
        top.add_listener(listener, f"--metrics-port {where}")
    return top
