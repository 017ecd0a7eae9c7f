"""The IPAM's values: address spaces, why an address is held, pools, and how pools are named.

The IPAM rules (``plugin.services.ipam``) and both stores that keep pools (the
SQLite store, and etcd for cluster pools) speak in these; none of them defines
what the others use.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Literal


class AddressSpace(enum.StrEnum):
    """Docker's two IPAM address spaces; a pool belongs to one."""

    LOCAL = "local"
    GLOBAL = "global"


class AddressKind(enum.StrEnum):
    """Why an address is held, as stored with it."""

    GATEWAY = "gateway"  # the network's gateway (RequestAddressType gateway)
    AUX = "aux"  # an --aux-address of a cluster pool
    STATIC = "static"  # a given address: a container's --ip, or a local pool's --aux-address
    DYNAMIC = "dynamic"  # the next free address


# Reservations every network on the pool holds together.
SHARED_KINDS = (AddressKind.GATEWAY, AddressKind.AUX)

Family = Literal[4, 6]  # the IP version, as ipaddress says it

# The start of every cluster pool's id: which store holds a pool is read from its id.
CLUSTER_POOL_PREFIX = "cluster:"


@dataclass(frozen=True)
class PoolRow:
    """A pool as a store holds it: its range as integers, holders, and the allocation cursor."""

    id: str
    address_space: AddressSpace
    family: Family
    cidr: str
    subpool: str
    first: int
    last: int
    holders: int
    cursor: int | None


def pool_name(space: str, cidr: str, subpool: str) -> str:
    """``space/cidr[/subpool]``: the readable part of a pool's id, and its cluster key."""
    return f"{space}/{cidr}" + (f"/{subpool}" if subpool else "")


def pool_request_key(space: str, cidr: str, subpool: str) -> str:
    """What identical ``RequestPool`` calls share: the pool they ask for, as a store keeps it."""
    return json.dumps([space, cidr, subpool])


def requested_pool(request_key: str) -> tuple[str, str, str]:
    """The (space, cidr, subpool) that ``pool_request_key`` wrote."""
    space, cidr, subpool = json.loads(request_key)
    return space, cidr, subpool
