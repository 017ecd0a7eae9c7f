"""A fake NIC backend for unit tests: VF settings in memory, every call recorded.

It stands in only for the calls that program a VF (no SR-IOV hardware here).
"""

from __future__ import annotations

import dataclasses

from plugin.errors import DeviceError
from plugin.nic.base import NetdevStatus, VfInfo, VfSettings

FACTORY = VfSettings(
    mac="00:00:00:00:00:00",
    vlan=0,
    qos=0,
    proto="802.1Q",
    spoofchk=True,
    trust=False,
    link_state="auto",
    min_tx_rate=0,
    max_tx_rate=0,
    mtu=1500,
)


class FakeNic:
    """Settings per (PF, VF index), starting at ``initial``.

    ``calls`` records ("read",) and (step, value); a step named in ``fail``
    (or "step:value" for one value only) raises DeviceError; ``status`` maps a
    netdev name to what ``netdev_statuses`` answers (IDLE when absent).
    """

    def __init__(self, initial: VfSettings = FACTORY):
        self.initial = initial
        self.by_vf: dict[tuple[str, int], VfSettings] = {}
        self.calls: list[tuple] = []
        self.fail: set[str] = set()
        self.status: dict[str, NetdevStatus] = {}
        self.addresses: dict[str, str] = {}  # VF netdev -> its own MAC address

    def settings_of(self, vf: VfInfo) -> VfSettings:
        return self.by_vf.get((vf.pf, vf.index), self.initial)

    def _set(self, vf: VfInfo, step: str, value, **fields) -> None:
        self.calls.append((step, value))
        if step in self.fail or f"{step}:{value}" in self.fail:
            raise DeviceError(
                f"set VF {vf.index} of {vf.pf} {step} to {value}: Operation not supported"
            )
        self.by_vf[(vf.pf, vf.index)] = dataclasses.replace(self.settings_of(vf), **fields)

    def read_vf(self, vf):
        self.calls.append(("read",))
        return self.settings_of(vf)

    def set_vlan(self, vf, vlan, qos, proto):
        self._set(vf, "vlan", (vlan, qos, proto), vlan=vlan, qos=qos, proto=proto)

    def set_mac(self, vf, mac):
        self._set(vf, "mac", mac, mac=mac)

    def set_rate(self, vf, min_tx_rate, max_tx_rate):
        rates = (min_tx_rate, max_tx_rate)
        self._set(vf, "rate", rates, min_tx_rate=min_tx_rate, max_tx_rate=max_tx_rate)

    def set_spoofchk(self, vf, on):
        self._set(vf, "spoofchk", on, spoofchk=on)

    def set_trust(self, vf, on):
        self._set(vf, "trust", on, trust=on)

    def set_link_state(self, vf, state):
        self._set(vf, "link_state", state, link_state=state)

    def set_mtu(self, vf, mtu):
        self._set(vf, "mtu", mtu, mtu=mtu)

    def netdev_statuses(self, names):
        return {name: self.status.get(name, NetdevStatus.IDLE) for name in names}

    def netdev_address(self, vf):
        return self.addresses.get(vf.netdev)
