"""What the host namespace says about VF netdevs: the same for every backend.

A VF netdev is a real netdev whichever backend programs the VF (a real VF's,
or a simulated VF's veth), so both backends read it through this, and ask the
kernel about each netdev by its name (the one sysfs gives the VF now), never
for every link of the host: that cost grows with each container's veth.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyroute2.netlink.exceptions import NetlinkError

from plugin.errors import DeviceError
from plugin.nic import netlink
from plugin.nic.base import NetdevStatus, VfInfo
from plugin.nic.names import check_ifname


class HostNetdevs:
    """Reads VF netdevs in this namespace over the given per-thread netlink sockets."""

    def __init__(self, sockets: netlink.SocketPerThread) -> None:
        self._sockets = sockets

    def statuses(self, names: Iterable[str]) -> dict[str, NetdevStatus]:
        """Each netdev's status, asked about that netdev alone (netlink.netdev_status)."""
        names = [check_ifname(name) for name in names]
        statuses = {}
        with self._sockets() as ipr:
            for name in names:
                try:
                    statuses[name] = netlink.netdev_status(ipr, name)
                except NetlinkError as err:
                    why = netlink.strerror(err)
                    raise DeviceError(f"read status of {name}: {why}") from err
        return statuses

    def address(self, vf: VfInfo) -> str | None:
        if vf.netdev is None:
            return None
        try:
            with self._sockets() as ipr:
                return netlink.get_address(ipr, check_ifname(vf.netdev))
        except NetlinkError as err:
            raise DeviceError(f"read address of {vf.netdev}: {netlink.strerror(err)}") from err
