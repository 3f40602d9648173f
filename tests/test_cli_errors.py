"""A bad command line is one line naming the option, never a traceback (no process started).

Parsing errors go through ``Options`` and ``chatproto.cli.main`` in this
process, listen failures through ``ServerService`` with listeners that fail;
the end-to-end checks of the installed programs are in ``tests/test_cli_exits.py``.
"""

import errno
import re
import sys

import pytest
from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions

from chatproto import cli
from chatproto.argtypes import OptionError
from chatproto.endpoints import endpoint_arguments
from chatproto.limits import LIMITS, Limit
from chatproto.options import Options
from chatproto.serving import ListenError, ServerService
from tests.tls_support import make_certificate


def error_line(*args: str) -> str:
    """Return the message of the UsageError that parsing ``args`` raises."""
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(list(args))
    return str(raised.value)


NUMBER_LIMITS = [declared for declared in LIMITS if not declared.is_rate]


@pytest.mark.parametrize("declared", NUMBER_LIMITS, ids=lambda declared: declared.option)
@pytest.mark.parametrize("bad", ["0", "-3", "abc", ""])
def test_each_limit_option_error_names_the_option_and_the_value(declared: Limit, bad: str) -> None:
    """A limit refuses a bad value naming the option, what it must be and what it got."""
    must = "an integer of at least 1" if declared.is_whole else "a number greater than 0"
    assert error_line("9000", f"--{declared.option}={bad}") == (
        f"--{declared.option}: must be {must} (got {bad!r})"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("9000", "--max-line=1.5"), "--max-line: must be an integer of at least 1 (got '1.5')"),
        (
            ("9000", "--send-timeout=inf"),
            "--send-timeout: must be a number greater than 0 (got 'inf')",
        ),
        (
            ("9000", "--udp-expiry=nan"),
            "--udp-expiry: must be a number greater than 0 (got 'nan')",
        ),
        (("9000", "--random-seed", "x"), "--random-seed: must be an integer (got 'x')"),
        (
            ("9000", "--flood-messages=0"),
            "--flood-messages: the rate must be greater than 0 (got '0')",
        ),
        (
            ("9000", "--flood-bytes=1MiB/0"),
            "--flood-bytes: the burst must be at least 1 (got '1MiB/0')",
        ),
        (
            ("9000", "--flood-bytes=lots"),
            "--flood-bytes: must be RATE[/BURST] per second (e.g. 5/20 or 256KiB/4MiB), or off"
            " (got 'lots')",
        ),
        (("9000", "--workers", "two"), "--workers: must be an integer of at least 1 (got 'two')"),
        (
            ("9000", "--metrics-port", "0"),
            "--metrics-port: must be a port number from 1 to 65535 (got '0')",
        ),
        (
            ("9000", "--spool-dir", "/nonexistent/dir"),
            "--spool-dir: must be an existing directory (got '/nonexistent/dir')",
        ),
        (
            ("9000", "--cluster", "localhost:6379"),
            "--cluster: must be a redis://HOST:PORT[/DB] URL (got 'localhost:6379')",
        ),
        (("-p", "abc"), "--port: must be a port number from 1 to 65535 (got 'abc')"),
        (("--port=70000",), "--port: must be a port number from 1 to 65535 (got '70000')"),
        (("9000", "abc"), "<port>: must be a port number from 1 to 65535 (got 'abc')"),
    ],
)
def test_option_errors_name_the_option_and_the_value(args: tuple[str, ...], message: str) -> None:
    """Value types other than the limits' also name their option and quote the value."""
    assert error_line(*args) == message


def test_main_prints_an_option_error_as_one_line_and_returns_2(capsys) -> None:  # type: ignore[no-untyped-def]
    """chat_server --max-line=0: exit status 2, one line on stderr, nothing on stdout."""
    assert cli.main(["9000", "--max-line=0"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        "chat_server: --max-line: must be an integer of at least 1 (got '0')\n",
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ((), "chat_server: give at least one port (or --listen endpoint) to listen on"),
        (("9000", "--bogus"), "chat_server: option --bogus not recognized"),
    ],
)
def test_main_points_at_help_for_errors_not_about_a_value(capsys, args, line) -> None:  # type: ignore[no-untyped-def]
    """An error that is not about one option's value ends with where to look."""
    assert cli.main(list(args)) == 2
    assert capsys.readouterr() == ("", f"{line} (see chat_server --help)\n")


