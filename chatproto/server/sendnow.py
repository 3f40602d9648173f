"""Send to a TCP socket at once when nothing waits before it (issue 16: latency).

Twisted's ``transport.write`` only buffers: the bytes go out on a later
reactor turn, once epoll reports the socket writable, which costs each
write two ``epoll_ctl`` calls and a turn behind every other ready socket.
asyncio sends at once when its buffer is empty, and so does :func:`send_now`
for the one transport it knows inside out (``twisted.internet.tcp.Server``:
plain TCP and UNIX sockets): when that transport holds no bytes, the data is
handed to its own ``writeSomeData`` (one ``send``), and whatever the kernel
does not take is written the usual way, in order. Every other transport
(TLS, the WebSocket's, a test's) is written to as usual.
"""

from twisted.internet import tcp

#: The transport attributes :func:`send_now` reads (Twisted 23.10 to 26.10 have them).
_BUFFER_ATTRIBUTES = ("_tempDataLen", "dataBuffer", "offset", "_writeDisconnected")


def can_send_now(transport: object) -> bool:
    """Whether :func:`send_now` may be used on ``transport``."""
    return isinstance(transport, tcp.Server) and all(
        hasattr(transport, name) for name in _BUFFER_ATTRIBUTES
    )


def send_now(transport: tcp.Server, data: bytes) -> None:
    """Write ``data``, sending it at once if nothing is buffered before it."""
    if (
        transport._tempDataLen  # bytes wait in the transport: go behind them
        or transport.offset != len(transport.dataBuffer)
        or transport.disconnecting
        or not transport.connected
        or transport._writeDisconnected
    ):
        transport.write(data)
        return
    sent = transport.writeSomeData(data)
    if sent.__class__ is int:
        if sent == len(data):
            return
        data = data[sent:]  # type: ignore[index]
    transport.write(data)  # the rest (after an error, all of it: the read side will see it)
