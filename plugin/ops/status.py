"""Everything the plugin holds, gathered for people (``python -m plugin status``) and metrics.

The view joins three sources: the store (networks, leases, pools), sysfs (PFs
and their VFs) and the NIC backend (where each VF netdev is). A PF that cannot
be read is reported with its error instead of failing the whole view, because
status is what an operator reaches for when something is wrong.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from plugin.errors import PluginError
from plugin.model.networks import network_settings
from plugin.nic.base import NetdevStatus, VfInfo, VfSettings, VfStats
from plugin.services.ipam import usable_range

if TYPE_CHECKING:
    from plugin.model.ipam import PoolRow
    from plugin.model.leases import EndpointRow
    from plugin.model.networks import NetworkPf, NetworkRow
    from plugin.nic.base import NicBackend
    from plugin.nic.sysfs import Sysfs
    from plugin.services.networks import NetworkService
    from plugin.state.sqlite import SqliteTransaction, Store

# Where a VF netdev is, as status shows it.
WHERE = {
    NetdevStatus.ABSENT: "elsewhere",  # not in the host namespace: in a container, or gone
    NetdevStatus.IDLE: "host",
    NetdevStatus.BUSY: "host (up with addresses)",
}


class StatusService:
    """Builds the status view; knows nothing of HTTP."""

    def __init__(
        self, store: Store, sysfs: Sysfs, backend: NicBackend, network: NetworkService
    ) -> None:
        self._store = store
        self._sysfs = sysfs
        self._backend = backend
        self._network = network

    def status(self) -> dict:
        """{"pfs": [...], "networks": [...], "pools": [...]}: see README "Status"."""
        with self._store.transaction() as tx:
            networks = tx.networks()
            endpoints = tx.endpoints()
            pools = [_pool_view(tx, pool) for pool in tx.pools()]
        by_id = {network.id: network for network in networks}
        pf_networks: dict[str, list[str]] = {}  # PF netdev (as it is now) -> network ids
        pf_names = {}  # network id -> its PFs' names
        for network in networks:
            names = [self._pf_name(pf) for pf in network.pfs]
            pf_names[network.id] = names
            for name in names:
                pf_networks.setdefault(name, []).append(network.id)
        for ep in endpoints:
            pf_networks.setdefault(ep.pf, [])
        return {
            "pfs": [
                self._pf_view(name, nets, endpoints, by_id) for name, nets in pf_networks.items()
            ],
            "networks": [_network_view(n, pf_names[n.id], endpoints) for n in networks],
            "pools": pools,
        }

    def _pf_name(self, pf: NetworkPf) -> str:
        """A recorded PF's netdev now; as recorded if it cannot be found (its view says why)."""
        try:
            return self._network.pf_name(pf)
        except PluginError:
            return pf.name or pf.pci

    def _pf_view(
        self,
        name: str,
        network_ids: list[str],
        endpoints: list[EndpointRow],
        networks_by_id: dict[str, NetworkRow],
    ) -> dict:
        leases = {ep.vf: ep for ep in endpoints if ep.pf == name}
        view: dict = {"name": name, "networks": network_ids}
        try:
            pf = self._sysfs.pf(name)
            vfs = self._sysfs.vfs(name)
            link = self._sysfs.pf_link(name)
        except PluginError as exc:
            view["error"] = exc.message
            vfs, pf, link = [], None, None
        if pf is not None:
            view.update(pci=pf.pci, link=link, mtu=pf.mtu)
            view.update(totalvfs=pf.totalvfs, numvfs=pf.numvfs)
        where = self._where(vfs)
        traffic = self._traffic(name, view) if pf is not None else {}
        vf_views = [
            self._vf_view(vf, where[vf.index], leases.get(vf.index), networks_by_id) for vf in vfs
        ]
        for vf_view in vf_views:
            if vf_view["index"] in traffic:
                vf_view["traffic"] = traffic[vf_view["index"]].reported()
        present = {vf.index for vf in vfs}
        # Leases of VFs that are not enabled (sriov_numvfs went down, or the VF is gone).
        vf_views += [
            _missing_vf_view(ep, networks_by_id) for i, ep in leases.items() if i not in present
        ]
        view["vf_counts"] = {
            state: sum(1 for v in vf_views if v["state"] == state)
            for state in ("free", "leased", "unusable")
        }
        view["vfs"] = sorted(vf_views, key=lambda v: v["index"])
        return view

    def _vf_view(self, vf: VfInfo, where: str, lease: EndpointRow | None, networks: dict) -> dict:
        view = {
            "index": vf.index,
            "pci": vf.pci,
            "netdev": vf.netdev,
            "driver": vf.driver,
            "where": where,
        }
        if lease is not None:
            view["state"] = "leased"
            view["lease"] = _lease_view(lease, networks.get(lease.network_id))
            return view
        try:
            reason = self._network.unusable_reason(vf)
        except PluginError as exc:
            reason = exc.message
        view["state"] = "free" if reason is None else "unusable"
        if reason is not None:
            view["reason"] = reason
        return view

    def _traffic(self, pf: str, view: dict) -> dict[int, VfStats]:
        """Each VF's traffic counters from one request to the PF; ``view`` records whether
        the PF reports them ("reports_traffic") and why it could not be asked."""
        try:
            stats = self._backend.vf_stats(pf)
        except PluginError as exc:
            view["reports_traffic"] = False
            view["traffic_error"] = exc.message
            return {}
        view["reports_traffic"] = bool(stats)
        return stats

    def _where(self, vfs: list[VfInfo]) -> dict[int, str]:
        """Where each VF's netdev is, by VF index, from one read of the host namespace."""
        try:
            statuses = self._backend.netdev_statuses([vf.netdev for vf in vfs if vf.netdev])
        except PluginError as exc:
            return {vf.index: f"unknown ({exc.message})" for vf in vfs}
        return {vf.index: WHERE[statuses[vf.netdev]] if vf.netdev else "no netdev" for vf in vfs}


