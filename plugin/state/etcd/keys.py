"""Where the cluster store keeps each thing in etcd: one key per thing, values are JSON.

- ``/sriov/ipam/pools/<space>/<cidr>[/<subpool>]``: a pool, with its id and how
  many holders each node has. The same subnet on two nodes is the same key.
- ``/sriov/ipam/addrs/<pool id>/<address as 32 hex digits>``: a held address,
  with the node that holds it and its kind (gateway, aux, static, dynamic). Hex
  digits sort like the numbers, so a range read finds the first gap.
- ``/sriov/ipam/cursors/<pool id>``: where dynamic allocation goes on; shared by
  the nodes, written without comparison (a cursor that goes back a little costs
  a longer scan, never a duplicate).
- ``/sriov/nodes/<node>``: present while that node's plugin runs, on a lease it
  keeps alive. It is the only key with a TTL: allocations never expire, so a
  partitioned node never loses addresses it still uses.
"""

from __future__ import annotations

from plugin.model.ipam import CLUSTER_POOL_PREFIX, pool_name, requested_pool

PREFIX = "/sriov/ipam/"
POOLS = PREFIX + "pools/"
ADDRS = PREFIX + "addrs/"
CURSORS = PREFIX + "cursors/"
NODES = "/sriov/nodes/"


def pool_key(pool_id: str) -> str:
    """The pool's key: its id without the cluster prefix and the ``#`` generation suffix."""
    return POOLS + pool_id.removeprefix(CLUSTER_POOL_PREFIX).partition("#")[0]


def requested_pool_key(request_key: str) -> str:
    """The key of the pool that IPAM's request key asks for."""
    return POOLS + pool_name(*requested_pool(request_key))


def address_key(pool_id: str, value: int) -> str:
    return f"{ADDRS}{pool_id}/{value:032x}"


def address_of_key(key: str) -> int:
    """The address an address key stands for (``address_key`` read backwards)."""
    return int(key.rpartition("/")[2], 16)


def addresses_prefix(pool_id: str) -> str:
    return f"{ADDRS}{pool_id}/"


def cursor_key(pool_id: str) -> str:
    return CURSORS + pool_id


def node_key(node: str) -> str:
    return NODES + node
