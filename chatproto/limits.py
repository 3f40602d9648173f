"""Every resource limit of the server, with its default, in one place.

Nothing else in chatproto holds a magic number for a limit: the codec, the
protocols and the service all read them from a :class:`Limits` instance, and
``tap.Options`` builds one from the command line (PROTOCOL.md §7).
"""

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


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
    """

    max_line_bytes: int = 8 * KIB
    max_message_bytes: int = 64 * MIB
    max_recipients: int = 1000
    login_timeout_s: float = 60.0
    udp_session_ttl_s: float = 600.0
    spill_threshold_bytes: int = 256 * KIB
    max_spool_bytes: int = 4 * 1024 * MIB
    max_backlog_bytes: int = 16 * MIB
    max_spool_backlog_bytes: int = 64 * MIB
    max_spool_backlog_messages: int = 32
    send_timeout_s: float = 120.0
    max_connections: int = 16384
    max_udp_sessions: int = 65536
    max_frames_per_turn: int = 256
    listen_backlog: int = 1024
    cluster_ttl_s: float = 30.0
    cluster_timeout_s: float = 5.0
    max_relay_backlog_bytes: int = 64 * MIB
    max_held_commands: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_line_bytes",
            "max_message_bytes",
            "max_recipients",
            "spill_threshold_bytes",
            "max_spool_bytes",
            "max_backlog_bytes",
            "max_spool_backlog_bytes",
            "max_spool_backlog_messages",
            "max_connections",
            "max_udp_sessions",
            "max_frames_per_turn",
            "listen_backlog",
            "max_relay_backlog_bytes",
            "max_held_commands",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "login_timeout_s",
            "udp_session_ttl_s",
            "send_timeout_s",
            "cluster_ttl_s",
            "cluster_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    @property
    def udp_sweep_interval_s(self) -> float:
        """How often idle UDP sessions are looked for: a tenth of the TTL, at most 1 s.

        A session therefore expires between one TTL and 1.1 TTL after its last
        datagram, and the sweep costs nothing noticeable.
        """
        return min(self.udp_session_ttl_s / 10, 1.0)
