"""The IpamDriver service: pools and addresses, durable and never handed out twice.

Pools and addresses live in the store, so Docker need not replay requests after
its own restart (``RequiresRequestReplay: false``): a replay would otherwise be
counted as a second holder of each pool.

Two networks that ask for the same explicit pool (and SubPool) share
one pool (Docker sends identical ``RequestPool`` calls for a retried request and
for a second network on the same subnet, and cannot tell us which): the pool
counts its holders and is freed when the last one releases it, so one network's
``ReleasePool`` never frees addresses another network still uses.

Pools requested with ``--ipam-opt cluster=true`` live in a cluster store
(``plugin.state.etcd``, etcd) and are shared by every node that asks for the same
subnet; all other pools stay in the local SQLite store. Both offer the same
narrow port (``PoolStore``), and the rules below do not know which one they use.
A cluster store commits optimistically and raises ``TransactionConflict`` when
another node changed what a request read; the request then runs again.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from plugin.config import DefaultPool
from plugin.errors import Conflict, InvalidRequest, StoreError, TransactionConflict
from plugin.model.ipam import (
    CLUSTER_POOL_PREFIX,
    SHARED_KINDS,
    AddressKind,
    AddressSpace,
    Family,
    PoolRow,
    pool_name,
    pool_request_key,
)
from plugin.model.options import DOCKER_PREFIX

GATEWAY_REQUEST = "com.docker.network.gateway"
REQUEST_TYPE_OPTION = "RequestAddressType"
CLUSTER_OPTION = "cluster"
MAX_ATTEMPTS = 64

T = TypeVar("T")

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


class PoolTransaction(Protocol):
    """What the IPAM rules ask of a pool store's transaction (SQLite's and etcd's have it all)."""

    def pool(self, pool_id: str) -> PoolRow | None: ...
    def pool_by_request(self, request_key: str) -> PoolRow | None: ...
    def overlapping_pool(
        self, space: AddressSpace, family: Family, first: int, last: int
    ) -> PoolRow | None: ...
    def insert_pool(self, pool: PoolRow, request_key: str) -> None: ...
    def set_pool_holders(self, pool_id: str, holders: int) -> None: ...
    def delete_pool(self, pool_id: str) -> None: ...
    def set_pool_cursor(self, pool_id: str, cursor: int) -> None: ...
    def address_kind(self, pool_id: str, addr: int) -> AddressKind | None: ...
    def insert_address(self, pool_id: str, addr: int, kind: AddressKind) -> None: ...
    def delete_address(self, pool_id: str, addr: int) -> bool: ...
    def first_free_address(self, pool_id: str, low: int, high: int) -> int | None: ...
    def count_addresses(self, pool_id: str, low: int, high: int) -> int: ...


class PoolStore(Protocol):
    def transaction(self) -> AbstractContextManager[PoolTransaction]: ...


def run_atomically(store: PoolStore, operation: str, work: Callable[[PoolTransaction], T]) -> T:
    """Run ``work`` in one transaction of ``store``, again while it conflicts.

    SQLite transactions never conflict (one writer at a time); a cluster store's
    do when another node committed first, and every run re-reads what it decides on.
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            with store.transaction() as tx:
                return work(tx)
        except TransactionConflict:
            if attempt >= 2:
                time.sleep(random.uniform(0, 0.002 * attempt))
    raise StoreError(
        f"gave up after {MAX_ATTEMPTS} attempts that each lost a race "
        f"with another writer of the cluster store ({operation})"
    )


@dataclass(frozen=True)
class PoolReply:
    pool_id: str
    pool: str


def parse_subnet(value: str, what: str) -> Subnet:
    """A CIDR with no host bits set, or InvalidRequest naming what it was for."""
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise InvalidRequest(f"{what} {value!r} is not a valid CIDR (e.g. 10.1.0.0/24)") from None
    subnet = interface.network
    if "/" not in value:
        raise InvalidRequest(f"{what} {value!r} has no prefix length (e.g. {subnet})")
    if interface.ip != subnet.network_address:
        raise InvalidRequest(f"{what} {value} has host bits set (did you mean {subnet}?)")
    return subnet


def parse_address(
    value: str, what: str = "address"
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as Docker sends it (``10.0.0.5`` or ``10.0.0.5/24``), or InvalidRequest."""
    try:
        return ipaddress.ip_interface(value).ip
    except ValueError:
        raise InvalidRequest(f"{what} {value!r} is not an IP address") from None


@functools.lru_cache(maxsize=1024)
def stored_subnet(cidr: str) -> Subnet:
    """A pool's or SubPool's subnet as the store keeps it, parsed once per process."""
    return ipaddress.ip_network(cidr)


