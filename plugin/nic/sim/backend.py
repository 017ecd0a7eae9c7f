"""The NIC backend for the simulated NIC (plugin.nic.sim.device).

It applies VF settings to the simulated fabric instead of sending IFLA_VF_*
through a PF: VLAN chooses the bridge the VF's switch port is plugged into, the
MAC goes on the VF netdev and into the state file, the MTU onto the VF netdev
and its port; spoofchk, trust, rates, link state, QoS and protocol are recorded
in the state file, where ``sim show`` and tests read them back.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from plugin.errors import DeviceError, PluginError
from plugin.nic import netlink, sockios
from plugin.nic.base import MTU_RANGE, NetdevStatus, VfInfo, VfRefused, VfSettings, VfStats
from plugin.nic.errors import vf_error, vf_label
from plugin.nic.names import check_ifname
from plugin.nic.netdevs import HostNetdevs
from plugin.nic.sim import device
from plugin.nic.sim.state import SETTING_NAMES

# What the simulated NIC raises when it cannot apply a setting.
SIM_FAILURES = (PluginError, NetlinkError, OSError, ValueError)


class SimBackend:
    """NicBackend for the simulated NIC whose sysfs root is ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._iproute = netlink.SocketPerThread()
        self._netdevs = HostNetdevs(self._iproute)

    def read_vf(self, vf: VfInfo) -> VfSettings:
        """The recorded settings plus the VF netdev's current MTU (None if not here)."""
        try:
            recorded = device.read_vf(self.root, vf.pf, vf.index)
            mtu = _mtu(recorded["netdev"])
        except SIM_FAILURES as err:
            raise DeviceError(f"read {vf_label(vf)}: {_why(err)}") from err
        return VfSettings(**{k: recorded[k] for k in SETTING_NAMES}, mtu=mtu)

    def set_vf(self, vf: VfInfo, settings: VfSettings) -> None:
        """Apply the given fields in the kernel's order, stopping at the first that fails."""
        given = {
            name: getattr(settings, name)
            for name in SETTING_NAMES
            if getattr(settings, name) is not None
        }
        if not given:
            return
        try:
            device.set_vf(self.root, vf.pf, vf.index, given)
        except SIM_FAILURES as err:
            raise VfRefused(vf, _why(err)) from err

    def set_mtu(self, vf: VfInfo, mtu: int) -> None:
        MTU_RANGE.check("mtu", mtu)
        try:
            device.set_mtu(self.root, vf.pf, vf.index, mtu)
        except SIM_FAILURES as err:
            raise vf_error(vf, "mtu", VfSettings(mtu=mtu), _why(err)) from err

    def netdev_statuses(self, names: Iterable[str]) -> dict[str, NetdevStatus]:
        """As on real VFs: the simulated VF netdevs are real veths of this namespace."""
        return self._netdevs.statuses(names)

    def netdev_address(self, vf: VfInfo) -> str | None:
        if vf.netdev is None:
            return None
        try:
            return sockios.mac(check_ifname(vf.netdev))
        except OSError as err:
            if err.errno == errno.ENODEV:
                return None
            raise DeviceError(f"read address of {vf.netdev}: {err.strerror}") from err

    def vf_stats(self, pf: str) -> dict[int, VfStats]:
        """Each VF's traffic, from its switch port's counters (see ``device.vf_stats``)."""
        try:
            return device.vf_stats(self.root, pf)
        except SIM_FAILURES as err:
            raise DeviceError(f"read VF traffic of {pf}: {_why(err)}") from err


def _mtu(netdev: str) -> int | None:
    """The netdev's MTU (one ioctl), None when it is not in this namespace."""
    try:
        return sockios.mtu(netdev)
    except OSError as err:
        if err.errno == errno.ENODEV:
            return None
        raise


def _why(err: Exception) -> str:
    if isinstance(err, PluginError):
        return err.message
    if isinstance(err, NetlinkError):
        return netlink.strerror(err)
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return str(err)
