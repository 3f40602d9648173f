"""End to end: ``chat_client`` processes against a real ``chat_server`` process.

The server is started through the ``launch`` fixture; the clients run as
subprocesses (``ClientProcess``, in ``tests/client_support.py``), on loopback
only, their output read with deadlines.
"""

import hashlib
import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatproto.client.cli import HELP_TEXT
from chatproto.wire.encode import encode_message
from tests.client_support import STAMP, ClientProcess
from tests.e2e_support import HOST, Server, free_port
from tests.sockets import TcpClient


@pytest.fixture
def server(tmp_path: Path, launch: Callable[..., Server]) -> Server:
    """A ``chat_server --no-random`` on a free loopback port, in its own directory."""
    return launch("chat_server", [free_port()], ["--no-random"], workdir=tmp_path / "server")


@pytest.fixture
def clients(tmp_path: Path, server: Server) -> Iterator:
    """Start ``chat_client`` processes logged in to the server; kill them at teardown."""
    started: list[ClientProcess] = []

    def start(*args: str, use_pty: bool = False, port: int | None = None) -> ClientProcess:
        argv = [HOST, str(port or server.ports[0]), *args]
        client = ClientProcess(argv, tmp_path, use_pty=use_pty)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture
def raw_clients(server: Server) -> Iterator:
    """Open blocking raw-protocol TCP clients; close them at teardown."""
    opened: list[TcpClient] = []

    def connect(user: bytes) -> TcpClient:
        client = TcpClient(server.ports[0])
        opened.append(client)
        client.login(user)
        return client

    yield connect
    for client in opened:
        client.close()


def banner(user: str, server: Server, transport: str = "TCP") -> str:
    return f"logged in as {user} at {HOST}:{server.ports[0]} over {transport}"


def test_two_clients_exchange_text(clients, server: Server) -> None:  # type: ignore[no-untyped-def]
    """A ``/send`` from one terminal client is shown by the other with time and sender."""
    ann, ben = clients("ann"), clients("ben")
    assert ann.line() == banner("ann", server) + "; type /help for commands"
    assert ben.line() == banner("ben", server) + "; type /help for commands"
    ann.type("/send ben hello ben")
    assert re.fullmatch(STAMP + r" -> ben: hello ben", ann.line())
    assert re.fullmatch(STAMP + r" ann: hello ben", ben.line())
    long_text = " ".join(["a reply over 99 bytes, so it goes out chunked"] * 3)
    ben.type("/send ann " + long_text)
    assert ben.line().endswith(" -> ann: " + long_text)
    assert ann.line().endswith(" ben: " + long_text)


def test_broadcast_reaches_everyone_and_quit_exits_zero(clients, server: Server) -> None:  # type: ignore[no-untyped-def]
    """A typed line reaches every user, the sender included; ``/quit`` exits with 0."""
    cal, dee = clients("cal"), clients("dee")
    cal.line(), dee.line()
    cal.type("hi everyone")
    assert re.fullmatch(STAMP + r" cal: hi everyone", cal.line())
    assert re.fullmatch(STAMP + r" cal: hi everyone", dee.line())
    cal.type("/quit")
    assert (cal.wait(), cal.rest("out"), cal.rest("err")) == (0, "", "")


