"""The NetworkDriver service: a network is a slice of PFs on one VLAN; an endpoint leases a VF.

Which VFs a network may use and which are free is the VF inventory's answer
(plugin/services/inventory.py). The lease is a store row keyed by the VF's PCI
address, written in the same transaction that checked the VF is not leased, so
two concurrent CreateEndpoint calls can never lease the same VF, whatever its
PF is named now. The VF's original settings are written with the lease before
the first change, so a crash half way through programming is undone at the next
start (``recover``) instead of leaving a VF in a state nobody remembers.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from plugin.errors import Conflict, DeviceError, InvalidRequest
from plugin.model.leases import EndpointRow, EndpointState
from plugin.model.networks import NetworkPf, NetworkRow
from plugin.model.options import ANY_VF, EndpointOptions, PfChoice, format_vf_spans
from plugin.nic.base import NO_ADMIN_MAC, PfInfo, VfInfo, VfRef, VfSettings, vf_mac
from plugin.nic.program import program_vf, restore_vf
from plugin.nic.sysfs import LINK_DOWN, LINK_UP
from plugin.nic.sysfs import LinkState as PfLinkState
from plugin.services.inventory import VFIO_DRIVER, Inventory, PfSlice

if TYPE_CHECKING:
    from plugin.model.options import NetworkOptions
    from plugin.nic.base import NicBackend
    from plugin.nic.sysfs import Sysfs
    from plugin.state.sqlite import SqliteTransaction, Store

log = logging.getLogger("sriov")

PF_LINK_WAIT_S = 10  # for a PF's link to return after enabling its VFs reset it
MAC_TRIES = 16  # generated MACs tried before giving up on finding one unused in the network


def random_mac() -> str:
    """A random unicast, locally administered MAC address."""
    first = (secrets.randbits(8) & 0xFC) | 0x02
    rest = secrets.token_bytes(5)
    return ":".join(f"{b:02x}" for b in bytes([first]) + rest)


def check_mac(value: str) -> str:
    """An endpoint's MAC: one a VF can be given, and not the "no admin MAC" address."""
    mac = vf_mac(value, "MAC address")
    if mac == NO_ADMIN_MAC:
        raise InvalidRequest(f"MAC address {NO_ADMIN_MAC} cannot be a VF's address")
    return mac


def with_prefix(prefix: str | None, mac: str) -> str:
    """``mac`` with its first octets replaced by ``prefix`` (mac_prefix), if one is given."""
    if not prefix:
        return mac
    return prefix + mac[len(prefix) :]


@dataclass(frozen=True)
class EndpointCreated:
    """What CreateEndpoint gave the endpoint: its admin MAC (Docker's, or one we made)."""

    mac: str


@dataclass(frozen=True)
class JoinInfo:
    """What Join tells Docker: the VF netdev to move into the container, and the gateways."""

    netdev: str
    gateway: str | None
    gateway6: str | None
    ifname: str | None = None  # the name the endpoint asked for in the container


@dataclass(frozen=True)
class EndpointInfo:
    """Where an endpoint's VF is and what it was given (EndpointOperInfo, for inspect)."""

    pf: str
    vf: int
    pci: str
    netdev: str
    vlan: int
    mac: str
    pf_link: PfLinkState


@dataclass(frozen=True)
class NewEndpoint:
    """An endpoint being created: what it asks of a VF, and what its lease records."""

    id: str
    network_id: str
    desired: VfSettings  # the network's settings with the endpoint's MAC
    address: str | None
    address6: str | None
    ifname: str | None = None

    def lease_row(self, vf: VfInfo, pf_pci: str | None, snapshot: VfSettings) -> EndpointRow:
        """The lease of ``vf``, with the snapshot's values of the fields to be changed."""
        return EndpointRow(
            id=self.id,
            network_id=self.network_id,
            pf=vf.pf,
            vf=vf.index,
            pci=vf.pci,
            pf_pci=pf_pci,
            netdev=vf.netdev or "",
            mac=self.desired.mac,
            address=self.address,
            address6=self.address6,
            original=snapshot.only(self.desired.fields_set()),
            state=EndpointState.PROGRAMMING,
            ifname=self.ifname,
        )


@dataclass(frozen=True)
class Lease:
    """A VF leased to an endpoint, and its settings read just before the lease was written."""

    vf: VfInfo
    snapshot: VfSettings


