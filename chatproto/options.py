"""The server's command line, shared by ``twistd chat`` and ``chat_server``: :class:`Options`.

Every limit's option comes from its declaration in :mod:`chatproto.limits`;
the ``--listen`` endpoint strings are checked by :mod:`chatproto.endpoints`.
"""

import platform
import sys
from collections.abc import Callable, Sequence

from twisted.copyright import version as twisted_version
from twisted.python import usage

from chatproto import __version__
from chatproto.argtypes import (
    AnyOrderOptions,
    BadValueError,
    OptionError,
    directory,
    integer,
    port_number,
    positive_float,
    positive_int,
    require_extra,
)
from chatproto.cluster.address import redis_url
from chatproto.endpoints import check_endpoint, effective_endpoint
from chatproto.limits import LIMITS, PUBLIC_LIMITS, Limit, Limits, Rate, Unit
from chatproto.server.addresses import DEFAULT_EXEMPT, parse_networks
from chatproto.web.options import check_web_options, web_origin
from chatproto.wire.compiled import compiled_core_status

_DEFAULT = Limits()

#: How a usage error under twistd names the program.
TWISTD_PROGRAM = "twistd chat"


def version_text() -> str:
    """Return what ``--version`` prints: chatproto's version, then what it runs on.

    The first line is ``chatproto <version>``; each later line names one
    thing the server is built on, so that a bug report can quote them all,
    the last whether the wire core's compiled twin runs (``compiled core:
    yes``, or ``no`` and why, :mod:`chatproto.wire.compiled`).
    """
    lines = [
        f"chatproto {__version__}",
        f"Twisted {twisted_version}, Python {platform.python_version()}",
        f"compiled core: {compiled_core_status()}",
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
            f"flood-messages {PUBLIC_LIMITS['flood_messages'].option_text()}, "
            f"flood-bytes {PUBLIC_LIMITS['flood_bytes'].option_text()}.",
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
        """Print chatproto's version (Twisted's, Python's, the compiled core's) and exit."""
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
