"""Cluster pools on etcd v3: one pool that several hosts share, no address handed out twice.

The IPAM rules stay in ``plugin.services.ipam``; this package is the store those
rules use for pools requested with ``--ipam-opt cluster=true``, one job a module:

- ``keys``: where each thing lives in etcd (the key layout).
- ``client``: the HTTP client that tries every configured endpoint in turn, and
  the gateway's encoding of keys and values.
- ``txn_ops``: the comparisons and requests an etcd transaction is made of.
- ``transaction``: the optimistic transaction the IPAM rules run in, and the store
  that opens one per request.
- ``presence``: the key that says this host's plugin runs, kept alive on a lease.
- ``release``: ``release-node``, giving up what a host that is gone for good held.

The names below are what the server, the CLI and the protocol handlers use.
"""

from plugin.state.etcd.client import ClusterUnavailable, EtcdEndpoints, error_cause
from plugin.state.etcd.presence import NodePresence
from plugin.state.etcd.release import release_node
from plugin.state.etcd.transaction import ClusterStore

__all__ = [
    "ClusterStore",
    "ClusterUnavailable",
    "EtcdEndpoints",
    "NodePresence",
    "error_cause",
    "release_node",
]
