"""Everything the plugin holds, gathered for people (``python -m plugin status``) and metrics.

The view is the VF inventory's census (plugin/services/inventory.py: PFs and
their VFs from sysfs, leases from the store, where each VF netdev is from the
NIC backend) and the store's pools, laid out for reading. A PF that cannot be
read is reported with its error instead of failing the whole view, because
status is what an operator reaches for when something is wrong.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING

from plugin.errors import PluginError
from plugin.model.networks import network_settings
from plugin.nic.base import NetdevStatus, VfSettings, VfStats
from plugin.services.inventory import VfState
from plugin.services.ipam import usable_range

if TYPE_CHECKING:
    from plugin.model.ipam import PoolRow
    from plugin.model.leases import EndpointRow
    from plugin.model.networks import NetworkRow
    from plugin.nic.base import NicBackend
    from plugin.services.inventory import Inventory, PfEntry, VfEntry
    from plugin.state.sqlite import SqliteTransaction, Store

# Where a VF netdev is, as status shows it.
WHERE = {
    NetdevStatus.ABSENT: "elsewhere",  # not in the host namespace: in a container, or gone
    NetdevStatus.IDLE: "host",
    NetdevStatus.BUSY: "host (up with addresses)",
}


class StatusService:
    """Builds the status view; knows nothing of HTTP."""

    def __init__(self, store: Store, inventory: Inventory, backend: NicBackend) -> None:
        self._store = store
        self._inventory = inventory
        self._backend = backend  # asked for VF traffic, once per PF

    def status(self) -> dict:
        """{"pfs": [...], "networks": [...], "pools": [...]}: see README "Status"."""
        census = self._inventory.census()
        with self._store.transaction() as tx:
            pools = [_pool_view(tx, pool) for pool in tx.pools()]
        by_id = {network.id: network for network in census.networks}
        held = Counter(ep.network_id for ep in census.endpoints)
        return {
            "pfs": [_pf_view(pf, by_id, self._backend) for pf in census.pfs],
            "networks": [
                _network_view(n, census.pf_names[n.id], held[n.id]) for n in census.networks
            ],
            "pools": pools,
        }


def _pf_view(pf: PfEntry, networks_by_id: dict[str, NetworkRow], backend: NicBackend) -> dict:
    view: dict = {"name": pf.name, "networks": pf.networks}
    if pf.error is not None:
        view["error"] = pf.error
    traffic: dict[int, VfStats] = {}
    if pf.info is not None:
        view.update(pci=pf.info.pci, link=pf.link, mtu=pf.info.mtu)
        view.update(totalvfs=pf.info.totalvfs, numvfs=pf.info.numvfs)
        traffic = _traffic(backend, pf.name, view)
    vf_views = [_vf_view(entry, networks_by_id) for entry in pf.vfs]
    for vf_view in vf_views:
        if vf_view["index"] in traffic:
            vf_view["traffic"] = traffic[vf_view["index"]].reported()
    view["vf_counts"] = {str(state): pf.count(state) for state in VfState}
    view["vfs"] = sorted(vf_views, key=lambda v: v["index"])
    return view


def _traffic(backend: NicBackend, pf: str, view: dict) -> dict[int, VfStats]:
    """Each VF's traffic counters from one request to the PF; ``view`` records whether
    the PF reports them ("reports_traffic") and why it could not be asked."""
    try:
        stats = backend.vf_stats(pf)
    except PluginError as exc:
        view["reports_traffic"] = False
        view["traffic_error"] = exc.message
        return {}
    view["reports_traffic"] = bool(stats)
    return stats


def _vf_view(entry: VfEntry, networks: dict[str, NetworkRow]) -> dict:
    vf = entry.vf
    if vf is None:  # a lease whose VF is not enabled
        return _missing_vf_view(entry.lease, networks)
    view = {
        "index": vf.index,
        "pci": vf.pci,
        "netdev": vf.netdev,
        "driver": vf.driver,
        "where": _where(entry),
        "state": entry.state,  # a StrEnum: JSON writes its value
    }
    if entry.lease is not None:
        view["lease"] = _lease_view(entry.lease, networks.get(entry.lease.network_id))
    if entry.reason is not None:
        view["reason"] = entry.reason
    return view


def _where(entry: VfEntry) -> str:
    if entry.netdev is None:
        return "no netdev"
    if isinstance(entry.netdev, str):
        return f"unknown ({entry.netdev})"
    return WHERE[entry.netdev]


def _lease_view(ep: EndpointRow, network: NetworkRow | None) -> dict:
    view = {
        "network": ep.network_id,
        "endpoint": ep.id,
        "sandbox": ep.sandbox,
        "state": ep.state,  # "programming" only while CreateEndpoint runs (or a crash cut it)
        "address": ep.address,
        "address6": ep.address6,
        "programmed": _programmed(network, ep.mac),
        "original": _given(ep.original),
    }
    if ep.restore_error:
        view["restore_error"] = ep.restore_error
    return view


def _programmed(network: NetworkRow | None, mac: str) -> dict:
    """What the network asks of each VF, with the lease's MAC: network.options.vf_settings
    laid out, without building (and checking) a VfSettings for each of hundreds of leases."""
    asked = _given(network.options.vf) if network is not None else {}
    return {"mac": mac, **{name: value for name, value in asked.items() if name != "mac"}}


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


def _network_view(network: NetworkRow, pfs: list[str], endpoints: int) -> dict:
    options = network_settings(network)
    return {
        "id": network.id,
        "pfs": pfs,
        "vlan": network.options.vf.vlan,
        "gateway": network.gateway,
        "gateway6": network.gateway6,
        "endpoints": endpoints,
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