def test_option_error_keeps_the_option_apart() -> None:
    """OptionError carries the option and the problem separately, for callers that reword it."""
    with pytest.raises(OptionError) as raised:
        Options().parseOptions(["9000", "--max-recipients", "0"])
    assert (raised.value.option, raised.value.problem) == (
        "--max-recipients",
        "must be an integer of at least 1 (got '0')",
    )


def test_help_has_no_doubled_period_and_states_each_default_once() -> None:
    """--help joins help and value-type text with one period; -i gives its default once."""
    text = Options().getUsage(width=80)
    assert re.search(r"(?<!\.)\.\.(?!\.)", text) is None
    entries = " ".join(text.split())
    interface = entries[entries.index("--interface=") : entries.index("--listen=")]
    assert interface.count("default") == 1


# -- item 4: --listen endpoints are checked while the options are parsed ---------------------


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("bogus:123", "not a usable endpoint: Unknown endpoint type: 'bogus'"),
        ("tcp:notaport", "the port must be a number from 0 to 65535"),
        ("tcp6:99999", "the port must be a number from 0 to 65535"),
        ("ssl:-1", "the port must be a number from 0 to 65535"),
        ("tcp", "not a usable endpoint: _parseTCP() missing 1 required positional argument"),
        ("unix:", "a unix endpoint needs the socket's path"),
        ("tcp:9000:bogus=1", "not a usable endpoint: "),
    ],
)
def test_a_bad_listen_endpoint_is_an_error_naming_listen(endpoint: str, problem: str) -> None:
    """An endpoint Twisted cannot build is refused at parsing, naming --listen and the value."""
    line = error_line("--listen", endpoint)
    assert line.startswith(f"--listen: {problem}") and line.endswith(f" (got {endpoint!r})")


def test_an_ssl_endpoint_with_a_missing_key_file_names_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An ssl: endpoint whose key file is missing is refused at parsing, naming the file."""
    key = tmp_path / "key.pem"
    endpoint = f"ssl:9443:privateKey={key}"
    assert error_line("--listen", endpoint) == (
        f"--listen: cannot read {key}: No such file or directory (got {endpoint!r})"
    )


def test_an_ssl_endpoint_with_a_file_that_is_no_key_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An ssl: endpoint whose key file holds no key is a usage error, not a traceback."""
    key = tmp_path / "key.pem"
    key.write_text("not a key\n")
    endpoint = f"ssl:9443:privateKey={key}"
    line = error_line("--listen", endpoint)
    assert line.startswith("--listen: not a usable endpoint: ") and endpoint in line


def test_good_listen_endpoints_pass_and_duplicates_count_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Valid tcp, tcp6, ssl and unix endpoints parse; one given twice is listened on once."""
    cert, key = make_certificate(tmp_path)
    ssl = f"ssl:9443:privateKey={key}:certKey={cert}"
    options = Options()
    options.parseOptions(
        ["--listen", "tcp:9000", "--listen", "tcp6:9001", "--listen", ssl]
        + ["--listen", "unix:/tmp/chat.sock", "--listen", "tcp:9000"]
    )
    assert len(options["listen"]) == 4


@pytest.mark.parametrize(
    ("option", "value", "module", "extra", "distribution"),
    [
        ("--metrics-port", "9100", "prometheus_client", "metrics", "prometheus_client"),
        ("--cluster", "redis://127.0.0.1:6379", "txredisapi", "cluster", "txredisapi"),
    ],
)
def test_an_option_whose_extra_is_missing_says_which_pip_install(  # type: ignore[no-untyped-def]
    monkeypatch, option, value, module, extra, distribution
) -> None:
    """--metrics-port or --cluster without its extra names the option and the pip install."""
    monkeypatch.setitem(sys.modules, module, None)  # importing it now fails
    for name in ("chatproto.cluster.router", "chatproto.server.metrics"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert error_line("9000", option, value) == (
        f"{option}: needs {distribution}: pip install 'chatproto[{extra}]'"
    )


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("tcp:9000", ("tcp", ["9000"], [])),
        ("tcp6:9000:interface=\\:\\:1", ("tcp6", ["9000"], ["interface"])),
        ("unix:/run/a\\:b.sock:mode=600", ("unix", ["/run/a:b.sock"], ["mode"])),
        ("ssl:9443:privateKey=k\\=1.pem", ("ssl", ["9443"], ["privateKey"])),
        ("unix:a\\=b", ("unix", ["a=b"], [])),
    ],
)
def test_endpoint_arguments_follow_twisteds_grammar(text: str, parts: tuple) -> None:
    """Arguments split at unescaped colons; a keyword is named up to its unescaped '='."""
    assert endpoint_arguments(text) == parts


# -- item 6: a listener that fails, under either program; twistd's usage errors ---------------


class FailingListener(Service):
    """A listener whose bind fails with ``error`` (whichever start twistd or chat_server calls)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def privilegedStartService(self) -> None:
        raise self.error

    def startService(self) -> None:
        raise self.error


