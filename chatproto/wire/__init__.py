"""The chat protocol's wire format, sans I/O: bytes in, events out; events in, bytes out.

The grammar of PROTOCOL.md §2-§4, the receive buffer (and its compiled twin,
chosen by :mod:`chatproto.wire.compiled`), the events, the body reader
shared by the server-side and client-side decoders, those decoders, the
encoders and the node-to-node relay codec. Nothing here imports Twisted
or does I/O; it imports only the standard library and :mod:`chatproto.limits`,
so it is tested with bytes alone and used by the server, the cluster and the
client alike.
"""
