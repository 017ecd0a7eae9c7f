"""Declare small sysfs trees as data and build them in a temporary directory.

A tree is a dict from a path relative to the root to one of: a ``str`` (a file
with that content), ``Link(target)`` (a symlink, target as the kernel writes
it, usually relative) or ``DIR`` (an empty directory).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DIR = object()
PCI_ROOT = "devices/pci0000:00"


@dataclass(frozen=True)
class Link:
    target: str


def build(root: Path, tree: dict) -> Path:
    """Create ``tree`` under ``root`` and return ``root``."""
    for rel, node in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if node is DIR:
            path.mkdir(exist_ok=True)
        elif isinstance(node, Link):
            os.symlink(node.target, path)
        else:
            path.write_text(node)
    return root


def netdev(name: str, pci: str, mtu: int = 1500) -> dict:
    """A netdev of the PCI function ``pci``, visible in class/net."""
    return {
        f"{PCI_ROOT}/{pci}/net/{name}/mtu": f"{mtu}\n",
        f"{PCI_ROOT}/{pci}/net/{name}/device": Link(f"../../../{pci}"),
        f"class/net/{name}": Link(f"../../{PCI_ROOT}/{pci}/net/{name}"),
    }


def pci_function(pci: str, driver: str | None) -> dict:
    tree = {f"bus/pci/devices/{pci}": Link(f"../../../{PCI_ROOT}/{pci}")}
    if driver:
        tree[f"{PCI_ROOT}/{pci}/driver"] = Link(f"../../../bus/pci/drivers/{driver}")
        tree[f"bus/pci/drivers/{driver}"] = DIR
    else:
        tree[f"{PCI_ROOT}/{pci}"] = DIR
    return tree


def pf(
    name: str, pci: str, totalvfs: int, numvfs: int, mtu: int = 1500, link: str | None = "up"
) -> dict:
    """A PF with its SR-IOV files and no VFs yet.

    ``link`` "up" or "down" writes operstate and carrier as the kernel shows them
    for a PF with and without carrier; None leaves both files out.
    """
    tree = {
        **pci_function(pci, "ice"),
        **netdev(name, pci, mtu),
        f"{PCI_ROOT}/{pci}/sriov_totalvfs": f"{totalvfs}\n",
        f"{PCI_ROOT}/{pci}/sriov_numvfs": f"{numvfs}\n",
    }
    if link is not None:
        tree.update(link_files(name, pci, link))
    return tree


def link_files(name: str, pci: str, link: str, carrier: str | None = None) -> dict:
    """operstate ``link`` and carrier (1 when up, else 0, unless given) of netdev ``name``."""
    carrier = carrier if carrier is not None else ("1" if link == "up" else "0")
    return {
        f"{PCI_ROOT}/{pci}/net/{name}/operstate": f"{link}\n",
        f"{PCI_ROOT}/{pci}/net/{name}/carrier": f"{carrier}\n",
    }


def vf(
    pf_pci: str, index: int, pci: str, netdev_name: str | None, driver: str | None = "iavf"
) -> dict:
    """VF ``index`` of the PF at ``pf_pci``; ``netdev_name`` None for a VF without a netdev."""
    tree = {
        **pci_function(pci, driver),
        f"{PCI_ROOT}/{pf_pci}/virtfn{index}": Link(f"../{pci}"),
        f"{PCI_ROOT}/{pci}/physfn": Link(f"../{pf_pci}"),
    }
    if netdev_name:
        tree.update(netdev(netdev_name, pci))
    return tree


def rename_netdev(root: Path, pci: str, old: str, new: str) -> None:
    """Rename netdev ``old`` of the PCI function ``pci`` to ``new``, as the kernel shows it."""
    netdir = root / PCI_ROOT / pci / "net"
    (netdir / old).rename(netdir / new)
    (root / "class/net" / old).unlink()
    (root / "class/net" / new).symlink_to(f"../../{PCI_ROOT}/{pci}/net/{new}")


def swap_netdevs(root: Path, first: tuple[str, str], second: tuple[str, str]) -> None:
    """Give two functions' netdevs each other's names: ``(pci, netdev)`` each.

    What a driver rebind shows: VFs given back to their netdev driver in another
    order than they were taken get their ``ethN`` names in that order.
    """
    (pci1, name1), (pci2, name2) = first, second
    rename_netdev(root, pci1, name1, "swapping")
    rename_netdev(root, pci2, name2, name1)
    rename_netdev(root, pci1, "swapping", name2)


def bind_to_vfio(root: Path, pci: str) -> None:
    """Unbind the function at ``pci`` from its netdev driver and bind it to vfio-pci.

    What a VM runtime does to a VF: its netdev disappears from the host.
    """
    device = root / PCI_ROOT / pci
    for name in os.listdir(device / "net"):
        (root / "class/net" / name).unlink()
    shutil.rmtree(device / "net")
    (device / "driver").unlink()
    build(root, {"bus/pci/drivers/vfio-pci": DIR})
    (device / "driver").symlink_to("../../../bus/pci/drivers/vfio-pci")
