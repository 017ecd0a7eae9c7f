"""``release-node``: give up every address and pool share of a host that is gone for good.

Refused while that host's plugin keeps its presence key alive. Each delete is
guarded by the revision it read, so an address released and taken again
meanwhile is left to its new holder.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin.errors import PluginError
from plugin.model.ipam import SHARED_KINDS
from plugin.state.etcd import txn_ops
from plugin.state.etcd.client import EtcdEndpoints, key_values, scan_prefix
from plugin.state.etcd.keys import ADDRS, POOLS, addresses_prefix, cursor_key, node_key
from plugin.state.etcd.presence import PRESENCE_TTL_S


@dataclass(frozen=True)
class ReleasedNode:
    node: str
    addresses: int
    pools_dropped: int
    pools_freed: int


class NodeStillPresent(PluginError):
    status = 409


def release_node(etcd: EtcdEndpoints, node: str) -> ReleasedNode:
    """Release every address ``node`` holds and its share of every pool.

    Refused while the node's plugin keeps its presence key alive. Gateways and
    aux addresses stay: they belong to the pool, which other nodes may still
    hold; they go with it.
    """
    if etcd.range(node_key(node)).get("kvs"):
        raise NodeStillPresent(
            f"node {node} still has its plugin running and connected to etcd "
            f"({node_key(node)} is alive); stop it, or wait {PRESENCE_TTL_S} s after it "
            "lost etcd, and try again"
        )
    addresses = _release_node_addresses(etcd, node)
    dropped, freed = _release_node_pools(etcd, node)
    return ReleasedNode(node, addresses, dropped, freed)


def _release_node_addresses(etcd: EtcdEndpoints, node: str) -> int:
    held = [
        kv
        for kv in scan_prefix(etcd, ADDRS)
        if kv.value.get("node") == node and kv.value.get("kind") not in SHARED_KINDS
    ]
    released = 0
    for kv in held:
        # a guarded delete each: an address released and taken again meanwhile is not ours
        reply = etcd.txn([txn_ops.unchanged(kv.key, kv.mod_revision)], [txn_ops.delete(kv.key)], [])
        released += 1 if reply.get("succeeded") else 0
    return released


def _release_node_pools(etcd: EtcdEndpoints, node: str) -> tuple[int, int]:
    dropped = freed = 0
    for kv in scan_prefix(etcd, POOLS):
        while node in kv.value.get("holders", {}):
            holders = {n: c for n, c in kv.value["holders"].items() if n != node}
            pool_id = kv.value["id"]
            if holders:
                writes = [txn_ops.put(kv.key, {**kv.value, "holders": holders})]
            else:
                writes = [
                    txn_ops.delete(kv.key),
                    txn_ops.delete_prefix(addresses_prefix(pool_id)),
                    txn_ops.delete(cursor_key(pool_id)),
                ]
            reply = etcd.txn([txn_ops.unchanged(kv.key, kv.mod_revision)], writes, [])
            if reply.get("succeeded"):
                dropped += 1
                freed += 0 if holders else 1
                break
            fresh = key_values(etcd.range(kv.key))
            if not fresh:
                break
            kv = fresh[0]
    return dropped, freed
