"""Plain counters of what the server did, kept by the service at almost no cost.

The hot path only adds to ints and dict entries here; turning them into
Prometheus metrics is done at scrape time by ``chatproto.server.metrics``, which is
optional. Nothing here imports anything beyond the standard library.
"""

from bisect import bisect_left
from collections import Counter

#: Upper bounds (seconds) of the delivery latency histogram's buckets.
LATENCY_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


class LatencyHistogram:
    """Counts of observed latencies per bucket, plus their sum (a Prometheus histogram).

    Attributes:
        counts: observations per bucket; the last one is "above every bound".
        total_s: the sum of all observations.
    """

    __slots__ = ("counts", "total_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.total_s = 0.0

    def observe(self, seconds: float, times: int = 1) -> None:
        """Record ``times`` deliveries that took ``seconds``."""
        self.counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += times
        self.total_s += seconds * times


class Stats:
    """What the server has done since it started.

    Attributes:
        messages_in: complete messages received, by (command, framing), e.g.
            ``("send", "short")``.
        body_bytes_in: body bytes of those messages.
        deliveries_out: messages handed to recipients, by framing.
        bytes_out: wire bytes of those deliveries (``FROM`` line included).
        random_messages: random messages sent (PROTOCOL §5), also in deliveries_out.
        errors: ``ERROR`` replies, by reason.
        slow_consumers: recipients disconnected for not reading.
        connections_refused: TCP connections closed at once for the limit.
        flood_throttled: times a stream client was slowed down for passing
            its flood budget (``--flood-messages``, ``--flood-bytes``).
        flood_dropped: UDP datagrams dropped for the same.
        address_refused: connections closed and UDP logins refused for a
            per-address limit, by limit (the option's name).
        delivery_latency: from a message's last byte to its handing to a
            recipient's transport, per recipient.
        messages_relayed_in: messages that came from other processes (cluster).
        messages_relayed_out: messages passed on to other processes (cluster),
            once per process they went to.
        messages_not_relayed: messages for users elsewhere that could not be
            passed on (Redis down, relay backlog full), by reason.
    """

    __slots__ = (
        "messages_in",
        "body_bytes_in",
        "deliveries_out",
        "bytes_out",
        "random_messages",
        "errors",
        "slow_consumers",
        "connections_refused",
        "flood_throttled",
        "flood_dropped",
        "address_refused",
        "delivery_latency",
        "messages_relayed_in",
        "messages_relayed_out",
        "messages_not_relayed",
    )

    def __init__(self) -> None:
        # Plain dicts with every key from the start: adding to one is cheaper
        # than to a Counter, and these are added to for every message.
        self.messages_in = {
            (command, framing): 0
            for command in ("send", "broadcast")
            for framing in ("short", "chunked")
        }
        self.body_bytes_in = 0
        self.deliveries_out = {"short": 0, "chunked": 0}
        self.bytes_out = 0
        self.random_messages = 0
        self.errors: Counter[str] = Counter()
        self.slow_consumers = 0
        self.connections_refused = 0
        self.flood_throttled = 0
        self.flood_dropped = 0
        self.address_refused: Counter[str] = Counter()
        self.delivery_latency = LatencyHistogram()
        self.messages_relayed_in = 0
        self.messages_relayed_out = 0
        self.messages_not_relayed: Counter[str] = Counter()
