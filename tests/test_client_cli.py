"""Tests of the command line of ``chat_client`` (:mod:`chatproto.client.cli`)."""

import io
import os
import sys
from pathlib import Path

import pytest
from twisted.python import usage

from chatproto.client.cli import (
    Options,
    main,
)


def test_options_may_follow_the_arguments(tmp_path: Path) -> None:
    """``HOST PORT USERID --udp --download-dir D`` parses in that order."""
    options = Options()
    options.parseOptions(["localhost", "9000", "alice", "--udp", "--download-dir", str(tmp_path)])
    assert (options["host"], options["port"], options["user"]) == ("localhost", 9000, b"alice")
    assert (options["udp"], options["listen"], options["download-dir"]) == (
        True,
        False,
        str(tmp_path),
    )
    assert (options["send"], options["file"]) == ([], None)


def test_send_option_is_repeatable_and_takes_lists() -> None:
    """``--send`` accumulates, commas split, duplicates drop."""
    options = Options()
    options.parseOptions(["h", "1", "a", "--send", "bob,carol", "--send", "bob", "--file", "x"])
    assert options["send"] == [b"bob", b"carol"]


@pytest.mark.parametrize(
    "argv",
    [
        ["h", "0", "alice"],
        ["h", "x", "alice"],
        ["h", "1", "al ice"],
        ["h", "1"],
        ["h", "1", "alice", "--send", "bob"],
        ["h", "1", "alice", "--file", "f"],
        ["h", "1", "alice", "--send", "bob", "--file", "f", "--listen"],
        ["h", "1", "alice", "--send", "bob", "--file", "f", "--udp"],
        ["h", "1", "alice", "--download-dir", "/nonexistent/dir"],
        ["h", "1", "alice", "--ca", "ca.pem"],
        ["h", "1", "alice", "--insecure"],
        ["h", "1", "alice", "--tls", "--ca", "ca.pem", "--insecure"],
        ["h", "1", "alice", "--tls", "--udp"],
        ["unix:/run/chat.sock", "alice", "--tls"],
        ["unix:/run/chat.sock", "alice", "--udp"],
        ["unix:", "alice"],
        ["h", "alice"],
    ],
    ids=[
        "port-0",
        "port-text",
        "bad-userid",
        "missing-userid",
        "send-without-file",
        "file-without-send",
        "send-and-listen",
        "file-over-udp",
        "missing-download-dir",
        "ca-without-tls",
        "insecure-without-tls",
        "ca-and-insecure",
        "tls-over-udp",
        "tls-on-unix",
        "udp-on-unix",
        "unix-without-path",
        "two-arguments-not-unix",
    ],
)
def test_bad_command_line_is_a_usage_error(argv: list[str]) -> None:
    """Bad arguments and option mixes raise UsageError."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(argv)


def test_unix_socket_argument_names_its_path_as_is() -> None:
    """``unix:PATH USERID``: the path is everything after ``unix:``, colons included."""
    options = Options()
    options.parseOptions(["unix:/run/chat:1.sock", "alice", "--listen"])
    assert (options["unix"], options["host"], options["port"]) == ("/run/chat:1.sock", None, None)
    assert (options["user"], options["listen"], options["tls"]) == (b"alice", True, False)


def test_tls_options_parse_with_a_ca() -> None:
    """``--tls --ca FILE`` after the arguments."""
    options = Options()
    options.parseOptions(["h", "9443", "alice", "--tls", "--ca", "ca.pem"])
    assert (options["tls"], options["ca"], options["insecure"], options["unix"]) == (
        True,
        "ca.pem",
        False,
        None,
    )


def test_main_reports_bad_usage_with_status_2() -> None:
    """``main`` answers a usage error with one line on stderr and status 2."""
    out, err = io.StringIO(), io.StringIO()
    assert main(["h", "1", "alice", "--file", "f"], stdout=out, stderr=err) == 2
    assert err.getvalue() == "chat_client: --file needs --send USER (see chat_client --help)\n"
    assert out.getvalue() == ""


def test_help_starts_with_the_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` begins with ``Usage: chat_client ...`` and exits with 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line == "Usage: chat_client [options] (HOST PORT | unix:PATH) USERID"


class _UntouchableReactor:
    """A reactor that fails the test if ``main`` uses it at all."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"main used the reactor ({name}) before checking --file")


def _unsendable_file(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """Make a ``--file`` that cannot be sent; return it and the reason shown."""
    path = tmp_path / kind
    if kind == "missing":
        return path, "No such file or directory"
    if kind == "directory":
        path.mkdir()
        return path, "not a regular file"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer
        return path, "not a regular file"
    if kind == "unreadable":
        path.write_bytes(b"secret")
        path.chmod(0)
        return path, "Permission denied"
    path.write_bytes(b"x" * 11)  # "too-big": --max-message 10 below
    # The body would also carry the 24-byte header naming the file "too-big".
    return path, "11 bytes and a 24-byte name header, over the largest message (10 bytes)"


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "unreadable", "too-big"])
def test_unsendable_file_fails_before_connecting_with_status_2(kind: str, tmp_path: Path) -> None:
    """``--send U --file F`` with a bad F: one line on stderr, status 2, no connection tried."""
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    path, reason = _unsendable_file(kind, tmp_path)
    argv = ["h", "1", "alice", "--send", "bob", "--file", str(path), "--max-message", "10"]
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, reactor=_UntouchableReactor(), stdout=out, stderr=err) == 2
    assert err.getvalue() == f"chat_client: cannot send {path}: {reason}\n"
    assert out.getvalue() == ""


def test_tls_without_the_extra_is_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--tls`` without pyOpenSSL: one line naming the ``[tls]`` extra, status 2."""
    monkeypatch.setitem(sys.modules, "OpenSSL", None)  # "import OpenSSL" now fails
    out, err = io.StringIO(), io.StringIO()
    argv = ["h", "9443", "alice", "--tls"]
    assert main(argv, reactor=_UntouchableReactor(), stdout=out, stderr=err) == 2
    assert err.getvalue() == (
        "chat_client: --tls needs pyOpenSSL and service_identity (OpenSSL is missing):"
        " pip install 'chatproto[tls]'\n"
    )
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (b"not PEM", "no PEM certificate in {path}"),
    ],
    ids=["missing", "not-a-certificate"],
)
def test_unusable_ca_file_is_one_line_and_status_2(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    """A ``--ca`` that is missing or holds no certificate: one line, status 2, no connecting."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    argv = ["h", "9443", "alice", "--tls", "--ca", str(path)]
    assert main(argv, reactor=_UntouchableReactor(), stdout=out, stderr=err) == 2
    assert err.getvalue() == f"chat_client: --ca: {reason.format(path=path)}\n"
