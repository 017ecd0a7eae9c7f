"""The few link operations done on every endpoint, as socket ioctls.

pyroute2 spends 0.2-0.3 ms of Python on every netlink message it encodes and
decodes (a link dump costs that per link in the namespace, and a host running
containers has many), while a VF netdev's flags, MTU and MAC, and a simulated
VF's switch port, are read or changed on every endpoint; the classic SIOC*
ioctls do each in a few microseconds plus the kernel's own work. They act on
the network namespace of the calling process, as netlink does. Each raises
OSError with the errno (ENODEV: no such link). Names must have passed
``plugin.nic.names.check_ifname``.
"""

from __future__ import annotations

import fcntl
import socket
import struct

IFF_UP = 0x1  # <linux/if.h>: SIOCGIFFLAGS and rtnetlink's ifi_flags carry the same flags

SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCSIFHWADDR = 0x8924
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
SIOCBRADDIF = 0x89A2
SIOCBRDELIF = 0x89A3
ARPHRD_ETHER = 1

# struct ifreq: a 16-byte name, then a union of which we use an int, a short or a sockaddr.
_IFREQ_INT = struct.Struct("16si12x")
_IFREQ_SHORT = struct.Struct("16sh14x")
_IFREQ_HWADDR = struct.Struct("16sH6s8x")


def _ioctl(request: int, packed: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return fcntl.ioctl(sock, request, packed)


def _name(name: str) -> bytes:
    return name.encode()


def flags(name: str) -> int:
    """The link's IFF_* flags."""
    return _IFREQ_SHORT.unpack(_ioctl(SIOCGIFFLAGS, _IFREQ_SHORT.pack(_name(name), 0)))[1]


def index(name: str) -> int:
    return _IFREQ_INT.unpack(_ioctl(SIOCGIFINDEX, _IFREQ_INT.pack(_name(name), 0)))[1]


def mtu(name: str) -> int:
    return _IFREQ_INT.unpack(_ioctl(SIOCGIFMTU, _IFREQ_INT.pack(_name(name), 0)))[1]


def set_mtu(name: str, value: int) -> None:
    _ioctl(SIOCSIFMTU, _IFREQ_INT.pack(_name(name), value))


def set_mac(name: str, mac: str) -> None:
    """Set the Ethernet address of ``name`` ("02:00:00:aa:bb:cc")."""
    address = bytes(int(part, 16) for part in mac.split(":"))
    _ioctl(SIOCSIFHWADDR, _IFREQ_HWADDR.pack(_name(name), ARPHRD_ETHER, address))


def mac(name: str) -> str:
    """The Ethernet address of ``name``, as "02:00:00:aa:bb:cc"."""
    _, _, address = _IFREQ_HWADDR.unpack(
        _ioctl(SIOCGIFHWADDR, _IFREQ_HWADDR.pack(_name(name), 0, b""))
    )
    return ":".join(f"{byte:02x}" for byte in address)


def add_bridge_port(bridge: str, port: str) -> None:
    """Enslave ``port`` to ``bridge`` (EBUSY if it is another bridge's port)."""
    _ioctl(SIOCBRADDIF, _IFREQ_INT.pack(_name(bridge), index(port)))


def remove_bridge_port(bridge: str, port: str) -> None:
    """Release ``port`` from ``bridge`` (EINVAL if it is not a port of it)."""
    _ioctl(SIOCBRDELIF, _IFREQ_INT.pack(_name(bridge), index(port)))