@pytest.mark.parametrize("start", ["privilegedStartService", "startService"])
@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            CannotListenError(
                "127.0.0.1", 9000, OSError(errno.EADDRINUSE, "Address already in use")
            ),
            "cannot listen on TCP 127.0.0.1:9000: Address already in use",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "123", None, "x.lock"),
            "cannot listen on TCP 127.0.0.1:9000: No such file or directory",
        ),
    ],
    ids=["in-use", "no-directory"],
)
def test_a_listener_that_fails_is_one_logged_line_and_status_1(start, error, line) -> None:  # type: ignore[no-untyped-def]
    """Either start turns a failed listen into ListenError (status 1) and one critical line."""
    top = ServerService()
    top.add_listener(FailingListener(error), "TCP 127.0.0.1:9000")
    with capturedLogs() as events, pytest.raises(ListenError) as raised:
        getattr(top, start)()
    assert (str(raised.value), raised.value.code) == (line, 1)
    assert isinstance(raised.value, Exception) and isinstance(raised.value, SystemExit)
    assert [(event["log_level"], formatEvent(event)) for event in events] == [
        (LogLevel.critical, line)
    ]


def test_an_unnamed_child_that_cannot_listen_is_named_by_its_address() -> None:
    """A child added without a name (the --workers port check) is named by the failed address."""
    top = ServerService()
    FailingListener(
        CannotListenError("::1", 9000, OSError(13, "Permission denied"))
    ).setServiceParent(top)
    with capturedLogs(), pytest.raises(ListenError, match=r"^cannot listen on \[::1\]:9000: Perm"):
        top.startService()


def test_other_errors_of_a_child_are_not_hidden() -> None:
    """An error that is not a listen failure (a bug) propagates as it is, traceback and all."""
    top = ServerService()
    FailingListener(OSError(5, "Input/output error")).setServiceParent(top)
    with pytest.raises(OSError, match="Input/output"):
        top.startService()


def test_chat_server_reports_a_port_it_cannot_listen_on_with_status_1(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """chat_server's main prints a ListenError as one line on stderr and returns 1."""

    def failing_service(config, reactor, session_log):  # type: ignore[no-untyped-def]
        assert session_log is False  # its console shows no login lines: none are made
        top = ServerService()
        failure = CannotListenError("127.0.0.1", 9000, OSError(98, "Address already in use"))
        top.add_listener(FailingListener(failure), "TCP 127.0.0.1:9000")
        return top

    monkeypatch.setattr(cli, "makeService", failing_service)
    monkeypatch.setattr(cli.globalLogBeginner, "beginLoggingTo", lambda *a, **k: None)
    with capturedLogs():
        assert cli.main(["9000"]) == 1
    assert capsys.readouterr() == (
        "",
        "chat_server: cannot listen on TCP 127.0.0.1:9000: Address already in use\n",
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-p", "abc"], "--port: must be a port number from 1 to 65535 (got 'abc')"),
        (["-p", "9000", "--max-line=0"], "--max-line: must be an integer of at least 1 (got '0')"),
        (
            [],
            "give at least one port (or --listen endpoint) to listen on (see twistd chat --help)",
        ),
    ],
)
def test_twistd_chat_usage_error_is_one_line_and_status_2(capsys, args, line) -> None:  # type: ignore[no-untyped-def]
    """Under twistd a bad chat option is one line and status 2, not twistd's whole usage."""
    with pytest.raises(SystemExit) as raised:
        ServerOptions().parseOptions(["-n", "chat", *args])
    assert raised.value.code == 2
    assert capsys.readouterr() == ("", f"twistd chat: {line}\n")
