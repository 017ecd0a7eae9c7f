"""Read (and for sriov_numvfs, write) the SR-IOV layout in sysfs.

Every path derives from one root: ``/sys`` on a host, or the directory of a
simulated NIC. The layout is the kernel's::

    class/net/<pf>            -> ../../devices/pci0000:00/<pf pci>/net/<pf>
    class/net/<pf>/device     -> ../../../<pf pci>        (the PF's PCI directory)
    class/net/<pf>/mtu, class/net/<pf>/operstate, class/net/<pf>/carrier
    bus/pci/devices/<pci>     -> the PCI directory of any function
    <pci>/net/<netdev>/       (the netdev(s) of a bound network function)
    <pf pci>/sriov_totalvfs, <pf pci>/sriov_numvfs
    <pf pci>/virtfn<N>        -> ../<vf pci>
    <vf pci>/physfn           -> ../<pf pci>
    <vf pci>/net/<vf netdev>/ (only while a netdev driver is bound and the
                               netdev is in this namespace)
    <vf pci>/driver           -> ../../../bus/pci/drivers/<driver>

"Missing" and "broken" differ: a link that does not exist is an answer (no
``physfn`` means "not a VF"); a link that exists but cannot be followed is an
error worth reporting.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Literal

from plugin.errors import DeviceError, InvalidRequest
from plugin.nic.base import PfInfo, VfInfo, VfRef
from plugin.nic.names import check_ifname, check_pci_address

_VIRTFN = re.compile(r"virtfn(\d+)")

# operstate values (RFC 2863, include/uapi/linux/if.h) that mean "no link" on their own;
# "unknown", "dormant" and "testing" leave the answer to carrier.
_DOWN_OPERSTATES = ("down", "lowerlayerdown", "notpresent")
LinkState = Literal["up", "down", "unknown"]  # what pf_link says of a PF
LINK_UP: LinkState = "up"
LINK_DOWN: LinkState = "down"
LINK_UNKNOWN: LinkState = "unknown"


class Sysfs:
    """The SR-IOV view of one sysfs root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Paths are built as strings: pathlib's parsing cost more than the syscalls.
        self._class_net = os.path.join(root, "class", "net")
        self._pci_devices = os.path.join(root, "bus", "pci", "devices")

    def pf(self, name: str) -> PfInfo:
        """Describe PF ``name``; InvalidRequest if it is missing, not SR-IOV, or a VF."""
        device = self._pf_device(name)
        return PfInfo(
            name=name,
            pci=os.path.basename(device),
            totalvfs=self._read_int(os.path.join(device, "sriov_totalvfs")),
            numvfs=self._read_int(os.path.join(device, "sriov_numvfs")),
            mtu=self._read_int(os.path.join(self._netdir(name), "mtu")),
        )

    def pf_by_pci(self, pci: str, what: str = "pf_iface") -> PfInfo:
        """Describe the PF at PCI address ``pci``, found by its one netdev under net/.

        A PF renamed (new udev rules, another kernel) is still found: the
        address is stable.
        """
        return self.pf(self.netdev_by_pci(pci, what))

    def netdev_by_pci(self, pci: str, what: str = "pf_iface") -> str:
        """The name of the one netdev of the PCI function at ``pci`` (checked before use)."""
        pci = check_pci_address(pci, what)
        device = self._pci_dir(pci)
        if not os.path.lexists(device):
            raise InvalidRequest(f"{what} {pci} not found (no {device})")
        names = self._netdevs(device)
        if not names:
            raise InvalidRequest(
                f"{what} {pci} has no netdev (no {os.path.join(device, 'net')}): no network driver "
                "is bound, or it is not a network device"
            )
        if len(names) > 1:
            raise InvalidRequest(
                f"{what} {pci} has several netdevs ({', '.join(names)}); "
                "give the PF's interface name instead"
            )
        return names[0]

    def pf_link(self, name: str) -> LinkState:
        """LINK_UP, LINK_DOWN or LINK_UNKNOWN for PF ``name``, from carrier, else operstate.

        Carrier comes first: the kernel updates operstate a moment after it (the
        link watch runs deferred), so right after a PF reset operstate can still
        say "up" for a link that is gone. The kernel refuses to read carrier
        (EINVAL) while the netdev is administratively down; operstate answers then.
        """
        netdir = self._netdir(check_ifname(name, "pf_iface"))
        carrier = self._read_optional(os.path.join(netdir, "carrier"))
        if carrier in ("1", "0"):
            return LINK_UP if carrier == "1" else LINK_DOWN
        state = self._read_optional(os.path.join(netdir, "operstate"))
        if state == LINK_UP:
            return LINK_UP
        if state in _DOWN_OPERSTATES:
            return LINK_DOWN
        return LINK_UNKNOWN

    def vfs(self, pf_name: str) -> list[VfInfo]:
        """The enabled VFs of ``pf_name`` (virtfn0..virtfn<numvfs-1>), ordered by index."""
        device = self._pf_device(pf_name)
        numvfs = self._read_int(os.path.join(device, "sriov_numvfs"))
        return [
            self._vf(pf_name, index, link)
            for index, link in self._virtfn_links(device)
            if index < numvfs
        ]

    def virtfns(self, pf_name: str) -> list[VfRef]:
        """The enabled VFs of ``pf_name`` by index and PCI address, ordered by index: one
        readlink each, their drivers and netdevs left to ``describe_vf``."""
        device = self._pf_device(pf_name)
        numvfs = self._read_int(os.path.join(device, "sriov_numvfs"))
        refs = []
        for index, link in self._virtfn_links(device):
            if index >= numvfs:
                continue
            try:
                target = os.readlink(link)
            except OSError as err:
                raise DeviceError(f"read link {link}: {err.strerror or err}") from err
            path = os.path.normpath(os.path.join(device, target))
            refs.append(VfRef(pf_name, index, os.path.basename(path), path))
        return refs

    def describe_vf(self, ref: VfRef) -> VfInfo:
        """The VF ``ref`` names, with its driver and netdev as sysfs shows them now."""
        netdevs = self._netdevs(ref.path)
        driver = self._link_target(os.path.join(ref.path, "driver"), in_real_dir=True)
        return VfInfo(
            pf=ref.pf,
            index=ref.index,
            pci=ref.pci,
            netdev=netdevs[0] if netdevs else None,
            driver=None if driver is None else os.path.basename(driver),
        )

    def vf(self, pf_name: str, index: int) -> VfInfo | None:
        """VF ``index`` of ``pf_name`` if it is enabled, read without listing the others."""
        device = self._pf_device(pf_name)
        link = os.path.join(device, f"virtfn{index}")
        if index >= self._read_int(os.path.join(device, "sriov_numvfs")) or not os.path.lexists(
            link
        ):
            return None
        return self._vf(pf_name, index, link)

    def vf_by_pci(self, pci: str, hint: int | None = None) -> VfInfo | None:
        """The VF at PCI address ``pci`` as sysfs describes it now; None if no VF is there.

        A lease keeps the VF's PCI address because names move: a VM runtime
        (Kata) that unbinds VFs from their netdev driver and binds them back gets
        new ``ethN`` names in whatever order the driver probes them, and a PF
        can be renamed. The PF, the VF's index and its netdev are read here, at
        the moment they are used; ``hint``, the index it had, is checked first.
        """
        pci = check_pci_address(pci, "VF")
        vf_dir = self._link_target(self._pci_dir(pci))
        if vf_dir is None:
            return None  # the VF is gone (its PF's sriov_numvfs was reset)
        pf_dir = self._link_target(os.path.join(vf_dir, "physfn"), in_real_dir=True)
        if pf_dir is None:
            return None
        pf_names = self._netdevs(pf_dir)
        if not pf_names:
            raise DeviceError(
                f"read VF {pci}: its PF {os.path.basename(pf_dir)} has no netdev "
                "(no network driver bound to the PF)"
            )
        numvfs = self._read_int(os.path.join(pf_dir, "sriov_numvfs"))
        if hint is not None:  # the index it had: one readlink instead of a walk to it
            link = os.path.join(pf_dir, f"virtfn{hint}")
            if hint < numvfs and self._points_to(link, pci):
                return self._vf(pf_names[0], hint, link)
        for index, link in self._virtfn_links(pf_dir):
            if self._points_to(link, pci):
                return self._vf(pf_names[0], index, link) if index < numvfs else None
        raise DeviceError(
            f"read VF {pci}: its PF {os.path.basename(pf_dir)} lists no virtfn for it"
        )

    @staticmethod
    def _points_to(link: str, pci: str) -> bool:
        try:
            return os.path.basename(os.readlink(link)) == pci
        except FileNotFoundError:
            return False

    def set_numvfs(self, pf_name: str, n: int) -> None:
        """Write ``n`` to the PF's sriov_numvfs.

        The kernel refuses to change a non-zero count to another non-zero count
        (EBUSY): the caller writes 0 first if that is what it means to do.
        """
        pf = self.pf(pf_name)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= pf.totalvfs:
            raise InvalidRequest(f"numvfs {n!r} out of range 0-{pf.totalvfs} for {pf_name}")
        path = os.path.join(self._pf_device(pf_name), "sriov_numvfs")
        try:
            with open(path, "w") as file:
                file.write(f"{n}\n")
        except OSError as err:
            raise DeviceError(f"write {n} to {path}: {err.strerror or err}") from err

    def _pf_device(self, name: str) -> str:
        """The PCI directory of PF ``name``, after every check that makes it a PF."""
        check_ifname(name, "pf_iface")
        netdir = self._real_netdir(name)
        device = self._link_target(os.path.join(netdir, "device"), in_real_dir=True)
        if device is None:
            raise InvalidRequest(
                f"pf_iface {name} has no SR-IOV "
                f"(no {os.path.join(netdir, 'device')}: not a PCI device)"
            )
        parent = self._link_target(os.path.join(device, "physfn"), in_real_dir=True)
        if parent is not None:
            raise InvalidRequest(
                f"pf_iface {name} is a VF of the PF at {os.path.basename(parent)}, not a PF: "
                f"give the PF's interface ({', '.join(self._netdevs(parent)) or 'none found'})"
            )
        if not os.path.exists(os.path.join(device, "sriov_totalvfs")):
            raise InvalidRequest(f"pf_iface {name} has no SR-IOV (no sriov_totalvfs)")
        return device

    def _netdir(self, name: str) -> str:
        return os.path.join(self._class_net, name)

    def _real_netdir(self, name: str) -> str:
        """The netdev's own directory, which class/net/<name> links to.

        class/net is a real directory and the link's target is relative, so
        joining the two needs no walk of every component (realpath cost most of
        describing a PF). A class/net entry that is a directory itself is
        resolved the long way.
        """
        netdir = self._netdir(name)
        try:
            return os.path.normpath(os.path.join(self._class_net, os.readlink(netdir)))
        except FileNotFoundError:
            raise InvalidRequest(f"pf_iface {name} not found (no {netdir})") from None
        except OSError as err:
            if err.errno == errno.EINVAL:  # not a symlink
                return os.path.realpath(netdir)
            raise DeviceError(f"read link {netdir}: {err.strerror or err}") from err

    def _pci_dir(self, pci: str) -> str:
        return os.path.join(self._pci_devices, pci)

    def _virtfn_links(self, device: str) -> list[tuple[int, str]]:
        try:
            names = os.listdir(device)
        except OSError as err:
            raise DeviceError(f"list {device}: {err.strerror or err}") from err
        found = [
            (int(m.group(1)), os.path.join(device, n)) for n in names if (m := _VIRTFN.fullmatch(n))
        ]
        return sorted(found)

    def _vf(self, pf_name: str, index: int, link: str) -> VfInfo:
        vf_dir = self._link_target(link, in_real_dir=True)
        if vf_dir is None:
            raise DeviceError(f"read VF {index} of {pf_name}: {link} vanished")
        return self.describe_vf(VfRef(pf_name, index, os.path.basename(vf_dir), vf_dir))

    @staticmethod
    def _netdevs(device: str) -> list[str]:
        """The netdev names under ``device``/net, sorted; none if there is no net/ dir."""
        net = os.path.join(device, "net")
        try:
            return sorted(os.listdir(net))
        except FileNotFoundError:
            return []
        except OSError as err:
            raise DeviceError(f"list {net}: {err.strerror or err}") from err

    @staticmethod
    def _link_target(link: str, in_real_dir: bool = False) -> str | None:
        """Where symlink ``link`` leads, None if there is no such link.

        A link that exists but is not a symlink or points nowhere is broken:
        DeviceError names it. ``in_real_dir`` says ``link`` sits in a directory
        already resolved, as the links of a PCI device directory do: a relative
        target then needs no resolving of every component on the way (which
        cost most of listing a PF's VFs), as sysfs links lead to directories.
        """
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise DeviceError(f"read link {link}: {err.strerror or err}") from err
        joined = os.path.join(os.path.dirname(link), target)
        resolved = os.path.normpath(joined) if in_real_dir else os.path.realpath(joined)
        if not os.path.exists(resolved):
            raise DeviceError(f"read link {link}: it points to {target}, which does not exist")
        return resolved

    @staticmethod
    def _read_optional(path: str) -> str | None:
        """The stripped text of ``path``, None if it is missing or the kernel refuses it."""
        try:
            with open(path) as file:
                return file.read().strip()
        except OSError:
            return None

    @staticmethod
    def _read_int(path: str) -> int:
        try:
            with open(path) as file:
                text = file.read()
        except OSError as err:
            raise DeviceError(f"read {path}: {err.strerror or err}") from err
        try:
            return int(text.strip())
        except ValueError as err:
            raise DeviceError(f"read {path}: {text.strip()!r} is not a number") from err
