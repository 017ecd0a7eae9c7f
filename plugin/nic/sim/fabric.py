"""The simulated NIC's embedded switch: one Linux bridge per VLAN, a switch port per VF.

Each VF is a veth pair: the VF end is the netdev Docker moves into containers,
the peer (the switch port) stays in this namespace, plugged into the bridge of
the VF's VLAN (VLAN 0, untagged, has its own). Two VFs on one VLAN reach each
other; VFs on different VLANs do not. The bridge key is the VLAN id alone (QoS
and protocol are recorded, not enacted).

Several roots may share one switch, as the PFs of several hosts share a
top-of-rack switch: every root on the fabric NAME plugs its ports into NAME's
bridges. Each root keeps switch-port names of its own (from its id and the PF's
PCI bus, so they are deterministic, at most 15 bytes, and differ between two
roots), and a bridge is removed only when no port of any root is plugged into
it. Bridges are made and removed under a lock that every process in the network
namespace sees, whatever root it sees.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from plugin.errors import Conflict
from plugin.nic import netlink, sockios
from plugin.nic.rtnl import Rtnl

if TYPE_CHECKING:
    from plugin.nic.sim.state import PfState

FABRIC_NAME = re.compile(r"[a-z0-9]{1,8}")  # bridge "s<fabric>b<vlan>" stays within 15 bytes
FABRIC_LOCK_TIMEOUT = 30.0


def peer_name(root_id: str, bus: int, index: int) -> str:
    """The switch-side end of VF ``index`` of the PF on ``bus``: "s<root id><bus>p<N>"."""
    return f"s{root_id}{bus:02x}p{index}"


def bridge_name(fabric: str, vlan: int) -> str:
    """The embedded-switch bridge for ``vlan``: "s<fabric>b<vlan>"."""
    return f"s{fabric}b{vlan}"


@contextlib.contextmanager
def fabric_locked(fabric: str) -> Iterator[None]:
    """Hold the lock of ``fabric``'s bridges.

    Processes that share a fabric may each see only their own root (every node's
    plugin has its own sysfs mount), but they share the network namespace the
    bridges live in; an abstract unix socket name is per network namespace, taken
    by one socket at a time, and freed when its holder dies.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + FABRIC_LOCK_TIMEOUT
    try:
        while True:
            try:
                lock.bind(f"\0sriov-sim-fabric-{fabric}")
                break
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                if time.monotonic() > deadline:
                    raise Conflict(
                        f"simulated fabric {fabric} still locked after {FABRIC_LOCK_TIMEOUT}s"
                    ) from None
                time.sleep(0.005)
        yield
    finally:
        lock.close()


def add_ports(ipr: Rtnl, fabric: str, state: PfState) -> None:
    """Make each VF's veth pair at the PF's MTU and plug its port into its VLAN's bridge."""
    for vf in state["vfs"]:
        ipr.add_veth(vf["netdev"], vf["peer"])
        for name in (vf["netdev"], vf["peer"]):
            ipr.set_mtu(name, state["mtu"])
        plug(ipr, fabric, vf["peer"], vf["vlan"])


def plug(ipr: Rtnl, fabric: str, peer: str, vlan: int) -> None:
    """Plug ``peer`` into the bridge of ``vlan`` (made if missing) and bring it up."""
    bridge = bridge_name(fabric, vlan)
    netlink.add_bridge(ipr, bridge)
    netlink.set_master(ipr, peer, bridge)
    ipr.set_up(peer)


def remove_ports(ipr: Rtnl, fabric: str, state: PfState) -> None:
    """Delete each VF's veth pair, then the bridges of ``fabric`` no switch port is plugged into.

    Deleting the port takes the VF end along, wherever it is. Every VF's port
    stays in this namespace, plugged into its VLAN's bridge, so a bridge without
    ports is one no VF of any root on the fabric is on. The caller holds the
    fabric's lock.
    """
    for vf in state["vfs"]:
        netlink.delete_link(ipr, vf["peer"])
        netlink.delete_link(ipr, vf["netdev"])
    prefix = bridge_name(fabric, 0)[:-1]
    links = ipr.get_links()
    masters = {link.get_attr("IFLA_MASTER") for link in links}
    for link in links:
        name = link.get_attr("IFLA_IFNAME")
        ours = name.startswith(prefix) and name[len(prefix) :].isdigit()
        if ours and link["index"] not in masters:
            netlink.delete_link(ipr, name)


def move_port(fabric: str, peer: str, old_vlan: int, vlan: int) -> None:
    """Unplug ``peer`` from the bridge of ``old_vlan`` and plug it into that of ``vlan``.

    Bridges stay while the fabric is used (``destroy`` removes those no VF uses):
    creating and deleting a bridge per move cost tens of milliseconds, a move
    between existing bridges two ioctls (the kernel's own work in them, about
    0.1 ms each, is most of a VLAN change). When ``vlan`` has no bridge yet, or
    the port is not where the state says (a crash between the steps), netlink
    makes the bridge and its set-master takes the port from wherever it is.
    The fabric's lock is held throughout: another root's destroy may remove a
    bridge that has no port for a moment.
    """
    with fabric_locked(fabric):
        try:
            sockios.remove_bridge_port(bridge_name(fabric, old_vlan), peer)
            sockios.add_bridge_port(bridge_name(fabric, vlan), peer)
        except OSError:
            with Rtnl() as ipr:
                plug(ipr, fabric, peer, vlan)
