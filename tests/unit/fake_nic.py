"""A fake NIC backend for unit tests: VF settings in memory, every call recorded.

It stands in only for the calls that program a VF (no SR-IOV hardware here).
"""

from __future__ import annotations

import dataclasses

from plugin.errors import DeviceError
from plugin.nic.base import (
    VF_SETTING_GROUPS,
    NetdevStatus,
    VfInfo,
    VfRefused,
    VfSettings,
    VfStats,
)

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

    ``calls`` records ("read",) and (step, value), ``targets`` the VF each call
    was given (its PF and netdev names, which the backends act on); a step named in ``fail``
    (or "step:value" for one value only) raises DeviceError (VfRefused for a VF
    setting); ``status`` maps a netdev name to what ``netdev_statuses`` answers
    (IDLE when absent); ``stats`` maps a PF name to what ``vf_stats`` answers (nothing
    when absent, as for a driver that does not report VF traffic).
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
        self.stats: dict[str, dict[int, VfStats]] = {}
        self.stats_reads: list[str] = []  # the PF of each vf_stats call

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
        self.vf_requests.append(
            [step for step, fields in VF_SETTING_GROUPS if _given(settings, fields)]
        )
        for step, fields in VF_SETTING_GROUPS:
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

    def vf_stats(self, pf):
        self.stats_reads.append(pf)
        if "vf_stats" in self.fail:
            raise DeviceError(f"read VF traffic of {pf}: Operation not supported")
        return dict(self.stats.get(pf, {}))


def _given(settings: VfSettings, fields: tuple[str, ...]) -> bool:
    return any(getattr(settings, f) is not None for f in fields)
