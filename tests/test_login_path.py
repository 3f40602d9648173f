"""A login on one node costs no Deferred and, under chat_server, no log event (issue 16).

The local router answers a claim at once, so the session replies inside the
same read; a clustered router's Deferred still makes the session wait
(tests/test_async_login.py). ``session_log=False`` (what ``chat_server``
asks for: its console shows no such line) makes no login or logout event.
"""

from twisted.logger import capturedLogs

from chatproto.server.routing import LocalRouter
from tests.support import FakeClient, connect, make_service, take


def test_a_local_router_answers_a_claim_at_once() -> None:
    router = LocalRouter()
    assert router.register(b"alice", FakeClient()) is True
    assert router.register(b"alice", FakeClient()) is False


def test_a_login_is_answered_within_the_read_that_carried_it() -> None:
    service = make_service()
    protocol, transport = connect(service)
    protocol.dataReceived(b"ME IS alice\nSEND alice\n2\nhi")
    assert take(transport) == b"OK\nFROM alice\n2\nhi"
    assert not protocol._session.waiting


def _session_lines(session_log: bool) -> list[str]:
    service = make_service(session_log=session_log)
    with capturedLogs() as events:
        protocol, _ = connect(service)
        protocol.dataReceived(b"ME IS alice\n")
        protocol.connectionLost(None)
    return [event["log_format"] for event in events]


def test_logins_and_logouts_are_logged_by_default() -> None:
    assert _session_lines(True) == [
        "{user} logged in from {peer} over {transport}",
        "{who} logged out",
    ]


def test_without_the_session_log_a_login_makes_no_log_event() -> None:
    assert _session_lines(False) == []
