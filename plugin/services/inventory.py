"""The VF inventory: which VFs a network may use, which are free, leased or unusable, and why.

CreateEndpoint and its error messages, status, metrics and recovery all take the
answer from here, so the rule is written once. It is read afresh for each
request, and what it reads does not grow with the host:

- each PF once in sysfs: for CreateEndpoint its VFs' ``virtfn`` links (index and
  PCI address), a VF's driver and netdev only when that VF is considered; for
  status every VF's;
- which of those VFs are leased in one store query, by the VFs' PCI addresses: a
  PF's netdev name changes (udev rules, a driver reload), a VF's address does not;
- a VF netdev's state asked of that netdev alone (NicBackend.netdev_statuses),
  and for CreateEndpoint only of the candidate about to be leased: a host with a
  few hundred containers has a few hundred veths, which no request reads.

A VF is free when no lease holds it, it is bound to a netdev driver (not
vfio-pci) and its netdev is in the host namespace and not up with addresses
(someone else uses it). The netdev is the one sysfs gives the VF's PCI address
at that moment, never a name remembered from earlier.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugin.errors import PluginError
from plugin.model.options import VfSpans, format_vf_spans, in_vf_spans
from plugin.nic.base import NetdevStatus, PfInfo, VfInfo, VfRef
from plugin.nic.sysfs import LINK_DOWN
from plugin.nic.sysfs import LinkState as PfLinkState

if TYPE_CHECKING:
    from plugin.nic.base import NicBackend
    from plugin.nic.sysfs import Sysfs
    from plugin.state.sqlite import EndpointRow, NetworkPf, NetworkRow, Store

VFIO_DRIVER = "vfio-pci"


class VfState(enum.StrEnum):
    FREE = "free"
    LEASED = "leased"
    UNUSABLE = "unusable"


def driver_reason(vf: VfInfo) -> str | None:
    """Why sysfs alone says ``vf`` cannot be handed out (vfio-pci, no netdev); None if not."""
    if vf.driver == VFIO_DRIVER:
        return "it is bound to vfio-pci"
    if not vf.netdev:
        return "it has no netdev (no network driver bound)"
    return None


def netdev_reason(vf: VfInfo, status: NetdevStatus) -> str | None:
    """Why the state of ``vf``'s netdev keeps it from being handed out; None if it is idle."""
    if status == NetdevStatus.ABSENT:
        return f"its netdev {vf.netdev} is not in the host namespace"
    if status == NetdevStatus.BUSY:
        return f"its netdev {vf.netdev} is up with addresses (in use by someone else)"
    return None


@dataclass(frozen=True)
class PfSlice:
    """What one PF of a network offers an endpoint now: its VFs in range, leases and link.

    VFs are listed by index and PCI address only (one readlink each); the driver
    and netdev of a VF are read when it is considered (Inventory.describe).
    """

    name: str  # the PF's netdev now
    pci: str | None  # the PF's PCI address (None only for a PF recorded by name that is gone)
    vfs: VfSpans | None  # the network's VF spans on this PF (None: every VF)
    link: PfLinkState
    all_vfs: tuple[VfRef, ...]  # every enabled VF of the PF, in or out of the spans
    enabled: tuple[VfRef, ...]  # enabled VFs within the spans
    leased: frozenset[str]  # PCI addresses of this PF's VFs leased by any network
    admin_mac_cleared: frozenset[str]  # PCI addresses of VFs whose admin MAC we cleared

    @property
    def has_link(self) -> bool:
        """Down only when the PF says so; a PF that cannot tell gets the benefit of the doubt."""
        return self.link != LINK_DOWN

    def is_leased(self, vf: VfRef | VfInfo) -> bool:
        return vf.pci in self.leased

    @property
    def unleased(self) -> list[VfRef]:
        """VFs in range that no lease holds, by index: the candidates for an endpoint."""
        return [vf for vf in self.enabled if vf.pci not in self.leased]

    def label(self) -> str:
        """e.g. "enp1s0f0 (VFs 0-3, link up)"."""
        where = f"VFs {format_vf_spans(self.vfs)}, " if self.vfs is not None else ""
        return f"{self.name} ({where}link {self.link})"


