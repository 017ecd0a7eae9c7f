"""This host's presence in the cluster store: ``/sriov/nodes/<node>``, alive on a lease.

``release-node`` refuses to release a node whose presence key is there.
"""

from __future__ import annotations

import logging
import threading
import time

from plugin.errors import PluginError
from plugin.state.etcd import txn_ops
from plugin.state.etcd.client import EtcdEndpoints
from plugin.state.etcd.keys import node_key

log = logging.getLogger("sriov")

PRESENCE_TTL_S = 10
PRESENCE_REFRESH_S = 3.0


class NodePresence:
    """Keeps ``/sriov/nodes/<node>`` alive on a lease while the plugin runs.

    ``release-node`` refuses to release a node whose key is there. The thread
    never blocks a request and keeps trying while etcd is unreachable.
    """

    def __init__(self, etcd: EtcdEndpoints, node: str) -> None:
        self._etcd = etcd
        self._node = node
        self._stop = threading.Event()
        self._lease: int | None = None
        self._thread = threading.Thread(target=self._run, name="sriov-presence", daemon=True)

    def start(self) -> NodePresence:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop refreshing and revoke the lease, so the node key goes now, not after its TTL."""
        self._stop.set()
        lease = self._lease
        if lease is None:
            return
        try:
            self._etcd.post("kv/lease/revoke", {"ID": lease})
        except PluginError as exc:
            log.warning("cluster presence of node %s: %s", self._node, exc.message)

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            try:
                self._keep_alive()
                warned = False
            except Exception as exc:  # the thread must outlive any failure, or the key lapses
                self._lease = None
                if not warned:
                    detail = exc.message if isinstance(exc, PluginError) else repr(exc)
                    log.warning("cluster presence of node %s: %s", self._node, detail)
                    warned = True
            self._stop.wait(PRESENCE_REFRESH_S)

    def _keep_alive(self) -> None:
        if self._lease is not None:
            reply = self._etcd.post("lease/keepalive", {"ID": self._lease})
            if int(reply.get("result", {}).get("TTL", -1)) > 0:
                return
        granted = self._etcd.post("lease/grant", {"TTL": PRESENCE_TTL_S})
        self._lease = int(granted["ID"])
        put = txn_ops.put(node_key(self._node), {"node": self._node, "since": int(time.time())})
        put["request_put"]["lease"] = str(self._lease)
        self._etcd.txn([], [put], [])
