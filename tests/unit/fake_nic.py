"""A fake NIC backend for unit tests: VF settings in memory, every call recorded.

It stands in only for the calls that program a VF (no SR-IOV hardware here).
"""

from __future__ import annotations

import dataclasses

from plugin.errors import DeviceError
from plugin.nic.base import NetdevStatus, VfInfo, VfRefused, VfSettings

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


# The VF setting groups in the order rtnetlink applies them from one request.
VF_GROUPS = (
    ("mac", ("mac",)),
    ("vlan", ("vlan", "qos", "proto")),
    ("rate", ("min_tx_rate", "max_tx_rate")),
    ("spoofchk", ("spoofchk",)),
    ("link_state", ("link_state",)),
    ("trust", ("trust",)),
)


class FakeNic:
    """Settings per (PF, VF index), starting at ``initial``.

    ``calls`` records ("read",) and (step, value), ``targets`` the VF each call
    was given (its PF and netdev names, which the backends act on); a step named in ``fail``
    (or "step:value" for one value only) raises DeviceError (VfRefused for a VF
    setting); ``status`` maps a netdev name to what ``netdev_statuses`` answers
    (IDLE when absent).
    """

    def __init__(self, initial: VfSettings = FACTORY):
        self.initial = initial
        self.by_vf: dict[tuple[str, int], VfSettings] = {}
        self.calls: list[tuple] = []
        self.fail: set[str] = set()
        self.status: dict[str, NetdevStatus] = {}
        self.addresses: dict[str, str] = {}  # VF netdev -> its own MAC address
        self.vf_requests: list[list[str]] = []  # the steps each set_vf request carried
        self.targets: list[tuple[str, int, str | None]] = []  # (PF, VF index, VF netdev) per call

    def settings_of(self, vf: VfInfo) -> VfSettings:
        return self.by_vf.get((vf.pf, vf.index), self.initial)

    def _set(self, vf: VfInfo, step: str, value, **fields) -> None:
        self.targets.append((vf.pf, vf.index, vf.netdev))
        self.calls.append((step, value))
        if step in self.fail or f"{step}:{value}" in self.fail:
            raise DeviceError(
                f"set VF {vf.index} of {vf.pf} {step} to {value}: Operation not supported"
            )
        self.by_vf[(vf.pf, vf.index)] = dataclasses.replace(self.settings_of(vf), **fields)

    def read_vf(self, vf):
        self.targets.append((vf.pf, vf.index, vf.netdev))
        self.calls.append(("read",))
        return self.settings_of(vf)

    def set_vf(self, vf, settings):
        """Apply in the kernel's order; a failing step stops the rest, as rtnetlink does."""
        self.targets.append((vf.pf, vf.index, vf.netdev))
        self.vf_requests.append([step for step, fields in VF_GROUPS if _given(settings, fields)])
        for step, fields in VF_GROUPS:
            values = {f: getattr(settings, f) for f in fields if getattr(settings, f) is not None}
            if not values:
                continue
            value = tuple(values.values()) if len(values) > 1 else next(iter(values.values()))
            self.calls.append((step, value))
            if step in self.fail or f"{step}:{value}" in self.fail:
                raise VfRefused(vf, "Operation not supported")
            self.by_vf[(vf.pf, vf.index)] = dataclasses.replace(self.settings_of(vf), **values)

    def set_mtu(self, vf, mtu):
        self._set(vf, "mtu", mtu, mtu=mtu)

    def netdev_statuses(self, names):
        return {name: self.status.get(name, NetdevStatus.IDLE) for name in names}

    def netdev_address(self, vf):
        return self.addresses.get(vf.netdev)


def _given(settings: VfSettings, fields: tuple[str, ...]) -> bool:
    return any(getattr(settings, f) is not None for f in fields)
