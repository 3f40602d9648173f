"""Send to a TCP socket at once when nothing waits before it (issue 16: latency).

Twisted's ``transport.write`` only buffers: the bytes go out on a later
reactor turn, once epoll reports the socket writable, which costs each
write two ``epoll_ctl`` calls and a turn behind every other ready socket.
asyncio sends at once when its buffer is empty, and so does :func:`send_now`
for the one transport it knows inside out (``twisted.internet.tcp.Server``:
plain TCP and UNIX sockets): when that transport holds no bytes, the data is
sent on its socket (one ``send``, as its ``writeSomeData`` does), and whatever the kernel
does not take is written the usual way, in order. Every other transport
(TLS, the WebSocket's, a test's) is written to as usual.
"""

from twisted.internet import tcp

#: The transport attributes :func:`send_now` reads (Twisted 23.10 to 26.10 have them).
_BUFFER_ATTRIBUTES = ("_tempDataLen", "dataBuffer", "offset", "_writeDisconnected", "socket")


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
    try:
        # What the transport's writeSomeData does, without its slicing and retry wrapper.
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:  # the connection is lost: the transport's own write will find out
        sent = 0
    if sent == len(data):
        return
    transport.write(data[sent:] if sent else data)  # the rest, after what the kernel took