def address_text(subnet: Subnet, value: int) -> str:
    """``value`` written as an address of ``subnet``'s family (::1 is not 0.0.0.1)."""
    return str(type(subnet.network_address)(value))


def usable_range(subnet: Subnet) -> tuple[int, int]:
    """First and last address that may be handed out from ``subnet``.

    IPv4 skips the network and broadcast addresses except in /31 (RFC 3021) and
    /32; IPv6 skips the subnet-router anycast address (the network address)
    except in /127 (RFC 6164) and /128.
    """
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    host_bits = subnet.max_prefixlen - subnet.prefixlen
    if host_bits <= 1:
        return first, last
    if subnet.version == 4:
        return first + 1, last - 1
    return first + 1, last


class IpamService:
    """Implements IpamDriver on top of the local store and, if configured, a cluster store."""

    def __init__(
        self,
        store: PoolStore,
        default_pools: tuple[DefaultPool, ...],
        cluster: PoolStore | None = None,
    ) -> None:
        self._store = store
        self._default_pools = default_pools
        self._cluster = cluster

    def _store_of(self, pool_id: str) -> PoolStore:
        if not pool_id.startswith(CLUSTER_POOL_PREFIX):
            return self._store
        if self._cluster is None:
            raise InvalidRequest(
                f"{pool_id} is a cluster pool but the plugin has no cluster "
                "store: set SRIOV_CLUSTER_STORE to the etcd endpoints it was created with"
            )
        return self._cluster

    # --- capabilities ----------------------------------------------------

    @property
    def needs_endpoint_mac(self) -> bool:
        """With a cluster store, Docker must send each endpoint's MAC (see ``_specific_kind``)."""
        return self._cluster is not None

    # --- pools -----------------------------------------------------------

    def request_pool(
        self, space: str, pool: str, subpool: str, options: dict | None, v6: bool
    ) -> PoolReply:
        """Hand out ``pool`` (or the next free default subnet), with ``subpool`` as its range."""
        address_space = _address_space(space)
        cluster = self._wants_cluster(options, pool)
        subnet, ip_range = self._check_pool_request(pool, subpool, v6)
        if cluster:
            return self._request_cluster_pool(address_space, subnet, ip_range)
        with self._store.transaction() as tx:
            if subnet is None:
                subnet = self._next_default_subnet(tx, address_space, 6 if v6 else 4)
                row = _new_pool_row(address_space, subnet, None)
                tx.insert_pool(row, f"auto:{secrets.token_hex(8)}")
                return PoolReply(row.id, row.cidr)
            return _take_pool(tx, address_space, subnet, ip_range, "")

    def _wants_cluster(self, options: dict | None, pool: str) -> bool:
        """Whether ``--ipam-opt cluster=true`` asks for a cluster pool; refuse other options."""
        cluster = _cluster_option(options)
        if cluster and self._cluster is None:
            raise InvalidRequest(
                "--ipam-opt cluster=true needs the plugin setting "
                "SRIOV_CLUSTER_STORE (the etcd endpoints); it is not set"
            )
        if cluster and not pool:
            raise InvalidRequest(
                "--ipam-opt cluster=true needs --subnet: every node must name "
                "the same subnet to share its pool"
            )
        return cluster

    def _request_cluster_pool(
        self, space: AddressSpace, subnet: Subnet, ip_range: Subnet | None
    ) -> PoolReply:
        """Take the cluster pool, after checking it overlaps no local pool of this node."""
        with self._store.transaction() as tx:
            _refuse_overlap(tx, space, subnet)
        return run_atomically(
            self._cluster,
            "RequestPool",
            lambda tx: _take_pool(tx, space, subnet, ip_range, CLUSTER_POOL_PREFIX),
        )

    @staticmethod
    def _check_pool_request(
        pool: str, subpool: str, v6: bool
    ) -> tuple[Subnet | None, Subnet | None]:
        if not pool:
            if subpool:
                raise InvalidRequest(
                    f"SubPool {subpool} needs a Pool (give --subnet with --ip-range)"
                )
            return None, None
        subnet = parse_subnet(pool, "pool")
        if (subnet.version == 6) != v6:
            raise InvalidRequest(
                f"pool {pool} is IPv{subnet.version} but the request is for IPv{6 if v6 else 4}"
            )
        if not subpool:
            return subnet, None
        ip_range = parse_subnet(subpool, "SubPool")
        if ip_range.version != subnet.version or not ip_range.subnet_of(subnet):
            raise InvalidRequest(f"SubPool {subpool} is not inside pool {pool}")
        return subnet, ip_range

    def _next_default_subnet(
        self, tx: PoolTransaction, space: AddressSpace, family: Family
    ) -> Subnet:
        candidates = [p for p in self._default_pools if p.base.version == family]
        for default in candidates:
            subnet = _first_free_subnet(tx, space, default)
            if subnet is not None:
                return subnet
        bases = ", ".join(str(p) for p in candidates) or "none configured"
        raise Conflict(
            f"no free IPv{family} subnet left in the default pools ({bases}) "
            f"of address space {space}; give --subnet or extend SRIOV_DEFAULT_POOLS"
        )

    def release_pool(self, pool_id: str) -> None:
        """Drop one holder of the pool; the last one frees it and its addresses."""

        def work(tx: PoolTransaction) -> None:
            pool = tx.pool(pool_id)
            if pool is None:
                return
            if pool.holders > 1:
                tx.set_pool_holders(pool_id, pool.holders - 1)
            else:
                tx.delete_pool(pool_id)

        run_atomically(self._store_of(pool_id), "ReleasePool", work)

    # --- addresses -------------------------------------------------------

    def request_address(self, pool_id: str, address: str, options: dict | None) -> str:
        """Lease ``address`` (or the gateway, or the next free one); answer it as CIDR."""
        is_gateway = (options or {}).get(REQUEST_TYPE_OPTION) == GATEWAY_REQUEST

        def work(tx: PoolTransaction) -> str:
            pool = _known_pool(tx, pool_id)
            subnet = stored_subnet(pool.cidr)
            if address:
                wanted = _address_in_pool(address, subnet, pool)
            elif is_gateway:
                wanted = usable_range(subnet)[0]
            else:
                wanted = None
            if wanted is None:
                leased = _lease_next_free(tx, pool, subnet)
            else:
                kind = _specific_kind(pool_id, is_gateway, options)
                leased = _lease_specific(tx, pool, subnet, wanted, kind)
            return f"{address_text(subnet, leased)}/{subnet.prefixlen}"

        store = self._store_of(pool_id)
        return run_atomically(store, "RequestAddress", work)

    def release_address(self, pool_id: str, address: str) -> None:
        """Free ``address``; unknown pools and addresses are already free.

        The gateway (and, in a cluster pool, the aux addresses) of a pool that
        several networks share stays held until the last of them goes: Docker
        releases it when any one network is removed.
        """
        value = int(parse_address(address))

        def work(tx: PoolTransaction) -> None:
            pool = tx.pool(pool_id)
            if pool is None:
                return
            if pool.holders > 1 and tx.address_kind(pool_id, value) in SHARED_KINDS:
                return
            tx.delete_address(pool_id, value)

        run_atomically(self._store_of(pool_id), "ReleaseAddress", work)


