"""Every resource limit of the server, declared once, with its default.

Nothing else in chatproto holds a magic number for a limit: the codec, the
protocols and the service all read them from a :class:`Limits` instance, and
``chatproto.options.Options`` builds one from the command line (PROTOCOL.md §7).

Each field of :class:`Limits` is declared with :func:`limit`, which records
its option name, help text and unit. :data:`LIMITS` lists those declarations
(as :class:`Limit`), and everything else derives from it: the validation in
``Limits.__post_init__``, the command-line options and their help
(``chatproto.options``), and the check of README's limits table
(``tests/test_limits_doc.py``). This module imports nothing of chatproto.
"""

from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

_BINARY_UNITS = ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB"))


class Unit(Enum):
    """What a limit counts; it decides the value's type, its check and how it is written."""

    BYTES = "bytes"
    SECONDS = "seconds"
    COUNT = "count"
    #: A :class:`Rate` of frames per second, or None (off).
    RATE = "rate"
    #: A :class:`Rate` of bytes per second, or None (off).
    BYTE_RATE = "byte rate"


_SIZE_SUFFIXES = {"KiB": KIB, "MiB": MIB, "GiB": GIB, "K": KIB, "M": MIB, "G": GIB}


@dataclass(frozen=True, slots=True)
class Rate:
    """A budget refilled at ``per_second``, of which ``burst`` may be spent at once.

    Attributes:
        per_second: the average allowed, per second (positive).
        burst: the most allowed at once (at least 1).
    """

    per_second: float
    burst: float

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """Parse ``RATE[/BURST]``; sizes may end in KiB, MiB or GiB. BURST defaults to RATE.

        Raises:
            ValueError: ``text`` is not that; the message says what is wrong
                without quoting ``text`` (the option's error quotes it).
        """
        rate_text, _, burst_text = text.partition("/")
        per_second = _number(rate_text)
        burst = _number(burst_text) if burst_text else max(per_second, 1.0)
        if not per_second > 0:
            raise ValueError("the rate must be greater than 0")
        if not burst >= 1:
            raise ValueError("the burst must be at least 1")
        return cls(per_second, burst)

    def option_text(self) -> str:
        """Write the rate as its option takes it: ``5/20``, ``256KiB/4MiB``."""
        texts = []
        for amount in (self.per_second, self.burst):
            number, name = _binary(amount)
            texts.append(f"{number:g}{name}")
        return "/".join(texts)


def _number(text: str) -> float:
    """A number, possibly with a binary size suffix (``64KiB``)."""
    text = text.strip()
    size = 1
    for suffix, multiple in _SIZE_SUFFIXES.items():
        if text.endswith(suffix):
            text, size = text[: -len(suffix)], multiple
            break
    try:
        return float(text) * size
    except ValueError:
        raise ValueError(
            "must be RATE[/BURST] per second (e.g. 5/20 or 256KiB/4MiB), or off"
        ) from None


@dataclass(frozen=True, slots=True)
class Limit:
    """The declaration of one limit: one field of :class:`Limits`.

    Attributes:
        option: the command-line option, without its dashes (``"max-line"``).
        help: the option's help text, one or two sentences.
        unit: what the limit counts. Bytes and counts are whole numbers of at
            least 1; seconds are positive numbers.
        attribute: the :class:`Limits` field (filled in by :data:`LIMITS`).
        default: the field's default (filled in by :data:`LIMITS`).
    """

    option: str
    help: str
    unit: Unit
    attribute: str = ""
    default: int | float | Rate | None = 0

    @property
    def is_whole(self) -> bool:
        """Whether the value is a whole number of at least 1."""
        return self.unit in (Unit.BYTES, Unit.COUNT)

    @property
    def is_rate(self) -> bool:
        """Whether the value is a :class:`Rate`, or None for off."""
        return self.unit in (Unit.RATE, Unit.BYTE_RATE)

    def problem(self, value: Any) -> str | None:
        """Return why ``value`` is not allowed for this limit, or ``None`` if it is."""
        if self.is_rate:
            if value is None or isinstance(value, Rate):
                return None
            return f"{self.attribute} must be a Rate or None"
        if self.is_whole:
            return None if value >= 1 else f"{self.attribute} must be at least 1"
        return None if value > 0 else f"{self.attribute} must be positive"

    def default_text(self) -> str:
        """Return the default as README writes it: ``64 MiB``, ``8 KiB``, ``60 s``, ``1000``."""
        return format_value(self.default, self.unit)


