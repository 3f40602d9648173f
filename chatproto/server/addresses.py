"""Per-address limits: what one IP address may hold of the server (issue 12).

A public server is open to many clients behind one address, and to one
client posing as many. Past these limits the newcomer is refused, and nobody
else notices:

- TCP connections open at once from one address
  (``Limits.max_connections_per_ip``) and new ones per minute
  (``Limits.connect_rate_per_ip``): the connection is closed at once;
- UDP users at once from one address (``Limits.max_udp_sessions_per_ip``):
  the login gets ``ERROR``.

Addresses in the exempt networks (``--limit-exempt``; loopback by default)
are not limited, nor are clients without an IP address (a UNIX socket).

Memory stays bounded: an address is counted only while it holds
connections or sessions, and the connect rates, "already logged" marks and
exemption decisions of at most :data:`MAX_TRACKED_ADDRESSES` addresses are
kept, the oldest forgotten first.
"""

import ipaddress
from collections import Counter
from collections.abc import Iterable

from twisted.internet.interfaces import IReactorTime

from chatproto.limits import Limits

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The networks exempt unless ``--limit-exempt`` says otherwise: loopback.
DEFAULT_EXEMPT = ("127.0.0.0/8", "::1/128")

#: Addresses whose recent connects (and log marks) are remembered at most.
MAX_TRACKED_ADDRESSES = 65536

#: A refusal is logged at most once per address and limit in this long.
LOG_INTERVAL_S = 60.0


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR networks (``10.0.0.0/8``, ``::1``); raises ``ValueError`` on a bad one."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


class AddressLimits:
    """The per-address counts, and the decisions made from them.

    Args:
        limits: the per-address limits.
        clock: where the time comes from (the connect rate, the log marks).
        exempt: networks whose addresses are not limited.
    """

    def __init__(self, limits: Limits, clock: IReactorTime, exempt: Iterable[IPNetwork]) -> None:
        self._limits = limits
        self._clock = clock
        self._exempt = tuple(exempt)
        self._open: Counter[str] = Counter()  # TCP connections open, per address
        self._udp: Counter[str] = Counter()  # UDP users, per address
        # Per address: (connect tokens, when counted), oldest first.
        self._connects: dict[str, tuple[float, float]] = {}
        self._logged: dict[tuple[str, str], float] = {}  # (address, limit): when
        # Whether each address seen is exempt: parsing one costs 5 µs, a lookup 50 ns.
        self._exempt_by_host: dict[str, bool] = {}

    def is_exempt(self, host: str | None) -> bool:
        """Whether ``host`` is not limited (an exempt network, or not an IP address)."""
        if host is None:
            return True
        known = self._exempt_by_host.get(host)
        if known is None:
            known = self._decide_exempt(host)
            self._remember(self._exempt_by_host, host, known)
        return known

    def _decide_exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return True  # a UNIX socket's peer, say
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._exempt)

    def admit_connection(self, host: str | None) -> str | None:
        """Count a new TCP connection from ``host``, or return the option that refuses it."""
        if self.is_exempt(host):
            return None
        assert host is not None
        limits = self._limits
        if self._open[host] >= limits.max_connections_per_ip:
            return "max-connections-per-ip"
        # A token bucket of one minute's connects, refilled continuously.
        per_minute = limits.connect_rate_per_ip
        now = self._clock.seconds()
        tokens, then = self._connects.pop(host, (float(per_minute), now))
        tokens = min(per_minute, tokens + (now - then) * per_minute / 60.0)
        if tokens < 1:
            self._remember(self._connects, host, (tokens, now))
            return "connect-rate-per-ip"
        self._remember(self._connects, host, (tokens - 1, now))
        self._open[host] += 1
        return None

    def connection_closed(self, host: str | None) -> None:
        """A connection :meth:`admit_connection` counted has closed."""
        self._release(self._open, host)

    def admit_udp_session(self, host: str) -> str | None:
        """Return the option that refuses one more UDP user from ``host``, or None."""
        if self.is_exempt(host) or self._udp[host] < self._limits.max_udp_sessions_per_ip:
            return None
        return "max-udp-sessions-per-ip"

    def udp_session_opened(self, host: str) -> None:
        """Count a UDP user logged in from ``host``."""
        if not self.is_exempt(host):
            self._udp[host] += 1

    def udp_session_closed(self, host: str) -> None:
        """A UDP user :meth:`udp_session_opened` counted is gone."""
        self._release(self._udp, host)

    def should_log(self, host: str, limit: str) -> bool:
        """Whether to log a refusal now: once per address and limit per minute."""
        now = self._clock.seconds()
        last = self._logged.pop((host, limit), None)
        if last is not None and now - last < LOG_INTERVAL_S:
            self._remember(self._logged, (host, limit), last)
            return False
        self._remember(self._logged, (host, limit), now)
        return True

    @staticmethod
    def _release(counts: Counter[str], host: str | None) -> None:
        if host is not None and counts.get(host, 0) > 0:
            counts[host] -= 1
            if not counts[host]:
                del counts[host]  # only addresses holding something are kept

    @staticmethod
    def _remember(table: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
        """Put ``key`` last in ``table``, forgetting the oldest entry past the bound."""
        table[key] = value
        if len(table) > MAX_TRACKED_ADDRESSES:
            del table[next(iter(table))]