def _address_space(space: str) -> AddressSpace:
    try:
        return AddressSpace(space)
    except ValueError:
        allowed = " or ".join(AddressSpace)
        raise InvalidRequest(f"unknown address space {space!r} (use {allowed})") from None


def _cluster_option(options: dict | None) -> bool:
    """The value of --ipam-opt cluster; refuse any other option (com.docker.* are Docker's)."""
    options = options or {}
    user = sorted(k for k in options if not k.startswith(DOCKER_PREFIX) and k != CLUSTER_OPTION)
    if user:
        raise InvalidRequest(
            f"unknown --ipam-opt {', '.join(user)} "
            f"(the sriov IPAM driver takes only {CLUSTER_OPTION}=true|false)"
        )
    value = options.get(CLUSTER_OPTION, "false")
    if not isinstance(value, str) or value.lower() not in ("true", "false"):
        raise InvalidRequest(
            f"--ipam-opt {CLUSTER_OPTION}={value} is not allowed: use true or false"
        )
    return value.lower() == "true"


def _take_pool(
    tx: PoolTransaction,
    space: AddressSpace,
    subnet: Subnet,
    ip_range: Subnet | None,
    id_prefix: str,
) -> PoolReply:
    """Hold the pool for exactly this subnet and range: a new one, or one more holder."""
    key = pool_request_key(space, str(subnet), str(ip_range or ""))
    held = tx.pool_by_request(key)
    if held is not None:
        tx.set_pool_holders(held.id, held.holders + 1)
        return PoolReply(held.id, held.cidr)
    _refuse_overlap(tx, space, subnet)
    row = _new_pool_row(space, subnet, ip_range, id_prefix)
    tx.insert_pool(row, key)
    return PoolReply(row.id, row.cidr)


def _refuse_overlap(tx: PoolTransaction, space: AddressSpace, subnet: Subnet) -> None:
    held = tx.overlapping_pool(
        space, subnet.version, int(subnet.network_address), int(subnet.broadcast_address)
    )
    if held is not None:
        raise Conflict(f"{subnet} overlaps pool {held.cidr} in address space {space}")