def format_value(value: Any, unit: Unit) -> str:
    """Return ``value`` written for people in ``unit``.

    Bytes use the largest binary unit that divides them exactly (``64 MiB``,
    ``256 KiB``, else ``100 B``); seconds drop a zero fraction (``60 s``,
    ``2.5 s``); counts are the bare number; a rate is ``off`` or
    ``10/s, burst 20`` (``256 KiB/s, burst 4 MiB``).
    """
    if unit in (Unit.RATE, Unit.BYTE_RATE):
        if value is None:
            return "off"
        amount = Unit.BYTES if unit is Unit.BYTE_RATE else Unit.COUNT
        per_second = format_value(_whole(value.per_second), amount)
        return f"{per_second}/s, burst {format_value(_whole(value.burst), amount)}"
    if unit is Unit.SECONDS:
        return f"{value:g} s"
    if unit is Unit.BYTES:
        number, name = _binary(value)
        return f"{number} {name or 'B'}"
    return str(value)


def _binary(amount: float) -> tuple[int | float, str]:
    """``amount`` in the largest binary unit that divides it: (64, "MiB"), or (100, "")."""
    for size, name in _BINARY_UNITS:
        if amount >= size and amount % size == 0:
            return _whole(amount // size), name
    return _whole(amount), ""


def _whole(number: float) -> int | float:
    return int(number) if number == int(number) else number


def limit(default: int | float | Rate | None, option: str, help: str, unit: Unit) -> Any:
    """Declare a field of :class:`Limits`: its default and its :class:`Limit` metadata.

    Args:
        default: the value when the option is not given.
        option: the command-line option, without its dashes.
        help: the option's help text.
        unit: what the limit counts.

    Returns:
        A dataclass field (typed ``Any`` so that the field's annotation rules).
    """
    return field(default=default, metadata={"limit": Limit(option, help, unit)})


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits; every field has a command-line option.

    Attributes:
        max_line_bytes: longest command line, length line or chunk header,
            not counting its ``\\r\\n`` (``--max-line``).
        max_message_bytes: largest message body, short or chunked
            (``--max-message``).
        max_recipients: most distinct recipients one ``SEND`` may name
            (``--max-recipients``).
        login_timeout_s: a TCP connection that has not logged in this long
            after connecting is closed (``--login-timeout``).
        udp_session_ttl_s: a UDP session with no datagram for this long is
            logged out (``--udp-expiry``).
        spill_threshold_bytes: a body grows in memory up to this size, then
            moves to a spool file (``--spill-threshold``).
        max_spool_bytes: total size of all spool files at once; a big
            message that would pass it is refused (``--max-spool``).
        max_backlog_bytes: in-memory bytes queued for one TCP recipient that
            is not reading; past it the recipient is disconnected
            (``--max-backlog``). A spooled delivery counts its ``FROM`` line
            and preview here, its body below.
        max_spool_backlog_bytes: spooled bytes queued for one TCP recipient
            that is not reading; past it the recipient is disconnected
            (``--max-spool-backlog``): this bounds the disk one reader holds.
            One message is always let in, even one bigger than this.
        max_spool_backlog_messages: spooled messages queued for one TCP
            recipient; each keeps its spool file open, so this bounds the
            descriptors one reader holds; past it the recipient is
            disconnected (``--max-spool-messages``).
        send_timeout_s: a TCP recipient with deliveries waiting that reads
            nothing for this long is disconnected (``--send-timeout``).
        max_connections: TCP connections at once; new ones past it are
            closed at once (``--max-connections``).
        max_udp_sessions: UDP users at once; logins past it get ``ERROR``
            (``--max-udp-sessions``).
        max_frames_per_turn: frames handled from one client's input before
            the others get their turn (``--max-frames-per-turn``).
        listen_backlog: connections the kernel queues before the server
            accepts them; past it new ones wait or fail (``--listen-backlog``).
        cluster_ttl_s: with ``--cluster``, how long a node's claim of a userid
            lasts in Redis unless the node refreshes it; the ids of a node
            that died are free after it (``--cluster-ttl``).
        cluster_timeout_s: with ``--cluster``, how long a Redis command may
            go unanswered before the connection is dropped and made again
            (``--cluster-timeout``).
        max_relay_backlog_bytes: with ``--cluster``, memory held by messages
            for other nodes waiting to be published (their bytes, a spooled
            one's size too, and a measured overhead each; one is always let
            in); past it more are dropped and counted (``--max-relay-backlog``).
        max_held_commands: commands a UDP client may send while its login
            is being answered (with ``--cluster``, a Redis round trip); more
            are dropped (``--max-held-commands``). TCP stops reading instead.
        flood_messages: frames one client may send per second, and at once
            (a message costs one per ten recipients it reaches); past it a
            TCP client is slowed down, a UDP client's datagrams dropped
            (``--flood-messages``; off by default).
        flood_bytes: body bytes one client may send per second, and at once
            (``--flood-bytes``; off by default).
        max_connections_per_ip: TCP connections open at once from one
            address; more are closed at once (``--max-connections-per-ip``).
        connect_rate_per_ip: new TCP connections per minute from one
            address; more are closed at once (``--connect-rate-per-ip``).
        max_udp_sessions_per_ip: UDP users at once from one address; logins
            past it get ``ERROR`` (``--max-udp-sessions-per-ip``).
        max_web_message_bytes: largest WebSocket message a browser may send
            (``--web``); one that passes it closes the connection (1009) as
            soon as it does, so it is never held whole (``--max-web-message``).
    """

    max_line_bytes: int = limit(
        8 * KIB, "max-line", "Longest command or length line in bytes.", Unit.BYTES
    )
    max_message_bytes: int = limit(
        64 * MIB, "max-message", "Largest message body in bytes.", Unit.BYTES
    )
    max_recipients: int = limit(1000, "max-recipients", "Most recipients in one SEND.", Unit.COUNT)
    login_timeout_s: float = limit(
        60.0,
        "login-timeout",
        "Seconds a TCP connection may stay without logging in.",
        Unit.SECONDS,
    )
    udp_session_ttl_s: float = limit(
        600.0,
        "udp-expiry",
        "Seconds without a datagram after which a UDP user is logged out.",
        Unit.SECONDS,
    )
    spill_threshold_bytes: int = limit(
        256 * KIB,
        "spill-threshold",
        "Bytes of a message body kept in memory before it moves to a spool file.",
        Unit.BYTES,
    )
    max_spool_bytes: int = limit(
        4 * GIB,
        "max-spool",
        "Total bytes of spool files at once; a big message past it gets ERROR.",
        Unit.BYTES,
    )
    max_backlog_bytes: int = limit(
        16 * MIB,
        "max-backlog",
        "Bytes queued in memory for a client that is not reading before it is dropped.",
        Unit.BYTES,
    )
    max_spool_backlog_bytes: int = limit(
        64 * MIB,
        "max-spool-backlog",
        "Spooled bytes queued for a client that is not reading before it is dropped.",
        Unit.BYTES,
    )
    max_spool_backlog_messages: int = limit(
        32,
        "max-spool-messages",
        "Spooled messages (each an open file) queued for a client before it is dropped.",
        Unit.COUNT,
    )
    send_timeout_s: float = limit(
        120.0,
        "send-timeout",
        "Seconds a client with deliveries waiting may read nothing before it is dropped.",
        Unit.SECONDS,
    )
    max_connections: int = limit(
        16384,
        "max-connections",
        "TCP connections at once; new ones past it are closed at once.",
        Unit.COUNT,
    )
    max_udp_sessions: int = limit(
        65536, "max-udp-sessions", "UDP users at once; logins past it get ERROR.", Unit.COUNT
    )
    max_frames_per_turn: int = limit(
        256,
        "max-frames-per-turn",
        "Frames handled from one client's read before the other clients get a turn.",
        Unit.COUNT,
    )
    listen_backlog: int = limit(
        1024,
        "listen-backlog",
        "Connections the kernel queues for each TCP port before they are accepted.",
        Unit.COUNT,
    )
    cluster_ttl_s: float = limit(
        30.0,
        "cluster-ttl",
        "With --cluster: seconds a node's userids stay claimed in Redis unless it "
        "refreshes them (the ids of a node that died are free after it).",
        Unit.SECONDS,
    )
    cluster_timeout_s: float = limit(
        5.0,
        "cluster-timeout",
        "With --cluster: seconds to wait for a Redis answer before reconnecting.",
        Unit.SECONDS,
    )
    max_relay_backlog_bytes: int = limit(
        64 * MIB,
        "max-relay-backlog",
        "With --cluster: bytes of messages for other nodes waiting to be published; "
        "more are dropped.",
        Unit.BYTES,
    )
    max_held_commands: int = limit(
        64,
        "max-held-commands",
        "Commands a UDP client may send while its login is being answered "
        "(with --cluster); more are dropped.",
        Unit.COUNT,
    )
    flood_messages: Rate | None = limit(
        None,
        "flood-messages",
        "Frames one client may send per second (a message costs one per ten "
        "recipients); past it TCP is slowed down, UDP dropped",
        Unit.RATE,
    )
    flood_bytes: Rate | None = limit(
        None,
        "flood-bytes",
        "Body bytes one client may send per second (KiB, MiB allowed); past it TCP "
        "is slowed down, UDP dropped",
        Unit.BYTE_RATE,
    )
    max_connections_per_ip: int = limit(
        64,
        "max-connections-per-ip",
        "TCP connections open at once from one address (exempt networks aside).",
        Unit.COUNT,
    )
    connect_rate_per_ip: int = limit(
        120,
        "connect-rate-per-ip",
        "New TCP connections per minute from one address (exempt networks aside).",
        Unit.COUNT,
    )
    max_udp_sessions_per_ip: int = limit(
        64,
        "max-udp-sessions-per-ip",
        "UDP users at once from one address (exempt networks aside); past it: ERROR.",
        Unit.COUNT,
    )
    max_web_message_bytes: int = limit(
        1 * MIB,
        "max-web-message",
        "Largest WebSocket message from a browser (--web); a bigger one closes it.",
        Unit.BYTES,
    )

    def __post_init__(self) -> None:
        for declared in LIMITS:
            problem = declared.problem(getattr(self, declared.attribute))
            if problem is not None:
                raise ValueError(problem)

    @property
    def udp_sweep_interval_s(self) -> float:
        """How often idle UDP sessions are looked for: a tenth of the TTL, at most 1 s.

        A session therefore expires between one TTL and 1.1 TTL after its last
        datagram, and the sweep costs nothing noticeable.
        """
        return min(self.udp_session_ttl_s / 10, 1.0)


#: What ``--public`` turns on, unless given otherwise: flood control that a
#: person typing (or pasting, or sending a file) never meets, and a flooder
#: meets within a second (README "Deploying on a public network" says why).
PUBLIC_LIMITS: dict[str, Rate] = {
    "flood_messages": Rate(5.0, 20.0),
    "flood_bytes": Rate(256.0 * KIB, 4.0 * MIB),
}


def _declarations() -> tuple[Limit, ...]:
    """Return every field's :class:`Limit`, with its attribute name and default filled in."""
    return tuple(
        replace(each.metadata["limit"], attribute=each.name, default=each.default)
        for each in fields(Limits)
    )


#: Every limit, in declaration order: the single source of options, help and docs.
LIMITS: tuple[Limit, ...] = _declarations()
