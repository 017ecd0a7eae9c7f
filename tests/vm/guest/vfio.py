"""What Kata Containers' runtime does to a VF that Docker put in a container, with the kernel's
own interfaces: unbind it from igbvf, bind it to vfio-pci, open it as a VM would (which
resets it), and give it back to igbvf when the VM ends.

Needs the guest's emulated Intel IOMMU (scripts/vm/run.sh with SRIOV_VM_IOMMU=1): Debian's
6.1 kernel has no vfio no-IOMMU mode, and with the IOMMU each VF has a group of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from igb import run

PCI = Path("/sys/bus/pci")
# linux/vfio.h: _IO(VFIO_TYPE ';', VFIO_BASE 100 + n)
VFIO_GET_API_VERSION = 0x3B64
VFIO_CHECK_EXTENSION = 0x3B65
VFIO_SET_IOMMU = 0x3B66
VFIO_GROUP_GET_STATUS = 0x3B67
VFIO_GROUP_SET_CONTAINER = 0x3B68
VFIO_GROUP_GET_DEVICE_FD = 0x3B6A
VFIO_DEVICE_GET_INFO = 0x3B6B
VFIO_API_VERSION = 0
VFIO_TYPE1_IOMMU = 1
VFIO_GROUP_FLAGS_VIABLE = 1
VFIO_DEVICE_FLAGS_PCI = 1 << 1


def driver(pci: str) -> str | None:
    link = PCI / "devices" / pci / "driver"
    return link.resolve().name if link.exists() else None


def iommu_group(pci: str) -> str:
    return (PCI / "devices" / pci / "iommu_group").resolve().name


def rebind(pci: str, to: str) -> None:
    """Unbind ``pci`` from its driver and bind it to ``to``, as Kata does both ways."""
    run("modprobe", "vfio-pci")
    now = driver(pci)
    if now:
        (PCI / "drivers" / now / "unbind").write_text(pci)
    # driver_override: the device is bound to exactly this driver, whatever its IDs say.
    (PCI / "devices" / pci / "driver_override").write_text(to)
    (PCI / "drivers" / to / "bind").write_text(pci)
    (PCI / "devices" / pci / "driver_override").write_text("\n")
    assert driver(pci) == to, f"{pci} is bound to {driver(pci)}, not {to}"


@contextlib.contextmanager
def opened_as_a_vm_would(pci: str) -> Iterator[dict]:
    """The VF's IOMMU group in a type-1 container and the device's fd, as QEMU opens them.

    Getting the device fd resets the VF. Yields what VFIO_DEVICE_GET_INFO says.
    """
    container = os.open("/dev/vfio/vfio", os.O_RDWR)
    group = None
    device = None
    try:
        assert fcntl.ioctl(container, VFIO_GET_API_VERSION) == VFIO_API_VERSION
        assert fcntl.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) == 1
        group = os.open(f"/dev/vfio/{iommu_group(pci)}", os.O_RDWR)
        status = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(group, VFIO_GROUP_GET_STATUS, status)
        assert struct.unpack("II", status)[1] & VFIO_GROUP_FLAGS_VIABLE, f"group of {pci}"
        fcntl.ioctl(group, VFIO_GROUP_SET_CONTAINER, struct.pack("i", container))
        fcntl.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)
        device = fcntl.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bytearray(pci.encode() + b"\0"))
        info = bytearray(struct.pack("IIIII", 20, 0, 0, 0, 0))
        fcntl.ioctl(device, VFIO_DEVICE_GET_INFO, info)
        _argsz, flags, regions, irqs, _cap = struct.unpack("IIIII", info)
        yield {"pci": flags & VFIO_DEVICE_FLAGS_PCI != 0, "regions": regions, "irqs": irqs}
    finally:
        for fd in (device, group, container):
            if fd is not None:
                os.close(fd)