def _first_free_subnet(
    tx: PoolTransaction, space: AddressSpace, default: DefaultPool
) -> Subnet | None:
    """The lowest subnet of ``default.size`` in ``default.base`` that overlaps no held pool.

    Jumps past each overlapping pool instead of stepping one subnet at a time.
    """
    step = 1 << (default.base.max_prefixlen - default.size)
    start = int(default.base.network_address)
    end = int(default.base.broadcast_address)
    family = default.base.version
    candidate = start
    while candidate + step - 1 <= end:
        held = tx.overlapping_pool(space, family, candidate, candidate + step - 1)
        if held is None:
            return type(default.base)((candidate, default.size))
        candidate = ((held.last - start) // step + 1) * step + start
    return None


def _new_pool_row(
    space: AddressSpace, subnet: Subnet, ip_range: Subnet | None, id_prefix: str = ""
) -> PoolRow:
    subpool = str(ip_range) if ip_range else ""
    return PoolRow(
        id=f"{id_prefix}{pool_name(space, str(subnet), subpool)}#{secrets.token_hex(4)}",
        address_space=space,
        family=subnet.version,
        cidr=str(subnet),
        subpool=subpool,
        first=int(subnet.network_address),
        last=int(subnet.broadcast_address),
        holders=1,
        cursor=None,
    )


def _known_pool(tx: PoolTransaction, pool_id: str) -> PoolRow:
    pool = tx.pool(pool_id)
    if pool is None:
        raise InvalidRequest(f"unknown pool {pool_id!r} (was it released?)")
    return pool


def _address_in_pool(address: str, subnet: Subnet, pool: PoolRow) -> int:
    ip = parse_address(address)
    if ip not in subnet:
        raise InvalidRequest(f"{ip} is not in pool {pool.cidr}")
    first, last = usable_range(subnet)
    if not first <= int(ip) <= last:
        raise InvalidRequest(
            f"{ip} is the network, broadcast or subnet-router address of {pool.cidr}"
        )
    return int(ip)


def _specific_kind(pool_id: str, is_gateway: bool, options: dict | None) -> AddressKind:
    """What a request for one given address reserves: gateway, aux or static.

    In a cluster pool every host's network reserves the same --aux-address, so
    an aux reservation is shared like the gateway. Docker sends aux requests
    with no Options and a container's --ip with its MAC in Options (always, once
    the IPAM says RequiresMACAddress, which it does with a cluster store; newer
    engines also add the endpoint name): that is how the two are told apart.
    Local pools keep treating both as static, as they always did.
    """
    if is_gateway:
        return AddressKind.GATEWAY
    if pool_id.startswith(CLUSTER_POOL_PREFIX) and not options:
        return AddressKind.AUX
    return AddressKind.STATIC


def _lease_specific(
    tx: PoolTransaction, pool: PoolRow, subnet: Subnet, addr: int, kind: AddressKind
) -> int:
    held_as = tx.address_kind(pool.id, addr)
    if held_as is None:
        tx.insert_address(pool.id, addr, kind)
        return addr
    if held_as == kind and kind in SHARED_KINDS:
        return addr  # the same gateway or aux asked for again: shared or retried, not a conflict
    raise Conflict(f"{address_text(subnet, addr)} in {pool.cidr} is already in use")


def _allocation_range(subnet: Subnet, pool: PoolRow) -> tuple[int, int]:
    first, last = usable_range(subnet)
    if not pool.subpool:
        return first, last
    ip_range = stored_subnet(pool.subpool)
    return max(first, int(ip_range.network_address)), min(last, int(ip_range.broadcast_address))


def _lease_next_free(tx: PoolTransaction, pool: PoolRow, subnet: Subnet) -> int:
    """Lease the first free address at or after the pool's cursor, wrapping once.

    Following a cursor rather than taking the lowest free address keeps the cost
    flat as the pool fills and avoids handing a just-released address straight
    to the next container while its old owner may still sit in ARP caches.
    """
    low, high = _allocation_range(subnet, pool)
    cursor = pool.cursor if pool.cursor is not None and low <= pool.cursor <= high else low
    found = tx.first_free_address(pool.id, cursor, high)
    if found is None and cursor > low:
        found = tx.first_free_address(pool.id, low, cursor - 1)
    if found is None:
        in_use = tx.count_addresses(pool.id, low, high)
        where = pool.subpool or pool.cidr
        raise Conflict(f"no free address in {where} ({in_use} of {high - low + 1} in use)")
    tx.insert_address(pool.id, found, AddressKind.DYNAMIC)
    tx.set_pool_cursor(pool.id, found + 1 if found < high else low)
    return found
