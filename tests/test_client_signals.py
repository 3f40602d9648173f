"""End to end: ``chat_client`` interrupted with Ctrl-C (SIGINT), on a pty and on pipes.

A pty's Ctrl-C echoes ``^C`` and leaves the cursor after it; the client ends
that line before it exits, so the shell's prompt starts on a line of its own.
"""

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.client_support import ClientProcess
from tests.e2e_support import HOST, Server, free_port


@pytest.fixture
def server(tmp_path: Path, launch: Callable[..., Server]) -> Server:
    """A ``chat_server --no-random`` on a free loopback port, in its own directory."""
    return launch("chat_server", [free_port()], ["--no-random"], workdir=tmp_path / "server")


@pytest.fixture
def clients(tmp_path: Path, server: Server) -> Iterator[Callable[..., ClientProcess]]:
    """Start ``chat_client`` processes logged in to the server; kill them at teardown."""
    started: list[ClientProcess] = []

    def start(*args: str, use_pty: bool = False) -> ClientProcess:
        client = ClientProcess([HOST, str(server.ports[0]), *args], tmp_path, use_pty=use_pty)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


@pytest.mark.parametrize(
    ("args", "banner_end"),
    [(["--listen"], r"listening \(Ctrl-C to stop\)"), ([], "type /help for commands")],
    ids=["listen", "interactive"],
)
def test_ctrl_c_on_a_terminal_ends_the_line_and_exits_zero(  # type: ignore[no-untyped-def]
    clients, args: list[str], banner_end: str
) -> None:
    """Ctrl-C on a pty: the output ends with ``^C`` and a newline, no traceback; status 0."""
    terminal = clients("una", *args, use_pty=True)
    terminal.wait_for(rf"logged in as una at .*; {banner_end}")
    terminal.press_ctrl_c()
    assert terminal.wait() == 0
    assert terminal.rest("out") == "^C\n"


def test_sigint_on_pipes_adds_nothing_to_the_output(clients) -> None:  # type: ignore[no-untyped-def]
    """SIGINT to ``--listen`` on pipes: exit 0, and no newline joins its JSON or status lines."""
    listener = clients("vic", "--listen")
    assert re.fullmatch(r"logged in as vic .*", listener.line("err"))
    listener.process.send_signal(signal.SIGINT)
    assert (listener.wait(), listener.rest("out"), listener.rest("err")) == (0, "", "")
