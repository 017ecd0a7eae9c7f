"""Types shared by the sysfs reader and the NIC backends, and the rules of VF settings.

A backend is the narrow port through which VFs are programmed: the kernel
backend speaks netlink through the PF (IFLA_VF_*), the simulated backend applies
the same settings to the simulated NIC. Everything above it is shared.

What a VF can be given (VLAN, QoS and rate ranges, the VLAN protocols and link
states, MAC rules) is written here once: ``VfSettings`` checks itself when built,
and the option parser builds its messages from the same constants.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Protocol, TypeVar

from plugin.errors import DeviceError, InvalidRequest

E = TypeVar("E", bound=enum.Enum)


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


@dataclass(frozen=True)
class VfStats:
    """One VF's traffic counters as its PF reports them (IFLA_VF_STATS), since the VF was made.

    Directions are the VF's own: ``rx`` is what the VF received from the NIC's
    switch, ``tx`` what it sent into it. ``broadcast`` and ``multicast`` count
    received packets. A counter the device does not report is None (the simulated
    NIC has no broadcast or multicast counts per VF; kernels before 4.20 send no
    dropped counts).
    """

    rx_packets: int | None = None
    tx_packets: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    broadcast: int | None = None
    multicast: int | None = None
    rx_dropped: int | None = None
    tx_dropped: int | None = None

    def reported(self) -> dict[str, int]:
        """The counters the device reports, by name."""
        values = {name: getattr(self, name) for name in VF_STATS_FIELDS}
        return {name: value for name, value in values.items() if value is not None}


VF_STATS_FIELDS = tuple(f.name for f in fields(VfStats))


class NetdevStatus(enum.Enum):
    """What the host namespace says about a VF netdev."""

    ABSENT = "absent"  # not in this namespace (moved into a container, or gone)
    IDLE = "idle"  # present and not up with addresses: free for us
    BUSY = "busy"  # present, up and addressed: somebody else uses it


class VlanProto(enum.StrEnum):
    """The VLAN tag protocols a VF can be given, spelled as ``ip link`` and users spell them."""

    DOT1Q = "802.1Q"
    DOT1AD = "802.1ad"


class VfLinkState(enum.StrEnum):
    """A VF's administrative link state; the order is the kernel's (IFLA_VF_LINK_STATE_*)."""

    AUTO = "auto"
    ENABLE = "enable"
    DISABLE = "disable"


@dataclass(frozen=True)
class Range:
    """The whole numbers a VF setting can take, both ends included."""

    low: int
    high: int

    def check(self, name: str, value: object) -> None:
        """InvalidRequest "vlan 4095 out of range 0-4094" for anything else."""
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not self.low <= value <= self.high
        ):
            raise InvalidRequest(f"{name} {value!r} out of range {self}")

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


VLAN_RANGE = Range(0, 4094)  # 0 is untagged; 4095 is reserved
QOS_RANGE = Range(0, 7)  # the 3-bit priority (PCP) of the tag
RATE_RANGE = Range(0, 2**32 - 1)  # IFLA_VF_RATE carries u32 Mbit/s; max 0 means no cap
MTU_RANGE = Range(68, 65535)  # ETH_MIN_MTU to ETH_MAX_MTU: no Ethernet netdev goes beyond
RANGES = {
    "vlan": VLAN_RANGE,
    "qos": QOS_RANGE,
    "min_tx_rate": RATE_RANGE,
    "max_tx_rate": RATE_RANGE,
    "mtu": MTU_RANGE,
}

# The VF settings a PF takes in one request, as the groups the device takes together, in
# the order rtnetlink applies them (do_setvfinfo: IFLA_VF_MAC, _VLAN_LIST, _RATE, _SPOOFCHK,
# _LINK_STATE, _TRUST); it stops at the first one the driver refuses. Every backend, the
# programming order (plugin.nic.program) and the test fake follow this one list.
VF_SETTING_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mac", ("mac",)),
    ("vlan", ("vlan", "qos", "proto")),
    ("rate", ("min_tx_rate", "max_tx_rate")),
    ("spoofchk", ("spoofchk",)),
    ("link_state", ("link_state",)),
    ("trust", ("trust",)),
)

NO_ADMIN_MAC = "00:00:00:00:00:00"  # what a PF reports for a VF with no admin MAC set
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def is_mac(text: str) -> bool:
    """Whether ``text`` (lower case) is a MAC address written as six ':'-separated octets."""
    return _MAC.fullmatch(text) is not None


def is_multicast(octet: str) -> bool:
    """Whether a MAC address starting with the hex ``octet`` is multicast (its low bit set)."""
    return bool(int(octet[:2], 16) & 0x01)


@dataclass(frozen=True)
class VfSettings:
    """The settings of one VF that the plugin programs and restores.

    ``mac`` is the admin MAC set through the PF (NO_ADMIN_MAC when unset),
    ``mtu`` is the MTU of the VF's netdev. A field that the device does not
    report is None and is never changed nor restored. Both rates are given, or
    neither (the one not given is 0). The value checks itself
    when built: a VfSettings holds only what some device could accept, so
    nothing built from it needs checking again.
    """

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    proto: VlanProto | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: VfLinkState | None = None
    min_tx_rate: int | None = None  # Mbit/s
    max_tx_rate: int | None = None  # Mbit/s
    mtu: int | None = None

    def __post_init__(self) -> None:
        if (self.min_tx_rate is None) != (self.max_tx_rate is None):
            # The device takes both rates in one attribute (IFLA_VF_RATE): the one not
            # given is 0 (no guarantee, no cap).
            object.__setattr__(self, "min_tx_rate", self.min_tx_rate or 0)
            object.__setattr__(self, "max_tx_rate", self.max_tx_rate or 0)
        for name, allowed in RANGES.items():
            if getattr(self, name) is not None:
                allowed.check(name, getattr(self, name))
        if self.proto is not None:
            object.__setattr__(self, "proto", _member(VlanProto, "vlan proto", self.proto))
        if self.link_state is not None:
            state = _member(VfLinkState, "link_state", self.link_state)
            object.__setattr__(self, "link_state", state)
        for name in ("spoofchk", "trust"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise InvalidRequest(f"{name} {getattr(self, name)!r} is not true or false")
        if self.mac is not None:
            object.__setattr__(self, "mac", vf_mac(self.mac))
        if self.max_tx_rate and self.min_tx_rate and self.min_tx_rate > self.max_tx_rate:
            raise InvalidRequest(
                f"min_tx_rate {self.min_tx_rate} is above max_tx_rate {self.max_tx_rate} "
                "(Mbit/s; use max_tx_rate 0 for no cap)"
            )

    def fields_set(self) -> tuple[str, ...]:
        """The names of the fields that are set (not None), in field order."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def only(self, names: Iterable[str]) -> VfSettings:
        """Only the fields named in ``names``; the others None."""
        return VfSettings(**{name: getattr(self, name) for name in names})

    def filled_from(self, base: VfSettings) -> VfSettings:
        """This value, with the fields it leaves unset taken from ``base``."""
        return replace(base, **{name: getattr(self, name) for name in self.fields_set()})


