"""The NIC backend for real SR-IOV hardware: VF settings through the PF over netlink.

Settings go into IFLA_VFINFO_LIST of an RTM_SETLINK on the PF
(``ipr.link("set", ifname=<pf>, vf={...})``); they are read back from an
RTM_GETLINK with ext_mask=1 (RTEXT_FILTER_VF). Only the MTU is set on the VF's
own netdev.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from plugin.errors import DeviceError
from plugin.nic import netlink
from plugin.nic.base import (
    MTU_RANGE,
    NO_ADMIN_MAC,
    VF_STATS_FIELDS,
    NetdevStatus,
    VfInfo,
    VfLinkState,
    VfRefused,
    VfSettings,
    VfStats,
    VlanProto,
)
from plugin.nic.errors import vf_error, vf_label
from plugin.nic.names import check_ifname
from plugin.nic.netdevs import HostNetdevs
from plugin.nic.pyroute2_fixes import pad_vlan_info_to_kernel_size
from plugin.nic.rtnl import Rtnl

if TYPE_CHECKING:
    from pyroute2.netlink import nla_base

RTEXT_FILTER_VF = 1
ETHERTYPES = {VlanProto.DOT1Q: 0x8100, VlanProto.DOT1AD: 0x88A8}  # ETH_P_8021Q, ETH_P_8021AD
PROTOS = {ethertype: proto for proto, ethertype in ETHERTYPES.items()}
LINK_STATES = tuple(VfLinkState)  # IFLA_VF_LINK_STATE_AUTO=0, _ENABLE=1, _DISABLE=2
NOT_REPORTED = 0xFFFFFFFF  # the kernel's -1 for spoofchk/trust a driver does not report

pad_vlan_info_to_kernel_size()


class KernelBackend:
    """NicBackend for real PFs; ``iproute_factory`` opens the netlink sockets (``Rtnl``)."""

    def __init__(self, iproute_factory: Callable[[], Rtnl] = Rtnl) -> None:
        self._iproute = netlink.SocketPerThread(iproute_factory)
        self._netdevs = HostNetdevs(self._iproute)

    def read_vf(self, vf: VfInfo) -> VfSettings:
        """The VF's settings as the PF reports them, plus its netdev's MTU."""
        try:
            with self._iproute() as ipr:
                pf = ipr.link("get", ifname=vf.pf, ext_mask=RTEXT_FILTER_VF)[0]
                mtu = netlink.get_mtu(ipr, vf.netdev) if vf.netdev else None
        except NetlinkError as err:
            raise DeviceError(f"read {vf_label(vf)}: {netlink.strerror(err)}") from err
        info = _vf_info(pf, vf.index)
        if info is None:
            raise DeviceError(f"read {vf_label(vf)}: {vf.pf} reports no VF {vf.index}")
        return _settings(info, mtu)

    def set_vf(self, vf: VfInfo, settings: VfSettings) -> None:
        """One RTM_SETLINK on the PF carrying every given VF attribute for ``vf.index``.

        A new admin MAC is then made the VF netdev's own address too
        (``_adopt_admin_mac``); if the netdev does not take it, the admin MAC is
        put back as it was and the VF refused.
        """
        spec = _vf_spec(vf.index, settings)
        adopt = settings.mac not in (None, NO_ADMIN_MAC) and vf.netdev is not None
        previous = self.read_vf(vf).mac if adopt else None
        try:
            with self._iproute() as ipr:
                ipr.link("set", ifname=check_ifname(vf.pf, "pf_iface"), vf=spec)
                if adopt:
                    self._adopt_admin_mac(ipr, vf, settings.mac, previous)
        except NetlinkError as err:
            raise VfRefused(vf, netlink.strerror(err)) from err

    @staticmethod
    def _adopt_admin_mac(ipr: Rtnl, vf: VfInfo, mac: str, previous: str | None) -> None:
        """Leave the VF netdev with address ``mac``, the admin MAC just set, or undo that.

        Docker sets the endpoint's MAC (the admin MAC we answered) on the netdev
        inside the container after Join. Once an admin MAC is set, igb refuses
        every MAC change an untrusted VF asks for, even to that MAC, and igbvf
        then succeeds only if the address is the one the PF gave it at its last
        reset: a netdev still carrying an older MAC failed Docker with
        EADDRNOTAVAIL ("VF N attempted to override administratively set MAC
        address"), and a reused VF never started a container. igbvf resets, and
        takes the admin MAC, when its link goes down: cycle the link, keeping
        its up/down state. A driver that does not reset so gets the address set
        on the netdev here, as Docker would: a refusal then fails the endpoint,
        naming the VF, instead of failing inside the container.
        """
        netdev = check_ifname(vf.netdev)
        try:
            link = netlink.get_link(ipr, netdev)
            if link.get_attr("IFLA_ADDRESS") == mac:
                return
            first, second = (
                (netlink.set_down, netlink.set_up)
                if netlink.is_up(link)
                else (netlink.set_up, netlink.set_down)
            )
            first(ipr, netdev)
            second(ipr, netdev)
            if netlink.get_link(ipr, netdev).get_attr("IFLA_ADDRESS") != mac:
                netlink.set_address(ipr, netdev, mac)
        except NetlinkError as err:
            if err.code == errno.ENODEV:  # not in this namespace: no netdev to carry it
                return
            ipr.link("set", ifname=vf.pf, vf={"vf": vf.index, "mac": previous})
            why = f"{netdev} does not take it: {netlink.strerror(err)}"
            raise VfRefused(vf, why) from err

    def set_mtu(self, vf: VfInfo, mtu: int) -> None:
        MTU_RANGE.check("mtu", mtu)
        if vf.netdev is None:
            raise vf_error(vf, "mtu", VfSettings(mtu=mtu), "the VF has no netdev")
        try:
            with self._iproute() as ipr:
                netlink.set_mtu(ipr, check_ifname(vf.netdev), mtu)
        except NetlinkError as err:
            why = f"{vf.netdev}: {netlink.strerror(err)}"
            raise vf_error(vf, "mtu", VfSettings(mtu=mtu), why) from err

    def netdev_statuses(self, names: Iterable[str]) -> dict[str, NetdevStatus]:
        return self._netdevs.statuses(names)

    def netdev_address(self, vf: VfInfo) -> str | None:
        return self._netdevs.address(vf)

    def vf_stats(self, pf: str) -> dict[int, VfStats]:
        """IFLA_VF_STATS of every VF, from the one RTM_GETLINK of the PF that lists its VFs."""
        try:
            with self._iproute() as ipr:
                msg = ipr.link("get", ifname=check_ifname(pf, "pf_iface"), ext_mask=RTEXT_FILTER_VF)
        except NetlinkError as err:
            raise DeviceError(f"read VF traffic of {pf}: {netlink.strerror(err)}") from err
        return vf_stats_of(msg[0])


def vf_stats_of(pf_msg: ifinfmsg) -> dict[int, VfStats]:
    """Each VF's IFLA_VF_STATS in an RTM_NEWLINK of the PF, by VF index; {} when not reported.

    The kernel sends IFLA_VF_STATS for every VF, zeros when the PF's driver has
    no ``ndo_get_vf_stats`` (igb, for one): every counter of every VF at 0 is
    read as "not reported". A PF whose VFs have passed no packet yet reads the
    same, until the first one does.
    """
    vflist = pf_msg.get_attr("IFLA_VFINFO_LIST")
    stats: dict[int, VfStats] = {}
    for info in [] if vflist is None else vflist.get_attrs("IFLA_VF_INFO"):
        mac = info.get_attr("IFLA_VF_MAC")
        counters = info.get_attr("IFLA_VF_STATS")
        if mac is None or counters is None:
            continue
        stats[mac["vf"]] = VfStats(
            **{name: counters.get_attr(f"IFLA_VF_STATS_{name.upper()}") for name in VF_STATS_FIELDS}
        )
    if not any(any(s.reported().values()) for s in stats.values()):
        return {}
    return stats


def _vf_spec(index: int, s: VfSettings) -> dict:
    """pyroute2's ``vf=`` argument for the non-None VF fields of ``s`` (the MTU is not one)."""
    spec: dict = {"vf": index}
    if s.mac is not None:
        spec["mac"] = s.mac
    if s.vlan is not None:
        if s.proto == VlanProto.DOT1AD:  # only IFLA_VF_VLAN_LIST carries the protocol
            spec["vlan"] = [{"vlan": s.vlan, "qos": s.qos, "proto": ETHERTYPES[s.proto]}]
        else:  # the classic attribute, which every driver takes
            spec["vlan"] = {"vlan": s.vlan, "qos": s.qos}
    if s.max_tx_rate is not None:
        spec["rate"] = {"min_tx_rate": s.min_tx_rate, "max_tx_rate": s.max_tx_rate}
    if s.spoofchk is not None:
        spec["spoofchk"] = int(s.spoofchk)
    if s.link_state is not None:
        spec["link_state"] = LINK_STATES.index(s.link_state)
    if s.trust is not None:
        spec["trust"] = int(s.trust)
    return spec


def _vf_info(pf_msg: ifinfmsg, index: int) -> nla_base | None:
    """The IFLA_VF_INFO of VF ``index`` in an RTM_NEWLINK of the PF, None if absent."""
    vflist = pf_msg.get_attr("IFLA_VFINFO_LIST")
    if vflist is None:
        return None
    for info in vflist.get_attrs("IFLA_VF_INFO"):
        mac = info.get_attr("IFLA_VF_MAC")
        if mac is not None and mac["vf"] == index:
            return info
    return None


def _settings(info: nla_base, mtu: int | None) -> VfSettings:
    vlan = info.get_attr("IFLA_VF_VLAN")
    rate = info.get_attr("IFLA_VF_RATE")
    link_state = _field(info, "IFLA_VF_LINK_STATE", "link_state")
    return VfSettings(
        mac=info.get_attr("IFLA_VF_MAC")["mac"],
        vlan=None if vlan is None else vlan["vlan"],
        qos=None if vlan is None else vlan["qos"],
        proto=None if vlan is None else _proto(info),
        spoofchk=_flag(info, "IFLA_VF_SPOOFCHK", "spoofchk"),
        trust=_flag(info, "IFLA_VF_TRUST", "trust"),
        link_state=LINK_STATES[link_state] if link_state in range(len(LINK_STATES)) else None,
        min_tx_rate=None if rate is None else rate["min_tx_rate"],
        max_tx_rate=None if rate is None else rate["max_tx_rate"],
        mtu=mtu,
    )


def _proto(info: nla_base) -> VlanProto | None:
    """The VLAN protocol from IFLA_VF_VLAN_LIST; 802.1Q when the kernel sends no list."""
    vlist = info.get_attr("IFLA_VF_VLAN_LIST")
    entries = [] if vlist is None else vlist.get_attrs("IFLA_VF_VLAN_INFO")
    if not entries:
        return VlanProto.DOT1Q
    return PROTOS.get(entries[0]["proto"])


def _field(info: nla_base, attr: str, key: str) -> int | None:
    value = info.get_attr(attr)
    return None if value is None else value[key]


def _flag(info: nla_base, attr: str, key: str) -> bool | None:
    value = _field(info, attr, key)
    return None if value is None or value == NOT_REPORTED else bool(value)
