"""Small pyroute2 helpers shared by the NIC backends and the simulated NIC.

Each takes an open ``IPRoute`` (the caller owns it: ``with IPRoute() as ipr``)
and a link name that has already passed names.check_ifname. Failures are
pyroute2 ``NetlinkError``s; a link that does not exist in this network
namespace is ``NetlinkError(ENODEV)``, so callers handle both alike and turn
them into messages with ``strerror``.
"""

from __future__ import annotations

import errno
import os
import socket

from pyroute2.netlink.exceptions import NetlinkError

from plugin.nic.base import NetdevStatus

IFF_UP = 0x1
RT_SCOPE_UNIVERSE = 0


def strerror(err: NetlinkError) -> str:
    """The errno text of a netlink failure ("Operation not supported")."""
    return os.strerror(err.code) if err.code else str(err)


def link_index(ipr, name: str) -> int | None:
    """The ifindex of ``name`` in this namespace, None if there is none."""
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def require_index(ipr, name: str) -> int:
    index = link_index(ipr, name)
    if index is None:
        raise NetlinkError(errno.ENODEV, f"no link {name}")
    return index


def get_link(ipr, name: str):
    """The RTM_NEWLINK message of ``name``; NetlinkError(ENODEV) if absent."""
    return ipr.link("get", index=require_index(ipr, name))[0]


def netdev_status(ipr, name: str) -> NetdevStatus:
    """ABSENT if no such link here; BUSY if up with an IPv4 or global IPv6 address; else IDLE."""
    index = link_index(ipr, name)
    if index is None:
        return NetdevStatus.ABSENT
    try:
        link = ipr.link("get", index=index)[0]
    except NetlinkError as err:
        if err.code == errno.ENODEV:  # removed between lookup and get
            return NetdevStatus.ABSENT
        raise
    if link["flags"] & IFF_UP and _has_used_address(ipr, index):
        return NetdevStatus.BUSY
    return NetdevStatus.IDLE


def _has_used_address(ipr, index: int) -> bool:
    for addr in ipr.get_addr(index=index):
        if addr["family"] == socket.AF_INET:
            return True
        if addr["family"] == socket.AF_INET6 and addr["scope"] == RT_SCOPE_UNIVERSE:
            return True
    return False


def get_mtu(ipr, name: str) -> int | None:
    """The MTU of ``name``, None if it is not in this namespace."""
    try:
        return get_link(ipr, name).get_attr("IFLA_MTU")
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise


def get_address(ipr, name: str) -> str | None:
    """The MAC address of ``name``, None if it is not in this namespace."""
    try:
        return get_link(ipr, name).get_attr("IFLA_ADDRESS")
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise


def master_of(ipr, name: str) -> str | None:
    """The name of the bridge ``name`` is plugged into, None if none."""
    master = get_link(ipr, name).get_attr("IFLA_MASTER")
    if not master:
        return None
    return ipr.link("get", index=master)[0].get_attr("IFLA_IFNAME")


def set_mtu(ipr, name: str, mtu: int) -> None:
    ipr.link("set", index=require_index(ipr, name), mtu=mtu)


def set_address(ipr, name: str, mac: str) -> None:
    ipr.link("set", index=require_index(ipr, name), address=mac)


def set_up(ipr, name: str) -> None:
    ipr.link("set", index=require_index(ipr, name), state="up")


def set_master(ipr, name: str, bridge: str) -> None:
    ipr.link("set", index=require_index(ipr, name), master=require_index(ipr, bridge))


def add_veth(ipr, name: str, peer: str) -> None:
    ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer})


def add_bridge(ipr, name: str) -> None:
    """Create bridge ``name`` (up) unless it already exists."""
    if link_index(ipr, name) is None:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as err:
            if err.code != errno.EEXIST:  # a concurrent creator won the race
                raise
    set_up(ipr, name)


def delete_link(ipr, name: str) -> bool:
    """Delete ``name`` if it exists; True if it did. Deleting one end of a veth deletes both."""
    index = link_index(ipr, name)
    if index is None:
        return False
    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return False
        raise
    return True
