"""Small rtnetlink helpers shared by the NIC backends and the simulated NIC.

Each takes an open ``Rtnl`` (the caller owns it: ``with Rtnl() as ipr``,
or the backends' ``SocketPerThread``) and link names that have already passed
names.check_ifname. Failures are pyroute2 ``NetlinkError``s; a link that does
not exist in this network namespace is ``NetlinkError(ENODEV)``, so callers
handle both alike and turn them into messages with ``strerror``. Requests name
the link (IFLA_IFNAME) and the kernel finds it: one round trip each, no lookup.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pyroute2.netlink.exceptions import NetlinkError

from plugin.nic.base import NetdevStatus
from plugin.nic.rtnl import Rtnl
from plugin.nic.sockios import IFF_UP

if TYPE_CHECKING:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

RT_SCOPE_UNIVERSE = 0


class SocketPerThread:
    """One Rtnl per thread, opened on first use and kept open.

    waitress serves requests from a fixed pool of threads, so each thread keeps
    its own socket (an Rtnl is not shared between threads) instead of paying
    three system calls per request for a new one. A socket that failed below
    netlink (OSError) is closed and replaced.
    """

    def __init__(self, factory: Callable[[], Rtnl] = Rtnl) -> None:
        self._factory = factory
        self._local = threading.local()

    @contextmanager
    def __call__(self) -> Iterator[Rtnl]:
        ipr = getattr(self._local, "ipr", None)
        if ipr is None:
            ipr = self._local.ipr = self._factory()
        try:
            yield ipr
        except OSError:
            self._local.ipr = None
            ipr.close()
            raise


def strerror(err: NetlinkError) -> str:
    """The errno text of a netlink failure ("Operation not supported"); for one
    without an errno (a dump that never settled) its message."""
    if err.code > 0:
        return os.strerror(err.code)
    return str(err.args[1]) if len(err.args) > 1 and err.args[1] else str(err)


def link_index(ipr: Rtnl, name: str) -> int | None:
    """The ifindex of ``name`` in this namespace, None if there is none."""
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def require_index(ipr: Rtnl, name: str) -> int:
    index = link_index(ipr, name)
    if index is None:
        raise NetlinkError(errno.ENODEV, f"no link {name}")
    return index


def get_link(ipr: Rtnl, name: str) -> ifinfmsg:
    """The RTM_NEWLINK message of ``name`` (the kernel looks it up by name: one
    round trip); NetlinkError(ENODEV) if absent."""
    return ipr.link("get", ifname=name)[0]


def netdev_statuses(ipr: Rtnl, names: Iterable[str]) -> dict[str, NetdevStatus]:
    """Each name's status from one link dump (and one address dump if any is up).

    ABSENT if no such link here; BUSY if up with an IPv4 or global IPv6
    address; else IDLE.
    """
    wanted = set(names)
    found = {}
    for link in ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        if name in wanted:
            found[name] = link
    up = {link["index"] for link in found.values() if link["flags"] & IFF_UP}
    used = _indexes_with_used_address(ipr) if up else set()
    statuses = dict.fromkeys(wanted, NetdevStatus.ABSENT)
    for name, link in found.items():
        busy = link["index"] in up and link["index"] in used
        statuses[name] = NetdevStatus.BUSY if busy else NetdevStatus.IDLE
    return statuses


def _indexes_with_used_address(ipr: Rtnl) -> set[int]:
    """Links with an IPv4 or a global IPv6 address (link-local ones come with any up link)."""
    return {
        addr["index"]
        for addr in ipr.get_addr()
        if addr["family"] == socket.AF_INET
        or (addr["family"] == socket.AF_INET6 and addr["scope"] == RT_SCOPE_UNIVERSE)
    }


def get_mtu(ipr: Rtnl, name: str) -> int | None:
    """The MTU of ``name``, None if it is not in this namespace."""
    link = _link_if_present(ipr, name)
    return None if link is None else link.get_attr("IFLA_MTU")


def get_address(ipr: Rtnl, name: str) -> str | None:
    """The MAC address of ``name``, None if it is not in this namespace."""
    link = _link_if_present(ipr, name)
    return None if link is None else link.get_attr("IFLA_ADDRESS")


def _link_if_present(ipr: Rtnl, name: str) -> ifinfmsg | None:
    try:
        return get_link(ipr, name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise


def master_of(ipr: Rtnl, name: str) -> str | None:
    """The name of the bridge ``name`` is plugged into, None if none."""
    master = get_link(ipr, name).get_attr("IFLA_MASTER")
    if not master:
        return None
    return ipr.link("get", index=master)[0].get_attr("IFLA_IFNAME")


def set_mtu(ipr: Rtnl, name: str, mtu: int) -> None:
    ipr.link("set", ifname=name, mtu=mtu)


def set_address(ipr: Rtnl, name: str, mac: str) -> None:
    ipr.link("set", ifname=name, address=mac)


def set_up(ipr: Rtnl, name: str) -> None:
    ipr.link("set", ifname=name, state="up")


def set_down(ipr: Rtnl, name: str) -> None:
    ipr.link("set", ifname=name, state="down")


def is_up(link: ifinfmsg) -> bool:
    """Whether an RTM_NEWLINK message says the link is administratively up."""
    return bool(link["flags"] & IFF_UP)


def set_master(ipr: Rtnl, name: str, bridge: str) -> None:
    ipr.link("set", ifname=name, master=require_index(ipr, bridge))


def add_veth(ipr: Rtnl, name: str, peer: str) -> None:
    ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer})


def add_bridge(ipr: Rtnl, name: str) -> None:
    """Create bridge ``name`` (up) unless it already exists (EEXIST: made earlier,
    or by a concurrent creator)."""
    try:
        ipr.link("add", ifname=name, kind="bridge")
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            raise
    set_up(ipr, name)


def delete_link(ipr: Rtnl, name: str) -> bool:
    """Delete ``name`` if it exists; True if it did. Deleting one end of a veth deletes both."""
    try:
        ipr.link("del", ifname=name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return False
        raise
    return True
