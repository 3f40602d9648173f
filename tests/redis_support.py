"""A real ``redis-server`` for the cluster tests, on a free loopback port.

The server keeps nothing on disk (``--save ''``, no AOF), so a restart is an
empty Redis, the worst case for the cluster's registry. Tests without the
binary skip, saying so, unless ``CHATPROTO_REQUIRE_REDIS`` is set (``.ci/run``
installs it from Debian's packages and sets it, so there they fail instead).
"""

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e_support import HOST, Deadline, free_port, stop_process, wait_until

REDIS_SERVER = shutil.which("redis-server")


def require_redis() -> str:
    """Return the redis-server path, or skip the test that needs it."""
    if REDIS_SERVER is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CHATPROTO_REQUIRE_REDIS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_SERVER


def _command(*args: bytes) -> bytes:
    """Encode one Redis command (RESP)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


class RedisServer:
    """A redis-server process bound to 127.0.0.1, started and restarted on one port.

    Attributes:
        port: its TCP port.
        url: the ``--cluster`` URL for it.
    """

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self._binary = require_redis()
        self._workdir = workdir
        self._password = password
        self.port = free_port()
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}{HOST}:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        log = open(self._workdir / f"redis-{self.port}.log", "ab")
        with log:
            self._process = subprocess.Popen(
                [
                    self._binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    HOST,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._workdir),
                    *(["--requirepass", self._password] if self._password else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
            )
        wait_until(self._answers_ping, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM), forgetting everything it held."""
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop the server and start an empty one on the same port."""
        self.stop()
        self.start()

    def _answers_ping(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self._process.returncode}")
        try:
            return self.execute(b"PING") == b"+PONG\r\n"
        except OSError:
            return False

    def execute(self, *args: bytes) -> bytes:
        """Run one command; return its raw reply (one read; enough for short replies)."""
        deadline = Deadline()
        with socket.create_connection((HOST, self.port), timeout=deadline.remaining()) as sock:
            if self._password:
                sock.sendall(_command(b"AUTH", self._password.encode()))
                assert sock.recv(64) == b"+OK\r\n"
            sock.sendall(_command(*args))
            reply = b""
            while not reply.endswith(b"\r\n"):
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
            return reply

    def keys(self, pattern: bytes = b"*") -> list[bytes]:
        """Return the keys matching ``pattern`` (parsed from the RESP array)."""
        reply = self.execute(b"KEYS", pattern)
        lines = reply.split(b"\r\n")
        return [line for line in lines[2::2] if line]
