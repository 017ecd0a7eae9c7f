"""Small rtnetlink helpers shared by the NIC backends and the simulated NIC.

What one typed ``Rtnl`` call does is called directly; these are what takes
more than one, or reads a failure as an answer (no such link: None). Each
takes an open ``Rtnl`` (the caller owns it: ``with Rtnl() as ipr``,
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
from collections.abc import Callable, Iterator
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


def netdev_status(ipr: Rtnl, name: str) -> NetdevStatus:
    """What this namespace says of netdev ``name``, asked about that netdev alone.

    ABSENT if no such link here; BUSY if up with an IPv4 or a global IPv6
    address (link-local ones come with any up link); else IDLE. One RTM_GETLINK
    for the link, and one address request for that link if it is up: never a
    dump of the namespace, whose links a host with containers counts in hundreds.
    """
    try:
        link = ipr.link_brief(name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return NetdevStatus.ABSENT
        raise
    if not link.flags & IFF_UP:
        return NetdevStatus.IDLE
    used = any(
        addr["family"] == socket.AF_INET
        or (addr["family"] == socket.AF_INET6 and addr["scope"] == RT_SCOPE_UNIVERSE)
        for addr in ipr.addresses(link.index)
    )
    return NetdevStatus.BUSY if used else NetdevStatus.IDLE


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
        return ipr.link(name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise


def master_of(ipr: Rtnl, name: str) -> str | None:
    """The name of the bridge ``name`` is plugged into, None if none."""
    master = ipr.link(name).get_attr("IFLA_MASTER")
    if not master:
        return None
    return ipr.link_at(master).get_attr("IFLA_IFNAME")


def is_up(link: ifinfmsg) -> bool:
    """Whether an RTM_NEWLINK message says the link is administratively up."""
    return bool(link["flags"] & IFF_UP)


def set_master(ipr: Rtnl, name: str, bridge: str) -> None:
    """Plug ``name`` into bridge ``bridge``, both by name."""
    ipr.set_master(name, require_index(ipr, bridge))


def add_bridge(ipr: Rtnl, name: str) -> None:
    """Create bridge ``name`` (up) unless it already exists (EEXIST: made earlier,
    or by a concurrent creator)."""
    try:
        ipr.add_bridge(name)
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            raise
    ipr.set_up(name)


def delete_link(ipr: Rtnl, name: str) -> bool:
    """Delete ``name`` if it exists; True if it did. Deleting one end of a veth deletes both."""
    try:
        ipr.delete(name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return False
        raise
    return True
