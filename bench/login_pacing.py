"""Logins/s, and what the generator spent on them: chat_server against the lean reference.

chatbench's ``conns`` row is taken with a generator that runs near its own
limit, so the row follows how the server's replies pace the generator more
than what the server itself costs (README, Performance). This script shows
that pacing: it alternates a fresh lean reference (``refserver_lean.py``,
beside chatbench) and a fresh ``chat_server`` from this tree, runs
``chatbench conns --n N --hold 0 --no-probe`` against each, and prints per
server the median of

- logins/s over the ramp (chatbench's figure);
- the generator's user and system CPU seconds over the ramp, and how often
  it slept (``ru_nvcsw``: it waited in ``epoll_wait`` for a reply);
- the server's CPU seconds and sleeps (``/proc``) over the whole run, which
  includes closing the connections.

As in ``cross_node.py``, chatbench runs inside this script, with one change:
its ``Bench.open_many`` (the ramp) is timed by ``getrusage``.

Usage::

    python bench/login_pacing.py --chatbench ../shared/bench/chatbench.py \\
        --bench-python /path/to/venv-with-uvloop/bin/python [--runs 5] [--n 10000]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from figures import accepting, free_port, load_chatbench, start_server, stop_server


def run_as_generator(chatbench_path: str, argv: list[str]) -> int:
    """Run chatbench, writing the ramp's rusage to stderr as one JSON line."""
    chatbench = load_chatbench(chatbench_path)
    open_many = chatbench.Bench.open_many

    async def timed_open_many(self, specs, batch=256):  # type: ignore[no-untyped-def]
        before = resource.getrusage(resource.RUSAGE_SELF)
        try:
            return await open_many(self, specs, batch)
        finally:
            after = resource.getrusage(resource.RUSAGE_SELF)
            ramp = {
                "user_s": after.ru_utime - before.ru_utime,
                "sys_s": after.ru_stime - before.ru_stime,
                "sleeps": after.ru_nvcsw - before.ru_nvcsw,
            }
            sys.stderr.write(json.dumps(ramp) + "\n")

    chatbench.Bench.open_many = timed_open_many
    sys.argv = ["chatbench", *argv]
    return chatbench.main()


def process_figures(pid: int) -> tuple[float, int]:
    """CPU seconds and voluntary context switches of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches"):
                return cpu_s, int(line.split()[1])
    return cpu_s, 0


def start_reference(args: argparse.Namespace, port: int) -> subprocess.Popen:
    """Start the lean reference beside chatbench and wait until it accepts connections."""
    reference = os.path.join(os.path.dirname(os.path.abspath(args.chatbench)), "refserver_lean.py")
    command = [args.bench_python, reference, "--port", str(port)]
    return accepting(subprocess.Popen(command, stdout=subprocess.DEVNULL), port)


def one_run(args: argparse.Namespace, side: str) -> dict:
    """Start a fresh server for ``side``, ramp ``--n`` logins against it, stop it."""
    port = free_port()
    server = start_reference(args, port) if side == "reference" else start_server(port, [])
    try:
        time.sleep(0.3)  # let start-up finish, as sidebyside.py does
        cpu_before, sleeps_before = process_figures(server.pid)
        bench = ["conns", "--port", str(port), "--n", str(args.n), "--hold", "0"]
        command = [args.bench_python, __file__, "--generator", "--chatbench", args.chatbench]
        command += ["--", *bench, "--no-probe", "--json-only"]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        cpu_after, sleeps_after = process_figures(server.pid)
    finally:
        stop_server(server)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    ramp = json.loads(completed.stderr.strip().splitlines()[-1])
    return {
        "side": side,
        "logins_per_s": result["logins_per_s"],
        "ok": result["ok"],
        "generator_user_s": ramp["user_s"],
        "generator_sys_s": ramp["sys_s"],
        "generator_sleeps": ramp["sleeps"],
        "server_cpu_s": cpu_after - cpu_before,
        "server_sleeps": sleeps_after - sleeps_before,
    }


def summary(side: str, results: list[dict]) -> str:
    def median(key: str) -> float:
        return statistics.median(result[key] for result in results)

    return (
        f"{side:10} logins/s={median('logins_per_s'):,.0f}"
        f"  generator: user {median('generator_user_s'):.3f} s,"
        f" sys {median('generator_sys_s'):.3f} s, sleeps {median('generator_sleeps'):.0f}"
        f"  server: cpu {median('server_cpu_s'):.2f} s, sleeps {median('server_sleeps'):.0f}"
        f"  ok={[result['ok'] for result in results]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chatbench", default="../shared/bench/chatbench.py")
    parser.add_argument("--bench-python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=10000, help="connections per ramp")
    parser.add_argument("--out", default=os.devnull, help="file for every run's JSON line")
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.generator:
        sys.exit(run_as_generator(args.chatbench, rest[1:]))

    results: dict[str, list[dict]] = {"reference": [], "chatproto": []}
    with open(args.out, "a") as out:
        for _ in range(args.runs):  # alternate, so drift hits both alike
            for side, runs in results.items():
                runs.append(one_run(args, side))
                out.write(json.dumps(runs[-1]) + "\n")
    for side, runs in results.items():
        print(summary(side, runs))


if __name__ == "__main__":
    main()
