"""Relay figures across cluster nodes: chatbench's senders on one node, receivers on another.

Starts a ``redis-server`` and two ``chat_server --cluster --no-random`` nodes
on 127.0.0.1, then runs chatbench ``relay`` three times with its receivers
connected to node B and its senders to node A, so every message crosses
Redis; and, in the same run for comparison, three times against one node
alone (no ``--cluster``). Prints the median msgs/s and p99 of each.

chatbench connects every client to its one ``--port``; to split them, this
script runs chatbench itself with one change: its ``Bench.open_many`` opens
the receivers (those with chatbench's relay sink) on ``--receiver-port``.
Everything else, the load and the measuring, is chatbench's own.

Usage::

    python bench/cross_node.py --chatbench ../shared/bench/chatbench.py \\
        --bench-python /path/to/venv-with-uvloop/bin/python [--rate 2000]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from figures import free_port, load_chatbench, start_server, stop_server


def run_as_generator(chatbench_path: str, receiver_port: int, argv: list[str]) -> int:
    """Run chatbench with its relay receivers opened on ``receiver_port``."""
    chatbench = load_chatbench(chatbench_path)
    open_many = chatbench.Bench.open_many

    async def open_many_split(self, specs, batch=256):  # type: ignore[no-untyped-def]
        receivers = bool(specs) and specs[0][2] is chatbench.relay_sink
        port = self.port
        self.port = receiver_port if receivers else port
        try:
            return await open_many(self, specs, batch)
        finally:
            self.port = port

    chatbench.Bench.open_many = open_many_split
    sys.argv = ["chatbench", *argv]
    return chatbench.main()


def start_redis(port: int, workdir: str) -> subprocess.Popen:
    redis = shutil.which("redis-server")
    if redis is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    process = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.2)  # a benchmark script, not a test: the nodes retry until Redis is up
    return process


def relay(args: argparse.Namespace, port: int, receiver_port: int, pid: int) -> dict:
    bench = ["relay", "--n", "10", "--size", "32", "--seconds", "3"]
    if args.rate:
        bench += ["--rate", str(args.rate)]
    bench += ["--port", str(port), "--pid", str(pid), "--json-only"]
    command = [args.bench_python, __file__, "--generator", "--chatbench", args.chatbench]
    command += ["--receiver-port", str(receiver_port), "--", *bench]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summary(name: str, results: list[dict]) -> str:
    rate = statistics.median(result["msgs_per_s"] for result in results)
    p99 = statistics.median(result["latency"]["p99_us"] for result in results)
    oks = [result["ok"] for result in results]
    return f"{name:12} msgs/s={rate} p99_us={p99} ok={oks}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chatbench", default="../shared/bench/chatbench.py")
    parser.add_argument("--bench-python", default=sys.executable)
    parser.add_argument("--rate", type=float, default=0.0, help="chatbench relay --rate")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=os.devnull, help="file for every run's JSON line")
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--receiver-port", type=int, default=0, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.generator:
        sys.exit(run_as_generator(args.chatbench, args.receiver_port, rest[1:]))

    with tempfile.TemporaryDirectory() as workdir, open(args.out, "a") as out:
        redis_port = free_port()
        redis = start_redis(redis_port, workdir)
        cluster = ["--cluster", f"redis://127.0.0.1:{redis_port}/0"]
        port_a, port_b, port_single = free_port(), free_port(), free_port()
        nodes = [start_server(port_a, cluster), start_server(port_b, cluster)]
        single = start_server(port_single, [])
        try:
            crossing, alone = [], []
            for _ in range(args.runs):  # alternate, so drift hits both alike
                crossing.append(relay(args, port_a, port_b, nodes[0].pid))
                alone.append(relay(args, port_single, port_single, single.pid))
                for kind, result in (("cross", crossing[-1]), ("single", alone[-1])):
                    out.write(json.dumps({"scenario": kind, **result}) + "\n")
            print(summary("single node", alone))
            print(summary("cross-node", crossing))
        finally:
            for server in (*nodes, single):
                stop_server(server)
            redis.terminate()
            redis.wait(10)


if __name__ == "__main__":
    main()
