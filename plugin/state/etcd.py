"""Cluster pools on etcd v3: one pool that several hosts share, no address handed out twice.

The IPAM rules stay in ``plugin.services.ipam``; this module is the store those rules use
for pools requested with ``--ipam-opt cluster=true``. It offers the same
transaction methods as the SQLite store, but optimistically: reads go to etcd at
once (linearizable), writes are kept until the block ends and are then sent as
**one etcd transaction** whose comparisons say that nothing read has changed:
an address key is created only if it does not exist (``create_revision == 0``),
a pool is rewritten only at the revision that was read. When a comparison fails
another node won the race, and the IPAM service runs the whole request again.

Layout (one key per thing, values are JSON):

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

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugin.config import ClusterConfig
from plugin.errors import PluginError, StoreError
from plugin.services.ipam import CLUSTER_POOL_PREFIX, SHARED_KINDS, TransactionConflict, pool_name
from plugin.state.sqlite import AddressKind, AddressSpace, Family, PoolRow

if TYPE_CHECKING:
    from etcd3gw import Etcd3Client

log = logging.getLogger("sriov")

PREFIX = "/sriov/ipam/"
POOLS = PREFIX + "pools/"
ADDRS = PREFIX + "addrs/"
CURSORS = PREFIX + "cursors/"
NODES = "/sriov/nodes/"
API_PATH = "/v3/"  # etcd's JSON gateway path since 3.4
REQUEST_TIMEOUT_S = 5.0
SCAN_PAGE = 512
FIRST_SCAN_PAGE = 8
PRESENCE_TTL_S = 10
PRESENCE_REFRESH_S = 3.0


class ClusterUnavailable(StoreError):
    """No etcd endpoint answered: the request fails rather than guess from local state."""


# --- encoding ----------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with ``prefix`` (its last byte + 1)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def _address_suffix(value: int) -> str:
    return f"{value:032x}"


def pool_key(pool_id: str) -> str:
    """The pool's key: its id without the cluster prefix and the ``#`` generation suffix."""
    return POOLS + pool_id.removeprefix(CLUSTER_POOL_PREFIX).partition("#")[0]


def requested_pool_key(request_key: str) -> str:
    """The key of the pool that IPAM's request key (JSON [space, cidr, subpool]) asks for."""
    space, cidr, subpool = json.loads(request_key)
    return POOLS + pool_name(space, cidr, subpool)


def address_key(pool_id: str, value: int) -> str:
    return f"{ADDRS}{pool_id}/{_address_suffix(value)}"


def addresses_prefix(pool_id: str) -> str:
    return f"{ADDRS}{pool_id}/"


def cursor_key(pool_id: str) -> str:
    return CURSORS + pool_id


def node_key(node: str) -> str:
    return NODES + node


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: dict
    mod_revision: int


def _key_values(range_response: dict) -> list[KeyValue]:
    return [
        KeyValue(
            key=_unb64(kv["key"]),
            value=json.loads(_unb64(kv["value"])) if kv.get("value") else {},
            mod_revision=int(kv.get("mod_revision", 0)),
        )
        for kv in range_response.get("kvs", [])
    ]


# --- endpoints ---------------------------------------------------------------


def etcd3gw_client(url: str, config: ClusterConfig, timeout: float) -> Etcd3Client:
    """An etcd3gw client for one endpoint URL, with the client certificate when it is https.

    Its HTTP session ignores the environment: REQUESTS_CA_BUNDLE would replace
    the etcd CA, and an HTTP(S)_PROXY would send etcd traffic through a proxy.
    """
    import etcd3gw
    import requests

    scheme, _, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    session = requests.Session()
    session.trust_env = False
    if scheme == "https":  # load_config checked that the files exist
        session.verify = str(config.tls_dir / "ca.crt")
        session.cert = (str(config.tls_dir / "client.crt"), str(config.tls_dir / "client.key"))
    return etcd3gw.Etcd3Client(
        host=host.strip("[]"),
        port=int(port),
        protocol=scheme,
        timeout=timeout,
        api_path=API_PATH,
        session=session,
    )


