"""The simulated SR-IOV NIC: a kernel-shaped sysfs tree plus a real veth/bridge fabric.

``create(root, pf, vfs)`` lays out, under ``root``, what the kernel shows in
/sys for a PF with ``vfs`` VFs (see plugin.nic.sysfs for the layout), and for
every VF makes a real veth pair in the current network namespace: the VF end
``<pf>v<N>`` is the VF netdev that Docker moves into containers; the peer is
plugged into a Linux bridge standing for the NIC's embedded switch, one bridge
per VLAN (VLAN 0, untagged, has its own), shared by all PFs under the same
root. Two VFs on one VLAN reach each other; VFs on different VLANs do not.

Several roots may share one switch, as the PFs of several hosts share a
top-of-rack switch: ``create(..., fabric=NAME)`` puts a root on the fabric
NAME, whose bridges every root on it plugs its ports into. Each root keeps
switch-port names of its own, and a bridge is removed only when no port of any
root is plugged into it. Bridges are made and removed under a lock that every
process in the network namespace sees, whatever root it sees.

The NIC's "firmware" state (admin MAC, VLAN, QoS, protocol, spoofchk, trust,
link state, rates of each VF) lives in ``root/sriov-sim/<pf>.json``, written
atomically under an fcntl lock (``root/sriov-sim/lock``) because the plugin
updates it while the CLI may be reading or creating other PFs. The state holds
no absolute path: the plugin may see ``root`` elsewhere (a bind mount in its
container). Link names derive from ids stored in ``root/sriov-sim/fabric.json``
(the root's own id, from a hash of its path, and its fabric's name, the root's
id unless given) and from the PF's PCI bus, so they are deterministic, at most
15 bytes, and switch ports differ between two roots.

All VFs (veths) exist from ``create`` on; ``sriov_numvfs`` only says how many
are enabled (``plugin.nic.sysfs`` lists virtfn0..numvfs-1), so writing it, as
the plugin does for a PF created with ``numvfs=0``, is a plain file write.

Limitations, by design of the simulation: the bridge key is the VLAN id alone
(QoS and protocol are recorded, not enacted); spoofchk, trust, link state and
rates are recorded only; the admin MAC is also set on the VF netdev when that
netdev is in this namespace (a real NIC sets it through the PF wherever the
netdev is); the sysfs tree keeps ``net/<vf netdev>`` while the netdev is in a
container (the kernel would drop it), so use ``netdev_statuses`` to find it; a PF's
link (``set_link``, ``sim link``) is its ``operstate`` and ``carrier`` files only:
taking it down does not cut its VFs off the fabric.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

from pyroute2.iproute.linux import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugin.errors import Conflict, InvalidRequest, PluginError
from plugin.nic import netlink, sockios
from plugin.nic.names import check_ifname

PCI_ROOT = "devices/pci0000:00"
STATE_DIR = "sriov-sim"
FIRST_VF_DEVFN = 0x10  # VF n sits at devfn 0x10 + n on its PF's bus
MAX_VFS = 0x100 - FIRST_VF_DEVFN
PF_DRIVER = "sim_pf"
VF_DRIVER = "sim_vf"
FACTORY_SETTINGS = {
    "mac": "00:00:00:00:00:00",
    "vlan": 0,
    "qos": 0,
    "proto": "802.1Q",
    "spoofchk": True,
    "trust": False,
    "link_state": "auto",
    "min_tx_rate": 0,
    "max_tx_rate": 0,
}
SETTING_NAMES = tuple(FACTORY_SETTINGS)
FABRIC_NAME = re.compile(r"[a-z0-9]{1,8}")  # bridge "s<fabric>b<vlan>" stays within 15 bytes
FABRIC_LOCK_TIMEOUT = 30.0


# ---- names and layout -------------------------------------------------------------


def vf_netdev_name(pf: str, index: int) -> str:
    name = f"{pf}v{index}"
    return check_ifname(name, f"simulated VF netdev of {pf} (PF names for the sim must be short)")


def peer_name(root_id: str, bus: int, index: int) -> str:
    """The switch-side end of VF ``index`` of the PF on ``bus``: "s<root id><bus>p<N>"."""
    return f"s{root_id}{bus:02x}p{index}"


def bridge_name(fabric: str, vlan: int) -> str:
    """The embedded-switch bridge for ``vlan``: "s<fabric>b<vlan>"."""
    return f"s{fabric}b{vlan}"


def pci_address(bus: int, devfn: int) -> str:
    return f"0000:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"


def _state_dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


def _state_path(root: Path, pf: str) -> Path:
    return _state_dir(root) / f"{pf}.json"


# ---- state files ------------------------------------------------------------------


@contextlib.contextmanager
def locked(root: Path):
    """Hold the root's exclusive lock: every change to its state files happens under it."""
    directory = _state_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_json_atomically(path: Path, data: dict) -> None:
    """Write, fsync, rename over, fsync the directory: a crash leaves old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _save_settings(root: Path, state: dict) -> None:
    """Overwrite the PF's state file in place, in one write, padded with blanks to its old size.

    This runs on every VF setting of every endpoint, under the root's lock that
    every reader takes too. Renaming a new file over the old one, as ``create``
    does, makes ext4 flush the new file's data first (auto_da_alloc), which cost
    1.7 ms per write on the benchmark machine against 0.05 ms for this. One
    write at offset 0 that never shrinks the file (JSON ignores trailing
    blanks) leaves old or new content if the plugin is killed. No fsync: the
    settings describe veths and bridges that a power loss takes away anyway.
    """
    text = json.dumps(state, indent=1, sort_keys=True).encode()
    fd = os.open(_state_path(root, state["pf"]), os.O_WRONLY)
    try:
        os.pwrite(fd, text.ljust(os.fstat(fd).st_size), 0)
    finally:
        os.close(fd)


def _ids(root: Path) -> dict:
    """The root's stored ids: its own ("id", a hash of its path the first time) and its
    fabric's ("fabric", the root's own id unless the root joined a named fabric)."""
    path = _state_dir(root) / "fabric.json"
    if path.exists():
        ids = json.loads(path.read_text())
        return {"id": ids["id"], "fabric": ids.get("fabric", ids["id"])}
    root_id = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:6]
    ids = {"id": root_id, "fabric": root_id}
    write_json_atomically(path, ids)
    return ids


def _fabric_id(root: Path) -> str:
    return _ids(root)["fabric"]


def _join_fabric(root: Path, fabric: str | None) -> dict:
    """The root's ids, on fabric ``fabric`` if given: a root with PFs cannot change fabric."""
    ids = _ids(root)
    if fabric is None or fabric == ids["fabric"]:
        return ids
    if _pf_states(root):
        raise Conflict(
            f"simulated NIC under {root} is on fabric {ids['fabric']}, not {fabric}: "
            "all its PFs share one switch; destroy them first or use another --sysfs"
        )
    ids["fabric"] = fabric
    write_json_atomically(_state_dir(root) / "fabric.json", ids)
    return ids