def merge_settings(parts: Iterable[VfSettings]) -> VfSettings:
    """One value with every part's set fields, later parts winning."""
    result = VfSettings()
    for part in parts:
        result = part.filled_from(result)
    return result


def _member(kind: type[E], name: str, value: object) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(kind)
        raise InvalidRequest(f"{name} {value!r} is not one of {allowed}") from None


def vf_mac(value: object, name: str = "mac") -> str:
    """``value`` as a MAC a PF can give a VF, in lower case: six octets, unicast.

    NO_ADMIN_MAC passes: in VfSettings it means "no admin MAC".
    """
    mac = value.strip().lower() if isinstance(value, str) else ""
    if not is_mac(mac):
        raise InvalidRequest(f"{name} {value!r} is not of the form 02:42:ac:11:00:02")
    if is_multicast(mac):
        raise InvalidRequest(f"{name} {value} is a multicast address; a VF needs a unicast one")
    return mac


class VfRefused(DeviceError):
    """The PF refused a request that may carry several VF settings; ``why`` is the errno text.

    The kernel does not say which setting of a request a driver refused, so the
    caller, which knows what it asked, names the setting.
    """

    def __init__(self, vf: VfInfo, why: str) -> None:
        super().__init__(f"set VF {vf.index} of {vf.pf}: {why}")
        self.why = why


class NicBackend(Protocol):
    """The calls the plugin makes to program VFs; nothing else."""

    def read_vf(self, vf: VfInfo) -> VfSettings:
        """The VF's settings as the PF reports them, and its netdev's MTU."""
        ...

    def set_vf(self, vf: VfInfo, settings: VfSettings) -> None:
        """Set the non-None fields except ``mtu`` through the PF, in one request if it can.

        Fields are applied in the kernel's order (``VF_SETTING_GROUPS``),
        stopping at the first one refused, which raises VfRefused; vlan, qos and
        proto come together, and so do the rates.
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

    def vf_stats(self, pf: str) -> dict[int, VfStats]:
        """Every VF's traffic counters by VF index, from one request to the PF.

        Empty when the PF's driver does not report VF traffic; DeviceError names
        the PF when it cannot be asked.
        """
        ...
