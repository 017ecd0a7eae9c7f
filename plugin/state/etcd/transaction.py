"""The optimistic transaction the IPAM rules run in, for cluster pools on etcd.

It offers the same transaction methods as the SQLite store, but optimistically:
reads go to etcd at once (linearizable), writes are kept until the block ends
and are then sent as **one etcd transaction** whose comparisons say that nothing
read has changed: an address key is created only if it does not exist
(``create_revision == 0``), a pool is rewritten only at the revision that was
read. When a comparison fails another node won the race (``TransactionConflict``),
and the IPAM service runs the whole request again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from plugin.errors import TransactionConflict
from plugin.model.ipam import CLUSTER_POOL_PREFIX, AddressKind, AddressSpace, Family, PoolRow
from plugin.state.etcd import txn_ops
from plugin.state.etcd.client import SCAN_PAGE, EtcdEndpoints, KeyValue, b64, key_values, unb64
from plugin.state.etcd.keys import (
    POOLS,
    address_key,
    address_of_key,
    addresses_prefix,
    cursor_key,
    pool_key,
    requested_pool_key,
)

FIRST_SCAN_PAGE = 8  # the first range read after the cursor: usually its first key is free


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
    """The IPAM's ``PoolTransaction`` (``plugin.services.ipam``) on etcd; see the module doc.

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
        reads = [txn_ops.get(key)]
        hint = self._hints.get(pool_id) if pool_id else None
        if pool_id:
            reads.append(txn_ops.get(cursor_key(pool_id)))
        if hint is not None:
            reads.append(txn_ops.addresses_from(pool_id, hint, FIRST_SCAN_PAGE))
        responses = self._etcd.txn([], reads, [])["responses"]
        kvs = key_values(responses[0]["response_range"])
        if not kvs:
            self._compares[key] = txn_ops.absent(key)
            return None
        kv = kvs[0]
        self._compares[key] = txn_ops.unchanged(key, kv.mod_revision)
        if pool_id is not None and kv.value.get("id") != pool_id:
            return None
        self._pools[kv.value["id"]] = (key, kv.value)
        cursors = key_values(responses[1]["response_range"]) if pool_id else []
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
        self._compares[POOLS] = txn_ops.none_changed_since(POOLS, revision)
        overlapping = [
            kv
            for kv in key_values(reply)
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
        kvs = key_values(self._etcd.range(key))
        if not kvs:
            self._compares[key] = txn_ops.absent(key)
            return None
        self._compares[key] = txn_ops.unchanged(key, kvs[0].mod_revision)
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
                    range_end=b64(address_key(pool_id, high + 1)),
                    limit=page,
                    keys_only=True,
                )
            for kv in reply.get("kvs", []):
                held = address_of_key(unb64(kv["key"]))
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
            range_end=b64(address_key(pool_id, high + 1)),
            count_only=True,
        )
        return int(reply.get("count", 0))

    # --- writes (kept until commit) ---

    def _stamp(self, key: str, value: dict) -> dict:
        self._marker = self._marker or key
        return {**value, "txn": self._token}

    def insert_pool(self, pool: PoolRow, request_key: str) -> None:
        key = requested_pool_key(request_key)
        self._compares[key] = txn_ops.absent(key)
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
        self._writes[key] = txn_ops.put(key, self._stamp(key, value))

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
        self._writes[key] = txn_ops.put(key, self._stamp(key, {**value, "holders": counts}))

    def delete_pool(self, pool_id: str) -> None:
        key, _ = self._pools[pool_id]
        self._writes[key] = txn_ops.delete(key)
        self._writes[addresses_prefix(pool_id)] = txn_ops.delete_prefix(addresses_prefix(pool_id))
        self._writes[cursor_key(pool_id)] = txn_ops.delete(cursor_key(pool_id))

    def set_pool_cursor(self, pool_id: str, cursor: int) -> None:
        self._writes[cursor_key(pool_id)] = txn_ops.put(cursor_key(pool_id), {"next": str(cursor)})
        self._new_cursors[pool_id] = cursor

    def insert_address(self, pool_id: str, addr: int, kind: AddressKind) -> None:
        key = address_key(pool_id, addr)
        self._compares[key] = txn_ops.absent(key)
        value = {"node": self._node, "kind": kind, "at": int(time.time())}
        self._writes[key] = txn_ops.put(key, self._stamp(key, value))

    def delete_address(self, pool_id: str, addr: int) -> bool:
        key = address_key(pool_id, addr)
        self._writes[key] = txn_ops.delete(key)
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
        failure = [txn_ops.get(self._marker)] if self._marker else []
        reply = self._etcd.txn(list(self._compares.values()), list(self._writes.values()), failure)
        if not reply.get("succeeded"):
            kvs = key_values(reply["responses"][0]["response_range"]) if self._marker else []
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
