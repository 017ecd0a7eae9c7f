"""The NetworkDriver service: a network is a slice of PFs on one VLAN; an endpoint leases a VF.

The lease is a store row under a unique (PF, VF) key, written in the same
transaction that chose the VF, so two concurrent CreateEndpoint calls can never
lease the same VF. The VF's original settings are written with the lease before
the first change, so a crash half way through programming is undone at the next
start (``recover``) instead of leaving a VF in a state nobody remembers.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import secrets
from collections.abc import Callable

from plugin.errors import Conflict, DeviceError, InvalidRequest
from plugin.nic.base import NO_ADMIN_MAC, NetdevStatus, NicBackend, VfInfo, VfSettings
from plugin.nic.program import program_vf, restore_vf
from plugin.nic.sysfs import Sysfs
from plugin.options import parse_endpoint_options, parse_network_options
from plugin.store import EndpointRow, NetworkRow, Store, Transaction

log = logging.getLogger("sriov")

VFIO_DRIVER = "vfio-pci"
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def random_mac() -> str:
    """A random unicast, locally administered MAC address."""
    first = (secrets.randbits(8) & 0xFC) | 0x02
    rest = secrets.token_bytes(5)
    return ":".join(f"{b:02x}" for b in bytes([first]) + rest)


def check_mac(value: str) -> str:
    mac = value.strip().lower()
    if not _MAC.match(mac):
        raise InvalidRequest(f"MAC address {value!r} is not of the form 02:42:ac:11:00:02")
    if int(mac[:2], 16) & 0x01:
        raise InvalidRequest(f"MAC address {value} is a multicast address; a VF needs unicast")
    if mac == "00:00:00:00:00:00":
        raise InvalidRequest("MAC address 00:00:00:00:00:00 cannot be a VF's address")
    return mac


class NetworkService:
    """Implements NetworkDriver on the store, sysfs and one NIC backend."""

    def __init__(
        self,
        store: Store,
        sysfs: Sysfs,
        backend: NicBackend,
        new_mac: Callable[[], str] = random_mac,
    ):
        self._store = store
        self._sysfs = sysfs
        self._backend = backend
        self._new_mac = new_mac

    @staticmethod
    def capabilities() -> dict:
        return {"Scope": "local", "ConnectivityScope": "global"}

    # --- networks --------------------------------------------------------

    def create_network(
        self, network_id: str, options: dict | None, ipv4: list[dict], ipv6: list[dict]
    ) -> None:
        """Check everything, record the network, then enable VFs on PFs that have none."""
        opts = parse_network_options(options)
        pfs = [self._sysfs.pf(name) for name in opts.pfs]
        mtu = opts.mtu
        smallest = min(pfs, key=lambda pf: pf.mtu)
        if mtu is not None and mtu > smallest.mtu:
            raise InvalidRequest(
                f"mtu {mtu} is above the MTU {smallest.mtu} of PF {smallest.name}; "
                f"use at most {smallest.mtu} or raise the PF's MTU first"
            )
        settings = dataclasses.asdict(opts) | {"mtu": mtu or smallest.mtu}
        row = NetworkRow(
            id=network_id,
            options=settings,
            gateway=None if opts.internal else _gateway(ipv4),
            gateway6=None if opts.internal else _gateway(ipv6),
        )
        with self._store.transaction() as tx:
            if tx.network(network_id) is not None:
                return  # the same request again
            for pf in opts.pfs:
                holder = tx.network_using_port(pf, opts.vlan)
                if holder is not None:
                    raise Conflict(
                        f"CreateNetwork: PF {pf} VLAN {opts.vlan} is already used by network "
                        f"{holder[:12]}; use another vlanid or remove that network"
                    )
            tx.insert_network(row, opts.pfs, opts.vlan)
        try:
            for pf in pfs:
                if pf.numvfs == 0:
                    log.info("enabling %d VFs on %s", pf.totalvfs, pf.name)
                    self._sysfs.set_numvfs(pf.name, pf.totalvfs)
        except DeviceError:
            with self._store.transaction() as tx:
                tx.delete_network(network_id)
            raise

    def delete_network(self, network_id: str) -> None:
        """Forget the network; Docker deletes its endpoints first, and we check it did."""
        with self._store.transaction() as tx:
            left = tx.endpoints_of_network(network_id)
        for ep in left:
            log.warning(
                "DeleteNetwork %s: endpoint %s still holds VF %d of %s; releasing it",
                network_id[:12],
                ep.id[:12],
                ep.vf,
                ep.pf,
            )
            self._release(ep)
        with self._store.transaction() as tx:
            tx.delete_network(network_id)

    # --- endpoints -------------------------------------------------------

    def create_endpoint(
        self, network_id: str, endpoint_id: str, interface: dict | None, options: dict | None
    ) -> dict:
        """Lease a VF, program it, and answer the Interface fields Docker did not give.

        No netlink call runs while a store transaction is open (other requests
        wait on it): the free VFs and each candidate's snapshot are read before
        the lease is written, and the unique (PF, VF) key settles a race between
        two requests that picked the same VF.
        """
        interface = interface or {}
        given_mac = interface.get("MacAddress") or ""
        mac = check_mac(given_mac) if given_mac else ""
        wanted = parse_endpoint_options(options)
        with self._store.transaction() as tx:
            network = _known_network(tx, network_id, "CreateEndpoint")
            held = tx.endpoint(endpoint_id)
            if held is not None:
                return self._repeated_create(held, given_mac)
            leased = {pf: tx.leased_vfs(pf) for pf in network.options["pfs"]}
            cleared = tx.vfs_without_admin_mac()
        candidates = self._candidates(network, leased, wanted.vf_index, wanted.vf_pci)
        mac = mac or self._new_mac()
        desired = _desired_settings(network, mac)
        for vf in candidates:
            snapshot = self._snapshot(vf, vf.pci in cleared)
            with self._store.transaction() as tx:
                held = tx.endpoint(endpoint_id)
                if held is not None:
                    return self._repeated_create(held, given_mac)
                if vf.index in tx.leased_vfs(vf.pf):
                    continue  # a concurrent request leased it since we looked
                tx.insert_endpoint(
                    EndpointRow(
                        id=endpoint_id,
                        network_id=network_id,
                        pf=vf.pf,
                        vf=vf.index,
                        pci=vf.pci,
                        netdev=vf.netdev or "",
                        mac=mac,
                        address=interface.get("Address") or "",
                        address6=interface.get("AddressIPv6") or "",
                        original=_changed_fields(snapshot, desired),
                        state="programming",
                    )
                )
                tx.forget_admin_mac_cleared(vf.pci)
            break
        else:
            report = "; ".join(self._exhaustion_report(network))
            raise Conflict(f"CreateEndpoint: no free VF on {report}")
        try:
            original = program_vf(self._backend, vf, desired, snapshot)
        except DeviceError:
            with self._store.transaction() as tx:
                tx.delete_endpoint(endpoint_id)
            raise
        with self._store.transaction() as tx:
            tx.finish_endpoint(endpoint_id, _settings_dict(original))
        log.info(
            "endpoint %s leased VF %d of %s (%s, %s) mac %s vlan %d",
            endpoint_id[:12],
            vf.index,
            vf.pf,
            vf.pci,
            vf.netdev,
            mac,
            desired.vlan,
        )
        return {} if given_mac else {"Interface": {"MacAddress": mac}}

    def _snapshot(self, vf: VfInfo, admin_mac_cleared: bool) -> VfSettings:
        """The VF's settings before we change them.

        When our last release cleared the VF's admin MAC, a PF like igb later
        reports the MAC the VF registered itself (its netdev's own address): that
        is not an admin MAC, and recording it as the original would write it back
        as a sticky admin MAC at release.
        """
        snapshot = self._backend.read_vf(vf)
        if (
            admin_mac_cleared
            and snapshot.mac not in (None, NO_ADMIN_MAC)
            and snapshot.mac == self._backend.netdev_address(vf)
        ):
            return dataclasses.replace(snapshot, mac=NO_ADMIN_MAC)
        return snapshot

    @staticmethod
    def _repeated_create(held: EndpointRow, given_mac: str) -> dict:
        if held.state != "ready":
            raise Conflict(f"CreateEndpoint: endpoint {held.id[:12]} is being created already")
        return {} if given_mac else {"Interface": {"MacAddress": held.mac}}

    def _candidates(
        self,
        network: NetworkRow,
        leased: dict[str, set[int]],
        vf_index: int | None,
        vf_pci: str | None,
    ) -> list[VfInfo]:
        """The VFs to try in order: the pinned one, or the free ones of the emptiest PF first."""
        pfs = network.options["pfs"]
        if vf_index is not None or vf_pci is not None:
            return [self._pinned_vf(pfs, leased, vf_index, vf_pci)]
        free = {
            pf: self._usable([vf for vf in self._sysfs.vfs(pf) if vf.index not in leased[pf]])
            for pf in pfs
        }
        by_most_free = sorted(pfs, key=lambda pf: len(free[pf]), reverse=True)
        return [vf for pf in by_most_free for vf in free[pf]]

    def _exhaustion_report(self, network: NetworkRow) -> list[str]:
        """Per PF: how many VFs are leased and how many are unusable, for "no free VF"."""
        with self._store.transaction() as tx:
            leased = {pf: tx.leased_vfs(pf) for pf in network.options["pfs"]}
        report = []
        for pf, held in leased.items():
            vfs = self._sysfs.vfs(pf)
            leased_here = len(held & {vf.index for vf in vfs})
            usable = self._usable([vf for vf in vfs if vf.index not in held])
            unusable = len(vfs) - leased_here - len(usable)
            report.append(_exhaustion_detail(pf, len(vfs), leased_here, unusable))
        return report

    def _pinned_vf(
        self,
        pfs: list[str],
        leased: dict[str, set[int]],
        vf_index: int | None,
        vf_pci: str | None,
    ) -> VfInfo:
        """The VF the endpoint option ``vf`` names, if it is one of ours and free."""
        if vf_pci is not None:
            matches = [vf for pf in pfs for vf in self._sysfs.vfs(pf) if vf.pci == vf_pci]
            wanted = f"vf {vf_pci}"
        else:
            if len(pfs) > 1:
                raise InvalidRequest(
                    f"CreateEndpoint: vf={vf_index} is ambiguous on a network over "
                    f"{', '.join(pfs)}; give the VF's PCI address instead"
                )
            matches = [vf for vf in self._sysfs.vfs(pfs[0]) if vf.index == vf_index]
            wanted = f"vf {vf_index} of {pfs[0]}"
        if not matches:
            raise InvalidRequest(f"CreateEndpoint: {wanted} is not an enabled VF of this network")
        vf = matches[0]
        if vf.index in leased[vf.pf]:
            raise Conflict(f"CreateEndpoint: {wanted} is already leased to another endpoint")
        if not self._usable([vf]):
            raise Conflict(f"CreateEndpoint: {wanted} is not usable: {self._why_unusable(vf)}")
        return vf

    def _usable(self, vfs: list[VfInfo]) -> list[VfInfo]:
        """The VFs whose netdev is in the host namespace and idle, from one netlink dump."""
        named = [vf for vf in vfs if vf.driver != VFIO_DRIVER and vf.netdev]
        statuses = self._backend.netdev_statuses([vf.netdev for vf in named])
        return [vf for vf in named if statuses[vf.netdev] == NetdevStatus.IDLE]

    def _why_unusable(self, vf: VfInfo) -> str:
        if vf.driver == VFIO_DRIVER:
            return "it is bound to vfio-pci"
        if not vf.netdev:
            return "it has no netdev (no network driver bound)"
        status = self._backend.netdev_statuses([vf.netdev])[vf.netdev]
        if status == NetdevStatus.ABSENT:
            return f"its netdev {vf.netdev} is not in the host namespace"
        return f"its netdev {vf.netdev} is up with addresses (in use by someone else)"

    def join(self, network_id: str, endpoint_id: str) -> dict:
        """Name the VF netdev Docker moves into the container, and the gateways."""
        with self._store.transaction() as tx:
            network = _known_network(tx, network_id, "Join")
            ep = tx.endpoint(endpoint_id)
        if ep is None or ep.state != "ready":
            raise InvalidRequest(f"Join: unknown endpoint {endpoint_id[:12]} on this network")
        vf = self._current_vf(ep)
        reply = {
            "InterfaceName": {"SrcName": vf.netdev, "DstPrefix": "eth"},
            "DisableGatewayService": True,
            "StaticRoutes": [],
        }
        if network.gateway:
            reply["Gateway"] = network.gateway
        if network.gateway6:
            reply["GatewayIPv6"] = network.gateway6
        return reply

    def _current_vf(self, ep: EndpointRow) -> VfInfo:
        for vf in self._sysfs.vfs(ep.pf):
            if vf.index == ep.vf and vf.netdev:
                return vf
        raise DeviceError(
            f"Join: VF {ep.vf} of {ep.pf} has no netdev in the host namespace "
            f"(was it unbound or moved?)"
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Restore exactly what was changed on the VF and release the lease."""
        with self._store.transaction() as tx:
            ep = tx.endpoint(endpoint_id)
        if ep is not None:
            self._release(ep)

    def _release(self, ep: EndpointRow) -> None:
        vf = VfInfo(pf=ep.pf, index=ep.vf, pci=ep.pci, netdev=ep.netdev, driver=None)
        original = VfSettings(**ep.original)
        restore_vf(self._backend, vf, original)
        with self._store.transaction() as tx:
            tx.delete_endpoint(ep.id)
            if original.mac == NO_ADMIN_MAC:
                tx.remember_admin_mac_cleared(ep.pci)
        log.info("endpoint %s released VF %d of %s", ep.id[:12], ep.vf, ep.pf)

    def endpoint_info(self, endpoint_id: str) -> dict:
        with self._store.transaction() as tx:
            ep = tx.endpoint(endpoint_id)
            network = tx.network(ep.network_id) if ep else None
        if ep is None or network is None:
            raise InvalidRequest(f"EndpointOperInfo: unknown endpoint {endpoint_id[:12]}")
        return {
            "pf": ep.pf,
            "vf": ep.vf,
            "pci": ep.pci,
            "netdev": ep.netdev,
            "vlan": network.options["vlan"],
            "mac": ep.mac,
        }

    def recover(self) -> None:
        """Undo endpoints whose programming a crash interrupted (Docker never saw them)."""
        with self._store.transaction() as tx:
            unfinished = tx.endpoints_in_state("programming")
        for ep in unfinished:
            log.warning(
                "endpoint %s was being programmed on VF %d of %s when the plugin stopped; "
                "restoring the VF",
                ep.id[:12],
                ep.vf,
                ep.pf,
            )
            try:
                self._release(ep)
            except DeviceError as exc:
                log.error("recover endpoint %s: %s", ep.id[:12], exc.message)


def _known_network(tx: Transaction, network_id: str, operation: str) -> NetworkRow:
    network = tx.network(network_id)
    if network is None:
        raise InvalidRequest(
            f"{operation}: network {network_id[:12]} is not an sriov network "
            f"(create it with -d sriov:latest)"
        )
    return network


def _gateway(data: list[dict]) -> str | None:
    """The first pool's gateway as a plain IP (Docker sends it as CIDR)."""
    for entry in data or []:
        gateway = entry.get("Gateway") or ""
        if gateway:
            return str(ipaddress.ip_interface(gateway).ip)
    return None


def _desired_settings(network: NetworkRow, mac: str) -> VfSettings:
    """What the network asks of each of its VFs, with the endpoint's MAC."""
    opts = network.options
    return VfSettings(
        mac=mac,
        vlan=opts["vlan"],
        qos=opts["qos"],
        proto=opts["proto"],
        spoofchk=opts["spoofchk"],
        trust=opts["trust"],
        link_state=opts["link_state"],
        min_tx_rate=_rate(opts["min_tx_rate"], opts["max_tx_rate"], 0),
        max_tx_rate=_rate(opts["max_tx_rate"], opts["min_tx_rate"], 0),
        mtu=opts["mtu"],
    )


def _rate(value: int | None, other: int | None, default: int) -> int | None:
    """Rates go together: when either is given the other defaults to 0 (no limit)."""
    if value is None and other is None:
        return None
    return default if value is None else value


def _settings_dict(settings: VfSettings) -> dict:
    return dataclasses.asdict(settings)


def _changed_fields(snapshot: VfSettings, desired: VfSettings) -> dict:
    """The snapshot's values of the fields ``desired`` will change (others None)."""
    return {
        field.name: getattr(snapshot, field.name)
        if getattr(desired, field.name) is not None
        else None
        for field in dataclasses.fields(VfSettings)
    }


def _exhaustion_detail(pf: str, total: int, leased: int, unusable: int) -> str:
    detail = f"{pf}: {leased} of {total} leased"
    if unusable > 0:
        detail += f", {unusable} unusable (vfio-pci, no netdev, or in use by others)"
    return detail
