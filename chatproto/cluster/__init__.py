"""The ``[cluster]`` extra: users and messages shared between nodes through Redis.

:class:`chatproto.cluster.router.RedisRouter` is an ``IRouter`` of the
server; this is the only package that imports txredisapi. Importing the
package itself imports nothing of Redis (the command line reads
:mod:`chatproto.cluster.address` without the extra installed).
"""
