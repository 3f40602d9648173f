"""Flood control: token buckets on what one client sends (``--flood-messages``, ``--flood-bytes``).

Ergo calls it *fakelag*: a client may send at the bucket's rate, with a
burst; past it, it is not refused but slowed down. The session charges each
frame after handling it, so the bucket may go into debt; the client's next
input waits until the debt is paid back:

- a TCP (or TLS, UNIX) client's reading is paused for that long, so nothing
  it sent is lost or reordered, and no other client waits;
- a UDP client's datagrams that come while it is in debt are dropped and
  counted (a datagram cannot be paused).

A message costs one token per :data:`RECIPIENTS_PER_TOKEN` recipients it
reaches, at least one, so that one ``BROADCAST`` line cannot turn into ten
thousand deliveries a second; every other frame (a login, a refused
command) costs one. Body bytes go to the second bucket as they arrive, so a
big message is slowed while it comes in, not only after it.
"""

import math

from twisted.internet.interfaces import IReactorTime

from chatproto.limits import Rate

#: Recipients one message token pays for (a BROADCAST to 1,000 users costs 100).
RECIPIENTS_PER_TOKEN = 10


class TokenBucket:
    """Tokens refilled at ``rate.per_second`` up to ``rate.burst``; spending may go into debt.

    Args:
        rate: the refill rate and the bucket's size.
        clock: where the time comes from.
    """

    __slots__ = ("_per_second", "_burst", "_clock", "_tokens", "_updated")

    def __init__(self, rate: Rate, clock: IReactorTime) -> None:
        self._per_second = rate.per_second
        self._burst = rate.burst
        self._clock = clock
        self._tokens = rate.burst  # a new client starts with a full bucket
        self._updated = clock.seconds()

    @property
    def tokens(self) -> float:
        """Tokens now (negative: in debt)."""
        now = self._clock.seconds()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now
        return self._tokens

    def spend(self, cost: float) -> None:
        """Take ``cost`` tokens, into debt if there are not enough."""
        self._tokens = self.tokens - cost

    def wait(self) -> float:
        """Seconds until the bucket is out of debt (0 if it is not in debt)."""
        tokens = self.tokens
        return 0.0 if tokens >= 0 else -tokens / self._per_second


class FloodControl:
    """The two buckets of one client: messages and body bytes.

    Args:
        messages: the message budget, or None for no limit on messages.
        body_bytes: the body-byte budget, or None for no limit on bytes.
        clock: where the time comes from.
    """

    __slots__ = ("_messages", "_bytes")

    def __init__(
        self, messages: Rate | None, body_bytes: Rate | None, clock: IReactorTime
    ) -> None:
        self._messages = None if messages is None else TokenBucket(messages, clock)
        self._bytes = None if body_bytes is None else TokenBucket(body_bytes, clock)

    def charge_frame(self, recipients: int = 0) -> None:
        """Charge one frame; a message that reached ``recipients`` costs one token per ten."""
        if self._messages is not None:
            self._messages.spend(max(1, math.ceil(recipients / RECIPIENTS_PER_TOKEN)))

    def charge_bytes(self, count: int) -> None:
        """Charge ``count`` body bytes received."""
        if self._bytes is not None:
            self._bytes.spend(count)

    def wait(self) -> float:
        """Seconds until the client may go on: until both buckets are out of debt."""
        waits = [bucket.wait() for bucket in (self._messages, self._bytes) if bucket is not None]
        return max(waits, default=0.0)
