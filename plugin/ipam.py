"""The IpamDriver service: pools and addresses, durable and never handed out twice.

Pools and addresses live in the store, so Docker need not replay requests after
its own restart (``RequiresRequestReplay: false``): a replay would otherwise be
counted as a second holder of each pool.

Two networks that ask for the same explicit pool (and SubPool) share
one pool (Docker sends identical ``RequestPool`` calls for a retried request and
for a second network on the same subnet, and cannot tell us which): the pool
counts its holders and is freed when the last one releases it, so one network's
``ReleasePool`` never frees addresses another network still uses.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import secrets
from dataclasses import dataclass

from plugin.config import DefaultPool
from plugin.errors import Conflict, InvalidRequest
from plugin.store import PoolRow, Store, Transaction

LOCAL_SPACE = "local"
GLOBAL_SPACE = "global"
ADDRESS_SPACES = (LOCAL_SPACE, GLOBAL_SPACE)
GATEWAY_REQUEST = "com.docker.network.gateway"
REQUEST_TYPE_OPTION = "RequestAddressType"
DOCKER_OPTION_PREFIX = "com.docker."

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PoolReply:
    pool_id: str
    pool: str


def parse_network(value: str, what: str) -> Network:
    """A CIDR with no host bits set, or InvalidRequest naming what it was for."""
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise InvalidRequest(f"{what} {value!r} is not a valid CIDR (e.g. 10.1.0.0/24)") from None
    network = interface.network
    if "/" not in value:
        raise InvalidRequest(f"{what} {value!r} has no prefix length (e.g. {network})")
    if interface.ip != network.network_address:
        raise InvalidRequest(f"{what} {value} has host bits set (did you mean {network}?)")
    return network


@functools.lru_cache(maxsize=1024)
def stored_network(cidr: str) -> Network:
    """A pool's or SubPool's network as the store keeps it, parsed once per process."""
    return ipaddress.ip_network(cidr)


def address_text(network: Network, value: int) -> str:
    """``value`` written as an address of ``network``'s family (::1 is not 0.0.0.1)."""
    return str(type(network.network_address)(value))


def usable_range(network: Network) -> tuple[int, int]:
    """First and last address that may be handed out from ``network``.

    IPv4 skips the network and broadcast addresses except in /31 (RFC 3021) and
    /32; IPv6 skips the subnet-router anycast address (the network address)
    except in /127 (RFC 6164) and /128.
    """
    first, last = int(network.network_address), int(network.broadcast_address)
    host_bits = network.max_prefixlen - network.prefixlen
    if host_bits <= 1:
        return first, last
    if network.version == 4:
        return first + 1, last - 1
    return first + 1, last


class IpamService:
    """Implements IpamDriver on top of the store."""

    def __init__(self, store: Store, default_pools: tuple[DefaultPool, ...]):
        self._store = store
        self._default_pools = default_pools

    # --- capabilities ----------------------------------------------------

    @staticmethod
    def capabilities() -> dict:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    @staticmethod
    def default_address_spaces() -> dict:
        return {
            "LocalDefaultAddressSpace": LOCAL_SPACE,
            "GlobalDefaultAddressSpace": GLOBAL_SPACE,
        }

    # --- pools -----------------------------------------------------------

    def request_pool(
        self, space: str, pool: str, subpool: str, options: dict | None, v6: bool
    ) -> PoolReply:
        """Hand out ``pool`` (or the next free default subnet), with ``subpool`` as its range."""
        if space not in ADDRESS_SPACES:
            raise InvalidRequest(
                f"unknown address space {space!r} (use {' or '.join(ADDRESS_SPACES)})"
            )
        _refuse_ipam_options(options)
        network, sub = self._check_pool_request(pool, subpool, v6)
        with self._store.transaction() as tx:
            if network is None:
                network = self._next_default_subnet(tx, space, 6 if v6 else 4)
                key = f"auto:{secrets.token_hex(8)}"
            else:
                key = json.dumps([space, str(network), str(sub or "")])
                held = tx.pool_by_request(key)
                if held is not None:
                    tx.set_pool_holders(held.id, held.holders + 1)
                    return PoolReply(held.id, held.cidr)
                _refuse_overlap(tx, space, network)
            row = _new_pool_row(space, network, sub)
            tx.insert_pool(row, key)
        return PoolReply(row.id, row.cidr)

    @staticmethod
    def _check_pool_request(
        pool: str, subpool: str, v6: bool
    ) -> tuple[Network | None, Network | None]:
        if not pool:
            if subpool:
                raise InvalidRequest(
                    f"SubPool {subpool} needs a Pool (give --subnet with --ip-range)"
                )
            return None, None
        network = parse_network(pool, "pool")
        if (network.version == 6) != v6:
            raise InvalidRequest(
                f"pool {pool} is IPv{network.version} but the request is for IPv{6 if v6 else 4}"
            )
        if not subpool:
            return network, None
        sub = parse_network(subpool, "SubPool")
        if sub.version != network.version or not sub.subnet_of(network):
            raise InvalidRequest(f"SubPool {subpool} is not inside pool {pool}")
        return network, sub

    def _next_default_subnet(self, tx: Transaction, space: str, family: int) -> Network:
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
        with self._store.transaction() as tx:
            pool = tx.pool(pool_id)
            if pool is None:
                return
            if pool.holders > 1:
                tx.set_pool_holders(pool_id, pool.holders - 1)
            else:
                tx.delete_pool(pool_id)

    # --- addresses -------------------------------------------------------

    def request_address(self, pool_id: str, address: str, options: dict | None) -> str:
        """Lease ``address`` (or the gateway, or the next free one); answer it as CIDR."""
        is_gateway = (options or {}).get(REQUEST_TYPE_OPTION) == GATEWAY_REQUEST
        with self._store.transaction() as tx:
            pool = _known_pool(tx, pool_id)
            network = stored_network(pool.cidr)
            if address:
                wanted = _address_in_pool(address, network, pool)
            elif is_gateway:
                wanted = usable_range(network)[0]
            else:
                wanted = None
            if wanted is None:
                leased = _lease_next_free(tx, pool, network)
            else:
                kind = "gateway" if is_gateway else "static"
                leased = _lease_specific(tx, pool, network, wanted, kind)
        return f"{address_text(network, leased)}/{network.prefixlen}"

    def release_address(self, pool_id: str, address: str) -> None:
        """Free ``address``; unknown pools and addresses are already free.

        The gateway of a pool that several networks share stays held until the
        last of them goes: Docker releases it when any one network is removed.
        """
        try:
            value = int(ipaddress.ip_interface(address).ip)
        except ValueError:
            raise InvalidRequest(f"{address!r} is not an IP address") from None
        with self._store.transaction() as tx:
            pool = tx.pool(pool_id)
            if pool is None:
                return
            if pool.holders > 1 and tx.address_kind(pool_id, value) == "gateway":
                return
            tx.delete_address(pool_id, value)


