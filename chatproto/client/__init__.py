"""``chat_client``: a terminal chat client, a second program on the same wire codec.

It imports :mod:`chatproto.wire` and never :mod:`chatproto.server`.
"""
