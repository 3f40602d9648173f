"""The login deadlines of every connection, on a few shared timers (issue 16: logins/s).

PROTOCOL §7 closes a connection that has not logged in within
``--login-timeout``. A timer per connection (Twisted's ``TimeoutMixin``) cost
each login a ``DelayedCall``, a push on the reactor's heap and a cancel,
about 8 % of the server's time while clients connect and log in at full
speed (py-spy). Every connection gets the same timeout, so the deadlines
fall in the order the connections came: :class:`LoginDeadlines` rounds each
up to the next :data:`LOGIN_DEADLINE_STEP_S` and keeps one set of
connections, and one timer, per step. Watching a connection costs a set
insert, and its login a set removal; a connection is closed at most one
step after its timeout, never before it.
"""

import math
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: Deadlines are rounded up to a multiple of this (seconds): the timers per
#: second of connections coming in, and how late past its timeout a
#: connection may be closed.
LOGIN_DEADLINE_STEP_S = 0.05


class Expiring(Protocol):
    """A connection with a login deadline."""

    def timeoutConnection(self) -> None:
        """The deadline passed without a login: close the connection."""


class DeadlineStep:
    """The connections whose deadlines fall in one step, and the step's timer.

    Attributes:
        connections: the connections still waiting for a login.
    """

    __slots__ = ("connections", "_key", "_timer")

    def __init__(self, key: int) -> None:
        self.connections: set[Expiring] = set()
        self._key = key
        self._timer: IDelayedCall | None = None


class LoginDeadlines:
    """Every connection's login deadline: ``timeout_s`` after :meth:`watch`."""

    __slots__ = ("_clock", "_timeout_s", "_step_s", "_steps")

    log = Logger()

    def __init__(
        self, clock: IReactorTime, timeout_s: float, step_s: float = LOGIN_DEADLINE_STEP_S
    ) -> None:
        self._clock = clock
        self._timeout_s = timeout_s
        self._step_s = step_s
        self._steps: dict[int, DeadlineStep] = {}

    def watch(self, connection: Expiring) -> DeadlineStep:
        """Start ``connection``'s deadline; pass what this returns to :meth:`unwatch`."""
        now = self._clock.seconds()
        key = math.ceil((now + self._timeout_s) / self._step_s)
        step = self._steps.get(key)
        if step is None:
            step = self._steps[key] = DeadlineStep(key)
            # Never before the timeout, whatever the rounding of the product.
            delay = max(key * self._step_s - now, self._timeout_s)
            step._timer = self._clock.callLater(delay, self._expire, step)
        step.connections.add(connection)
        return step

    def unwatch(self, connection: Expiring, step: DeadlineStep) -> None:
        """End ``connection``'s deadline (it logged in, or it closed)."""
        connections = step.connections
        connections.discard(connection)
        if not connections and step._timer is not None:  # nobody left: no timer either
            step._timer.cancel()
            self._forget(step)

    def _forget(self, step: DeadlineStep) -> None:
        step._timer = None
        del self._steps[step._key]

    def _expire(self, step: DeadlineStep) -> None:
        self._forget(step)
        expired, step.connections = step.connections, set()
        for connection in expired:
            try:
                connection.timeoutConnection()
            except Exception:  # one connection's failure spares the others
                self.log.failure("closing a connection at its login deadline failed")

    def __len__(self) -> int:
        """How many connections are waiting for a login."""
        return sum(len(step.connections) for step in self._steps.values())
