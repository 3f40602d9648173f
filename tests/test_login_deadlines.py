"""LoginDeadlines: every connection's login timeout on shared timers (no reactor, a Clock)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from chatproto.server.deadlines import LOGIN_DEADLINE_STEP_S, LoginDeadlines

TIMEOUT = 5.0


class Connection:
    """Records when its deadline closed it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.closed_at: float | None = None

    def timeoutConnection(self) -> None:
        assert self.closed_at is None, "closed twice"
        self.closed_at = self.clock.seconds()


@given(
    arrivals=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=40),
    logins=st.lists(st.booleans(), max_size=40),
)
def test_each_connection_is_closed_within_one_step_after_its_own_timeout(
    arrivals: list[float], logins: list[bool]
) -> None:
    """Not before its timeout, at most a step after, and never once it logged in."""
    clock = Clock()
    deadlines = LoginDeadlines(clock, TIMEOUT)
    connections = []
    for arrival in sorted(arrivals):
        clock.advance(arrival - clock.seconds())
        connection = Connection(clock)
        connections.append((arrival, connection, deadlines.watch(connection)))
    logged_in = set()
    for (_, connection, step), logs_in in zip(connections, logins, strict=False):
        if logs_in:
            deadlines.unwatch(connection, step)
            logged_in.add(connection)
    for _ in range(int((TIMEOUT + 1) / 0.01)):
        clock.advance(0.01)
    for arrival, connection, _ in connections:
        if connection in logged_in:
            assert connection.closed_at is None
        else:
            assert connection.closed_at is not None
            assert arrival + TIMEOUT <= connection.closed_at
            assert connection.closed_at <= arrival + TIMEOUT + LOGIN_DEADLINE_STEP_S + 0.01
    assert clock.getDelayedCalls() == []
    assert len(deadlines) == 0


def test_connections_within_one_step_share_one_timer() -> None:
    clock = Clock()
    deadlines = LoginDeadlines(clock, TIMEOUT)
    start = LOGIN_DEADLINE_STEP_S * 10  # the start of a step
    clock.advance(start + 0.001)
    connections = [Connection(clock) for _ in range(100)]
    for connection in connections:
        deadlines.watch(connection)
        clock.advance(0.0001)
    assert len(clock.getDelayedCalls()) == 1
    assert len(deadlines) == 100
    clock.advance(TIMEOUT - 0.02)
    assert not any(connection.closed_at for connection in connections)
    clock.advance(LOGIN_DEADLINE_STEP_S + 0.03)  # past the last one's timeout, plus a step
    assert all(connection.closed_at for connection in connections)


def test_the_last_login_of_a_step_cancels_its_timer() -> None:
    clock = Clock()
    deadlines = LoginDeadlines(clock, TIMEOUT)
    first, second = Connection(clock), Connection(clock)
    steps = [deadlines.watch(first), deadlines.watch(second)]
    deadlines.unwatch(first, steps[0])
    assert len(clock.getDelayedCalls()) == 1  # the second still waits
    deadlines.unwatch(second, steps[1])
    deadlines.unwatch(second, steps[1])  # twice (logged in, then closed): nothing more
    assert clock.getDelayedCalls() == []


def test_a_connection_failing_to_close_spares_the_others() -> None:
    clock = Clock()
    deadlines = LoginDeadlines(clock, TIMEOUT)

    class Failing(Connection):
        def timeoutConnection(self) -> None:
            raise RuntimeError("broken")

    failing, others = Failing(clock), [Connection(clock) for _ in range(3)]
    for connection in (failing, *others):
        deadlines.watch(connection)
    with capturedLogs() as events:
        clock.advance(TIMEOUT + LOGIN_DEADLINE_STEP_S)
    assert all(connection.closed_at is not None for connection in others)
    (event,) = events
    assert event["log_failure"].check(RuntimeError)
    assert len(deadlines) == 0


@pytest.mark.parametrize("timeout", [0.01, 0.1, 1 / 3, 60.0])
def test_never_before_the_timeout_whatever_its_rounding(timeout: float) -> None:
    clock = Clock()
    deadlines = LoginDeadlines(clock, timeout)
    clock.advance(1 / 7)
    connection = Connection(clock)
    deadlines.watch(connection)
    (timer,) = clock.getDelayedCalls()
    assert timer.getTime() - clock.seconds() >= timeout
    assert timer.getTime() - clock.seconds() <= timeout + LOGIN_DEADLINE_STEP_S
