"""Flood never-reading recipients with big chunked messages; print what the server holds.

The measurement of issue 14, for any server command: RSS, open descriptors
and where the server cut each non-reader, while a reading recipient checks
every message (sha256). The driver is ``tests/flood_support.py``, the one the
end-to-end tests use.

    python bench/spool_flood.py --size-kib 300 --mb 400 --non-readers 1 \\
        --server-cmd "chat_server {port} --interface 127.0.0.1 --no-random"
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e_support import free_port, stop_process, wait_for_port  # noqa: E402
from tests.flood_support import connect_non_reader, login, run_flood  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-cmd", required=True, help="command; {port} is replaced")
    parser.add_argument("--size-kib", type=int, default=300, help="body size of each message")
    parser.add_argument("--mb", type=int, default=400, help="body megabytes sent in all")
    parser.add_argument("--non-readers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=300.0, help="give up after this")
    args = parser.parse_args()
    port = free_port()
    command = shlex.split(args.server_cmd.format(port=port))
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        slow = [login(connect_non_reader(port), b"slow%d" % i) for i in range(args.non_readers)]
        report = run_flood(
            port, server.pid, args.size_kib * 1024, args.mb * 10**6, slow, args.seconds
        )
        print(report.summary())
        for sock in slow:
            sock.close()
    finally:
        stop_process(server)


if __name__ == "__main__":
    main()
