"""What Linux /proc says about a process: memory, descriptors, sockets, ports, children.

Used by the end-to-end tests to check bounds (RSS, open descriptors) and who
listens on a port, without asking the server itself.
"""

import os
import socket
from pathlib import Path

from tests.e2e_support import HOST


def memory_kib(pid: int) -> dict[str, int]:
    """Return ``VmRSS`` and ``VmHWM`` (peak RSS) of process ``pid``, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def open_fd_count(pid: int) -> int:
    """Return how many file descriptors process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    """Return what each open descriptor of ``pid`` points to (vanished ones are skipped)."""
    targets: list[str] = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return targets


def server_receive_queue(server_port: int, client: socket.socket) -> int:
    """Return the bytes the server's end of ``client``'s connection has received but not read.

    Read from ``/proc/net/tcp`` (rx_queue), so it shows how far the server
    has consumed a client's input without asking the server.
    """
    host_hex = socket.inet_aton(HOST)[::-1].hex().upper()  # /proc shows it little-endian
    local = f"{host_hex}:{server_port:04X}"
    remote = f"{host_hex}:{client.getsockname()[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server socket {local} for {remote} in /proc/net/tcp")


def socket_inodes(pid: int) -> set[int]:
    """Return the inodes of the sockets process ``pid`` has open (none once it is gone)."""
    try:
        targets = fd_targets(pid)
    except FileNotFoundError:  # gone already
        return set()
    inodes: set[int] = set()
    for target in targets:
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def port_inodes(port: int, host: str = HOST) -> tuple[set[int], set[int]]:
    """Return the inodes of the TCP listeners and of the UDP sockets bound to ``host``:``port``.

    Read from ``/proc/net/tcp`` and ``/proc/net/udp`` (IPv4): one entry per
    socket, so processes sharing a port with SO_REUSEPORT each have their own.
    """
    local = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    found: list[set[int]] = []
    for table, state in (("tcp", "0A"), ("udp", None)):  # 0A: TCP_LISTEN
        inodes: set[int] = set()
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local and (state is None or fields[3] == state):
                inodes.add(int(fields[9]))
        found.append(inodes)
    return found[0], found[1]


def serves_port(pid: int, port: int, host: str = HOST) -> bool:
    """Whether process ``pid`` itself holds a TCP listener and a UDP socket on ``port``.

    Unlike :func:`wait_for_port`, this tells apart processes that share the
    port with SO_REUSEPORT: a connect may reach any of them.
    """
    tcp, udp = port_inodes(port, host)
    mine = socket_inodes(pid)
    return bool(mine & tcp) and bool(mine & udp)


def child_pids(pid: int) -> list[int]:
    """Return the pids of the children of process ``pid`` (Linux /proc), none once it is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]