def _lease_view(ep: EndpointRow, network: NetworkRow | None) -> dict:
    programmed = network.options.vf_settings(ep.mac) if network else VfSettings(mac=ep.mac)
    view = {
        "network": ep.network_id,
        "endpoint": ep.id,
        "sandbox": ep.sandbox,
        "state": ep.state,  # "programming" only while CreateEndpoint runs (or a crash cut it)
        "address": ep.address,
        "address6": ep.address6,
        "programmed": _given(programmed),
        "original": _given(ep.original),
    }
    if ep.restore_error:
        view["restore_error"] = ep.restore_error
    return view


def _given(settings: VfSettings) -> dict:
    """The fields of ``settings`` that are set, by name."""
    return {name: getattr(settings, name) for name in settings.fields_set()}


def _missing_vf_view(ep: EndpointRow, networks: dict) -> dict:
    return {
        "index": ep.vf,
        "pci": ep.pci,
        "netdev": ep.netdev,
        "driver": None,
        "where": "VF not enabled",
        "state": "leased",
        "lease": _lease_view(ep, networks.get(ep.network_id)),
    }


def _network_view(network: NetworkRow, pfs: list[str], endpoints: list[EndpointRow]) -> dict:
    options = network_settings(network)
    return {
        "id": network.id,
        "pfs": pfs,
        "vlan": network.options.vf.vlan,
        "gateway": network.gateway,
        "gateway6": network.gateway6,
        "endpoints": sum(1 for ep in endpoints if ep.network_id == network.id),
        "options": {k: v for k, v in options.items() if v is not None},
    }


def _pool_view(tx: SqliteTransaction, pool: PoolRow) -> dict:
    """A pool with how many of the addresses it can hand out are held."""
    cidr = ipaddress.ip_network(pool.cidr)
    first, last = usable_range(cidr)
    return {
        "id": pool.id,
        "address_space": pool.address_space,
        "cidr": pool.cidr,
        "range": pool.subpool or None,
        "in_use": tx.count_addresses(pool.id, first, last),
        "total": last - first + 1,
    }
