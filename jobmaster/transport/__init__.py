"""Talking to Redis: the only package that speaks its protocol.

- :mod:`.resp`: the one command encoder (and error replies as redis-py's exceptions).
- :mod:`.address`: what a ``redis://`` URL points to, and which URLs the own connections take.
- :mod:`.multiplexed`: one pipelined connection of an event loop, for the hot path's scripts
  and for blocking reads.
- :mod:`.blocking`: blocking connections for synchronous producers, one per thread.
- :mod:`.clients`: the clients made from a URL (redis-py's and the multiplexed one).

Everything else talks to Redis through these or through redis-py's commands; nothing else
formats a command.
"""

from jobmaster.transport.address import Address, supports
from jobmaster.transport.blocking import BlockingConnection, ThreadConnections
from jobmaster.transport.multiplexed import MultiplexedConnection

__all__ = [
    "Address",
    "BlockingConnection",
    "MultiplexedConnection",
    "ThreadConnections",
    "supports",
]
