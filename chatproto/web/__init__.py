"""The web side: a chat page and a WebSocket endpoint for the same service (PROTOCOL §9).

A browser is one more stream client of :class:`~chatproto.server.service.ChatService`:
the bytes of its binary WebSocket messages are its stream, read by the same
decoder and session as a TCP client's, and what the server sends it goes
through the same outbox, with the same backpressure and limits.

- :mod:`chatproto.web.transport`: the WebSocket seen as a stream transport;
- :mod:`chatproto.web.protocol`: the client itself, a subclass of the TCP
  protocol fed message by message;
- :mod:`chatproto.web.guard`: the resource in front of Twisted's
  ``WebSocketResource`` that refuses foreign origins and connections past
  the limits;
- :mod:`chatproto.web.site`: the page's static files, ``/config.json``, the
  listeners of ``--web``.

Needs the ``[web]`` extra (``twisted[websocket]``, which brings wsproto).
"""
