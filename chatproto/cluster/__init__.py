"""The ``[cluster]`` extra: users and messages shared between nodes through Redis.

:class:`chatproto.cluster.router.RedisRouter` is an ``IRouter`` of the
server (:mod:`chatproto.server.interfaces`); it calls back into the service
only through ``IRouterHost``. The package is split by job:

- :mod:`~chatproto.cluster.address`: ``RedisAddress`` and ``redis_url``, the
  ``--cluster`` option's value (imports nothing of Redis);
- :mod:`~chatproto.cluster.scripts`: the Lua scripts, the key and channel
  names, and new node ids;
- :mod:`~chatproto.cluster.connections`: the command and subscriber
  connections, kept up by ClientServices, and their ups and downs;
- :mod:`~chatproto.cluster.claims`: claiming userids, refreshing and giving
  back the claims, doubtful claims;
- :mod:`~chatproto.cluster.queued`: a message on its way out and the
  batch of one turn's messages, with what they hold;
- :mod:`~chatproto.cluster.outgoing`: relaying out: the turn's batch, runs
  and big bodies in pieces under the window, the relay backlog;
- :mod:`~chatproto.cluster.incoming`: relaying in: decoding batches,
  putting big bodies together, delivering through the host;
- :mod:`~chatproto.cluster.router`: ``RedisRouter``, which composes them.

This is the only package that imports txredisapi. Importing the package
itself imports nothing of Redis (the command line reads
:mod:`chatproto.cluster.address` without the extra installed).
"""
