"""``--workers N``: its options and the workers' command line (two tests run ``chat_server``)."""

from pathlib import Path

import pytest
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions

from chatproto.cluster.address import RedisAddress
from tests.e2e_support import HOST, free_port
from tests.test_e2e import assert_one_line_error, run_chat_server
from tests.workers_support import CLUSTER, parse

# -- options ---------------------------------------------------------------------------------


def test_defaults_are_one_process_without_cluster_or_reuse_port() -> None:
    """A bare port gives one process, no --cluster and no --reuse-port."""
    options = parse("9000")
    assert (options["workers"], options["cluster"], options["reuse-port"]) == (1, None, 0)


def test_workers_and_cluster_are_parsed() -> None:
    """--workers takes a whole number and --cluster a Redis URL, after the ports too."""
    options = parse("9000", "--workers", "4", "--cluster=redis://10.0.0.5:6380/2", "--reuse-port")
    assert (options["workers"], options["cluster"], options["reuse-port"]) == (
        4,
        RedisAddress("10.0.0.5", 6380, 2),
        1,
    )


def test_one_worker_needs_no_cluster() -> None:
    """--workers 1 is the single process, which needs no --cluster."""
    assert parse("9000", "--workers", "1")["workers"] == 1


def test_workers_without_cluster_is_a_usage_error() -> None:
    """More than one worker without --cluster is refused: the users would not be shared."""
    with pytest.raises(usage.UsageError) as raised:
        parse("9000", "--workers", "2")
    assert str(raised.value) == (
        "--workers needs --cluster: separate processes share users only through Redis"
    )


@pytest.mark.parametrize("count", ["0", "-1", "two", "1.5"])
def test_workers_must_be_a_positive_whole_number(count: str) -> None:
    """--workers 0, negative or not a whole number is a usage error."""
    with pytest.raises(usage.UsageError):
        parse("9000", "--workers", count, "--cluster", CLUSTER)


@pytest.mark.parametrize(
    "extra",
    [("--listen", "tcp6:9001"), ("--metrics-port", "9100")],
    ids=["listen", "metrics-port"],
)
def test_workers_refuse_listeners_they_cannot_share(extra: tuple[str, ...]) -> None:
    """--listen endpoints and --metrics-port cannot be bound by several workers: refused."""
    with pytest.raises(usage.UsageError, match="--workers"):
        parse("9000", "--workers", "2", "--cluster", CLUSTER, *extra)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--workers", "3", "--cluster", CLUSTER, "9000"],
            [f"--cluster={CLUSTER}", "--reuse-port", "--", "9000"],
        ),
        (
            ["--workers=3", f"--cluster={CLUSTER}", "9000", "9001"],
            [f"--cluster={CLUSTER}", "--reuse-port", "--", "9000", "9001"],
        ),
        (
            ["9000", "-v", "--workers", "3", "9001", "--cluster", CLUSTER, "--no-random"],
            ["-v", f"--cluster={CLUSTER}", "--no-random", "--reuse-port", "--", "9000", "9001"],
        ),
        (
            ["-vp", "9000", "--work=3", "--cluster", CLUSTER, "-i", HOST, "--max-line", "100"],
            ["-v", "-p", "9000", f"--cluster={CLUSTER}", "-i", HOST, "--max-line=100"]
            + ["--reuse-port", "--"],
        ),
        (
            ["9000", "--reuse-port", "--workers", "2", "--cluster", CLUSTER],
            ["--reuse-port", f"--cluster={CLUSTER}", "--", "9000"],
        ),
        (
            ["9000", "--metrics-interface", "--workers=9", "--workers", "2", "--cluster", CLUSTER],
            [
                "--metrics-interface=--workers=9",
                f"--cluster={CLUSTER}",
                "--reuse-port",
                "--",
                "9000",
            ],
        ),
    ],
    ids=["space", "equals", "after_ports", "short_and_abbreviated", "reuse_port_given", "value"],
)
def test_worker_args_drop_workers_and_add_reuse_port(argv: list[str], expected: list[str]) -> None:
    """A worker gets the same options without --workers, with --reuse-port once, ports last."""
    options = parse(*argv)
    assert options.worker_args() == expected
    # A worker parses them back to the same configuration, as one process sharing the ports.
    worker = parse(*options.worker_args())
    assert {**worker, "workers": 3, "reuse-port": 1} == {**options, "workers": 3, "reuse-port": 1}
    assert (worker["workers"], worker["reuse-port"]) == (1, 1)


def test_worker_args_under_twistd_come_from_the_chat_arguments() -> None:
    """Under twistd the workers get the chat subcommand's arguments, not twistd's own."""
    config = ServerOptions()
    config.parseOptions(
        ["-n", "--pidfile", "x.pid", "chat", "-p", "9000", "--workers", "2"]
        + ["--cluster", CLUSTER]
    )
    assert config.subOptions.worker_args() == [
        "-p",
        "9000",
        f"--cluster={CLUSTER}",
        "--reuse-port",
        "--",
    ]


@pytest.mark.e2e
def test_chat_server_workers_without_cluster_exits_2_with_one_line(tmp_path: Path) -> None:
    """chat_server --workers 2 without --cluster exits 2 with one line on stderr only."""
    result = run_chat_server(tmp_path, "--workers", "2", "--interface", HOST, str(free_port()))
    assert_one_line_error(result, 2)
    assert b"--workers needs --cluster" in result.stderr


@pytest.mark.e2e
def test_chat_server_workers_0_exits_2_with_one_line(tmp_path: Path) -> None:
    """chat_server --workers 0 exits 2 with one line on stderr only."""
    result = run_chat_server(tmp_path, "--workers", "0", "--cluster", CLUSTER, "9000")
    assert_one_line_error(result, 2)