@dataclass(frozen=True)
class Candidate:
    """A VF to try for an endpoint: its PF's PCI address (for the lease), and whether our
    last release cleared its admin MAC (for its snapshot)."""

    vf: VfRef
    pf_pci: str | None
    admin_mac_cleared: bool

    @classmethod
    def of(cls, pf: PfSlice, vf: VfRef) -> Candidate:
        return cls(vf, pf.pci, vf.pci in pf.admin_mac_cleared)


class VfEvents(Protocol):
    """Who is told of VF failures that a reply alone does not count (the metrics)."""

    def program_failed(self, pf: str) -> None: ...

    def restore_failed(self, pf: str) -> None: ...


class NetworkService:
    """Implements NetworkDriver on the store, sysfs and one NIC backend."""

    def __init__(
        self,
        store: Store,
        sysfs: Sysfs,
        backend: NicBackend,
        new_mac: Callable[[], str] = random_mac,
        events: VfEvents | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        sync_leases: bool = True,
        inventory: Inventory | None = None,
    ) -> None:
        """``sync_leases`` False: a lease's writes do not wait for the disk.

        Only for a store whose leases end with the boot (plugin/services/recovery.py): a
        crash of this process loses no commit (the page cache has it), and what
        an OS crash loses belongs to a boot whose leases are void at next start.
        """
        self._store = store
        self._sysfs = sysfs
        self._backend = backend
        self._new_mac = new_mac
        self._events = events
        self._clock = clock
        self._sleep = sleep
        self._sync_leases = sync_leases
        self._inventory = inventory or Inventory(store, sysfs, backend)

    # --- networks --------------------------------------------------------

    def create_network(
        self,
        network_id: str,
        opts: NetworkOptions,
        gateway: str | None = None,
        gateway6: str | None = None,
    ) -> None:
        """Check everything, record the network, then enable VFs on PFs that have none.

        PFs are recorded by PCI address, which survives renames; the rule "one
        network per PF and VLAN" is kept on that address too, so naming a PF
        once by name and once by address cannot get around it. An internal
        network has no gateway.
        """
        pfs = [self._resolve_pf(choice) for choice in opts.pfs]
        row = _network_row(network_id, opts, pfs, gateway, gateway6)
        if not self._record_network(row, pfs):
            return  # the same request again
        self._enable_vfs(network_id, [pf for pf in pfs if pf.numvfs == 0])
        _warn_if_no_pf_has_link(network_id, {pf.name: self._sysfs.pf_link(pf.name) for pf in pfs})

    def _record_network(self, row: NetworkRow, pfs: list[PfInfo]) -> bool:
        """Store the network unless it is; Conflict if one of its PFs has its VLAN already."""
        vlan = row.options.vf.vlan
        with self._store.transaction() as tx:
            if tx.network(row.id) is not None:
                return False
            for pf in pfs:
                # Networks recorded before PFs were keyed by PCI address hold the name.
                holder = tx.network_using_port(pf.pci, vlan) or tx.network_using_port(pf.name, vlan)
                if holder is not None:
                    raise Conflict(
                        f"PF {pf.name} VLAN {vlan} is already used by network "
                        f"{holder[:12]}; use another vlanid or remove that network"
                    )
            tx.insert_network(row)
        return True

    def _enable_vfs(self, network_id: str, pfs: list[PfInfo]) -> None:
        """Enable every VF of ``pfs``, or forget the network; then wait for links they had."""
        had_link = [pf.name for pf in pfs if self._sysfs.pf_link(pf.name) == LINK_UP]
        try:
            for pf in pfs:
                log.info("enabling %d VFs on %s", pf.totalvfs, pf.name)
                self._sysfs.set_numvfs(pf.name, pf.totalvfs)
        except DeviceError:
            with self._store.transaction() as tx:
                tx.delete_network(network_id)
            raise
        self._wait_for_link(had_link)

    def _wait_for_link(self, names: list[str]) -> None:
        """Wait, bounded, until these PFs have link again after their VFs were enabled.

        Enabling VFs resets a PF like igb, whose link then takes a few seconds to
        return, and until it does the driver refuses rate limits (EINVAL): the
        first endpoint after `docker network create` would fail.
        """
        deadline = self._clock() + PF_LINK_WAIT_S
        waiting = list(names)
        while waiting:
            waiting = [name for name in waiting if self._sysfs.pf_link(name) != LINK_UP]
            if not waiting:
                return
            if self._clock() >= deadline:
                log.warning(
                    "%s: no link %d s after enabling VFs; endpoints follow anyway",
                    ", ".join(waiting),
                    PF_LINK_WAIT_S,
                )
                return
            self._sleep(0.1)

    def _resolve_pf(self, choice: PfChoice) -> PfInfo:
        """The PF ``choice`` names, by PCI address or netdev name, checked to be a PF."""
        if choice.by_pci:
            return self._sysfs.pf_by_pci(choice.ref)
        return self._sysfs.pf(choice.ref)

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
        self,
        network_id: str,
        endpoint_id: str,
        mac: str | None = None,
        address: str | None = None,
        address6: str | None = None,
        wanted: EndpointOptions = ANY_VF,
    ) -> EndpointCreated:
        """Lease a VF, program it with the network's settings and ``mac`` (or a new MAC).

        No netlink call runs while a store transaction is open (other requests
        wait on it): the candidates and each one's snapshot are read before the
        lease is written, and the VF's PCI address, the lease's key, settles a
        race between two requests that picked the same VF.
        """
        mac = check_mac(mac) if mac else None
        with self._store.transaction() as tx:
            network = _known_network(tx, network_id)
            held = tx.endpoint(endpoint_id)
            if held is not None:
                return _created_before(held)
            macs_held = tx.macs_of_network(network_id)
        slices = self._inventory.slices(network)
        candidates = self._candidates(network, slices, wanted)
        desired = network.options.vf_settings(mac or self._generated_mac(network, macs_held))
        new = NewEndpoint(endpoint_id, network_id, desired, address, address6, wanted.ifname)
        lease = self._lease_vf(new, candidates)
        if isinstance(lease, EndpointRow):  # the same request, answered while we chose
            return _created_before(lease)
        if lease is None:
            raise self._no_free_vf(network)
        chosen = next(pf for pf in slices if pf.name == lease.vf.pf)
        if not chosen.has_link:
            _warn_no_link(network_id, lease.vf, self._inventory.report(slices))
        original = self._program(new, lease)
        self._mark_ready(new, lease, original, chosen.link)
        return EndpointCreated(mac=desired.mac)

    def _no_free_vf(self, network: NetworkRow) -> Conflict:
        """The refusal when no candidate could be leased, with each PF's tally read now.

        With require_pf_link=on, a free VF on a PF without link is named as the reason.
        """
        slices = self._inventory.slices(network)
        report = self._inventory.report(slices)
        if network.options.require_pf_link and any(
            self._inventory.unusable_reason(self._inventory.describe(vf)) is None
            for pf in slices
            if not pf.has_link
            for vf in pf.unleased
        ):
            return Conflict(f"no free VF on a PF with link (require_pf_link=on): {report}")
        return Conflict(f"no free VF on {report}")

    def _lease_vf(
        self, new: NewEndpoint, candidates: list[Candidate]
    ) -> Lease | EndpointRow | None:
        """Lease the first candidate that is free and no other request took, its original
        settings recorded.

        A candidate's netdev is asked about only when its turn comes: the first
        idle one is leased, so the cost does not grow with the PF's VFs.
        Returns the endpoint's row instead if the same request leased a VF
        meanwhile, and None if every candidate was taken or unusable.
        """
        for candidate in candidates:
            vf = self._inventory.describe(candidate.vf)
            if self._inventory.unusable_reason(vf) is not None:
                continue
            snapshot = self._snapshot(vf, candidate.admin_mac_cleared)
            with self._store.transaction(durable=self._sync_leases) as tx:
                held = tx.endpoint(new.id)
                if held is not None:
                    return held
                if tx.is_leased(vf.pci):
                    continue  # a concurrent request leased it since we looked
                tx.insert_endpoint(new.lease_row(vf, candidate.pf_pci, snapshot))
                tx.forget_admin_mac_cleared(vf.pci)
            return Lease(vf, snapshot)
        return None

    def _program(self, new: NewEndpoint, lease: Lease) -> VfSettings:
        """Program the leased VF; on failure drop the lease (program_vf undid its changes)."""
        try:
            return program_vf(self._backend, lease.vf, new.desired, lease.snapshot)
        except DeviceError:
            if self._events:
                self._events.program_failed(lease.vf.pf)
            with self._store.transaction(durable=self._sync_leases) as tx:
                tx.delete_endpoint(new.id)
                if lease.snapshot.mac == NO_ADMIN_MAC:  # the undo cleared the admin MAC we set
                    tx.remember_admin_mac_cleared(lease.vf.pci)
            raise

    def _mark_ready(
        self, new: NewEndpoint, lease: Lease, original: VfSettings, pf_link: PfLinkState
    ) -> None:
        """Keep the originals of exactly what programming changed, and hand the lease out."""
        # Not synced: only an OS crash can lose it, and that reboot resets the VF;
        # at start the lease, still "programming", is undone (recover).
        with self._store.transaction(durable=False) as tx:
            tx.finish_endpoint(new.id, original)
        log.info(
            "endpoint %s leased VF %d of %s (%s, %s) mac %s vlan %d, PF link %s",
            new.id[:12],
            lease.vf.index,
            lease.vf.pf,
            lease.vf.pci,
            lease.vf.netdev,
            new.desired.mac,
            new.desired.vlan,
            pf_link,
        )

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

    def _generated_mac(self, network: NetworkRow, held: set[str]) -> str:
        """A new admin MAC, under the network's mac_prefix, that no endpoint of it holds.

        With a long prefix few bits are random (5 octets leave 256 addresses), so
        a repeat within the network is likely enough to check for.
        """
        prefix = network.options.mac_prefix
        for _ in range(MAC_TRIES):
            mac = with_prefix(prefix, self._new_mac())
            if mac not in held and mac != NO_ADMIN_MAC:
                return mac
        raise Conflict(
            f"found no MAC under mac_prefix {prefix} that the network's "
            f"{len(held)} endpoints do not hold ({MAC_TRIES} tries); use a shorter mac_prefix"
        )

    def _candidates(
        self, network: NetworkRow, slices: list[PfSlice], wanted: EndpointOptions
    ) -> list[Candidate]:
        """The VFs to try in order: the pinned one, or the unleased ones of PFs with link,
        then of the PF with most unleased VFs first. With require_pf_link=on, only PFs with
        link."""
        required = network.options.require_pf_link
        if wanted.vf_index is not None or wanted.vf_pci is not None:
            pf, vf = self._pinned_vf(slices, wanted)
            if required and not pf.has_link:
                raise Conflict(
                    f"vf {vf.index} of {pf.name} is on a PF without link "
                    f"(link {pf.link}) and the network has require_pf_link=on"
                )
            return [Candidate.of(pf, vf)]
        found = [(pf, pf.unleased) for pf in slices if pf.has_link or not required]
        found.sort(key=lambda item: (item[0].has_link, len(item[1])), reverse=True)
        return [Candidate.of(pf, vf) for pf, vfs in found for vf in vfs]

    def _pinned_vf(self, slices: list[PfSlice], wanted: EndpointOptions) -> tuple[PfSlice, VfRef]:
        """The VF the endpoint option ``vf`` names, if it is in this network's range and free."""
        if wanted.vf_pci is not None:
            matches = [(pf, vf) for pf in slices for vf in pf.all_vfs if vf.pci == wanted.vf_pci]
            label = f"vf {wanted.vf_pci}"
        else:
            if len(slices) > 1:
                raise InvalidRequest(
                    f"vf={wanted.vf_index} is ambiguous on a network over "
                    f"{', '.join(pf.name for pf in slices)}; give the VF's PCI address instead"
                )
            only = slices[0]
            matches = [(only, vf) for vf in only.all_vfs if vf.index == wanted.vf_index]
            label = f"vf {wanted.vf_index} of {only.name}"
        if not matches:
            raise InvalidRequest(f"{label} is not an enabled VF of this network")
        pf, vf = matches[0]
        if vf not in pf.enabled:
            if wanted.vf_pci is not None:
                label += f" (VF {vf.index} of {pf.name})"
            raise InvalidRequest(
                f"{label} is outside this network's VFs "
                f"{format_vf_spans(pf.vfs)} on {pf.name} (its vfs or pf_iface range)"
            )
        if pf.is_leased(vf):
            raise Conflict(f"{label} is already leased to another endpoint")
        reason = self._inventory.unusable_reason(self._inventory.describe(vf))
        if reason is not None:
            raise Conflict(f"{label} is not usable: {reason}")
        return pf, vf

    def join(self, network_id: str, endpoint_id: str, sandbox: str = "") -> JoinInfo:
        """Name the VF netdev Docker moves into the container, and the gateways."""
        with self._store.transaction(durable=False) as tx:  # the sandbox is only for status
            network = _known_network(tx, network_id)
            ep = tx.endpoint(endpoint_id)
            if ep is not None and sandbox:
                tx.set_sandbox(endpoint_id, sandbox)  # for status: which container holds it
        if ep is None or ep.state != EndpointState.READY:
            raise InvalidRequest(f"unknown endpoint {endpoint_id[:12]} on this network")
        netdev = self._current_netdev(ep)
        return JoinInfo(netdev, network.gateway, network.gateway6, ep.ifname)

    def _leased_vf_now(self, ep: EndpointRow) -> VfInfo | None:
        """The leased VF as sysfs shows it now, found by its PCI address; None if it is gone.

        Never by the netdev (or PF) name recorded at lease time: that name can
        belong to another VF by now (see Sysfs.vf_by_pci).
        """
        return self._sysfs.vf_by_pci(ep.pci, hint=ep.vf)

    def _current_netdev(self, ep: EndpointRow) -> str:
        vf = self._leased_vf_now(ep)
        if vf is not None and vf.netdev:
            return vf.netdev
        raise DeviceError(
            f"VF {ep.vf} of {ep.pf} ({ep.pci}) has no netdev in the host namespace "
            "(was it unbound or moved?)"
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Restore exactly what was changed on the VF and release the lease."""
        with self._store.transaction() as tx:
            ep = tx.endpoint(endpoint_id)
        if ep is not None:
            self._release(ep)

    def _release(self, ep: EndpointRow) -> None:
        """Restore the VF's original settings through its PF as it is now, then end the lease."""
        vf = self._leased_vf_now(ep)
        if vf is None:
            log.warning(
                "endpoint %s: VF %d of %s (%s) is gone (sriov_numvfs was reset), and with it "
                "what was programmed; lease released",
                ep.id[:12],
                ep.vf,
                ep.pf,
                ep.pci,
            )
            self._end_lease(ep, ep.original)
            return
        original = _restorable(ep, vf)
        try:
            restore_vf(self._backend, vf, original)
        except DeviceError as exc:
            # The lease stays (never hand out a half-restored VF); status and metrics show why.
            if self._events:
                self._events.restore_failed(ep.pf)
            with self._store.transaction(durable=self._sync_leases) as tx:
                tx.set_restore_error(ep.id, exc.message)
            raise
        self._end_lease(ep, original)
        log.info("endpoint %s released VF %d of %s (%s)", ep.id[:12], vf.index, vf.pf, vf.netdev)

    def _end_lease(self, ep: EndpointRow, restored: VfSettings) -> None:
        with self._store.transaction(durable=self._sync_leases) as tx:
            tx.delete_endpoint(ep.id)
            if restored.mac == NO_ADMIN_MAC:
                tx.remember_admin_mac_cleared(ep.pci)

    def endpoint_info(self, endpoint_id: str) -> EndpointInfo:
        with self._store.transaction() as tx:
            ep = tx.endpoint(endpoint_id)
            network = tx.network(ep.network_id) if ep else None
        if ep is None or network is None:
            raise InvalidRequest(f"unknown endpoint {endpoint_id[:12]}")
        vf = self._leased_vf_now(ep)
        if vf is None:
            raise DeviceError(
                f"endpoint {endpoint_id[:12]}: its VF {ep.vf} of {ep.pf} ({ep.pci}) is gone "
                "(sriov_numvfs was reset)"
            )
        return EndpointInfo(
            pf=vf.pf,
            vf=vf.index,
            pci=vf.pci,
            netdev=vf.netdev or "",
            vlan=network.options.vf.vlan,
            mac=ep.mac,
            pf_link=self._sysfs.pf_link(vf.pf),
        )

    def recover(self) -> None:
        """Undo endpoints whose programming a crash interrupted.

        Docker never saw those, except after an OS crash that lost a lease's
        unsynced "ready" mark: that reboot reset the VF and ended the container,
        and Docker's DeleteEndpoint for it then finds nothing to release.
        """
        with self._store.transaction() as tx:
            unfinished = tx.endpoints_in_state(EndpointState.PROGRAMMING)
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


def _network_row(
    network_id: str,
    opts: NetworkOptions,
    pfs: list[PfInfo],
    gateway: str | None,
    gateway6: str | None,
) -> NetworkRow:
    """The row to record, after the checks that need the PFs; the MTU defaults to theirs."""
    _check_same_pf_once(opts.pfs, pfs)
    for choice, pf in zip(opts.pfs, pfs, strict=True):
        _check_spans_fit(choice, pf)
    mtu = opts.vf.mtu
    smallest = min(pfs, key=lambda pf: pf.mtu)
    if mtu is not None and mtu > smallest.mtu:
        raise InvalidRequest(
            f"mtu {mtu} is above the MTU {smallest.mtu} of PF {smallest.name}; "
            f"use at most {smallest.mtu} or raise the PF's MTU first"
        )
    return NetworkRow(
        id=network_id,
        options=dataclasses.replace(opts, vf=dataclasses.replace(opts.vf, mtu=mtu or smallest.mtu)),
        pfs=tuple(
            NetworkPf(pci=pf.pci, name=pf.name, vfs=choice.vfs)
            for choice, pf in zip(opts.pfs, pfs, strict=True)
        ),
        gateway=None if opts.internal else gateway,
        gateway6=None if opts.internal else gateway6,
    )


def _restorable(ep: EndpointRow, vf: VfInfo) -> VfSettings:
    """What of ``ep.original`` can be put back on ``vf`` as it is now.

    Everything but the MTU is the PF's record of the VF and is restored through
    the PF whatever the VF is bound to. The MTU belonged to the VF's netdev: a
    VF bound to vfio-pci (a VM runtime such as Kata took it) or to no driver
    has none, and the netdev it gets when a netdev driver takes it back is a
    new one with the driver's default MTU, so there is no MTU to restore.
    """
    if ep.original.mtu is None or vf.netdev or vf.driver not in (VFIO_DRIVER, None):
        return ep.original
    log.info(
        "endpoint %s: VF %d of %s (%s) is bound to %s and has no netdev; its MTU is not "
        "restored (a netdev driver gives it a new netdev)",
        ep.id[:12],
        vf.index,
        vf.pf,
        vf.pci,
        vf.driver or "no driver",
    )
    return dataclasses.replace(ep.original, mtu=None)


def _warn_if_no_pf_has_link(network_id: str, links: dict[str, PfLinkState]) -> None:
    if all(link == LINK_DOWN for link in links.values()):
        log.warning(
            "network %s: no PF has link (%s); its VFs pass no traffic until one comes up",
            network_id[:12],
            ", ".join(f"{name} link {link}" for name, link in links.items()),
        )


def _known_network(tx: SqliteTransaction, network_id: str) -> NetworkRow:
    network = tx.network(network_id)
    if network is None:
        raise InvalidRequest(
            f"network {network_id[:12]} is not an sriov network (create it with -d sriov:latest)"
        )
    return network


def _created_before(held: EndpointRow) -> EndpointCreated:
    """The answer to a CreateEndpoint that came before, once its VF is ready."""
    if held.state != EndpointState.READY:
        raise Conflict(f"endpoint {held.id[:12]} is being created already")
    return EndpointCreated(mac=held.mac)


def _warn_no_link(network_id: str, vf: VfInfo, report: str) -> None:
    log.warning(
        "network %s: leased VF %d of %s although that PF has no link (%s); it passes "
        "no traffic until the link comes up (require_pf_link=on refuses instead)",
        network_id[:12],
        vf.index,
        vf.pf,
        report,
    )


def _check_same_pf_once(choices: tuple[PfChoice, ...], pfs: list[PfInfo]) -> None:
    """A PF named once by netdev and once by PCI address is still named twice."""
    seen: dict[str, str] = {}
    for choice, pf in zip(choices, pfs, strict=True):
        if pf.pci in seen:
            raise InvalidRequest(
                f"pf_iface names PF {pf.name} ({pf.pci}) twice: as {seen[pf.pci]} and as "
                f"{choice.ref}; give it once"
            )
        seen[pf.pci] = choice.ref


def _check_spans_fit(choice: PfChoice, pf: PfInfo) -> None:
    """A range may only name VFs the PF can have (0 to sriov_totalvfs - 1)."""
    if choice.vfs is None:
        return
    last = choice.vfs[-1][1]
    if last >= pf.totalvfs:
        raise InvalidRequest(
            f"{choice.vfs_from} reaches VF {last}, but PF {pf.name} has VFs "
            f"0-{pf.totalvfs - 1} (sriov_totalvfs {pf.totalvfs})"
        )
