"""chatproto: a TCP and UDP chat relay on Twisted.

The package is layered, and imports only point down (``tests/test_layers.py``):

- ``limits`` and ``argtypes``: the limits and the command-line value types;
- ``wire/``: the sans-I/O wire codec, both directions;
- ``server/``: the Twisted server (service, sessions, TCP, UDP, outbox, spool);
- ``cluster/``: the Redis router of the ``[cluster]`` extra, on top of the server;
- ``client/``: ``chat_client``, on the wire codec alone;
- ``options``, ``endpoints``, ``serving``, ``tap`` and ``cli``: the command line and
  the service assembled from it (``twistd chat``, ``chat_server``), the one place
  that puts the server, the cluster and the web layer together.
"""

__version__ = "0.1.0"
