"""Take chatproto's performance figures with the shared yardstick, chatbench.

For each scenario of the performance table (README "Performance"), start a
fresh ``chat_server --no-random`` on 127.0.0.1, run chatbench against it
three times, and print the median of the figure that matters, one line per
scenario, plus every run's JSON in ``--out`` for the record.

Usage::

    python bench/figures.py --chatbench ../shared/bench/chatbench.py \\
        --bench-python /path/to/venv-with-uvloop/bin/python [--only relay32,fanout]

The server runs from the same interpreter as this script (``-m chatproto``).
"""

import argparse
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable

MIB = 1024 * 1024


def figure(path: str) -> Callable[[dict], object]:
    """Return a getter for a dotted key path in a chatbench JSON result."""

    def get(result: dict) -> object:
        value: object = result
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


# name: (chatbench arguments, extra server options, {label: getter}, fresh server per run)
SCENARIOS: dict[str, tuple[list[str], list[str], dict[str, Callable[[dict], object]], bool]] = {
    "relay32": (
        ["relay", "--n", "10", "--size", "32", "--seconds", "3"],
        [],
        {"msgs/s": figure("msgs_per_s"), "p99_us": figure("latency.p99_us")},
        False,
    ),
    "relay1000": (
        ["relay", "--n", "10", "--size", "1000", "--seconds", "3"],
        [],
        {"msgs/s": figure("msgs_per_s"), "p99_us": figure("latency.p99_us")},
        False,
    ),
    "relay_rate": (
        ["relay", "--n", "10", "--size", "32", "--seconds", "3", "--rate", "2000"],
        [],
        {"p99_us": figure("latency.p99_us"), "msgs/s": figure("msgs_per_s")},
        False,
    ),
    "fanout": (
        ["fanout", "--n", "1000", "--senders", "10", "--size", "32", "--seconds", "3"],
        [],
        {"deliveries/s": figure("deliveries_per_s")},
        False,
    ),
    "conns": (
        ["conns", "--n", "10000", "--udp", "1000", "--hold", "2"],
        [],
        {
            "logins/s": figure("logins_per_s"),
            "kb_per_conn": figure("kb_per_conn"),
            "ok": figure("ok"),
        },
        True,
    ),
    "bigfile": (
        ["bigfile", "--mb", "100"],
        ["--max-message", str(128 * MIB)],
        {"MB/s": figure("MB_per_s"), "hwm_growth_kb": figure("hwm_growth_kb")},
        True,
    ),
    "slowreader": (
        ["slowreader", "--mb", "100", "--seconds", "8"],
        [],
        {
            "rss_bounded": figure("rss_bounded"),
            "slow_closed": figure("slow_reader.closed_by_server"),
            "normal_p99_us": figure("normal_latency_during_flood.p99_us"),
        },
        True,
    ),
}


def free_port() -> int:
    """Return a port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def start_server(port: int, options: list[str]) -> subprocess.Popen:
    """Start chat_server and wait (at most 10 s) until it accepts connections."""
    command = [sys.executable, "-m", "chatproto", str(port), "--interface", "127.0.0.1"]
    return accepting(subprocess.Popen([*command, "--no-random", *options]), port)


def accepting(server: subprocess.Popen, port: int) -> subprocess.Popen:
    """Return ``server`` once it accepts connections on ``port``; kill it after 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"{server.args[0]} did not start")


def load_chatbench(path: str) -> types.ModuleType:
    """Import chatbench from ``path`` (it lives outside this tree, as a script)."""
    spec = importlib.util.spec_from_file_location("chatbench", path)
    assert spec is not None and spec.loader is not None
    chatbench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chatbench)
    return chatbench


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def run_scenario(name: str, args: argparse.Namespace, out) -> None:  # type: ignore[no-untyped-def]
    bench_args, server_options, getters, fresh = SCENARIOS[name]
    results = []
    server = None
    port = 0
    try:
        for _ in range(args.runs):
            if server is None or fresh:
                if server is not None:
                    stop_server(server)
                port = free_port()
                server = start_server(port, server_options)
            command = [args.bench_python, args.chatbench, *bench_args]
            command += ["--port", str(port), "--pid", str(server.pid), "--json-only"]
            completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            out.write(json.dumps({"scenario": name, **result}) + "\n")
            results.append(result)
    finally:
        if server is not None:
            stop_server(server)
    medians = []
    for label, get in getters.items():
        values = [get(result) for result in results]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        shown = statistics.median(numbers) if len(numbers) == len(values) else values
        medians.append(f"{label}={shown}")
    oks = [result.get("ok") for result in results]
    print(f"{name:11} {' '.join(medians)}  ok={oks}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chatbench", default="../shared/bench/chatbench.py")
    parser.add_argument("--bench-python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--out", default=os.devnull, help="file for every run's JSON line")
    args = parser.parse_args()
    with open(args.out, "a") as out:
        for name in args.only.split(","):
            run_scenario(name, args, out)


if __name__ == "__main__":
    main()