@contextlib.contextmanager
def fabric_locked(fabric: str, timeout: float = FABRIC_LOCK_TIMEOUT):
    """Hold the lock of ``fabric``'s bridges.

    Processes that share a fabric may each see only their own root (every node's
    plugin has its own sysfs mount), but they share the network namespace the
    bridges live in; an abstract unix socket name is per network namespace, taken
    by one socket at a time, and freed when its holder dies.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                lock.bind(f"\0sriov-sim-fabric-{fabric}")
                break
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                if time.monotonic() > deadline:
                    raise Conflict(
                        f"simulated fabric {fabric} still locked after {timeout}s"
                    ) from None
                time.sleep(0.005)
        yield
    finally:
        lock.close()


def _pf_states(root: Path) -> list[dict]:
    directory = _state_dir(root)
    if not directory.is_dir():
        return []
    names = sorted(p for p in directory.glob("*.json") if p.name != "fabric.json")
    return [json.loads(p.read_text()) for p in names]


def _load_pf(root: Path, pf: str) -> dict:
    check_ifname(pf, "pf")
    path = _state_path(root, pf)
    if not path.exists():
        raise InvalidRequest(f"no simulated PF {pf} under {root} (no {path})")
    return json.loads(path.read_text())


def _vf_state(state: dict, index: int) -> dict:
    if not 0 <= index < len(state["vfs"]):
        raise InvalidRequest(f"simulated PF {state['pf']} has no VF {index}")
    return state["vfs"][index]


# ---- create / destroy -------------------------------------------------------------


def create(
    root: Path,
    pf: str,
    vfs: int,
    mtu: int = 1500,
    numvfs: int | None = None,
    fabric: str | None = None,
) -> dict:
    """Create simulated PF ``pf`` with ``vfs`` VFs under ``root``; return its state.

    ``fabric`` names a switch that other roots may share (default: the root's own).
    Everything is checked before the first change; if a later step fails, what
    was made is removed again.
    """
    root = Path(root)
    numvfs = vfs if numvfs is None else numvfs
    _check_create_args(pf, vfs, mtu, numvfs, fabric)
    netdevs = [vf_netdev_name(pf, n) for n in range(vfs)]
    with locked(root), IPRoute() as ipr:
        if _state_path(root, pf).exists() or os.path.lexists(root / "class/net" / pf):
            raise Conflict(f"simulated PF {pf} already exists under {root}: destroy it first")
        ids = _join_fabric(root, fabric)
        bus = _free_bus(root)
        peers = [peer_name(ids["id"], bus, n) for n in range(vfs)]
        taken = [name for name in netdevs + peers if netlink.link_index(ipr, name) is not None]
        if taken:
            raise Conflict(f"cannot create simulated PF {pf}: links {', '.join(taken)} exist")
        state = _new_state(pf, bus, mtu, netdevs, peers)
        write_json_atomically(_state_path(root, pf), state)
        with fabric_locked(ids["fabric"]):
            try:
                _build_tree(root, state, numvfs)
                _build_fabric(ipr, ids["fabric"], state)
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
        ("mtu", mtu, 68, 65535),
        ("numvfs", numvfs, 0, vfs),
    ):
        if not isinstance(value, int) or not low <= value <= high:
            raise InvalidRequest(f"{name} {value!r} out of range {low}-{high}")


def _free_bus(root: Path) -> int:
    used = {state["bus"] for state in _pf_states(root)}
    for bus in range(1, 256):
        if bus not in used and not (root / PCI_ROOT / pci_address(bus, 0)).exists():
            return bus
    raise Conflict(f"no free PCI bus left for another simulated PF under {root}")


def _new_state(pf: str, bus: int, mtu: int, netdevs: list[str], peers: list[str]) -> dict:
    return {
        "pf": pf,
        "bus": bus,
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


def _build_tree(root: Path, state: dict, numvfs: int) -> None:
    pf_pci = state["pci"]
    pf_dir = _pci_function(root, pf_pci, PF_DRIVER)
    (pf_dir / "sriov_totalvfs").write_text(f"{len(state['vfs'])}\n")
    (pf_dir / "sriov_numvfs").write_text(f"{numvfs}\n")
    _netdev_dir(root, pf_pci, state["pf"])
    (pf_dir / "net" / state["pf"] / "mtu").write_text(f"{state['mtu']}\n")
    _write_link(root, state, up=True)
    for vf in state["vfs"]:
        vf_dir = _pci_function(root, vf["pci"], VF_DRIVER)
        os.symlink(f"../{vf['pci']}", pf_dir / f"virtfn{vf['index']}")
        os.symlink(f"../{pf_pci}", vf_dir / "physfn")
        _netdev_dir(root, vf["pci"], vf["netdev"])


def _pci_function(root: Path, pci: str, driver: str) -> Path:
    """devices/pci0000:00/<pci>/ with its driver link and bus/pci/devices/<pci>."""
    directory = root / PCI_ROOT / pci
    directory.mkdir(parents=True)
    (root / "bus/pci/drivers" / driver).mkdir(parents=True, exist_ok=True)
    os.symlink(f"../../../bus/pci/drivers/{driver}", directory / "driver")
    (root / "bus/pci/devices").mkdir(parents=True, exist_ok=True)
    os.symlink(f"../../../{PCI_ROOT}/{pci}", root / "bus/pci/devices" / pci)
    return directory


def _netdev_dir(root: Path, pci: str, name: str) -> None:
    directory = root / PCI_ROOT / pci / "net" / name
    directory.mkdir(parents=True)
    os.symlink(f"../../../{pci}", directory / "device")
    (root / "class/net").mkdir(parents=True, exist_ok=True)
    os.symlink(f"../../{PCI_ROOT}/{pci}/net/{name}", root / "class/net" / name)


def _build_fabric(ipr, fabric: str, state: dict) -> None:
    for vf in state["vfs"]:
        netlink.add_veth(ipr, vf["netdev"], vf["peer"])
        for name in (vf["netdev"], vf["peer"]):
            netlink.set_mtu(ipr, name, state["mtu"])
        _plug(ipr, fabric, vf["peer"], vf["vlan"])


def _plug(ipr, fabric: str, peer: str, vlan: int) -> None:
    """Plug ``peer`` into the bridge of ``vlan`` (made if missing) and bring it up."""
    bridge = bridge_name(fabric, vlan)
    netlink.add_bridge(ipr, bridge)
    netlink.set_master(ipr, peer, bridge)
    netlink.set_up(ipr, peer)


def destroy(root: Path, pf: str) -> None:
    """Remove PF ``pf``: its veths, sysfs subtree and state, and bridges nobody uses.

    Idempotent: destroying a PF that is not there does nothing.
    """
    root = Path(root)
    check_ifname(pf, "pf")
    with locked(root):
        path = _state_path(root, pf)
        if not path.exists():
            return
        state = json.loads(path.read_text())
        with IPRoute() as ipr, fabric_locked(_fabric_id(root)):
            _teardown(ipr, root, state)


def _teardown(ipr, root: Path, state: dict) -> None:
    """Undo ``create`` for ``state``, whatever part of it exists."""
    for vf in state["vfs"]:
        netlink.delete_link(ipr, vf["peer"])  # takes the VF end along, wherever it is
        netlink.delete_link(ipr, vf["netdev"])
    for name in [state["pf"]] + [vf["netdev"] for vf in state["vfs"]]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / "class/net" / name)
    for pci in [state["pci"]] + [vf["pci"] for vf in state["vfs"]]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / "bus/pci/devices" / pci)
        shutil.rmtree(root / PCI_ROOT / pci, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _state_path(root, state["pf"]).unlink()
    _remove_unused_bridges(ipr, root)


def _remove_unused_bridges(ipr, root: Path) -> None:
    """Delete the bridges of this root's fabric that no switch port is plugged into.

    Every VF's port stays in this namespace, plugged into its VLAN's bridge, so a
    bridge without ports is one no VF of any root on the fabric is on. The caller
    holds the fabric's lock.
    """
    prefix = bridge_name(_fabric_id(root), 0)[:-1]
    links = ipr.get_links()
    masters = {link.get_attr("IFLA_MASTER") for link in links}
    for link in links:
        name = link.get_attr("IFLA_IFNAME")
        ours = name.startswith(prefix) and name[len(prefix) :].isdigit()
        if ours and link["index"] not in masters:
            netlink.delete_link(ipr, name)


# ---- VF settings (used by plugin.nic.sim.SimBackend) -------------------------------


def read_vf(root: Path, pf: str, index: int) -> dict:
    """The recorded settings of VF ``index`` of ``pf`` (keys: SETTING_NAMES) and its netdev."""
    with locked(root):
        vf = _vf_state(_load_pf(root, pf), index)
    return {k: vf[k] for k in (*SETTING_NAMES, "netdev", "peer", "pci")}


def set_vlan(root: Path, pf: str, index: int, vlan: int, qos: int, proto: str) -> None:
    """Move the VF's switch port to the bridge of ``vlan``; record vlan, qos and proto."""
    with locked(root):
        state = _load_pf(root, pf)
        vf = _vf_state(state, index)
        if vlan != vf["vlan"]:
            fabric = _fabric_id(root)
            with fabric_locked(fabric):  # another root's destroy may remove an empty bridge
                _move_port(fabric, vf["peer"], vf["vlan"], vlan)
        vf.update(vlan=vlan, qos=qos, proto=proto)
        _save_settings(root, state)


def _move_port(fabric: str, peer: str, old_vlan: int, vlan: int) -> None:
    """Unplug ``peer`` from the bridge of ``old_vlan`` and plug it into that of ``vlan``.

    Bridges stay while the fabric is used (``destroy`` removes those no VF uses):
    creating and deleting a bridge per move cost tens of milliseconds, a move
    between existing bridges two ioctls. If the port is not where the state
    says (a crash between the steps), netlink's set-master takes it from
    wherever it is.
    """
    old, new = bridge_name(fabric, old_vlan), bridge_name(fabric, vlan)
    try:
        _ensure_bridge(new)
        sockios.remove_bridge_port(old, peer)
        try:
            sockios.add_bridge_port(new, peer)
        except OSError:
            with contextlib.suppress(OSError):
                sockios.add_bridge_port(old, peer)
            raise
    except OSError:
        with IPRoute() as ipr:
            _plug(ipr, fabric, peer, vlan)


def _ensure_bridge(bridge: str) -> None:
    try:
        sockios.flags(bridge)
    except OSError as err:
        if err.errno != errno.ENODEV:
            raise
        with IPRoute() as ipr:
            netlink.add_bridge(ipr, bridge)


def set_mac(root: Path, pf: str, index: int, mac: str) -> None:
    """Record the admin MAC; also set it on the VF netdev if that is in this namespace.

    An all-zero MAC (the "unset" admin MAC) is only recorded: no netdev takes it.
    """
    with locked(root):
        state = _load_pf(root, pf)
        vf = _vf_state(state, index)
        if mac != FACTORY_SETTINGS["mac"]:
            try:
                sockios.set_mac(vf["netdev"], mac)
            except OSError as err:
                if err.errno != errno.ENODEV:  # in a container: recorded only
                    raise
        vf["mac"] = mac
        _save_settings(root, state)


def set_mtu(root: Path, pf: str, index: int, mtu: int) -> None:
    """Set the MTU of the VF netdev (which must be in this namespace) and its switch port."""
    with locked(root):
        vf = _vf_state(_load_pf(root, pf), index)
        old = sockios.mtu(vf["peer"])
        sockios.set_mtu(vf["peer"], mtu)
        try:
            sockios.set_mtu(vf["netdev"], mtu)
        except BaseException:
            sockios.set_mtu(vf["peer"], old)
            raise


def record(root: Path, pf: str, index: int, **settings) -> None:
    """Record settings the simulation does not enact (spoofchk, trust, link state, rates)."""
    unknown = set(settings) - set(SETTING_NAMES)
    if unknown:
        raise InvalidRequest(f"unknown simulated VF settings: {', '.join(sorted(unknown))}")
    with locked(root):
        state = _load_pf(root, pf)
        _vf_state(state, index).update(settings)
        _save_settings(root, state)


# ---- PF link state ------------------------------------------------------------------


def set_link(root: Path, pf: str, up: bool) -> None:
    """Give PF ``pf`` link or take it away, as sysfs shows it: operstate and carrier.

    Only what the plugin reads changes; the fabric keeps passing traffic.
    """
    root = Path(root)
    with locked(root):
        _write_link(root, _load_pf(root, pf), up)


def _write_link(root: Path, state: dict, up: bool) -> None:
    netdir = root / PCI_ROOT / state["pci"] / "net" / state["pf"]
    (netdir / "operstate").write_text("up\n" if up else "down\n")
    (netdir / "carrier").write_text("1\n" if up else "0\n")


def _link_of(root: Path, state: dict) -> str:
    try:
        return (
            (root / PCI_ROOT / state["pci"] / "net" / state["pf"] / "operstate").read_text().strip()
        )
    except FileNotFoundError:
        return "unknown"


# ---- show / CLI ---------------------------------------------------------------------


def show(root: Path) -> str:
    """Every simulated PF of ``root`` and each VF with PCI address, netdev, bridge and settings."""
    root = Path(root)
    lines = []
    with locked(root), IPRoute() as ipr:
        for state in _pf_states(root):
            numvfs = (root / PCI_ROOT / state["pci"] / "sriov_numvfs").read_text().strip()
            lines.append(
                f"PF {state['pf']} pci {state['pci']} totalvfs {len(state['vfs'])} "
                f"numvfs {numvfs} mtu {state['mtu']} link {_link_of(root, state)}"
            )
            lines.extend(_show_vf(ipr, vf) for vf in state["vfs"])
    return "\n".join(lines) + "\n" if lines else f"no simulated PFs under {root}\n"


def _show_vf(ipr, vf: dict) -> str:
    where = "host" if netlink.link_index(ipr, vf["netdev"]) is not None else "absent"
    mtu = netlink.get_mtu(ipr, vf["netdev"])
    try:
        bridge = netlink.master_of(ipr, vf["peer"]) or "none"
    except NetlinkError:
        bridge = "missing port"
    flags = {k: ("on" if v else "off") if isinstance(v, bool) else v for k, v in vf.items()}
    return (
        f"  VF {vf['index']} pci {vf['pci']} netdev {vf['netdev']} ({where}) "
        f"port {vf['peer']} bridge {bridge} vlan {vf['vlan']} qos {vf['qos']} "
        f"proto {vf['proto']} mac {vf['mac']} spoofchk {flags['spoofchk']} "
        f"trust {flags['trust']} link_state {vf['link_state']} "
        f"min_tx_rate {vf['min_tx_rate']} max_tx_rate {vf['max_tx_rate']} "
        f"mtu {mtu if mtu is not None else '-'}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim", description="the simulated SR-IOV NIC")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("create", help="create a simulated PF with VFs")
    make.add_argument("--pf", required=True, help="PF interface name")
    make.add_argument("--vfs", required=True, type=int, help="number of VFs (sriov_totalvfs)")
    make.add_argument("--sysfs", required=True, type=Path, help="root of the simulated sysfs")
    make.add_argument("--mtu", type=int, default=1500)
    make.add_argument("--numvfs", type=int, help="sriov_numvfs to start with (default: --vfs)")
    make.add_argument(
        "--fabric",
        help="switch shared with other --sysfs roots on the same fabric (1-8 of a-z0-9; "
        "default: a switch of this root's own)",
    )
    remove = sub.add_parser("destroy", help="remove a simulated PF and what it made")
    remove.add_argument("--pf", required=True)
    remove.add_argument("--sysfs", required=True, type=Path)
    view = sub.add_parser("show", help="print the simulated PFs, VFs and settings")
    view.add_argument("--sysfs", required=True, type=Path)
    link = sub.add_parser("link", help="set a simulated PF's link (operstate, carrier)")
    link.add_argument("--pf", required=True)
    link.add_argument("--sysfs", required=True, type=Path)
    link.add_argument("state", choices=("up", "down"))
    return parser


def run_cli(argv: list[str]) -> int:
    """``sim create|destroy|show ...``; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if args.command == "create":
            create(
                args.sysfs, args.pf, args.vfs, mtu=args.mtu, numvfs=args.numvfs, fabric=args.fabric
            )
            print(show(args.sysfs), end="")
        elif args.command == "destroy":
            destroy(args.sysfs, args.pf)
        elif args.command == "link":
            set_link(args.sysfs, args.pf, args.state == "up")
        else:
            print(show(args.sysfs), end="")
    except PluginError as err:
        print(f"sim {args.command}: {err.message}", file=sys.stderr)
        return 1
    except (NetlinkError, OSError) as err:
        why = netlink.strerror(err) if isinstance(err, NetlinkError) else str(err)
        print(f"sim {args.command}: {why}", file=sys.stderr)
        return 1
    return 0
