"""The Twisted server: the service, its sessions and the transports that feed them.

The service (users, routing, the random-message rule) knows clients only
through the interfaces of :mod:`chatproto.server.interfaces`; the TCP and UDP
protocols adapt their transports to the wire codec (:mod:`chatproto.wire`)
and to the service. Bodies, spool, outbox, stats, metrics and ``-v``
rendering live here too. Imports :mod:`chatproto.wire`, never the cluster or
the client.
"""
