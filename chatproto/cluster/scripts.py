"""What a node keeps in Redis and how it is named: the Lua scripts and the keys.

Every key and channel of a cluster starts with ``chatproto:<db>:`` (channels
are not per database, so the number keeps two clusters on one Redis apart):

- ``...user:<id>``: a claim, whose value is the node holding the userid;
- ``...node:<node>``: the channel of one node;
- ``...broadcast``: the channel every node listens to.

The scripts run atomically in Redis; each takes claim keys and this node's
id (and the claims' TTL in milliseconds).
"""

import os
import re
import socket

#: Userids claimed or refreshed by one script call.
CLAIMS_PER_CALL = 1000

# Claim a userid: SET NX PX, atomic. A claim this node already holds in Redis
# but not locally (one whose answer was lost to a timeout, or whose release
# did not reach Redis) is this node's to take again. Returns 1 if claimed.
CLAIM_SCRIPT = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

# Keep each claim of ours alive; make it again if Redis lost it. Returns the
# (1-based) indexes of the keys another node holds now.
REFRESH_SCRIPT = b"""
local taken = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(taken, i)
  end
end
return taken
"""

# Give claims back, only those that are still ours.
RELEASE_SCRIPT = b"""
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""


def new_node_id() -> bytes:
    """Return a name for this process that no other node has: host, pid, random."""
    host = re.sub(rb"[^A-Za-z0-9.-]", b"-", socket.gethostname().encode("ascii", "replace"))
    return b"%b-%d-%b" % (host[:40] or b"node", os.getpid(), os.urandom(4).hex().encode())


class Keys:
    """The names of one node's keys and channels in Redis.

    Attributes:
        user_prefix: prepended to a userid, the key of its claim.
        node_prefix: prepended to a node id, the channel of that node.
        node_channel: this node's own channel.
        broadcast_channel: the channel of BROADCASTs, which every node hears.
    """

    __slots__ = ("user_prefix", "node_prefix", "node_channel", "broadcast_channel")

    def __init__(self, db: int, node_id: bytes) -> None:
        prefix = b"chatproto:%d:" % db  # channels are not per database
        self.user_prefix = prefix + b"user:"
        self.node_prefix = prefix + b"node:"
        self.node_channel = self.node_prefix + node_id
        self.broadcast_channel = prefix + b"broadcast"