class EtcdEndpoints:
    """Every configured etcd endpoint; each call goes to the last one that answered, then on.

    A call that fails to reach an endpoint (refused, reset, timed out, or the
    member has no leader) is sent to the next one; only when none answered does
    it fail, with ``ClusterUnavailable`` naming every endpoint and its error.
    ``make_client(url)`` builds each endpoint's client (etcd3gw's by default).
    """

    def __init__(
        self,
        config: ClusterConfig,
        timeout: float = REQUEST_TIMEOUT_S,
        make_client: Callable[[str], object] | None = None,
    ) -> None:
        from etcd3gw import exceptions

        self.urls = config.endpoints
        make = make_client or (lambda url: etcd3gw_client(url, config, timeout))
        self._clients = [make(url) for url in self.urls]
        self._unreachable = (exceptions.ConnectionFailedError, exceptions.ConnectionTimeoutError)
        self._etcd_error = exceptions.Etcd3Exception
        self._preferred = 0
        self._lock = threading.Lock()

    def post(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``path`` of the gateway on the first endpoint that answers."""
        errors = []
        start = self._preferred
        for step in range(len(self._clients)):
            index = (start + step) % len(self._clients)
            client = self._clients[index]
            try:
                reply = client.post(client.base_url + API_PATH + path, json=body)
            except self._unreachable as exc:
                errors.append(f"{self.urls[index]}: {error_cause(exc)}")
                continue
            except self._etcd_error as exc:
                url = self.urls[index]
                raise StoreError(f"etcd at {url} refused the request: {error_cause(exc)}") from None
            if index != start:
                with self._lock:
                    self._preferred = index
            return reply
        raise ClusterUnavailable(
            "etcd cluster store unreachable, no endpoint answered "
            f"({'; '.join(errors)}); nothing was allocated or released"
        )

    def range(self, key: str, **options: object) -> dict:
        body = {"key": _b64(key), **options}
        return self.post("kv/range", body)

    def range_prefix(self, prefix: str, **options: object) -> dict:
        return self.range(prefix, range_end=_prefix_end(prefix), **options)

    def txn(self, compare: list, success: list, failure: list) -> dict:
        return self.post("kv/txn", {"compare": compare, "success": success, "failure": failure})


# The part of a requests/urllib3 error text that says what went wrong.
_CAUSE = re.compile(r"\[Errno -?\d+\] [^'\")]+|\[SSL: [A-Z_]+\] [^'\")(]+|[Rr]ead timed out")


def error_cause(exc: Exception) -> str:
    """An etcd3gw error in one line: the gateway's message, or the network error's cause."""
    detail = getattr(exc, "detail_text", None) or str(exc) or type(exc).__name__
    with suppress(ValueError, AttributeError):
        detail = json.loads(detail).get("error", detail)
    detail = " ".join(str(detail).split())
    causes = _CAUSE.findall(detail)
    return causes[-1].strip() if causes else detail[:300]


# --- compare and request builders -------------------------------------------


def _absent(key: str) -> dict:
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def _unchanged(key: str, mod_revision: int) -> dict:
    return {
        "key": _b64(key),
        "target": "MOD",
        "result": "EQUAL",
        "mod_revision": str(mod_revision),
    }


def _none_changed_since(prefix: str, revision: int) -> dict:
    """No key under ``prefix`` was created or changed after ``revision``."""
    return {
        "key": _b64(prefix),
        "range_end": _prefix_end(prefix),
        "target": "MOD",
        "result": "LESS",
        "mod_revision": str(revision + 1),
    }


def _put(key: str, value: dict) -> dict:
    return {"request_put": {"key": _b64(key), "value": _b64(json.dumps(value))}}


def _delete(key: str) -> dict:
    return {"request_delete_range": {"key": _b64(key)}}


def _delete_prefix(prefix: str) -> dict:
    return {"request_delete_range": {"key": _b64(prefix), "range_end": _prefix_end(prefix)}}


def _get(key: str) -> dict:
    return {"request_range": {"key": _b64(key)}}


def _addresses_from(pool_id: str, start: int, limit: int) -> dict:
    """Up to ``limit`` address keys of the pool from ``start`` on (keys only)."""
    return {
        "request_range": {
            "key": _b64(address_key(pool_id, start)),
            "range_end": _prefix_end(addresses_prefix(pool_id)),
            "limit": limit,
            "keys_only": True,
        }
    }


# --- the transaction IPAM uses ----------------------------------------------


def _pool_row(kv: KeyValue, cursor: int | None) -> PoolRow:
    value = kv.value
    return PoolRow(
        id=value["id"],
        address_space=AddressSpace(value["space"]),
        family=value["family"],
        cidr=value["cidr"],
        subpool=value["subpool"],
        first=int(value["first"]),
        last=int(value["last"]),
        holders=sum(value["holders"].values()),
        cursor=cursor,
    )


class ClusterTransaction:
    """The store transaction of ``plugin.state.sqlite.Transaction``, on etcd (see the module doc).

    Pools are counted per node (``holders`` maps node to count) so that
    ``release-node`` can drop a dead node's share; the IPAM rules see the sum.
    """

    def __init__(
        self,
        etcd: EtcdEndpoints,
        node: str,
        cursor_hints: dict[str, int] | None = None,
    ) -> None:
        self._etcd = etcd
        self._node = node
        self._compares: dict[str, dict] = {}
        self._writes: dict[str, dict] = {}
        self._pools: dict[str, tuple[str, dict]] = {}  # pool id -> (key, value as read)
        self._token = secrets.token_hex(8)
        self._marker: str | None = None  # a key this transaction puts, to recognise it later
        self._hints = cursor_hints if cursor_hints is not None else {}
        self._prefetched: dict[str, tuple[int, dict]] = {}  # pool id -> (from, range reply)
        self._new_cursors: dict[str, int] = {}

    # --- reads ---

    def _read_pool(self, key: str, pool_id: str | None) -> PoolRow | None:
        """The pool stored at ``key`` (if its id is ``pool_id``, when given).

        With the id known, the pool, its cursor and the first addresses from
        where this process last saw the cursor come in one round trip: when the
        cursor is still there, the free address is found without another.
        """
        reads = [_get(key)]
        hint = self._hints.get(pool_id) if pool_id else None
        if pool_id:
            reads.append(_get(cursor_key(pool_id)))
        if hint is not None:
            reads.append(_addresses_from(pool_id, hint, FIRST_SCAN_PAGE))
        responses = self._etcd.txn([], reads, [])["responses"]
        kvs = _key_values(responses[0]["response_range"])
        if not kvs:
            self._compares[key] = _absent(key)
            return None
        kv = kvs[0]
        self._compares[key] = _unchanged(key, kv.mod_revision)
        if pool_id is not None and kv.value.get("id") != pool_id:
            return None
        self._pools[kv.value["id"]] = (key, kv.value)
        cursors = _key_values(responses[1]["response_range"]) if pool_id else []
        cursor = int(cursors[0].value["next"]) if cursors else None
        if hint is not None and cursor == hint:
            self._prefetched[pool_id] = (hint, responses[2]["response_range"])
        elif pool_id and cursor is not None:
            self._hints[pool_id] = cursor
        return _pool_row(kv, cursor)

    def pool(self, pool_id: str) -> PoolRow | None:
        if not pool_id.startswith(CLUSTER_POOL_PREFIX):
            return None
        return self._read_pool(pool_key(pool_id), pool_id)

    def pool_by_request(self, request_key: str) -> PoolRow | None:
        return self._read_pool(requested_pool_key(request_key), None)

    def overlapping_pool(
        self, space: AddressSpace, family: Family, first: int, last: int
    ) -> PoolRow | None:
        reply = self._etcd.range_prefix(POOLS)
        revision = int(reply["header"]["revision"])
        self._compares[POOLS] = _none_changed_since(POOLS, revision)
        overlapping = [
            kv
            for kv in _key_values(reply)
            if kv.value["space"] == space
            and kv.value["family"] == family
            and int(kv.value["first"]) <= last
            and int(kv.value["last"]) >= first
        ]
        if not overlapping:
            return None
        return _pool_row(max(overlapping, key=lambda kv: int(kv.value["last"])), None)

    def address_kind(self, pool_id: str, addr: int) -> AddressKind | None:
        key = address_key(pool_id, addr)
        kvs = _key_values(self._etcd.range(key))
        if not kvs:
            self._compares[key] = _absent(key)
            return None
        self._compares[key] = _unchanged(key, kvs[0].mod_revision)
        return AddressKind(kvs[0].value["kind"])

    def first_free_address(self, pool_id: str, low: int, high: int) -> int | None:
        """The lowest address in [low, high] with no key, read in growing pages from ``low``.

        Following the cursor, the first address read is usually free: a small
        first page keeps that common reply short (and the pool read may have
        brought it already).
        """
        expected = low
        page = FIRST_SCAN_PAGE
        prefetched = self._prefetched.pop(pool_id, None)
        reply = prefetched[1] if prefetched and prefetched[0] == low else None
        while expected <= high:
            if reply is None:
                reply = self._etcd.range(
                    address_key(pool_id, expected),
                    range_end=_b64(address_key(pool_id, high + 1)),
                    limit=page,
                    keys_only=True,
                )
            for kv in reply.get("kvs", []):
                held = int(_unb64(kv["key"]).rpartition("/")[2], 16)
                if held != expected:
                    return expected if expected <= high else None
                expected = held + 1
            if not reply.get("more"):
                break
            reply = None
            page = min(page * 4, SCAN_PAGE)
        return expected if expected <= high else None

    def count_addresses(self, pool_id: str, low: int, high: int) -> int:
        reply = self._etcd.range(
            address_key(pool_id, low),
            range_end=_b64(address_key(pool_id, high + 1)),
            count_only=True,
        )
        return int(reply.get("count", 0))

    # --- writes (kept until commit) ---

    def _stamp(self, key: str, value: dict) -> dict:
        self._marker = self._marker or key
        return {**value, "txn": self._token}

    def insert_pool(self, pool: PoolRow, request_key: str) -> None:
        key = requested_pool_key(request_key)
        self._compares[key] = _absent(key)
        value = {
            "id": pool.id,
            "space": pool.address_space,
            "family": pool.family,
            "cidr": pool.cidr,
            "subpool": pool.subpool,
            "first": str(pool.first),
            "last": str(pool.last),
            "holders": {self._node: pool.holders},
        }
        self._writes[key] = _put(key, self._stamp(key, value))

    def set_pool_holders(self, pool_id: str, holders: int) -> None:
        """Apply the change to this node's count; a drop below zero comes off other nodes."""
        key, value = self._pools[pool_id]
        counts = dict(value["holders"])
        delta = holders - sum(counts.values())
        counts[self._node] = counts.get(self._node, 0) + delta
        for other in sorted(counts, key=lambda n: n == self._node):
            if counts[self._node] >= 0:
                break
            if other != self._node and counts[other] > 0:
                taken = min(counts[other], -counts[self._node])
                counts[other] -= taken
                counts[self._node] += taken
        counts = {node: n for node, n in counts.items() if n > 0}
        self._writes[key] = _put(key, self._stamp(key, {**value, "holders": counts}))

    def delete_pool(self, pool_id: str) -> None:
        key, _ = self._pools[pool_id]
        self._writes[key] = _delete(key)
        self._writes[addresses_prefix(pool_id)] = _delete_prefix(addresses_prefix(pool_id))
        self._writes[cursor_key(pool_id)] = _delete(cursor_key(pool_id))

    def set_pool_cursor(self, pool_id: str, cursor: int) -> None:
        self._writes[cursor_key(pool_id)] = _put(cursor_key(pool_id), {"next": str(cursor)})
        self._new_cursors[pool_id] = cursor

    def insert_address(self, pool_id: str, addr: int, kind: AddressKind) -> None:
        key = address_key(pool_id, addr)
        self._compares[key] = _absent(key)
        value = {"node": self._node, "kind": kind, "at": int(time.time())}
        self._writes[key] = _put(key, self._stamp(key, value))

    def delete_address(self, pool_id: str, addr: int) -> bool:
        key = address_key(pool_id, addr)
        self._writes[key] = _delete(key)
        return True

    # --- commit ---

    def commit(self) -> None:
        """Send the writes as one transaction guarded by every comparison; conflict if any fails.

        When a failure reply shows that the marker key already carries this
        transaction's token, an earlier attempt did commit (its reply was lost
        and the request went to another endpoint): that is success, not a conflict.
        """
        if not self._writes:
            return
        failure = [_get(self._marker)] if self._marker else []
        reply = self._etcd.txn(
            list(self._compares.values()), list(self._writes.values()), failure
        )
        if not reply.get("succeeded"):
            kvs = _key_values(reply["responses"][0]["response_range"]) if self._marker else []
            if not (kvs and kvs[0].value.get("txn") == self._token):
                raise TransactionConflict
        self._hints.update(self._new_cursors)


class ClusterStore:
    """The cluster pools' store, with the SQLite store's ``transaction()`` shape."""

    def __init__(self, etcd: EtcdEndpoints, node: str) -> None:
        self.etcd = etcd
        self.node = node
        self._cursor_hints: dict[str, int] = {}  # pool id -> the cursor as last seen here

    @contextmanager
    def transaction(self) -> Iterator[ClusterTransaction]:
        tx = ClusterTransaction(self.etcd, self.node, self._cursor_hints)
        yield tx
        tx.commit()


# --- node presence and release ----------------------------------------------


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
        put = _put(node_key(self._node), {"node": self._node, "since": int(time.time())})
        put["request_put"]["lease"] = str(self._lease)
        self._etcd.txn([], [put], [])


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


def scan_prefix(etcd: EtcdEndpoints, prefix: str) -> Iterator[KeyValue]:
    start = prefix
    end = _prefix_end(prefix)
    while True:
        reply = etcd.range(start, range_end=end, limit=SCAN_PAGE)
        kvs = _key_values(reply)
        yield from kvs
        if not reply.get("more") or not kvs:
            return
        start = kvs[-1].key + "\0"


def _release_node_addresses(etcd: EtcdEndpoints, node: str) -> int:
    held = [
        kv
        for kv in scan_prefix(etcd, ADDRS)
        if kv.value.get("node") == node and kv.value.get("kind") not in SHARED_KINDS
    ]
    released = 0
    for kv in held:
        # a guarded delete each: an address released and taken again meanwhile is not ours
        reply = etcd.txn([_unchanged(kv.key, kv.mod_revision)], [_delete(kv.key)], [])
        released += 1 if reply.get("succeeded") else 0
    return released


def _release_node_pools(etcd: EtcdEndpoints, node: str) -> tuple[int, int]:
    dropped = freed = 0
    for kv in scan_prefix(etcd, POOLS):
        while node in kv.value.get("holders", {}):
            holders = {n: c for n, c in kv.value["holders"].items() if n != node}
            pool_id = kv.value["id"]
            if holders:
                writes = [_put(kv.key, {**kv.value, "holders": holders})]
            else:
                writes = [
                    _delete(kv.key),
                    _delete_prefix(addresses_prefix(pool_id)),
                    _delete(cursor_key(pool_id)),
                ]
            reply = etcd.txn([_unchanged(kv.key, kv.mod_revision)], writes, [])
            if reply.get("succeeded"):
                dropped += 1
                freed += 0 if holders else 1
                break
            fresh = _key_values(etcd.range(kv.key))
            if not fresh:
                break
            kv = fresh[0]
    return dropped, freed
