"""The NIC backend for the simulated NIC (plugin.nic.simnic).

It applies VF settings to the simulated fabric instead of sending IFLA_VF_*
through a PF: VLAN chooses the bridge the VF's switch port is plugged into, the
MAC goes on the VF netdev and into the state file, the MTU onto the VF netdev
and its port; spoofchk, trust, rates, link state, QoS and protocol are recorded
in the state file, where ``sim show`` and tests read them back.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyroute2.netlink.exceptions import NetlinkError

from plugin.errors import DeviceError, PluginError
from plugin.nic import netlink, simnic
from plugin.nic.base import NetdevStatus, VfInfo, VfSettings
from plugin.nic.netdevs import HostNetdevs
from plugin.nic.program import check_settings, vf_error, vf_label
from plugin.nic.sysfs import Sysfs


class SimBackend:
    """NicBackend for the simulated NIC whose sysfs root is ``sysfs.root``."""

    def __init__(self, sysfs: Sysfs):
        self.sysfs = sysfs
        self.root = sysfs.root
        self._iproute = netlink.SocketPerThread()
        self._netdevs = HostNetdevs(self._iproute)

    def read_vf(self, vf: VfInfo) -> VfSettings:
        """The recorded settings plus the VF netdev's current MTU (None if not here)."""
        try:
            recorded = simnic.read_vf(self.root, vf.pf, vf.index)
            with self._iproute() as ipr:
                mtu = netlink.get_mtu(ipr, recorded["netdev"])
        except PluginError as err:
            raise DeviceError(f"read {vf_label(vf)}: {err.message}") from err
        except (NetlinkError, OSError, ValueError) as err:
            raise DeviceError(f"read {vf_label(vf)}: {_why(err)}") from err
        return VfSettings(**{k: recorded[k] for k in simnic.SETTING_NAMES}, mtu=mtu)

    def set_vlan(self, vf: VfInfo, vlan: int, qos: int, proto: str) -> None:
        values = {"vlan": vlan, "qos": qos, "proto": proto}
        self._apply(vf, "vlan", values, simnic.set_vlan, vlan, qos, proto)

    def set_mac(self, vf: VfInfo, mac: str) -> None:
        self._apply(vf, "mac", {"mac": mac}, simnic.set_mac, mac.lower())

    def set_rate(self, vf: VfInfo, min_tx_rate: int, max_tx_rate: int) -> None:
        self._record(vf, "rate", {"min_tx_rate": min_tx_rate, "max_tx_rate": max_tx_rate})

    def set_spoofchk(self, vf: VfInfo, on: bool) -> None:
        self._record(vf, "spoofchk", {"spoofchk": on})

    def set_trust(self, vf: VfInfo, on: bool) -> None:
        self._record(vf, "trust", {"trust": on})

    def set_link_state(self, vf: VfInfo, state: str) -> None:
        self._record(vf, "link_state", {"link_state": state})

    def set_mtu(self, vf: VfInfo, mtu: int) -> None:
        self._apply(vf, "mtu", {"mtu": mtu}, simnic.set_mtu, mtu)

    def netdev_statuses(self, names: Iterable[str]) -> dict[str, NetdevStatus]:
        return self._netdevs.statuses(names)

    def netdev_address(self, vf: VfInfo) -> str | None:
        return self._netdevs.address(vf)

    def _record(self, vf: VfInfo, step: str, values: dict) -> None:
        self._apply(vf, step, values, simnic.record, **values)

    def _apply(self, vf: VfInfo, step: str, values: dict, action, *args, **kwargs) -> None:
        """Check ``values``, then run ``action(root, pf, index, ...)``; errors name the VF."""
        check_settings(VfSettings(**values))
        try:
            action(self.root, vf.pf, vf.index, *args, **kwargs)
        except PluginError as err:
            raise vf_error(vf, step, values, err.message) from err
        except (NetlinkError, OSError, ValueError) as err:
            raise vf_error(vf, step, values, _why(err)) from err


def _why(err: Exception) -> str:
    if isinstance(err, NetlinkError):
        return netlink.strerror(err)
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return str(err)
