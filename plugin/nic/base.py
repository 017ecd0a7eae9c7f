"""Types shared by the sysfs reader and the NIC backends.

A backend is the narrow port through which VFs are programmed: the kernel
backend speaks netlink through the PF (IFLA_VF_*), the simulated backend applies
the same settings to the simulated NIC. Everything above it is shared.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from plugin.errors import DeviceError


@dataclass(frozen=True)
class PfInfo:
    """A physical function as sysfs describes it."""

    name: str  # PF netdev, e.g. "enp1s0f0"
    pci: str  # PCI address, e.g. "0000:3b:00.0"
    totalvfs: int  # sriov_totalvfs
    numvfs: int  # sriov_numvfs
    mtu: int  # /sys/class/net/<pf>/mtu


@dataclass(frozen=True)
class VfInfo:
    """One virtual function of a PF as sysfs describes it."""

    pf: str  # PF netdev name
    index: int  # N of virtfnN
    pci: str  # the VF's PCI address
    netdev: str | None  # VF netdev in this namespace (sysfs net/<name>), None if none
    driver: str | None  # bound driver ("iavf", "mlx5_core", "vfio-pci"), None if unbound


class NetdevStatus(enum.Enum):
    """What the host namespace says about a VF netdev."""

    ABSENT = "absent"  # not in this namespace (moved into a container, or gone)
    IDLE = "idle"  # present and not up with addresses: free for us
    BUSY = "busy"  # present, up and addressed: somebody else uses it


VLAN_PROTOS = ("802.1Q", "802.1ad")
NO_ADMIN_MAC = "00:00:00:00:00:00"  # what a PF reports for a VF with no admin MAC set
LINK_STATES = ("auto", "enable", "disable")


@dataclass(frozen=True)
class VfSettings:
    """The settings of one VF that the plugin programs and restores.

    ``mac`` is the admin MAC set through the PF (00:00:00:00:00:00 when unset),
    ``mtu`` is the MTU of the VF's netdev. A field that the device does not
    report is None and is never changed nor restored.
    """

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    proto: str | None = None  # one of VLAN_PROTOS
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None  # one of LINK_STATES
    min_tx_rate: int | None = None  # Mbit/s
    max_tx_rate: int | None = None  # Mbit/s
    mtu: int | None = None


class VfRefused(DeviceError):
    """The PF refused a request that may carry several VF settings; ``why`` is the errno text.

    The kernel does not say which setting of a request a driver refused, so the
    caller, which knows what it asked, names the setting.
    """

    def __init__(self, vf: VfInfo, why: str):
        super().__init__(f"set VF {vf.index} of {vf.pf}: {why}")
        self.why = why


class NicBackend(Protocol):
    """The calls the plugin makes to program VFs; nothing else."""

    def read_vf(self, vf: VfInfo) -> VfSettings:
        """The VF's settings as the PF reports them, and its netdev's MTU."""
        ...

    def set_vf(self, vf: VfInfo, settings: VfSettings) -> None:
        """Set the non-None fields except ``mtu`` through the PF, in one request if it can.

        Fields are applied in the kernel's order (mac, vlan+qos+proto, rates,
        spoofchk, link_state, trust), stopping at the first one refused, which
        raises VfRefused; vlan, qos and proto come together, and so do the rates.
        """
        ...

    def set_mtu(self, vf: VfInfo, mtu: int) -> None:
        """Set the MTU of the VF's netdev; DeviceError names the VF, netdev and value."""
        ...

    def netdev_statuses(self, names: Iterable[str]) -> dict[str, NetdevStatus]:
        """What the host namespace says about each netdev, read in one go."""
        ...

    def netdev_address(self, vf: VfInfo) -> str | None:
        """The MAC address of the VF's own netdev, None if it is not in this namespace."""
        ...
