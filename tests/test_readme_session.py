"""README's "An example session" is what really happens: the -v lines, and an nc that exits."""

import textwrap

from tests.e2e_support import free_port
from tests.sockets import UdpClient
from tests.test_limits_doc import README, _section


def session_text() -> str:
    """Return README's "An example session" section."""
    return "\n".join(_section(README.read_text(encoding="utf-8"), "An example session"))


def literal_after(text: str, lead: str) -> list[str]:
    """Return the lines of the literal block that follows the paragraph ending in ``lead``."""
    lines = text.split(lead, 1)[1].strip("\n").splitlines()
    end = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), len(lines))
    return textwrap.dedent("\n".join(lines[:end]).rstrip("\n")).splitlines()


def test_readme_pipes_into_an_nc_that_closes_at_the_end_of_its_input() -> None:
    """The scripted alice uses nc -N, without which OpenBSD's nc never exits."""
    (piped,) = [line for line in session_text().splitlines() if "} | nc" in line]
    assert piped.rstrip().endswith("| nc -N 127.0.0.1 9000")


def test_readme_verbose_lines_are_what_the_server_prints(launch, tcp):
    """bob, then alice sending 'You suck!', then carol over UDP: exactly README's -v lines."""
    port = free_port()
    server = launch("chat_server", [port], ["-v"])
    bob = tcp(port)
    bob.login(b"bob")
    alice = tcp(port)
    alice.login(b"alice")
    alice.send(b"SEND bob\n9\nYou suck!")
    bob.expect(b"FROM alice\n9\nYou suck!")
    carol = UdpClient(port)
    try:
        carol.send(b"ME IS carol")
        carol.expect(b"OK\n")
    finally:
        carol.close()
    assert server.stop() == 0
    shown = literal_after(session_text(), "and the server, with ``-v``, shows::")
    assert server.stdout.decode("ascii").splitlines() == shown
