"""A bad command line is one line naming the option, never a traceback (no process started).

Parsing errors go through ``chatproto.cli.main`` in this process; the
end-to-end checks of the installed programs are in ``tests/test_cli_exits.py``.
"""

import re

import pytest
from twisted.python import usage

from chatproto import cli
from chatproto.argtypes import OptionError
from chatproto.limits import LIMITS, Limit
from chatproto.tap import Options


def error_line(*args: str) -> str:
    """Return the message of the UsageError that parsing ``args`` raises."""
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(list(args))
    return str(raised.value)


@pytest.mark.parametrize("declared", LIMITS, ids=lambda declared: declared.option)
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