def test_five_mb_file_arrives_byte_for_byte(clients, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A 5 MB file sent with ``/file`` is saved by the recipient under its name, same sha256."""
    data = os.urandom(5 * 1024 * 1024)
    source = tmp_path / "five.bin"
    source.write_bytes(data)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    eve, fay = clients("eve"), clients("fay", "--download-dir", str(downloads))
    eve.line(), fay.line()
    eve.type(f"/file fay {source}")
    eve.wait_for(re.escape(f"sent {source} ({len(data)} bytes) to fay"))
    match = fay.wait_for(STAMP + r" eve sent a file: (.+) \((\d+) bytes\)", max_lines=1)
    saved = Path(match[1])
    assert (saved, int(match[2])) == (downloads / "five.bin", len(data))
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [path.name for path in downloads.iterdir()] == ["five.bin"]


def test_text_file_arrives_as_a_file_not_a_chat_line(
    clients, server: Server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A UTF-8 text file sent with ``/file`` is saved under its name, spaces and all."""
    source = tmp_path / "my notes.txt"
    source.write_text("hello bob\nsecond line\n")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    ann, bea = clients("ann2"), clients("bea", "--download-dir", str(downloads))
    ann.line(), bea.line()
    ann.type(f"/file bea {source}")
    ann.wait_for(re.escape(f"sent {source} (22 bytes) to bea"))
    saved = downloads / "my notes.txt"
    assert re.fullmatch(STAMP + re.escape(f" ann2 sent a file: {saved} (22 bytes)"), bea.line())
    assert saved.read_text() == "hello bob\nsecond line\n"


def test_big_file_shows_progress_lines(clients, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A file over 1 MB shows progress in 10% steps up to 100%, then the sent line."""
    source = tmp_path / "two.bin"
    source.write_bytes(b"\x00" * 2_000_000)
    gus = clients("gus")
    gus.line()
    gus.type(f"/file gus {source}")
    lines = [gus.line() for _ in range(11)]
    percents = [int(re.fullmatch(rf"sending {source}: (\d+)% .*", text)[1]) for text in lines[:10]]
    assert percents == list(range(10, 101, 10))
    assert lines[10] == f"sent {source} (2000000 bytes) to gus"


def test_listen_prints_messages_as_json_lines(  # type: ignore[no-untyped-def]
    clients, raw_clients, tmp_path: Path
) -> None:
    """``--listen`` prints each message as a JSON object: text, or the saved file's path."""
    listener = clients("hal", "--listen")
    listener.wait_for(r"logged in as hal .*; listening \(Ctrl-C to stop\)", stream="err")
    ivy = raw_clients(b"ivy")
    ivy.send(encode_message([b"hal"], b"hi hal"))
    ivy.send(encode_message([b"hal"], b"\xff\xfe" * 600))
    first, second = json.loads(listener.line()), json.loads(listener.line())
    assert first == {"sender": "ivy", "size": 6, "text": "hi hal"}
    saved = os.path.join(os.path.realpath(tmp_path), "ivy.bin")
    assert second == {"sender": "ivy", "size": 1200, "path": saved}
    assert (tmp_path / "ivy.bin").read_bytes() == b"\xff\xfe" * 600


def test_listen_stops_cleanly_when_terminated(clients) -> None:  # type: ignore[no-untyped-def]
    """``--listen`` runs until interrupted (SIGTERM here) and then exits with 0."""
    listener = clients("jay", "--listen")
    listener.wait_for(r"logged in as jay .*", stream="err")
    listener.process.send_signal(signal.SIGTERM)
    assert (listener.wait(), listener.rest("out"), listener.rest("err")) == (0, "", "")


def test_send_option_sends_a_file_and_exits_zero(  # type: ignore[no-untyped-def]
    clients, raw_clients, tmp_path: Path
) -> None:
    """``--send USER --file PATH`` delivers the named file as a chunked message, exits 0."""
    data = os.urandom(3000)
    (tmp_path / "f.bin").write_bytes(data)
    kim = raw_clients(b"kim")
    sender = clients("lou", "--send", "kim", "--file", "f.bin")
    assert kim.recv_delivery() == (b"lou", b"\x00chatproto-file\x00f.bin\x00" + data, True)
    assert sender.wait() == 0
    assert sender.rest("out") == "sent f.bin (3000 bytes) to kim\n"


def test_duplicate_login_reports_the_error_and_exits_one(clients, raw_clients) -> None:  # type: ignore[no-untyped-def]
    """Logging in with a userid in use prints one error line and exits with 1."""
    raw_clients(b"max")
    duplicate = clients("max")
    assert duplicate.wait() == 1
    assert (
        duplicate.rest("err")
        == "chat_client: cannot log in as max: userid max is already in use\n"
    )
    assert duplicate.rest("out") == ""


def test_server_down_reports_the_error_and_exits_one(clients) -> None:  # type: ignore[no-untyped-def]
    """Connecting to a port nobody listens on prints one error line and exits with 1."""
    port = free_port()
    client = clients("ned", port=port)
    assert client.wait() == 1
    assert client.rest("err") == (
        f"chat_client: cannot connect to {HOST}:{port}: connection refused"
        " (is the server running?)\n"
    )


def test_interactive_help_and_quit_through_a_pty(clients, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On a pseudo-terminal, ``/help`` lists the commands and ``/quit`` exits with 0."""
    terminal = clients("oli", use_pty=True)
    assert terminal.line() == banner("oli", server) + "; type /help for commands"
    terminal.type("/help")
    assert terminal.line() == "/help"  # the terminal's echo
    help_lines = HELP_TEXT.format(download_dir=os.path.realpath(tmp_path)).splitlines()
    assert [terminal.line() for _ in help_lines] == help_lines
    terminal.type("/quit")
    assert terminal.line() == "/quit"
    assert terminal.wait() == 0
    assert terminal.rest("out") == ""


def test_udp_client_sends_short_messages(clients, raw_clients, server: Server) -> None:  # type: ignore[no-untyped-def]
    """With ``--udp`` a typed ``/send`` goes out as a datagram and is delivered."""
    pat = raw_clients(b"pat")
    udp = clients("quin", "--udp")
    assert udp.line() == banner("quin", server, "UDP") + "; type /help for commands"
    udp.type("/send pat hello")
    assert pat.recv_delivery() == (b"quin", b"hello", False)


def test_udp_client_receives_messages(clients, raw_clients) -> None:  # type: ignore[no-untyped-def]
    """With ``--udp`` a message to the user is shown like any other."""
    udp = clients("ray", "--udp")
    udp.line()
    raw_clients(b"sam").send(encode_message([b"ray"], b"over udp"))
    assert re.fullmatch(STAMP + r" sam: over udp", udp.line())


def test_udp_client_explains_files_need_tcp(clients, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With ``--udp``, ``/file`` is refused with an explanation."""
    (tmp_path / "x.bin").write_bytes(b"x")
    udp = clients("tia", "--udp")
    udp.line()
    udp.type("/file tia x.bin")
    assert udp.line() == "files need TCP: run chat_client without --udp to send files"
    udp.close_input()
    assert udp.wait() == 0
