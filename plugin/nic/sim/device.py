"""The simulated NIC's operations: create and destroy a PF, set its VFs, set its link.

``create(root, pf, vfs)`` lays out, under ``root``, what the kernel shows in
/sys for a PF with ``vfs`` VFs (``tree``), records the NIC's state (``state``)
and for every VF makes a real veth pair in the current network namespace: the
VF end ``<pf>v<N>`` is the VF netdev that Docker moves into containers; the
peer is plugged into the switch (``fabric``). ``create(..., fabric=NAME)`` puts
a root on a switch that other roots share. The VF settings apply to the state
and the fabric under the root's lock.

Limitations, by design of the simulation: QoS and protocol are recorded, not
enacted; spoofchk, trust, link state and rates are recorded only; the admin MAC
is also set on the VF netdev when that netdev is in this namespace (a real NIC
sets it through the PF wherever the netdev is); the sysfs tree keeps
``net/<vf netdev>`` while the netdev is in a container, so use
``netdev_statuses`` to find it; a PF's link (``set_link``, ``sim link``) is its
``operstate`` and ``carrier`` files only: taking it down does not cut its VFs
off the fabric.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path

from plugin.errors import Conflict, InvalidRequest
from plugin.nic import netlink, sockios
from plugin.nic.base import MTU_RANGE, VF_SETTING_GROUPS, VfStats
from plugin.nic.names import check_ifname
from plugin.nic.rtnl import Rtnl
from plugin.nic.sim.fabric import (
    FABRIC_NAME,
    add_ports,
    fabric_locked,
    move_port,
    peer_name,
    remove_ports,
)
from plugin.nic.sim.state import (
    FACTORY_SETTINGS,
    SETTING_NAMES,
    PfState,
    VfState,
    find_pf,
    join_fabric,
    load_pf,
    locked,
    pf_fabric,
    pf_states,
    remove_pf,
    save_settings,
    vf_state,
    write_pf,
)
from plugin.nic.sim.tree import (
    FIRST_VF_DEVFN,
    MAX_VFS,
    build_tree,
    has_netdev,
    has_pci_function,
    pci_address,
    remove_tree,
    write_link,
)


def vf_netdev_name(pf: str, index: int) -> str:
    name = f"{pf}v{index}"
    return check_ifname(name, f"simulated VF netdev of {pf} (PF names for the sim must be short)")


# ---- create / destroy -------------------------------------------------------------


def create(
    root: Path,
    pf: str,
    vfs: int,
    mtu: int = 1500,
    numvfs: int | None = None,
    fabric: str | None = None,
) -> PfState:
    """Create simulated PF ``pf`` with ``vfs`` VFs under ``root``; return its state.

    ``fabric`` names a switch that other roots may share (default: the root's own).
    Everything is checked before the first change; if a later step fails, what
    was made is removed again.
    """
    root = Path(root)
    numvfs = vfs if numvfs is None else numvfs
    _check_create_args(pf, vfs, mtu, numvfs, fabric)
    netdevs = [vf_netdev_name(pf, n) for n in range(vfs)]
    with locked(root), Rtnl() as ipr:
        if find_pf(root, pf) is not None or has_netdev(root, pf):
            raise Conflict(f"simulated PF {pf} already exists under {root}: destroy it first")
        ids = join_fabric(root, fabric)
        bus = _free_bus(root)
        peers = [peer_name(ids["id"], bus, n) for n in range(vfs)]
        taken = [name for name in netdevs + peers if netlink.link_index(ipr, name) is not None]
        if taken:
            raise Conflict(f"cannot create simulated PF {pf}: links {', '.join(taken)} exist")
        state = _new_state(pf, bus, mtu, ids["fabric"], netdevs, peers)
        write_pf(root, state)
        with fabric_locked(ids["fabric"]):
            try:
                build_tree(root, state, numvfs)
                add_ports(ipr, ids["fabric"], state)
            except BaseException:
                _teardown(ipr, root, state)
                raise
    return state


def _check_create_args(pf: str, vfs: int, mtu: int, numvfs: int, fabric: str | None) -> None:
    check_ifname(pf, "pf")
    if fabric is not None and not FABRIC_NAME.fullmatch(fabric):
        raise InvalidRequest(f"fabric {fabric!r} must be 1-8 lowercase letters or digits")
    for name, value, low, high in (
        ("vfs", vfs, 1, MAX_VFS),
        ("mtu", mtu, MTU_RANGE.low, MTU_RANGE.high),
        ("numvfs", numvfs, 0, vfs),
    ):
        if not isinstance(value, int) or not low <= value <= high:
            raise InvalidRequest(f"{name} {value!r} out of range {low}-{high}")


def _new_state(
    pf: str, bus: int, mtu: int, fabric: str, netdevs: list[str], peers: list[str]
) -> PfState:
    return {
        "pf": pf,
        "bus": bus,
        "fabric": fabric,
        "pci": pci_address(bus, 0),
        "mtu": mtu,
        "vfs": [
            {
                "index": n,
                "pci": pci_address(bus, FIRST_VF_DEVFN + n),
                "netdev": netdev,
                "peer": peer,
                **FACTORY_SETTINGS,
            }
            for n, (netdev, peer) in enumerate(zip(netdevs, peers, strict=True))
        ],
    }


def _free_bus(root: Path) -> int:
    used = {state["bus"] for state in pf_states(root)}
    for bus in range(1, 256):
        if bus not in used and not has_pci_function(root, pci_address(bus, 0)):
            return bus
    raise Conflict(f"no free PCI bus left for another simulated PF under {root}")


def destroy(root: Path, pf: str) -> None:
    """Remove PF ``pf``: its veths, sysfs subtree and state, and bridges nobody uses.

    Idempotent: destroying a PF that is not there does nothing.
    """
    root = Path(root)
    check_ifname(pf, "pf")
    with locked(root):
        state = find_pf(root, pf)
        if state is None:
            return
        with Rtnl() as ipr, fabric_locked(pf_fabric(root, state)):
            _teardown(ipr, root, state)


def _teardown(ipr: Rtnl, root: Path, state: PfState) -> None:
    """Undo ``create`` for ``state``, whatever part of it exists; the state file last, so that
    a destroy cut short can be run again."""
    remove_ports(ipr, pf_fabric(root, state), state)
    remove_tree(root, state)
    remove_pf(root, state["pf"])


# ---- VF settings (used by plugin.nic.sim.backend.SimBackend) -----------------------


def read_vf(root: Path, pf: str, index: int) -> VfState:
    """VF ``index`` of ``pf`` as recorded: its netdev and port, and its settings."""
    with locked(root):
        return vf_state(load_pf(root, pf), index)


# /proc/net/dev: "name: " then 8 receive and 8 transmit counters; the ones used, by column.
PROC_NET_DEV = Path("/proc/net/dev")
RX_BYTES, RX_PACKETS, RX_DROP, TX_BYTES, TX_PACKETS, TX_DROP = 0, 1, 3, 8, 9, 11


def vf_stats(root: Path, pf: str, proc_net_dev: Path = PROC_NET_DEV) -> dict[int, VfStats]:
    """Each VF's traffic as a NIC reports it per VF, from its switch port's counters.

    The port is the VF's veth peer, which stays on the host when the VF goes into
    a container; what it received the VF sent, so the directions are swapped.
    One read of ``/proc/net/dev`` for all of them. A veth counts neither
    broadcast nor multicast it forwards, so those are not reported.
    """
    with locked(root):
        ports = {vf["index"]: vf["peer"] for vf in load_pf(root, pf)["vfs"]}
    counters = {}
    for line in proc_net_dev.read_text().splitlines()[2:]:
        name, _, values = line.partition(":")
        counters[name.strip()] = [int(v) for v in values.split()]
    stats = {}
    for index, port in ports.items():
        seen = counters.get(port)
        if seen is None:
            continue
        stats[index] = VfStats(
            rx_packets=seen[TX_PACKETS],
            tx_packets=seen[RX_PACKETS],
            rx_bytes=seen[TX_BYTES],
            tx_bytes=seen[RX_BYTES],
            rx_dropped=seen[TX_DROP],
            tx_dropped=seen[RX_DROP],
        )
    return stats


def set_vf(root: Path, pf: str, index: int, settings: Mapping[str, object]) -> None:
    """Apply ``settings`` (names from SETTING_NAMES) to VF ``index`` of ``pf`` as the NIC would.

    In the kernel's order (``VF_SETTING_GROUPS``): the admin MAC, also set on the
    VF netdev if that is in this namespace (an all-zero MAC, the "unset" one, is
    only recorded); the VLAN, for which the VF's switch port moves to that VLAN's
    bridge; the rest is only recorded. It stops at the first that fails, and the
    state then records what took effect before it, as a NIC reports it. One read
    and one write of the state file, whatever the number of settings: this runs
    twice per endpoint.
    """
    unknown = settings.keys() - set(SETTING_NAMES)
    if unknown:
        raise InvalidRequest(f"unknown simulated VF settings: {', '.join(sorted(unknown))}")
    with locked(root):
        state = load_pf(root, pf)
        vf = vf_state(state, index)
        applied: dict[str, object] = {}
        try:
            for group, names in VF_SETTING_GROUPS:
                values = {name: settings[name] for name in names if name in settings}
                if group == "mac" and values:
                    _set_admin_mac(vf["netdev"], values["mac"])
                if group == "vlan" and values.get("vlan", vf["vlan"]) != vf["vlan"]:
                    move_port(pf_fabric(root, state), vf["peer"], vf["vlan"], values["vlan"])
                applied.update(values)
        finally:
            if applied:
                vf.update(applied)
                save_settings(root, state)


def _set_admin_mac(netdev: str, mac: str) -> None:
    if mac == FACTORY_SETTINGS["mac"]:
        return
    try:
        sockios.set_mac(netdev, mac)
    except OSError as err:
        if err.errno != errno.ENODEV:  # in a container: recorded only
            raise


def set_mtu(root: Path, pf: str, index: int, mtu: int) -> None:
    """Set the MTU of the VF netdev (which must be in this namespace) and its switch port."""
    with locked(root):
        vf = vf_state(load_pf(root, pf), index)
        old = sockios.mtu(vf["peer"])
        sockios.set_mtu(vf["peer"], mtu)
        try:
            sockios.set_mtu(vf["netdev"], mtu)
        except BaseException:
            sockios.set_mtu(vf["peer"], old)
            raise


# ---- PF link state ------------------------------------------------------------------


def set_link(root: Path, pf: str, up: bool) -> None:
    """Give PF ``pf`` link or take it away, as sysfs shows it: operstate and carrier.

    Only what the plugin reads changes; the fabric keeps passing traffic.
    """
    root = Path(root)
    with locked(root):
        write_link(root, load_pf(root, pf), up)
