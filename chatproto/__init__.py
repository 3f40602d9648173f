"""chatproto: a TCP and UDP chat relay on Twisted.

The package is layered, and imports only point down (``tests/test_layers.py``):

- ``limits`` and ``argtypes``: the limits and the command-line value types;
- ``wire/``: the sans-I/O wire codec, both directions;
- ``server/``: the Twisted server (service, sessions, TCP, UDP, outbox, spool);
- ``cluster/``: the Redis router of the ``[cluster]`` extra, on top of the server;
- ``client/``: ``chat_client``, on the wire codec alone;
- ``tap`` and ``cli``: the service assembled from the options (``twistd chat``,
  ``chat_server``), the one place that puts the server and the cluster together.
"""

__version__ = "0.1.0"