@dataclass(frozen=True)
class VfEntry:
    """One VF of a PF in the census (or a lease whose VF is not enabled: ``vf`` None)."""

    vf: VfInfo | None
    state: VfState
    lease: EndpointRow | None = None
    reason: str | None = None  # why an unleased VF is unusable
    netdev: NetdevStatus | str | None = None  # its netdev's status; a str says why unknown


@dataclass(frozen=True)
class PfEntry:
    """One PF in the census: as sysfs describes it (or why it cannot), and each of its VFs."""

    name: str
    networks: list[str]
    info: PfInfo | None
    link: PfLinkState | None
    error: str | None
    vfs: list[VfEntry]

    def count(self, state: VfState) -> int:
        return sum(1 for entry in self.vfs if entry.state == state)


@dataclass(frozen=True)
class Census:
    """Every PF a network uses or a lease is on, and what the store holds, read together."""

    networks: list[NetworkRow]
    pf_names: dict[str, list[str]]  # network id -> its PFs' netdevs now
    endpoints: list[EndpointRow]
    pfs: list[PfEntry]


class Inventory:
    """Reads the VF inventory from sysfs, the store and the NIC backend; holds no state."""

    def __init__(self, store: Store, sysfs: Sysfs, backend: NicBackend) -> None:
        self._store = store
        self._sysfs = sysfs
        self._backend = backend

    def pf_name(self, pf: NetworkPf) -> str:
        """A recorded PF's netdev name now (found by PCI address when it was recorded).

        Only the name: whoever reads the PF next through sysfs checks it is one.
        """
        if pf.pci:
            return self._sysfs.netdev_by_pci(pf.pci)
        return pf.name

    # --- for CreateEndpoint ----------------------------------------------

    def slices(self, network: NetworkRow) -> list[PfSlice]:
        """The network's share of each of its PFs now: one sysfs listing of each PF's VFs,
        and which of them are leased in one store query (no netlink inside a transaction)."""
        read = []
        for pf in network.pfs:
            name = self.pf_name(pf)
            all_vfs = tuple(self._sysfs.virtfns(name))
            pci = pf.pci or self._sysfs.pf(name).pci
            read.append((name, pci, pf.vfs, all_vfs))
        pcis = [vf.pci for *_, vfs in read for vf in vfs]
        with self._store.transaction() as tx:
            leased = tx.leased_among(pcis)
            cleared = tx.admin_mac_cleared_among(pcis)
        return [
            PfSlice(
                name=name,
                pci=pci,
                vfs=spans,
                link=self._sysfs.pf_link(name),
                all_vfs=all_vfs,
                enabled=tuple(vf for vf in all_vfs if in_vf_spans(vf.index, spans)),
                leased=frozenset(vf.pci for vf in all_vfs if vf.pci in leased),
                admin_mac_cleared=frozenset(vf.pci for vf in all_vfs if vf.pci in cleared),
            )
            for name, pci, spans, all_vfs in read
        ]

    def describe(self, vf: VfRef) -> VfInfo:
        """The VF with its driver and netdev as sysfs shows them now."""
        return self._sysfs.describe_vf(vf)

    def unusable_reason(self, vf: VfInfo) -> str | None:
        """Why an unleased VF cannot be handed out now, None if it can: sysfs first, then
        its netdev, asked about alone."""
        reason = driver_reason(vf)
        if reason is not None:
            return reason
        return netdev_reason(vf, self._backend.netdev_statuses([vf.netdev])[vf.netdev])

    def report(self, slices: list[PfSlice]) -> str:
        """Each PF's tally for an error: "pf0 (link up): 4 of 4 leased, 1 unusable (...)"."""
        parts = []
        for pf in slices:
            leased = sum(pf.is_leased(vf) for vf in pf.enabled)
            unusable = sum(
                1 for vf in pf.unleased if self.unusable_reason(self.describe(vf)) is not None
            )
            detail = f"{pf.label()}: {leased} of {len(pf.enabled)} leased"
            if unusable > 0:
                detail += f", {unusable} unusable (vfio-pci, no netdev, or in use by others)"
            parts.append(detail)
        return "; ".join(parts)

    # --- for status, metrics and recovery --------------------------------

    def census(self) -> Census:
        """Every PF of every network and every lease, with each VF's state and why.

        A PF that cannot be read is reported with its error instead of failing the
        whole census: status is what an operator reaches for when something is wrong.
        A lease is placed under the PF whose VF has its PCI address now, else under
        its PF's address, else (leases from before addresses were kept) its PF's name.
        """
        with self._store.transaction() as tx:
            networks = tx.networks()
            endpoints = tx.endpoints()
        order: dict[str, list[str]] = {}  # PF netdev now -> network ids, in network order
        pf_names = {}
        for network in networks:
            names = [self._recorded_name(pf) for pf in network.pfs]
            pf_names[network.id] = names
            for name in names:
                order.setdefault(name, []).append(network.id)
        reads = {name: self._read_pf(name) for name in order}
        placed = self._place(endpoints, reads)
        for ep in endpoints:
            if ep.id not in placed:  # its PF is in no network's list: read it by its name
                if ep.pf not in reads:
                    order[ep.pf] = []
                    reads[ep.pf] = self._read_pf(ep.pf)
                    placed.update(self._place([e for e in endpoints if e.id not in placed], reads))
                placed.setdefault(ep.id, ep.pf)
        pfs = []
        for name, network_ids in order.items():
            leases = [ep for ep in endpoints if placed.get(ep.id) == name]
            pfs.append(self._pf_entry(name, network_ids, reads[name], leases))
        return Census(networks=networks, pf_names=pf_names, endpoints=endpoints, pfs=pfs)

    def _recorded_name(self, pf: NetworkPf) -> str:
        """A recorded PF's netdev now; as recorded if it cannot be found (its entry says why)."""
        try:
            return self.pf_name(pf)
        except PluginError:
            return pf.name or pf.pci or ""

    def _read_pf(self, name: str) -> _PfRead:
        try:
            return _PfRead(self._sysfs.pf(name), self._sysfs.pf_link(name), self._sysfs.vfs(name))
        except PluginError as exc:
            return _PfRead(None, None, [], exc.message)

    @staticmethod
    def _place(endpoints: list[EndpointRow], reads: dict[str, _PfRead]) -> dict[str, str]:
        """Endpoint id -> the PF name it belongs under, for those that one of ``reads`` holds."""
        by_vf = {vf.pci: name for name, read in reads.items() for vf in read.vfs}
        by_pf = {read.info.pci: name for name, read in reads.items() if read.info is not None}
        placed = {}
        for ep in endpoints:
            if ep.pci in by_vf:
                placed[ep.id] = by_vf[ep.pci]
            elif ep.pf_pci is not None and ep.pf_pci in by_pf:
                placed[ep.id] = by_pf[ep.pf_pci]
            elif ep.pf_pci is None and ep.pf in reads:
                placed[ep.id] = ep.pf
        return placed

    def _pf_entry(
        self, name: str, network_ids: list[str], read: _PfRead, leases: list[EndpointRow]
    ) -> PfEntry:
        by_pci = {ep.pci: ep for ep in leases}
        statuses = self._netdev_statuses(read.vfs)
        entries = []
        for vf in read.vfs:
            status = statuses.get(vf.pci)
            lease = by_pci.pop(vf.pci, None)
            if lease is not None:
                entries.append(VfEntry(vf, VfState.LEASED, lease=lease, netdev=status))
                continue
            reason = driver_reason(vf)
            if reason is None:
                reason = status if isinstance(status, str) else netdev_reason(vf, status)
            state = VfState.FREE if reason is None else VfState.UNUSABLE
            entries.append(VfEntry(vf, state, reason=reason, netdev=status))
        # Leases of VFs that are not enabled (sriov_numvfs went down, or the VF is gone).
        entries += [VfEntry(None, VfState.LEASED, lease=ep) for ep in by_pci.values()]
        return PfEntry(name, network_ids, read.info, read.link, read.error, entries)

    def _netdev_statuses(self, vfs: list[VfInfo]) -> dict[str, NetdevStatus | str]:
        """VF PCI address -> its netdev's status, each netdev asked about alone; the error
        message for all of them if the backend cannot say."""
        named = [vf for vf in vfs if vf.netdev]
        try:
            statuses = self._backend.netdev_statuses([vf.netdev for vf in named])
        except PluginError as exc:
            return {vf.pci: exc.message for vf in named}
        return {vf.pci: statuses[vf.netdev] for vf in named}


@dataclass(frozen=True)
class _PfRead:
    """One read of a PF in sysfs: what it is, its link and its enabled VFs, or why not."""

    info: PfInfo | None
    link: PfLinkState | None
    vfs: list[VfInfo]
    error: str | None = None
