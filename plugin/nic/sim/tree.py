"""The simulated NIC's sysfs tree, laid out as the kernel's (see plugin.nic.sysfs).

Under ``root``: ``devices/pci0000:00/<pci>/`` for the PF and each VF (driver
link, ``sriov_totalvfs``, ``sriov_numvfs``, ``virtfn*``/``physfn`` links,
``net/<name>``), ``bus/pci/devices`` and ``class/net`` links to them. All VFs
exist from ``create`` on; ``sriov_numvfs`` only says how many are enabled
(``plugin.nic.sysfs`` lists virtfn0..numvfs-1), so writing it, as the plugin
does for a PF created with ``numvfs=0``, is a plain file write. The tree keeps
``net/<vf netdev>`` while the netdev is in a container (the kernel would drop it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.nic.sim.state import PfState

PCI_ROOT = "devices/pci0000:00"
FIRST_VF_DEVFN = 0x10  # VF n sits at devfn 0x10 + n on its PF's bus
MAX_VFS = 0x100 - FIRST_VF_DEVFN
PF_DRIVER = "sim_pf"
VF_DRIVER = "sim_vf"


def pci_address(bus: int, devfn: int) -> str:
    return f"0000:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"


def build_tree(root: Path, state: PfState, numvfs: int) -> None:
    pf_pci = state["pci"]
    pf_dir = _pci_function(root, pf_pci, PF_DRIVER)
    (pf_dir / "sriov_totalvfs").write_text(f"{len(state['vfs'])}\n")
    (pf_dir / "sriov_numvfs").write_text(f"{numvfs}\n")
    _netdev_dir(root, pf_pci, state["pf"])
    (pf_dir / "net" / state["pf"] / "mtu").write_text(f"{state['mtu']}\n")
    write_link(root, state, up=True)
    for vf in state["vfs"]:
        vf_dir = _pci_function(root, vf["pci"], VF_DRIVER)
        os.symlink(f"../{vf['pci']}", pf_dir / f"virtfn{vf['index']}")
        os.symlink(f"../{pf_pci}", vf_dir / "physfn")
        _netdev_dir(root, vf["pci"], vf["netdev"])


def remove_tree(root: Path, state: PfState) -> None:
    """Remove what ``build_tree`` made for ``state``, whatever part of it exists."""
    for name in [state["pf"]] + [vf["netdev"] for vf in state["vfs"]]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / "class/net" / name)
    for pci in [state["pci"]] + [vf["pci"] for vf in state["vfs"]]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / "bus/pci/devices" / pci)
        shutil.rmtree(root / PCI_ROOT / pci, ignore_errors=True)


def has_netdev(root: Path, name: str) -> bool:
    return os.path.lexists(root / "class/net" / name)


def has_pci_function(root: Path, pci: str) -> bool:
    return (root / PCI_ROOT / pci).exists()


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


def write_link(root: Path, state: PfState, up: bool) -> None:
    netdir = root / PCI_ROOT / state["pci"] / "net" / state["pf"]
    (netdir / "operstate").write_text("up\n" if up else "down\n")
    (netdir / "carrier").write_text("1\n" if up else "0\n")


def numvfs(root: Path, state: PfState) -> str:
    """The PF's ``sriov_numvfs`` as written."""
    return (root / PCI_ROOT / state["pci"] / "sriov_numvfs").read_text().strip()


def link_of(root: Path, state: PfState) -> str:
    try:
        return (
            (root / PCI_ROOT / state["pci"] / "net" / state["pf"] / "operstate").read_text().strip()
        )
    except FileNotFoundError:
        return "unknown"
