"""After a host reboot: enable the VFs of stored networks again and drop leases that died with them.

A reboot (or a driver reload, or someone writing 0) leaves ``sriov_numvfs`` at 0
while the store still has the networks, and maybe leases, of before. Docker
does not replay CreateNetwork, so the plugin puts the VFs back itself: at start
for every PF a stored network uses, and again before each CreateEndpoint (the
PF's driver may have come up after the plugin did).

The lease rules. A lease lives for one boot of the host: at start, leases
recorded in another boot (``/proc/sys/kernel/random/boot_id``) are void, as are
the notes on VFs whose admin MAC a release cleared. The reboot destroyed those
VFs, or reset them where the host enables VFs at boot, and ended every container;
Docker's DeleteEndpoint for them then finds nothing and succeeds. Because an OS
crash is such a reboot, the plugin need not wait for the disk when it writes a
lease (see NetworkService's ``sync_leases``): what a crash can lose, this voids.

And a lease on a PF found with ``sriov_numvfs`` 0 is void. Its VF
was destroyed, and with it the netdev in whatever container held it, so no
endpoint Docker still has can be using it; the VF that comes back has the
device's defaults, so there is nothing to restore either. The lease is deleted
before the VFs are enabled again, so a new endpoint can have that VF, and a
later DeleteEndpoint for the old endpoint finds nothing and succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from plugin.errors import DeviceError, PluginError
from plugin.services.networks import VFIO_DRIVER

if TYPE_CHECKING:
    from plugin.model.leases import EndpointRow
    from plugin.nic.sysfs import Sysfs
    from plugin.services.networks import NetworkService
    from plugin.state.sqlite import Store

log = logging.getLogger("sriov")

# Docker disables a plugin that does not answer within about 10 s of starting, so the
# start waits less; what is still missing then is waited for at CreateEndpoint.
START_WAIT_S = 5.0
ENDPOINT_WAIT_S = 20.0
POLL_S = 0.1


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id(path: Path = BOOT_ID) -> str | None:
    """This boot's id (the kernel makes a new one at each boot); None where it cannot be read."""
    try:
        return path.read_text().strip() or None
    except OSError as err:
        log.warning("read %s: %s; leases are synced to disk instead", path, err.strerror or err)
        return None


class HostRecovery:
    """Enables VFs on stored networks' PFs that have none, and waits for their netdevs."""

    def __init__(
        self,
        store: Store,
        sysfs: Sysfs,
        networks: NetworkService,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        boot_id: str | None = None,
    ) -> None:
        self._store = store
        self._boot_id = boot_id
        self._sysfs = sysfs
        self._networks = networks
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._waiting: dict[str, float] = {}  # PF -> when we enabled its VFs, until they appear

    def at_start(self, wait_s: float = START_WAIT_S) -> None:
        """Drop leases of an earlier boot, enable VFs on every stored PF that has none.

        Logs (does not raise) what fails. Without a boot id, only the
        ``sriov_numvfs`` 0 rule finds leases a reboot ended.
        """
        if self._boot_id is not None:
            self._end_leases_of_earlier_boots(self._boot_id)
        with self._store.transaction() as tx:
            pfs = [pf for network in tx.networks() for pf in network.pfs]
        deadline = self._clock() + wait_s
        for pf in pfs:
            try:
                self._ensure(self._networks.pf_name(pf), deadline, final=False)
            except PluginError as exc:
                log.error("start: %s (retried at the next CreateEndpoint)", exc.message)

    def before_endpoint(self, network_id: str, wait_s: float = ENDPOINT_WAIT_S) -> None:
        """Make sure the network's PFs have their VFs before one is chosen for an endpoint."""
        with self._store.transaction() as tx:
            network = tx.network(network_id)
        if network is None:
            return  # CreateEndpoint itself answers for an unknown network
        deadline = self._clock() + wait_s
        for pf in network.pfs:
            self._ensure(self._networks.pf_name(pf), deadline, final=True)

    def _ensure(self, pf: str, deadline: float, final: bool) -> None:
        with self._lock:
            info = self._sysfs.pf(pf)
            if info.numvfs == 0 and info.totalvfs > 0:
                self._void_leases(pf)
                log.info("%s has sriov_numvfs 0 (rebooted?): enabling %d VFs", pf, info.totalvfs)
                self._sysfs.set_numvfs(pf, info.totalvfs)
                self._waiting[pf] = self._clock()
            if pf in self._waiting:
                self._wait_for_netdevs(pf, deadline, final)

    def _end_leases_of_earlier_boots(self, boot_id: str) -> None:
        with self._store.transaction() as tx:
            dropped = tx.end_leases_of_earlier_boots(boot_id)
        _log_dropped(dropped, "was leased before the host rebooted")

    def _void_leases(self, pf: str) -> None:
        with self._store.transaction() as tx:
            leases = tx.endpoints_of_pf(pf)
            for ep in leases:
                tx.delete_endpoint(ep.id)
        _log_dropped(leases, "was destroyed (sriov_numvfs was 0)")

    def _wait_for_netdevs(self, pf: str, deadline: float, final: bool) -> None:
        """Poll until every enabled VF has a netdev (or is vfio-pci's), or the deadline.

        At the deadline a final wait raises, naming the PF, the count and the time
        since the VFs were enabled, and stops waiting for this PF: from then on
        the VFs without a netdev are simply not free. A start wait leaves the PF
        to the next CreateEndpoint.
        """
        while True:
            ready, enabled = self._ready_vfs(pf)
            if enabled and ready == enabled:
                del self._waiting[pf]
                log.info("%s: all %d VFs have their netdevs", pf, enabled)
                return
            if self._clock() >= deadline:
                break
            self._sleep(min(POLL_S, deadline - self._clock()))
        waited = self._clock() - self._waiting[pf]
        message = (
            f"enable VFs of {pf}: {ready} of {enabled} VF netdevs appeared within "
            f"{waited:.1f} s after writing sriov_numvfs; check the VF driver (dmesg)"
        )
        if final:
            del self._waiting[pf]
        raise DeviceError(message)

    def _ready_vfs(self, pf: str) -> tuple[int, int]:
        """(VFs with a netdev or bound to vfio-pci, enabled VFs); (0, numvfs) while links move."""
        try:
            numvfs = self._sysfs.pf(pf).numvfs
            vfs = self._sysfs.vfs(pf)
        except DeviceError:
            return 0, 0  # a virtfn link half made: look again
        ready = sum(1 for vf in vfs if vf.netdev or vf.driver == VFIO_DRIVER)
        return (ready, numvfs) if len(vfs) == numvfs else (0, numvfs)


def _log_dropped(leases: list[EndpointRow], why: str) -> None:
    for ep in leases:
        log.warning("endpoint %s: VF %d of %s %s; lease dropped", ep.id[:12], ep.vf, ep.pf, why)