def _refuse_ipam_options(options: dict | None) -> None:
    """Refuse --ipam-opt values; Docker's own com.docker.* keys are not ours to judge."""
    user = sorted(k for k in (options or {}) if not k.startswith(DOCKER_OPTION_PREFIX))
    if user:
        raise InvalidRequest(
            f"unknown --ipam-opt {', '.join(user)} (the sriov IPAM driver takes no options)"
        )


def _refuse_overlap(tx: Transaction, space: str, network: Network) -> None:
    held = tx.overlapping_pool(
        space, network.version, int(network.network_address), int(network.broadcast_address)
    )
    if held is not None:
        raise Conflict(f"{network} overlaps pool {held.cidr} in address space {space}")


def _first_free_subnet(tx: Transaction, space: str, default: DefaultPool) -> Network | None:
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


def _new_pool_row(space: str, network: Network, sub: Network | None) -> PoolRow:
    subpool = str(sub) if sub else ""
    pool_id = f"{space}/{network}" + (f"/{subpool}" if subpool else "")
    return PoolRow(
        id=f"{pool_id}#{secrets.token_hex(4)}",
        address_space=space,
        family=network.version,
        cidr=str(network),
        subpool=subpool,
        first=int(network.network_address),
        last=int(network.broadcast_address),
        holders=1,
        cursor=None,
    )


def _known_pool(tx: Transaction, pool_id: str) -> PoolRow:
    pool = tx.pool(pool_id)
    if pool is None:
        raise InvalidRequest(f"unknown pool {pool_id!r} (was it released?)")
    return pool


def _address_in_pool(address: str, network: Network, pool: PoolRow) -> int:
    try:
        ip = ipaddress.ip_interface(address).ip
    except ValueError:
        raise InvalidRequest(f"{address!r} is not an IP address") from None
    if ip not in network:
        raise InvalidRequest(f"{ip} is not in pool {pool.cidr}")
    first, last = usable_range(network)
    if not first <= int(ip) <= last:
        raise InvalidRequest(
            f"{ip} is the network, broadcast or subnet-router address of {pool.cidr}"
        )
    return int(ip)


def _lease_specific(tx: Transaction, pool: PoolRow, network: Network, addr: int, kind: str) -> int:
    held_as = tx.address_kind(pool.id, addr)
    if held_as is None:
        tx.insert_address(pool.id, addr, kind)
        return addr
    if held_as == "gateway" and kind == "gateway":
        return addr  # the same gateway asked for again: shared or retried, not a conflict
    raise Conflict(f"{address_text(network, addr)} in {pool.cidr} is already in use")


def _allocation_range(network: Network, pool: PoolRow) -> tuple[int, int]:
    first, last = usable_range(network)
    if not pool.subpool:
        return first, last
    sub = stored_network(pool.subpool)
    return max(first, int(sub.network_address)), min(last, int(sub.broadcast_address))


def _lease_next_free(tx: Transaction, pool: PoolRow, network: Network) -> int:
    """Lease the first free address at or after the pool's cursor, wrapping once.

    Following a cursor rather than taking the lowest free address keeps the cost
    flat as the pool fills and avoids handing a just-released address straight
    to the next container while its old owner may still sit in ARP caches.
    """
    low, high = _allocation_range(network, pool)
    cursor = pool.cursor if pool.cursor is not None and low <= pool.cursor <= high else low
    found = tx.first_free_address(pool.id, cursor, high)
    if found is None and cursor > low:
        found = tx.first_free_address(pool.id, low, cursor - 1)
    if found is None:
        in_use = tx.count_addresses(pool.id, low, high)
        where = pool.subpool or pool.cidr
        raise Conflict(f"no free address in {where} ({in_use} of {high - low + 1} in use)")
    tx.insert_address(pool.id, found, "dynamic")
    tx.set_pool_cursor(pool.id, found + 1 if found < high else low)
    return found
